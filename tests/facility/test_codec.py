"""Registers <-> values: golden vectors from real device maps, and round trips for every type."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facility.codec import decode, pack, register_count
from facility.profile import ModbusField


def field(**kw: object) -> ModbusField:
    return ModbusField.model_validate({"table": "holding", "address": 0, **kw})


@pytest.mark.parametrize(
    ("spec", "registers", "value"),
    [
        ({"type": "uint16"}, [0xFFFF], 65535),
        ({"type": "int16"}, [0xFFFF], -1),
        ({"type": "int32"}, [0xFFFF, 0xFFFE], -2),
        ({"type": "uint32"}, [0x0001, 0x0002], 65538),
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538),
        ({"type": "float32"}, [0x4148, 0x0000], 12.5),  # 12.5 = 0x41480000
        ({"type": "float32", "word_order": "little"}, [0x0000, 0x4148], 12.5),
        ({"type": "float32", "byte_order": "little", "word_order": "little"}, [0x0000, 0x4841], 12.5),
        ({"type": "uint16", "byte_order": "little"}, [0x3412], 0x1234),
        ({"type": "uint16", "scale": 0.001}, [452], 0.452),
        ({"type": "int16", "scale": 0.1, "offset": -40}, [650], 25.0),
        ({"type": "uint16", "bit": 2}, [0b100], True),
        ({"type": "uint16", "bit": 1}, [0], False),
        ({"type": "uint16", "enum": {0: "normal", 1: "fire"}}, [1], "fire"),
        ({"type": "uint16", "sentinel": 65535, "scale": 0.1}, [65535], None),
    ],
)
def test_golden_vectors(spec: dict[str, object], registers: list[int], value: object) -> None:
    f = field(**spec)
    assert decode(f, registers) == value
    assert pack([(f, value)]) == {("holding", i): r for i, r in enumerate(registers)}


def test_nan_from_a_float_register_is_not_a_value() -> None:
    assert decode(field(type="float32"), [0x7FC0, 0x0000]) is None


def test_bits_in_one_register_are_merged() -> None:
    running, tripped = field(bit=0), field(bit=1)
    assert pack([(running, True), (tripped, True)]) == {("holding", 0): 0b11}
    assert pack([(running, False), (tripped, True)]) == {("holding", 0): 0b10}
    assert decode(tripped, [0b101]) is False and decode(running, [0b101]) is True


def test_inconsistent_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="type must be bool"):
        ModbusField(table="coil", address=0, type="uint16")
    with pytest.raises(ValueError, match="16-bit register"):
        field(type="uint32", bit=3)


orders = st.sampled_from(["big", "little"])


@given(st.integers(-(2**31), 2**31 - 1), orders, orders)
def test_int32_round_trip(value: int, words: str, bytes_: str) -> None:
    f = field(type="int32", word_order=words, byte_order=bytes_)
    regs = pack([(f, value)])
    assert len(regs) == register_count(f) == 2
    assert decode(f, [regs[("holding", 0)], regs[("holding", 1)]]) == value


@given(st.floats(width=32, allow_nan=False), orders, orders)
def test_float32_round_trip(value: float, words: str, bytes_: str) -> None:
    f = field(type="float32", word_order=words, byte_order=bytes_)
    regs = pack([(f, value)])
    decoded = decode(f, [regs[("holding", 0)], regs[("holding", 1)]])
    assert decoded == value or (math.isinf(value) and decoded == value)


@given(st.integers(0, 65534))
def test_scaled_uint16_round_trip(raw: int) -> None:
    f = field(type="uint16", scale=0.01, offset=-10, sentinel=65535)
    value = decode(f, [raw])
    assert pack([(f, value)]) == {("holding", 0): raw}
