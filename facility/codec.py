"""Modbus registers <-> point values, both directions in one place.

The gateway decodes with `decode` and encodes the values it writes with `encode`; the simulators
encode with `pack` and decode what a master writes with `decode`. Keeping both here means a round
trip through the wire is the test that they agree.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

from facility.model import Value
from facility.profile import ModbusField

_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_LIMITS = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


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


def encode(field: ModbusField, value: Value) -> list[int]:
    """The registers (or the one bit, as 0 or 1) a master writes to set a point to `value`.

    Raises ValueError for a value the point cannot carry: wrong type, unknown enum label, out of
    the register's range, or a bit field, which cannot be written alone: its register holds
    neighbours that a write of the whole register would overwrite.
    """
    if field.table in ("coil", "discrete"):
        if not isinstance(value, bool):
            raise ValueError(f"a {field.table} takes true or false, not {value!r}")
        return [1 if value else 0]
    if field.bit is not None:
        raise ValueError(f"bit {field.bit} of a register cannot be written without its neighbours")
    if value is None or isinstance(value, bool) or (field.enum is None and isinstance(value, str)):
        raise ValueError(f"expected a number, not {value!r}")
    if field.enum is not None and value not in field.enum.values():
        raise ValueError(f"expected one of {', '.join(map(repr, field.enum.values()))}, not {value!r}")
    if field.enum is None:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, not {value!r}")
        if field.type in _LIMITS:
            raw = round((number - field.offset) / field.scale)
            low, high = _LIMITS[field.type]
            if not low <= raw <= high:
                raise ValueError(f"{value!r} is {raw} in the register, outside the {field.type} range {low}..{high}")
    try:
        return _encode_raw(field, value)
    except (struct.error, OverflowError) as exc:  # float32 beyond its range
        raise ValueError(f"{value!r} does not fit a {field.type} register: {exc}") from None


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
