"""Site files: the demo loads; a malformed file is refused with file, line and field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from facility.site import load_site
from facility.yamlfile import ConfigError

GOOD = """\
site: {id: t}
devices:
  - id: pump-1
    profile: booster_pump
    modbus:
      host: 127.0.0.1
      port: 15020
  - id: lift-1
    profile: elevator
    mqtt: {topic: a/b}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_demo_site_loads_with_its_profiles(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    types = {d.type for d in site.devices}
    assert {"booster_pump", "elevator"} <= types
    pump = next(d for d in site.devices if d.type == "booster_pump")
    assert site.profile_of(pump).points["outlet_pressure"].unit == "MPa"


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("port: 15020", "port: fifteen"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 7, "devices[0].modbus.port")
    assert f"{path}:7: devices[0].modbus.port:" in str(caught.value)


def test_misspelt_field_is_refused_not_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("    profile: elevator", "    profile: elevator\n    locaton: {building: B1}"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (10, "devices[1].locaton")
    assert "unknown field" in problem.message


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("profile: elevator", "profile: escalator"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (9, "devices[1].profile")
    assert "'escalator'" in problem.message and "elevator" in problem.message


def test_binding_must_match_the_profile_protocol(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("profile: elevator", "profile: booster_pump"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert caught.value.problems[0].field == "devices[1].mqtt"
    assert "read over modbus" in caught.value.problems[0].message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("mqtt: {topic: a/b}", "mqtt: {topic: a/b"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert caught.value.problems[0].line == 11
    assert "YAML syntax" in caught.value.problems[0].message


def test_a_control_character_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("mqtt: {topic: a/b}", "mqtt: {topic: a/b\x07}"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert caught.value.problems[0].line == 10  # the device's mqtt line
    assert "U+0007 is not allowed" in caught.value.problems[0].message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("      port: 15020", "      port: 15020\n      port: 15021"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert (caught.value.problems[0].line, caught.value.problems[0].field) == (8, "devices[0].modbus.port")


def test_a_duplicate_device_id_is_named_at_the_second_device(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("id: lift-1", "id: pump-1"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert str(problem) == f"{path}:8: devices[1].id: device id 'pump-1' appears twice: first at devices[0] (line 3)"


CHILLER = """\
type: chiller
points:
  mode:
    label: {zh: 运行模式, en: Mode}
    modbus: {table: holding, address: 0, enum: {0: cool, 1: heat, 2: off}}
  alarm:
    label: {zh: 故障, en: Fault}
    modbus: {table: holding, address: 1, enum: {0: no, 1: yes}}
"""


def _chiller_site(tmp_path: Path, profile: str) -> Path:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "chiller.yaml").write_text(profile)
    return _write(
        tmp_path,
        "site: {id: t}\nprofiles: [profiles]\ndevices:\n  - {id: chiller-1, profile: chiller, modbus: {port: 1502}}\n",
    )


def test_a_bare_off_in_an_enum_says_to_quote_it(tmp_path: Path) -> None:
    path = _chiller_site(tmp_path, CHILLER)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    profile = tmp_path / "profiles" / "chiller.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{profile}:5: points.mode.modbus.enum[2]: Input should be a valid string; "
        "YAML 1.1 reads a bare off as false: write it quoted: 'off'",
        f"{profile}:8: points.alarm.modbus.enum[0]: Input should be a valid string; "
        "YAML 1.1 reads a bare no as false: write it quoted: 'no'",
        f"{profile}:8: points.alarm.modbus.enum[1]: Input should be a valid string; "
        "YAML 1.1 reads a bare yes as true: write it quoted: 'yes'",
    ]


def test_a_label_in_one_language_is_used_for_both_with_a_warning(tmp_path: Path) -> None:
    quoted = CHILLER.replace("2: off", '2: "off"').replace("0: no, 1: yes", '0: "no", 1: "yes"')
    path = _chiller_site(tmp_path, quoted.replace("{zh: 故障, en: Fault}", "{zh: 故障}"))
    site = load_site(path)
    chiller = site.device("chiller-1")
    assert site.profile_of(chiller).points["alarm"].label == {"zh": "故障", "en": "故障"}
    assert site.profile_of(chiller).points["mode"].label == {"zh": "运行模式", "en": "Mode"}
    profile = tmp_path / "profiles" / "chiller.yaml"
    assert [str(w) for w in site.warnings] == [
        f"{profile}:7: points.alarm.label: given in zh only: the desk shows this text in en mode too; add `en:`"
    ]


def test_check_command_warns_of_a_text_in_one_language_and_passes(tmp_path: Path) -> None:
    quoted = CHILLER.replace("2: off", '2: "off"').replace("0: no, 1: yes", '0: "no", 1: "yes"')
    path = _chiller_site(tmp_path, quoted.replace("{zh: 故障, en: Fault}", "{zh: 故障}"))
    result = subprocess.run(
        [sys.executable, "-m", "facility", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    profile = tmp_path / "profiles" / "chiller.yaml"
    assert f"warning: {profile}:7: points.alarm.label: given in zh only" in result.stderr
    assert re.search(r": 1 device, \d+ rules: OK\n$", result.stdout), result.stdout


def test_check_command_reports_the_error_and_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("port: 15020", "port: 99999"))
    result = subprocess.run(
        [sys.executable, "-m", "facility", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"{path}:7: devices[0].modbus.port: Input should be less than or equal to 65535" in result.stderr


def test_check_command_accepts_the_demo(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facility", "check", str(repo_root / "sites/demo/site.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_a_device_names_a_vendor_the_site_declares(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\nvendors:\n  - {id: liftco, name: Lift Co, arrive_within: 30m}\ndevices:\n"
        "  - {id: lift-1, profile: elevator, vendor: liftco, mqtt: {topic: a}}\n"
        "  - {id: lift-2, profile: elevator, vendor: nobody, mqtt: {topic: b}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "site.yaml:6: devices[1].vendor: no vendor 'nobody' (known: liftco)" in str(err.value)
    path.write_text(path.read_text().replace("vendor: nobody", "vendor: liftco"))
    site = load_site(path)
    assert site.vendor(site.device("lift-2").vendor or "").arrive_within == 1800


def test_an_unknown_time_zone_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site:\n  id: t\n  timezone: Asia/Shangai\ndevices: []\n")
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "site.yaml:3: site.timezone:" in str(err.value) and "Asia/Shangai" in str(err.value)


def test_two_webhooks_of_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: t}\nnotifications:\n  webhooks:\n"
        "    - {name: desk, url: 'http://127.0.0.1:9/a'}\n    - {name: desk, url: 'http://127.0.0.1:9/b'}\n"
        "devices: []\n"
    )
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "notifications.webhooks: " in str(err.value) and "desk appears more than once" in str(err.value)
