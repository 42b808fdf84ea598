"""Durations as engineers write them in YAML: `500ms`, `5s`, `10m`, `1h`, `2d` or plain seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: object) -> float:
    """Seconds in `text`; raises ValueError naming the accepted forms."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 500ms, 5s, 10m, 1h")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 500ms, 5s, 10m, 1h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


Duration = Annotated[float, BeforeValidator(parse_duration)]
