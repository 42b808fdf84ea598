"""A site with equipment no built-in profile describes: the chiller of docs/devices.md, read from
the docs themselves (so the example an engineer copies is the one the tests load), beside a
built-in fire panel."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs" / "devices.md"
_BLOCK = re.compile(r"`profiles/chiller\.yaml` beside the site file:\n\n```yaml\n(.*?)```", re.DOTALL)


def docs_chiller() -> str:
    """The chiller profile as docs/devices.md writes it."""
    found = _BLOCK.search(DOCS.read_text(encoding="utf-8"))
    assert found, "docs/devices.md has no chiller profile"
    return found.group(1)


def chiller_site(folder: Path, profile: str | None = None) -> Path:
    """`folder`/site.yaml with chiller-1 (of `profile`, default the docs' chiller) and fire-1, both
    in building B1; the chiller's profile in `folder`/profiles/chiller.yaml."""
    (folder / "profiles").mkdir(exist_ok=True)
    (folder / "profiles" / "chiller.yaml").write_text(docs_chiller() if profile is None else profile, encoding="utf-8")
    site = folder / "site.yaml"
    site.write_text(
        "site: {id: t, timezone: Asia/Shanghai}\nprofiles: [profiles]\ndevices:\n"
        "  - {id: chiller-1, name: 屋顶冷水机组, profile: chiller, location: {building: B1}, modbus: {port: 1502}}\n"
        "  - {id: fire-1, profile: fire_panel, location: {building: B1}, modbus: {port: 1503}}\n",
        encoding="utf-8",
    )
    return site
