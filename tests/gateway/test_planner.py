"""The request planner reads a device's points in as few requests as the protocol allows."""

from __future__ import annotations

from facility.profile import ModbusField, load_profile
from gateway.modbus.planner import MAX_REGISTERS_PER_READ, plan


def f(table: str, address: int, type_: str = "uint16") -> ModbusField:
    return ModbusField.model_validate(
        {"table": table, "address": address, "type": type_ if table in ("holding", "input") else "bool"}
    )


def test_booster_pump_profile_needs_one_read_per_table(repo_root) -> None:  # type: ignore[no-untyped-def]
    profile = load_profile(repo_root / "facility/profiles/booster_pump.yaml")
    reads = plan({n: p.modbus for n, p in profile.points.items() if p.modbus})
    assert [(r.table, r.address, r.count) for r in reads] == [("holding", 0, 5), ("input", 0, 9)]
    assert sum(len(r.points) for r in reads) == len(profile.points)


def test_small_gaps_are_bridged_large_ones_split() -> None:
    reads = plan({"a": f("holding", 0), "b": f("holding", 5), "c": f("holding", 100, "uint32")}, max_gap=8)
    assert [(r.address, r.count) for r in reads] == [(0, 6), (100, 2)]


def test_a_read_never_exceeds_the_protocol_limit() -> None:
    points = {f"p{i}": f("input", i) for i in range(300)}
    reads = plan(points)
    assert [r.count for r in reads] == [MAX_REGISTERS_PER_READ, MAX_REGISTERS_PER_READ, 50]


def test_tables_are_never_mixed() -> None:
    reads = plan({"a": f("holding", 0), "b": f("input", 1), "c": f("coil", 0), "d": f("discrete", 3)})
    assert sorted(r.table for r in reads) == ["coil", "discrete", "holding", "input"]
