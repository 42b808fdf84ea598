"""The `facility` command as a newcomer meets it: the README's forms say where they looked for data,
`--help` speaks of paths and tokens rather than Python types, and every option says what it is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from facility.model import Quality, Reading
from facility.store.sqlite_telemetry import SqliteTelemetry
from facility_app.cli import app
from tests.reports.conftest import estate_in, seeded_folder

EXAMPLES = Path(__file__).parent / "rules" / "examples"
MIN = 60 * 1_000_000_000


def facility(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _text(help_page: str) -> str:
    """A --help page as words: rich's boxes gone, its line wrapping undone."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_page).split())


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under `command` (typer's own click), with the words that call it."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "facility")
def test_help_shows_no_python_types(path: tuple[str, ...]) -> None:
    code, out, _ = facility(*path, "--help")
    assert code == 0
    assert "list[" not in out and "Path]" not in out, out


def test_every_option_and_argument_says_what_it_is() -> None:
    silent = [
        f"{' '.join(path)} {param.name}"
        for path, command in COMMANDS
        for param in command.params
        if not getattr(param, "help", None)
    ]
    assert silent == []


@pytest.mark.parametrize("command", ["devices", "fault", "scenarios", "play", "clear"])
def test_the_sim_client_commands_say_their_token_file_is_the_token_they_send(command: str) -> None:
    _, out, _ = facility("sim", command, "--help")
    assert "the token to send" in _text(out)
    _, served, _ = facility("demo", "--help")
    assert "the token to send" not in _text(served) and "admin token this server accepts" in _text(served)


def test_a_report_on_no_data_says_on_stderr_where_it_looked(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    estate_in(tmp_path)
    code, out, err = facility("report", "briefing", "-c", site)  # the README's form
    assert code == 0 and out  # the report still prints, all zero
    assert f"there was no ops store at {tmp_path / 'var' / 'ops.db'}" in err
    assert "--data var/demo" in err

    code, _, err = facility("report", "monthly", "--month", "2026-10", "-c", site)
    assert code == 0 and "the ops store holds no alarm" in err and "--data var/demo" in err

    (tmp_path / "empty").mkdir()
    code, _, err = facility("report", "handover", "-c", site, "--data", tmp_path / "empty")
    assert code == 0 and f"at {tmp_path / 'empty' / 'ops.db'}" in err and "facility demo --data" in err

    data = seeded_folder(tmp_path / "demo")
    code, out, err = facility("report", "briefing", "--date", "2026-10-05", "-c", site, "--data", data)
    assert code == 0 and "note:" not in err


def test_backtest_reads_the_telemetry_of_a_demo_data_folder(tmp_path: Path) -> None:
    t0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()) * 1_000_000_000
    store = SqliteTelemetry(tmp_path / "demo" / "telemetry.db")  # where `facility demo --data` writes it
    readings = []
    for m in range(60):  # pump-1 loses pressure from 08:10
        readings += [Reading("pump-1", "running", True, Quality.GOOD, t0 + m * MIN)]
        readings += [Reading("pump-1", "outlet_pressure", 0.4 if m < 10 else 0.2, Quality.GOOD, t0 + m * MIN)]
    store.write(readings)
    store.close()
    window = ("--from", "2025-03-01T08:00", "--to", "2025-03-01T09:00", "--site", EXAMPLES / "site.yaml")

    code, out, err = facility("rules", "backtest", *window, "--data", tmp_path / "demo")
    assert code == 0, err
    assert "low-pressure  pump-1  2025-03-01 08:15:00" in out

    code, _, err = facility("rules", "backtest", *window)  # the site's own store: none here
    assert code == 2 and "no telemetry store at" in err and "--data var/demo" in err


def test_a_report_says_on_a_terminal_that_it_is_being_built_and_from_where(tmp_path: Path) -> None:
    """A month over a large store takes a while: on a terminal, stderr shows what is being built
    from which store until the report is done (in a pipe, as above, nothing but the report)."""
    site = tmp_path / "site.yaml"
    estate_in(tmp_path)
    data = seeded_folder(tmp_path / "demo")
    out = tmp_path / "2026-10.md"
    command = ["report", "monthly", "--month", "2026-10", "-c", site, "--data", data, "--out", out]
    terminal, tty = os.openpty()
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "facility_app", *map(str, command)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=tty, env=_terminal_env(),
        )  # fmt: skip
        os.close(tty)  # the child's is then the only writing end: reading ends when it exits
        shown = _read_all(terminal)  # read as it is written, so that a full pty never blocks the child
        code = run.wait(120)
    finally:
        os.close(terminal)
    assert code == 0, shown
    assert f"building the report from {data / 'ops.db'}" in shown
    assert out.read_text(encoding="utf-8").startswith("#")


def _terminal_env() -> dict[str, str]:
    """The environment, as a terminal's: a width for the spinner's line, no colour to read past."""
    return {**os.environ, "COLUMNS": "200", "TERM": "xterm", "NO_COLOR": "1"}


def _read_all(fd: int) -> str:
    """All a pty's other end writes, until it is closed (Linux then answers EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
