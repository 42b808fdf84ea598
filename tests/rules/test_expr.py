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
        ("__import__('os').system('true')", "unknown function"),
        ("print(level)", "unknown function"),
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


def test_functions_tell_the_engine_what_to_keep() -> None:
    expr = compile_expr('rate(level, 5m) > 0.2 or count(state == "fault", 1h) >= 3 or stale(inflow)')
    assert expr.names == {"level", "state", "inflow"}
    assert expr.rates == {("level", 300 * 10**9)}
    (counter,) = expr.counters
    assert (counter.key, counter.names, counter.window_ns) == ("state == 'fault'", {"state"}, 3600 * 10**9)
    assert expr.reads_quality and expr.windowed
    plain = compile_expr("running and outlet_pressure < 0.25")
    assert not plain.reads_quality and not plain.windowed


def test_without_a_past_the_functions_are_unknown() -> None:
    assert ev("rate(level, 5m) > 0.2", level=1.0) is UNKNOWN
    assert ev("offline() or door_open", door_open=True) is True
    assert ev("stale(level) and level > 1", level=0.5) is False


def test_a_duration_is_only_a_window_and_strings_stay_as_written() -> None:
    assert ev('mode == "5m"', mode="5m") is True
    assert compile_expr("count(door_open, 1.5h) > 2").counters[0].window_ns == 5400 * 10**9
    with pytest.raises(ExprError, match="only as the window") as caught:
        compile_expr("level > 1.5m")
    assert caught.value.column == 9


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rate(level) > 0.2", r"rate\(\) takes 2 arguments: write rate\(point, window\)"),
        ("rate(level, window=5m) > 0.2", r"rate\(\) takes 2 arguments"),
        ("rate(level, 0s) > 0.2", "window of rate.* must be a positive duration"),
        ("rate(level, x) > 0.2", "window of rate.* must be a positive duration"),
        ("rate(2 * level, 5m) > 0.2", "takes a point name first"),
        ("stale()", r"stale\(\) takes 1 argument: write stale\(point\)"),
        ("offline(level)", r"offline\(\) takes 0 arguments"),
        ("count(rate(level, 1m) > 1, 1h) > 1", "counts a point or a comparison"),
        ("level.rate(5m)", "unknown function"),
    ],
)
def test_a_function_used_wrongly_says_how_to_write_it(text: str, fragment: str) -> None:
    with pytest.raises(ExprError, match=fragment):
        compile_expr(text)


def test_a_misspelt_point_inside_a_function_is_refused() -> None:
    with pytest.raises(ExprError) as caught:
        compile_expr("running and rate(levl, 5m) > 1", {"running", "level"})
    assert "unknown point 'levl'" in str(caught.value)
    assert caught.value.column == 18
