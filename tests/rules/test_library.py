"""The shipped rule library on the demo estate: it loads, covers every device type, and its rule
tests (rules/library/tests/) pass — the same command an engineer runs after editing a rule."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from facility.site import load_site
from facility_app.cli import app
from rules.ruleset import LIBRARY_DIR, load_rules

DEMO = Path(__file__).resolve().parents[2] / "sites" / "demo" / "site.yaml"


def test_every_device_of_the_demo_estate_is_watched() -> None:
    site = load_site(DEMO)
    rules = load_rules(site)
    watched = {device for rule in rules for device in rule.devices}
    assert watched == {d.id for d in site.devices}
    offline = next(r for r in rules if r.id == "device-offline")
    assert set(offline.devices) == {d.id for d in site.devices}  # communication loss, for every device
    types = {site.device(d).type for rule in rules if rule.id != "device-offline" for d in rule.devices}
    assert types == {d.type for d in site.devices}  # and each type has rules of its own
    assert {r.spec.plan for r in rules if r.spec.plan} == {"fire", "flooding", "mains-failure", "elevator-entrapment"}


def test_the_library_rule_tests_pass() -> None:
    files = sorted((LIBRARY_DIR / "tests").glob("*_test.yaml"))
    assert files
    result = CliRunner().invoke(app, ["rules", "test", *map(str, files)])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith(" passed, 0 failed")
