"""Dead letters put in a data folder's ops store before the system (or a command) reads them, as
the gateway would have kept them."""

from __future__ import annotations

from pathlib import Path

from facility.records import DeadLetter
from testsupport.ops_db import folder_ops


async def seed(data: Path, site: Path, letters: list[DeadLetter]) -> None:
    """Add `letters` to the SQLite ops store of the data folder `data`, as the estate of `site`'s."""
    store = folder_ops(data, site)
    await store.start()
    try:
        await store.letters.add(letters)
    finally:
        await store.close()
