"""Where the stores of a running site are: the ops store's URL, and the folders on this machine's
disk (spool, outcome journal, attachments), resolved against the site file's folder or a data dir.

Kept apart from `stores` (which opens them, and so imports the gateway and the rules) because
the commands that only read a store (`facility report`, `users`, `db`) need to know where it is,
and should start quickly.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from facility.site import Site


def ops_url(site: Site, data_dir: Path | None) -> str:
    """The ops store URL with a relative SQLite path resolved against the site (or data dir)."""
    if data_dir is not None:
        return f"sqlite+aiosqlite:///{data_dir / 'ops.db'}"
    url = make_url(site.stores.ops)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return url.set(database=str(site.path(url.database))).render_as_string(hide_password=False)
    return site.stores.ops


def local_dir(site: Site, data_dir: Path | None, name: str) -> Path:
    """A folder on this machine's disk for the spool, the outcome journal or the tasks' attachments:
    in the data dir, or (journal, attachments) beside the site's spool."""
    if data_dir is not None:
        return data_dir / name
    spool = Path(site.stores.spool)
    spool = spool if spool.is_absolute() else site.path(".") / spool
    return spool if name == "spool" else spool.parent / name
