"""The admin token a server is given: from the environment or a file, never the command line, and
never a weak one. Each refusal comes before anything starts, with a reason and a way out."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from facility_app.cli import app
from facility_app.cli.tokens import token_problem

GOOD = "c2f1e4b7a9d03e5f68a1b2c3d4e5f60718293a4b"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("x", "1 characters"),
        ("secret", "6 characters"),
        ("a" * 40, "only 1 different characters"),
        ("ab" * 20, "only 2 different characters"),
        (GOOD[:20] + " " + GOOD[:20], "spaces"),
    ],
)
def test_weak_tokens_are_named_as_such(token: str, why: str) -> None:
    problem = token_problem(token)
    assert problem is not None and why in problem


def test_a_random_token_is_good() -> None:
    assert token_problem(GOOD) is None


@pytest.mark.parametrize(
    "command", [["demo"], ["run", "-c", "sites/demo/site.yaml"], ["sim", "run", "sites/demo/site.yaml"]]
)
def test_a_server_refuses_a_weak_token_from_the_environment_before_it_starts(command: list[str]) -> None:
    result = CliRunner().invoke(app, command, env={"FACILITY_TOKEN": "x"})
    assert result.exit_code == 2
    assert "the admin token from FACILITY_TOKEN is too weak: it has 1 characters" in result.output
    assert "openssl rand -hex 32" in result.output


def test_a_weak_token_file_is_refused_and_named(tmp_path: Path) -> None:
    weak = tmp_path / "token"
    weak.write_text("password\n")
    result = CliRunner().invoke(app, ["demo", "--token-file", str(weak)], env={"FACILITY_TOKEN": ""})
    assert result.exit_code == 2
    assert f"the admin token from {weak} is too weak" in result.output


def test_no_token_is_taken_from_the_command_line() -> None:
    result = CliRunner().invoke(app, ["demo", "--token", GOOD])
    assert result.exit_code == 2
    assert "No such option: --token" in result.output


@pytest.mark.parametrize(
    "command", [["demo"], ["run", "-c", "sites/demo/site.yaml"], ["sim", "run", "sites/demo/site.yaml"]]
)
def test_a_server_refuses_the_examples_placeholders_naming_each_never_its_value(command: list[str]) -> None:
    """`.env` copied from deploy/env.example and not filled in: nothing starts."""
    placeholders = {
        "FACILITY_MQTT_PASSWORD": "replace-with-a-long-random-password",
        "INFLUXDB_TOKEN": "'replace-with-x'",
    }
    result = CliRunner().invoke(app, command, env={"FACILITY_TOKEN": GOOD, **placeholders})
    assert result.exit_code == 2
    assert "FACILITY_MQTT_PASSWORD, INFLUXDB_TOKEN still hold the placeholder of deploy/env.example" in result.output
    assert not any(value.strip("'") in result.output for value in placeholders.values())


def test_a_placeholder_in_the_token_file_is_refused(tmp_path: Path) -> None:
    placeholder = tmp_path / "token"
    placeholder.write_text("replace-with-a-long-random-token\n")  # 32 characters: long enough otherwise
    result = CliRunner().invoke(app, ["run", "-c", "sites/demo/site.yaml", "--token-file", str(placeholder)])
    assert result.exit_code == 2
    assert f"the admin token in {placeholder} is the placeholder of deploy/env.example" in result.output
