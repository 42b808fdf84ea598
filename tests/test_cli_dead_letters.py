"""`facility dead-letters` on a data folder holding dead letters: a table in the site's time zone,
newest first, each payload on one line; JSON lines as the API gives them; filters by since and
source, a limit that says what it left out, and an absent folder told rather than made. And the
summary of `facility rules check` in English plurals."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from facility.model import now_ns
from facility.netutil import free_port
from facility.records import DeadLetter
from facility_app.cli import app
from tests.letters import seed
from testsupport.system import write_site

HOUR = 3600 * 1_000_000_000
PAYLOAD = '\x1b[31m{"door":\n\t"open"' + "x" * 200  # a terminal's escape, line breaks, and long
RULE = (
    "  - id: {id}\n    title: {{zh: 泵跳闸, en: pump tripped}}\n"
    "    devices: {{ids: [{devices}]}}\n    when: 'true'\n    priority: high\n"
)


def facility(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_dead_letters_are_read_from_a_data_folder(tmp_path: Path) -> None:
    site, data = write_site(tmp_path, "mqtt://127.0.0.1:1", free_port()), tmp_path / "data"
    now = now_ns()
    old, new = now - 3 * HOUR, now - 60_000_000_000
    asyncio.run(
        seed(
            data,
            site,
            [
                DeadLetter(old, "modbus", "pump-1/outlet_pressure", "illegal data address", ""),
                DeadLetter(new, "mqtt", "test/lifts/lift-1", "not JSON: unexpected end", PAYLOAD),
            ],
        )
    )
    args = ("--site", site, "--data", data)

    code, out, err = facility("dead-letters", *args)
    assert code == 0 and err == ""
    header, first, second = out.splitlines()
    assert header.split() == ["time", "source", "key", "reason", "payload"]
    shanghai = ZoneInfo("Asia/Shanghai")
    assert first.startswith(datetime.fromtimestamp(new / 1e9, shanghai).strftime("%Y-%m-%d %H:%M:%S") + "  mqtt ")
    assert "test/lifts/lift-1" in first and "not JSON: unexpected end" in first
    assert first.endswith('\\x1b[31m{"door": "open"' + "x" * 36 + "…")  # one line, escaped, cut to 60
    assert "\x1b" not in out
    assert second.startswith(datetime.fromtimestamp(old / 1e9, shanghai).strftime("%Y-%m-%d %H:%M:%S") + "  modbus")
    assert second.split()[3:] == ["pump-1/outlet_pressure", "illegal", "data", "address"]  # no payload: nothing after

    code, out, _ = facility("dead-letters", *args, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(d["source"], d["key"], d["device"]) for d in lines] == [
        ("mqtt", "test/lifts/lift-1", "lift-1"),
        ("modbus", "pump-1/outlet_pressure", "pump-1"),
    ]
    assert lines[0]["ts"] == new and lines[0]["payload"] == PAYLOAD

    code, out, _ = facility("dead-letters", *args, "--since", "-1h", "--json")
    assert code == 0 and [json.loads(line)["key"] for line in out.splitlines()] == ["test/lifts/lift-1"]
    code, out, _ = facility("dead-letters", *args, "--source", "modbus", "--json")
    assert code == 0 and [json.loads(line)["key"] for line in out.splitlines()] == ["pump-1/outlet_pressure"]
    code, out, err = facility("dead-letters", *args, "--limit", "1", "--json")
    assert code == 0 and len(out.splitlines()) == 1
    assert "1 of 2 dead letters shown, newest first; --limit shows more" in err
    code, out, err = facility("dead-letters", *args, "--source", "webhook")
    assert (code, out) == (0, "") and f"no dead letters matching in the ops store at {data / 'ops.db'}" in err

    code, _, err = facility("dead-letters", *args, "--source", "serial")
    assert code == 2 and "--source" in err and "'serial' is not one of mqtt, modbus, telemetry, webhook" in err
    code, _, err = facility("dead-letters", *args, "--since", "yesterday")
    assert code == 2 and "--since" in err and "'yesterday' is not a time" in err


def test_a_folder_without_an_ops_store_is_told_and_left_alone(tmp_path: Path) -> None:
    site, data = write_site(tmp_path, "mqtt://127.0.0.1:1", free_port()), tmp_path / "typo"
    code, out, err = facility("dead-letters", "--site", site, "--data", data)
    assert (code, out) == (0, "")
    assert f"note: there is no ops store at {data / 'ops.db'}, so no dead letters" in err
    assert not data.exists()


def test_rules_check_counts_in_english(tmp_path: Path) -> None:
    site = write_site(tmp_path, "mqtt://127.0.0.1:1", free_port())
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("rules:\n" + RULE.format(id="a", devices="pump-1"))
    two.write_text("rules:\n" + RULE.format(id="b", devices="pump-1, lift-1"))
    assert facility("rules", "check", one, "--site", site)[:2] == (
        0,
        "1 rule in 1 file: 1 condition on 1 device: OK\n",
    )
    assert facility("rules", "check", one, two, "--site", site)[:2] == (
        0,
        "2 rules in 2 files: 3 conditions on 2 devices: OK\n",
    )
