"""Modbus registers <-> point values, both directions in one place.

The gateway decodes with `decode`; the simulators encode with `pack`. Keeping both here means a
round trip through the wire is the test that they agree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from facility.model import Value
from facility.profile import ModbusField

_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def register_count(field: ModbusField) -> int:
    """Registers (or bits, for coils and discrete inputs) a point occupies."""
    return 2 if field.type in ("int32", "uint32", "float32") else 1


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _raw(field: ModbusField, regs: Sequence[int]) -> float | int:
    words = list(regs[: register_count(field)])
    if field.word_order == "little":
        words.reverse()
    if field.byte_order == "little":
        words = [_swap(w) for w in words]
    data = b"".join(w.to_bytes(2, "big") for w in words)
    kind = "uint16" if field.type == "bool" else field.type
    value: float | int = struct.unpack(_STRUCT[kind], data)[0]
    return value


def decode(field: ModbusField, regs: Sequence[int]) -> Value:
    """The value of a point from its raw registers; None means "not available" (bad quality)."""
    if field.table in ("coil", "discrete"):
        return bool(regs[0])
    raw = _raw(field, regs)
    if field.sentinel is not None and raw == field.sentinel:
        return None
    if raw != raw:  # NaN from a float32 register
        return None
    if field.bit is not None:
        return bool((int(raw) >> field.bit) & 1)
    if field.enum is not None:
        return field.enum.get(int(raw))
    if field.scale != 1.0 or field.offset != 0.0:
        return round(raw * field.scale + field.offset, 6)  # drop float noise the scale introduces
    return raw


def _encode_raw(field: ModbusField, value: Value) -> list[int]:
    if value is None:
        if field.sentinel is None:
            raise ValueError("point has no sentinel for 'not available'")
        raw: float = field.sentinel
    elif field.enum is not None:
        reverse = {label: code for code, label in field.enum.items()}
        raw = reverse[str(value)]
    else:
        raw = (float(value) - field.offset) / field.scale
    if field.type != "float32":
        raw = round(raw)
    data = struct.pack(_STRUCT[field.type], raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if field.byte_order == "little":
        words = [_swap(w) for w in words]
    if field.word_order == "little":
        words.reverse()
    return words


def pack(points: Iterable[tuple[ModbusField, Value]]) -> dict[tuple[str, int], int]:
    """Registers and bits for a set of point values, keyed by (table, address).

    Bit fields that share a register are merged into it.
    """
    out: dict[tuple[str, int], int] = {}
    for field, value in points:
        key = (field.table, field.address)
        if field.table in ("coil", "discrete"):
            out[key] = 1 if value else 0
        elif field.bit is not None:
            mask = 1 << field.bit
            out[key] = (out.get(key, 0) & ~mask) | (mask if value else 0)
        else:
            for i, word in enumerate(_encode_raw(field, value)):
                out[(field.table, field.address + i)] = word
    return out
