"""Site files: the demo loads; a malformed file is refused with file, line and field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from facility.profile import BUILTIN_DIR, load_profile, load_profiles
from facility.site import load_site
from facility.yamlfile import ConfigError
from tests.chiller_site import chiller_site, docs_chiller

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


def test_a_device_takes_its_type_from_its_profile_alone(tmp_path: Path) -> None:
    """A pump's profile driven as an elevator would match the elevator rules and simulator: the
    type is the profile's, and a `type:` under a device is refused at its line."""
    path = _write(tmp_path, GOOD.replace("    profile: booster_pump", "    profile: booster_pump\n    type: elevator"))
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 5, "devices[0].type")
    assert "profile's ('booster_pump')" in problem.message
    site = load_site(_write(tmp_path, GOOD))
    assert [(d.type, site.profile_of(d).type) for d in site.devices] == [("booster_pump",) * 2, ("elevator",) * 2]


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
        [sys.executable, "-m", "facility_app", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    profile = tmp_path / "profiles" / "chiller.yaml"
    assert f"warning: {profile}:7: points.alarm.label: given in zh only" in result.stderr
    assert re.search(r": 1 device, \d+ rules: OK\n$", result.stdout), result.stdout


def test_check_command_reports_the_error_and_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("port: 15020", "port: 99999"))
    result = subprocess.run(
        [sys.executable, "-m", "facility_app", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"{path}:7: devices[0].modbus.port: Input should be less than or equal to 65535" in result.stderr


def test_check_command_accepts_the_demo(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facility_app", "check", str(repo_root / "sites/demo/site.yaml")],
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


# Words for the values of a point (`values:`), on the chiller of docs/devices.md.


def _check(site: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "facility_app", "check", str(site)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_docs_chiller_gives_its_words_and_checks_clean(tmp_path: Path) -> None:
    site = load_site(chiller_site(tmp_path))
    chiller = site.profile_of(site.device("chiller-1"))
    mode, running = chiller.points["mode"], chiller.points["compressor_running"]
    assert (mode.word("defrost", "zh"), mode.word("defrost", "en")) == ("除霜", "defrosting")
    assert mode.word("off", "zh") == "关机"  # the quoted "off" key
    assert (running.word(True, "zh"), running.word(False, "en")) == ("运行", "stopped")  # bare true/false keys
    assert mode.word("cooling-ish", "zh") is None
    assert chiller.system == "hvac" and site.warnings == []
    result = _check(tmp_path / "site.yaml")
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_value_word_in_one_language_is_shown_in_both_and_check_warns(tmp_path: Path) -> None:
    one = docs_chiller().replace("defrost: {zh: 除霜, en: defrosting}", "defrost: {zh: 除霜}")
    site = load_site(chiller_site(tmp_path, one))
    mode = site.profile_of(site.device("chiller-1")).points["mode"]
    assert (mode.word("defrost", "zh"), mode.word("defrost", "en")) == ("除霜", "除霜")
    result = _check(tmp_path / "site.yaml")
    assert result.returncode == 0, result.stderr
    profile = tmp_path / "profiles" / "chiller.yaml"
    assert result.stderr == (
        f"warning: {profile}:24: points.mode.values.defrost: given in zh only: the desk shows this text"
        " in en mode too; add `en:`\n"
    )


UNTAKEN = [
    ("defrozt", "points.mode.values.defrozt", "'defrozt' is not a value of this point (it takes: cooling, defrost, off, stopped)"),  # noqa: E501
    ("2", "points.mode.values[2]", "2 is the code of 'defrost': give the words under the label, `defrost:`"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "field", "message"), UNTAKEN)
def test_a_value_word_for_a_value_the_point_never_takes_fails_check_at_its_line(
    tmp_path: Path, key: str, field: str, message: str
) -> None:
    wrong = docs_chiller().replace("defrost: {zh: 除霜", f"{key}: {{zh: 除霜")
    chiller_site(tmp_path, wrong)
    result = _check(tmp_path / "site.yaml")
    assert result.returncode == 2
    assert f"{tmp_path / 'profiles' / 'chiller.yaml'}:24: {field}: {message}\n" in result.stderr


def test_a_bare_off_among_the_values_says_to_quote_it(tmp_path: Path) -> None:
    chiller_site(tmp_path, docs_chiller().replace('"off": {zh: 关机', "off: {zh: 关机"))
    with pytest.raises(ConfigError) as caught:
        load_site(tmp_path / "site.yaml")
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'profiles' / 'chiller.yaml'}:25: points.mode.values.false: "
        "YAML 1.1 reads a bare off as false: write it quoted: 'off'"
    ]


def test_a_number_has_no_value_words_and_words_are_zh_and_en(tmp_path: Path) -> None:
    pressure = "type: uint16, sentinel: 65535}\n"
    chiller_site(tmp_path, docs_chiller().replace(pressure, pressure + "    values: {0: {zh: 无}}\n"))
    with pytest.raises(ConfigError) as caught:
        load_site(tmp_path / "site.yaml")
    assert [p.field for p in caught.value.problems] == ["points.condenser_pressure.values[0]"]
    assert "this point is a number" in caught.value.problems[0].message

    chiller_site(tmp_path, docs_chiller().replace("true: {zh: 运行, en: running}", "true: {zh: 运行, de: läuft}"))
    with pytest.raises(ConfigError) as caught:
        load_site(tmp_path / "site.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [(31, "points.compressor_running.values.true.de")]


def test_the_built_in_profiles_name_every_value_their_enums_and_strings_take() -> None:
    """The desk has no words of its own for values: an enum label without words in its profile
    would show in English on the Chinese desk."""
    profiles = load_profiles([BUILTIN_DIR])
    for profile in profiles.values():
        for name, point in profile.points.items():
            enum = point.modbus.enum if point.modbus is not None else None
            if enum:
                assert set(point.value_words) == set(enum.values()), f"{profile.name}.{name}"
            for value, words in point.value_words.items():
                assert words["zh"] != words["en"] and not re.search("[A-Za-z]", words["zh"]), (profile.name, value)
    fire = profiles["fire_panel"].points
    assert {fire[f"zone_{n}_state"].word("fire", "zh") for n in range(1, 9)} == {"火警"}
    assert profiles["access_door"].points["last_event"].word("held_open", "zh") == "开门超时"
    assert profiles["elevator"].points["mode"].word("out_of_service", "zh") == "停用"


def test_a_bare_off_among_an_mqtt_string_points_values_says_to_quote_it_and_a_bools_is_false(tmp_path: Path) -> None:
    """An MQTT string point takes any text, but never YAML's false for the `off` its device sends;
    for a bool, `on:` and `off:` are what they read as."""
    door = "type: door\npoints:\n  lock:\n    type: string\n    json: lock\n    values: {KEY: {zh: 断电}}\n"
    door += "  lit:\n    type: bool\n    json: lit\n    values: {on: {zh: 亮, en: lit}, off: {zh: 灭, en: dark}}\n"
    path = tmp_path / "door.yaml"
    path.write_text(door.replace("KEY", "off"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:6: points.lock.values.false: YAML 1.1 reads a bare off as false: write it quoted: 'off'"
    ]
    path.write_text(door.replace("KEY", '"off"'), encoding="utf-8")
    points = load_profile(path).points
    assert (points["lock"].word("off", "en"), points["lit"].word(False, "zh")) == ("断电", "灭")
