"""Ops databases as an older release left them, for the tests of adoption and upgrades."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from facility.site import load_site
from facility.store import migrations
from facility.store.ops import OpsStore


async def previous_release_made(url: str, *statements: str) -> None:
    """The database at `url` as the release before migrations made it (the baseline's tables, no
    `alembic_version`), then changed by `statements` (as a release older still, or a person)."""
    baseline: sa.MetaData = migrations.scripts().get_revision(migrations.BASELINE).module.schema()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(baseline.create_all)
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


def folder_ops(data: Path, site: Path) -> OpsStore:
    """The SQLite ops store of a data folder (`--data`, `running_system`) as the estate of the site
    file `site` sees it: its records are those of that estate."""
    return OpsStore(f"sqlite+aiosqlite:///{data / 'ops.db'}", site=load_site(site).site.id)
