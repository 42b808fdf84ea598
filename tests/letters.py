"""Dead letters put in a data folder's ops store before the system (or a command) reads them, as
the gateway would have kept them."""

from __future__ import annotations

from pathlib import Path

from facility.records import DeadLetter
from facility.store.ops import OpsStore


async def seed(data: Path, letters: list[DeadLetter]) -> None:
    """Add `letters` to the SQLite ops store of the data folder `data`."""
    store = OpsStore(f"sqlite+aiosqlite:///{data / 'ops.db'}")
    await store.start()
    try:
        await store.letters.add(letters)
    finally:
        await store.close()
