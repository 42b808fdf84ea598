"""Many estates in one ops database (PostgreSQL): what sharing costs one estate's desk, and what the
company view costs per estate.

One estate's alarms (ALARMS a year-long mix, OPEN of them open, with their history) are put in a
fresh database; its desk's alarm pages (the open ones in desk order, and all of them by the latest
change) are timed. Then ESTATES - 1 more estates of the same size go in beside it, and the same
pages of the same estate are timed again: `shared_ratio` is the p99 with them over the p99 alone
(1.0: sharing costs the estate nothing). Every answer is checked: the estate's pages say the same
total and hold the same alarms with its neighbours as without. The company view's figures
(facility.store.reads.estates) are then read for every estate, timed per estate.

The pages are asked of the store directly (`OpsStore.pages`), as the API's route asks them: the
HTTP edge's cost is bench/desk.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.desk_seed import alarm_rows, history_counts, history_rows
from bench.support.figures import summary
from facility.model import now_ns
from facility.store.ops import OpsStore
from facility.store.reads import estates
from facility.store.tables import AlarmHistoryRow, AlarmRow
from testsupport.pg import fresh_database

ALARMS, OPEN, HISTORY = 20_000, 300, 60_000  # per estate
ESTATES = 20
ASKS = 200  # of each page, alone and shared
BATCH = 5_000


class BenchFailed(RuntimeError):
    """An answer was not the one expected: the bench stops rather than report a figure of it."""


def site_of(k: int) -> str:
    return f"estate-{k:03d}"


async def fill(url: str, k: int, now: int) -> None:
    """Estate k's alarms and history, with ids of its own range (ids are the database's)."""
    rng = random.Random(k)
    rows = alarm_rows(rng, ALARMS, OPEN, now)
    offset = k * ALARMS
    for row in rows:
        row["id"] += offset
        row["site"] = site_of(k)
    store = OpsStore(url, site=site_of(k))
    await store.start()
    try:
        async with store.sessions.begin() as session:
            for i in range(0, len(rows), BATCH):
                await session.execute(insert(AlarmRow), rows[i : i + BATCH])
            batch: list[dict[str, Any]] = []
            for entry in history_rows(rng, rows, history_counts(rng, len(rows), HISTORY)):
                batch.append(entry | {"site": site_of(k)})
                if len(batch) == BATCH:
                    await session.execute(insert(AlarmHistoryRow), batch)
                    batch = []
            if batch:
                await session.execute(insert(AlarmHistoryRow), batch)
    finally:
        await store.close()


async def analyze(url: str) -> None:
    """Let PostgreSQL's planner know the tables as they now are, as autovacuum would after a fill
    this size (a plan made on no statistics takes a history scan for a lookup, a second a query)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE")
    await engine.dispose()


async def pages(store: OpsStore) -> tuple[dict[str, list[float]], dict[str, tuple[int, list[int]]]]:
    """The estate's two pages, ASKS times each: the times, and what each page said (its total and ids)."""
    asked = {
        "open_desk": {"open_only": True, "sort": "desk"},
        "all_latest": {"open_only": False, "sort": "-changed_at"},
    }
    times: dict[str, list[float]] = {name: [] for name in asked}
    said: dict[str, tuple[int, list[int]]] = {}
    for _ in range(ASKS):
        for name, query in asked.items():
            started = time.perf_counter()
            items, total = await store.pages.page(limit=100, **query)  # type: ignore[arg-type]
            times[name].append(time.perf_counter() - started)
            answer = (total, [int(a.id) for a in items])
            if said.setdefault(name, answer) != answer:
                raise BenchFailed(f"{name}: the same page answered {answer[0]} then {said[name][0]}")
    return times, said


async def main(estate_count: int) -> dict[str, object]:
    now = now_ns()
    async with fresh_database() as url:
        await fill(url, 0, now)
        await analyze(url)
        store = OpsStore(url, site=site_of(0))
        await store.start()
        try:
            alone, said_alone = await pages(store)
            if said_alone["open_desk"][0] != OPEN or said_alone["all_latest"][0] != ALARMS:
                raise BenchFailed(f"estate 0 answered {said_alone}, not {OPEN} open of {ALARMS}")
            started = time.perf_counter()
            for k in range(1, estate_count):
                await fill(url, k, now)
            await analyze(url)
            fill_s = time.perf_counter() - started
            shared, said_shared = await pages(store)
            if said_shared != said_alone:
                raise BenchFailed("the estate's pages changed when other estates joined the database")
            listed = await estates.estates(store, None)
            if len(listed) != estate_count:
                raise BenchFailed(f"{len(listed)} estates registered, not {estate_count}")
            month = (now - 30 * 86_400 * 10**9, now)
            timed = []
            for estate in listed:
                begun = time.perf_counter()
                figures = await estates.figures(store, estate, frozenset({"device-offline"}), month, now)
                timed.append(time.perf_counter() - begun)
                if figures.open_alarms != OPEN:
                    raise BenchFailed(f"{estate.site}: {figures.open_alarms} open alarms, not {OPEN}")
        finally:
            await store.close()
    result: dict[str, object] = {
        "bench": "estates",
        "estates": estate_count,
        "alarms_per_estate": ALARMS,
        "open_per_estate": OPEN,
        "history_per_estate": HISTORY,
        "fill_others_s": round(fill_s, 1),
    }
    for name in alone:
        result |= summary(f"{name}_alone", alone[name], digits=2)
        result |= summary(f"{name}_shared", shared[name], digits=2)
        ratio = float(result[f"{name}_shared_p99_ms"]) / float(result[f"{name}_alone_p99_ms"])  # type: ignore[arg-type]
        result[f"{name}_shared_ratio"] = round(ratio, 2)
    result |= summary("company_view_per_estate", timed, digits=1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estates", type=int, default=ESTATES, help="estates in the database at the end")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.estates))))
