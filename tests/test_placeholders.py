"""Placeholder secrets: deploy/env.example's values are found, whatever the environment holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from facility.placeholders import PLACEHOLDER_PREFIX, is_placeholder, placeholder_variables


def example(repo_root: Path) -> dict[str, str]:
    """deploy/env.example as the environment an operator gets who copies it and changes nothing."""
    lines = (repo_root / "deploy/env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_example_unchanged_is_refused_for_every_secret_it_holds(repo_root: Path) -> None:
    copied = example(repo_root)
    secrets = {name for name in copied if name.endswith(("_TOKEN", "_PASSWORD"))}
    assert {"FACILITY_TOKEN", "FACILITY_MQTT_PASSWORD", "INFLUXDB_TOKEN"} <= secrets
    # Every secret of the example is a placeholder of the one form the check knows ...
    assert all(copied[name].startswith(PLACEHOLDER_PREFIX) for name in secrets), copied
    # ... and nothing else of it is: a name or address the example suggests may well be kept.
    assert placeholder_variables(copied) == sorted(secrets)


def test_secrets_of_ones_own_pass(repo_root: Path) -> None:
    chosen = {name: f"{name.lower()}-4f9c2a7e1b0d" for name in example(repo_root)}
    assert placeholder_variables({**chosen, "PATH": "/usr/bin"}) == []


def test_only_the_names_come_back_sorted_and_one_left_is_enough() -> None:
    environ = {
        "INFLUXDB_TOKEN": "replace-with-a-long-random-token",
        "FACILITY_TOKEN": "9d1e7f0b3a5c4e6f8a2b1c0d9e8f7a6b",
        "FACILITY_MQTT_PASSWORD": "replace-with-a-long-random-password",
    }
    assert placeholder_variables(environ) == ["FACILITY_MQTT_PASSWORD", "INFLUXDB_TOKEN"]


@pytest.mark.parametrize(
    "value",
    [
        "replace-with-a-long-random-token",
        '"replace-with-a-long-random-token"',  # quoted in a hand-edited .env
        "'replace-with-x'",
        '"replace-with-x',  # a quote lost on the way
        "  replace-with-x \n",
        "Replace-With-A-Token",
        "replace-with-",
    ],
)
def test_a_placeholder_is_found_however_it_is_written(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize(
    "value",
    ["", "replace", "a-token-made-to-replace-with-a-long-random-token", "replacewith-x", "replace-with"],
)
def test_a_value_that_only_resembles_one_is_not(value: str) -> None:
    assert not is_placeholder(value)
