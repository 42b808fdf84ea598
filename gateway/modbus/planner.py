"""Plans the fewest Modbus reads that cover a device's points."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from facility.codec import register_count
from facility.profile import ModbusField

MAX_REGISTERS_PER_READ = 125  # protocol limit for function codes 03 and 04
MAX_BITS_PER_READ = 2000  # protocol limit for function codes 01 and 02
DEFAULT_MAX_GAP = 8  # unused registers worth reading to save a request


@dataclass(frozen=True)
class Read:
    """One request: `count` registers (or bits) of `table` from `address`, and the points in it."""

    table: str
    address: int
    count: int
    points: tuple[tuple[str, ModbusField], ...]


def plan(points: Mapping[str, ModbusField], max_gap: int = DEFAULT_MAX_GAP) -> list[Read]:
    reads: list[Read] = []
    by_table: dict[str, list[tuple[str, ModbusField]]] = {}
    for name, field in points.items():
        by_table.setdefault(field.table, []).append((name, field))
    for table, members in sorted(by_table.items()):
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGISTERS_PER_READ
        members.sort(key=lambda m: m[1].address)
        start, end = -1, -1  # end is exclusive
        group: list[tuple[str, ModbusField]] = []
        for name, field in members:
            f_end = field.address + register_count(field)
            if group and field.address - end <= max_gap and max(end, f_end) - start <= limit:
                end = max(end, f_end)
                group.append((name, field))
                continue
            if group:
                reads.append(Read(table, start, end - start, tuple(group)))
            start, end, group = field.address, f_end, [(name, field)]
        if group:
            reads.append(Read(table, start, end - start, tuple(group)))
    return reads
