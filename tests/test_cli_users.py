"""`facility users add` and `list` with estates: a user reaches the estate of the site file they
were added with unless `--estate` names others or `--every-estate` gives them all, and the command
refuses what cannot be an estate before it writes anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from facility.netutil import free_port
from facility_app.cli import app
from testsupport.system import write_site


def facility(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout + result.stderr


def test_users_are_limited_to_estates_as_the_command_says(tmp_path: Path) -> None:
    site, data = write_site(tmp_path, "mqtt://127.0.0.1:1", free_port()), tmp_path / "data"
    where = ("--site", site, "--data", data)
    site_id = site.read_text().split("id: ", 1)[1].split(",", 1)[0]

    code, said = facility("users", "add", "ana", "--role", "duty", *where)
    assert code == 0 and "warning" not in said  # the --site's estate: registered by the command itself
    code, said = facility("users", "add", "bo", "--role", "duty", "--estate", "north", "--estate", site_id, *where)
    assert code == 0 and "no process of the estate north has used this database yet" in said
    assert facility("users", "add", "cy", "--role", "manager", "--every-estate", *where)[0] == 0
    code, said = facility("users", "add", "di", "--role", "duty", "--estate", "North Garden", *where)
    assert code == 2 and "estate: 'North Garden' is not a site id" in said
    code, said = facility("users", "add", "ed", "--role", "duty", "--estate", "north", "--every-estate", *where)
    assert code == 2 and "give --estate or --every-estate, not both" in said

    code, listed = facility("users", "list", *where)
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t")[2] for line in listed.strip().splitlines()}
    assert rows == {"ana": site_id, "bo": f"north, {site_id}", "cy": "every estate"}
