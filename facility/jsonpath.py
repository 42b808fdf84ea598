"""Dotted paths into JSON payloads (`car.floor`), compiled once per point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MISSING = object()


def getter(path: str) -> Callable[[Any], Any]:
    """A function returning the value at `path` in a decoded payload, or MISSING."""
    keys = path.split(".")

    def get(obj: Any) -> Any:
        for key in keys:
            if not isinstance(obj, dict):
                return MISSING
            obj = obj.get(key, MISSING)
            if obj is MISSING:
                return MISSING
        return obj

    return get


def put(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at `path`, creating the objects on the way."""
    *parents, last = path.split(".")
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = value
