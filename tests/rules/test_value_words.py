"""Alarm titles and messages name a point's value by its profile's words (`values:`): the chiller's
`{mode}` reads 除霜 in Chinese and "defrosting" in English, while the rule still compares the value
itself (`mode == "defrost"`) and `{points_in:fire}` still finds the fire panel's zones at `fire`."""

from __future__ import annotations

from pathlib import Path

from facility.site import load_site
from rules.ruleset import load_rules, rule_texts
from tests.chiller_site import chiller_site

RULES = """\
rules:
  - id: chiller-defrost
    title: {zh: "{device_name} {mode}", en: "{device_name}: {mode}"}
    message: {zh: "压缩机{compressor_running}，供水 {supply_temp:.1f} °C", en: "compressor {compressor_running}"}
    devices: {types: [chiller]}
    when: mode == "defrost"
    priority: low
  - id: fire-zone
    title: {zh: "火警：{points_in:fire}", en: "Fire: {points_in:fire}"}
    devices: {types: [fire_panel]}
    when: zone_3_state == "fire"
    priority: emergency
"""


def test_alarm_texts_use_the_words_of_the_values(tmp_path: Path) -> None:
    site_file = chiller_site(tmp_path)
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    site = load_site(site_file)
    rules = {r.id: r for r in load_rules(site, [tmp_path / "rules.yaml"])}
    chiller = {"mode": "defrost", "compressor_running": False, "supply_temp": 7.25}
    texts = rule_texts(rules["chiller-defrost"].spec, site, "chiller-1", chiller)
    assert (texts.title_zh, texts.title_en) == ("屋顶冷水机组 除霜", "屋顶冷水机组: defrosting")
    assert (texts.message_zh, texts.message_en) == ("压缩机停止，供水 7.2 °C", "compressor stopped")
    fire = rule_texts(rules["fire-zone"].spec, site, "fire-1", {"zone_3_state": "fire", "zone_5_state": "fire"})
    assert (fire.title_zh, fire.title_en) == ("火警：3号防区、5号防区", "Fire: Zone 3, Zone 5")
