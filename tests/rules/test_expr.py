"""Rule expressions: what engineers write evaluates as they expect; nothing else gets in."""

from __future__ import annotations

import pytest

from rules.expr import UNKNOWN, ExprError, compile_expr


def ev(text: str, **values: object) -> object:
    return compile_expr(text).evaluate(values)


def test_threshold_and_boolean_combination() -> None:
    rule = "running and outlet_pressure < 0.25"
    assert ev(rule, running=True, outlet_pressure=0.2) is True
    assert ev(rule, running=False, outlet_pressure=0.2) is False
    assert ev(rule, running=True, outlet_pressure=0.3) is False
    assert compile_expr(rule).names == {"running", "outlet_pressure"}


def test_states_chains_arithmetic_and_membership() -> None:
    assert ev('zone_3_state == "fire"', zone_3_state="fire") is True
    assert ev("0.2 < level <= 0.8", level=0.8) is True
    assert ev("a - b > 1", a=5, b=3) is True
    assert ev('mode in ["inspection", "fire"]', mode="fire") is True
    assert ev("not door_open", door_open=False) is True
    assert ev("flag == true", flag=True) is True


def test_unknown_follows_three_valued_logic() -> None:
    assert ev("x < 1") is UNKNOWN
    assert ev("x < 1 and y", y=False) is False  # false wins over unknown
    assert ev("x < 1 or y", y=True) is True  # true wins over unknown
    assert ev("x < 1 and y", y=True) is UNKNOWN
    assert ev("not x") is UNKNOWN
    assert ev("x / y > 1", x=1, y=0) is UNKNOWN  # no division error reaches the engine
    assert ev("x > 1", x="text") is UNKNOWN  # a wrongly typed value is not a crash


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os').system('true')", "calls are not allowed"),
        ("pump.__class__", "Attribute is not allowed"),
        ("values[0]", "Subscript is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("[x for x in y]", "ListComp is not allowed"),
        ("a <", "syntax error"),
    ],
)
def test_anything_beyond_the_language_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(ExprError, match=fragment):
        compile_expr(text)


def test_misspelt_point_is_refused_with_its_column() -> None:
    with pytest.raises(ExprError) as caught:
        compile_expr("running and outlet_presure < 0.25", {"running", "outlet_pressure"})
    assert "unknown point 'outlet_presure'" in str(caught.value)
    assert caught.value.column == 13
