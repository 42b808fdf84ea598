"""A text given in one language only reaches the desk in that language, in both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from facility.profile import BUILTIN_DIR
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, eventually, running_system, write_site

RULES = """\
rules:
  - id: pressure-shown
    title: {zh: "{device_name} 出水压力 {outlet_pressure:.2f}"}
    message: {en: "outlet pressure is being read"}
    devices: {ids: [pump-1]}
    when: outlet_pressure > -1
    priority: low
"""


async def test_a_text_in_one_language_is_shown_in_it_in_both_modes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    (tmp_path / "profiles").mkdir()
    builtin = (BUILTIN_DIR / "booster_pump.yaml").read_text()
    label = "label: {zh: 出口压力, en: Outlet pressure}"
    assert label in builtin
    (tmp_path / "profiles" / "booster_pump.yaml").write_text(builtin.replace(label, "label: {zh: 出口压力}"))
    (tmp_path / "rules.yaml").write_text(RULES)
    extra = "profiles: [profiles]\nrules: [rules.yaml]\nuse_rule_library: false\n"
    site_path = write_site(tmp_path, mosquitto.url, free_port(), extra=extra)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        running_system(site_path, tmp_path / "data") as (url, _site),
        httpx.AsyncClient(base_url=url, headers=headers) as http,
    ):

        async def raised() -> dict[str, Any] | None:
            alarms = (await http.get("/api/v1/alarms")).json()["items"]
            return next((a for a in alarms if a["rule"] == "pressure-shown"), None)

        alarm = await eventually(raised, timeout=20)
        devices = (await http.get("/api/v1/devices")).json()
    assert alarm["title"]["zh"] == alarm["title"]["en"]
    assert alarm["title"]["en"].startswith("Pump 1 出水压力 ")
    assert alarm["message"] == {"zh": "outlet pressure is being read", "en": "outlet pressure is being read"}
    (pump,) = [d for d in devices if d["id"] == "pump-1"]
    assert pump["points"]["outlet_pressure"]["label"] == {"zh": "出口压力", "en": "出口压力"}
