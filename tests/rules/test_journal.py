"""The outcome journal on a real disk: what was appended and not applied comes back after a restart,
once; a record torn by a crash is cut off; compaction keeps which conditions are active; and many
appends are written and fsynced as one group."""

from __future__ import annotations

from pathlib import Path

from rules.journal import ConditionEntry, DueEntry, Journal


def raised(rule: str, device: str, ts: int) -> ConditionEntry:
    return ConditionEntry(rule, device, True, ts, {"outlet_pressure": 0.2, "running": True})


def cleared(rule: str, device: str, ts: int) -> ConditionEntry:
    return ConditionEntry(rule, device, False, ts, {"outlet_pressure": 0.35})


async def test_what_was_not_applied_comes_back_after_a_restart_and_only_that(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.open() == []
    first = journal.append(raised("low-pressure", "pump-1", 1))
    due = DueEntry("pump-room-round", None, 2, "计划于 09:00", "scheduled for 09:00")
    second = journal.append(due)
    third = journal.append(cleared("low-pressure", "pump-1", 3))
    await journal.durable()
    await journal.applied(first)
    await journal.close()  # as a stop with the store down leaves it

    again = Journal(tmp_path)
    assert again.open() == [(second, due), (third, cleared("low-pressure", "pump-1", 3))]
    assert again.active == frozenset()  # raised, then cleared
    fourth = again.append(raised("low-pressure", "pump-2", 4))
    assert fourth == third + 1  # numbers go on from where they stopped
    await again.durable()
    await again.applied(fourth)
    await again.close()

    reopened = Journal(tmp_path)
    assert reopened.open() == []  # all applied: nothing is applied twice
    assert reopened.active == {("low-pressure", "pump-2")}
    await reopened.close()


async def test_a_record_torn_by_a_crash_is_cut_off_and_the_journal_goes_on(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(raised("low-pressure", "pump-1", 1))
    await journal.durable()
    await journal.close()
    path = tmp_path / "journal"
    whole = path.stat().st_size
    with path.open("ab") as f:  # what a power cut in the middle of a write leaves
        f.write(path.read_bytes()[: whole - 3])

    again = Journal(tmp_path)
    assert [entry for _, entry in again.open()] == [raised("low-pressure", "pump-1", 1)]
    assert path.stat().st_size == whole
    again.append(cleared("low-pressure", "pump-1", 2))
    await again.durable()
    await again.close()
    last = Journal(tmp_path)
    assert [entry.active for _, entry in last.open() if isinstance(entry, ConditionEntry)] == [True, False]
    await last.close()


async def test_compaction_keeps_only_which_conditions_are_active(tmp_path: Path) -> None:
    journal = Journal(tmp_path, compact_bytes=1)
    journal.open()
    seqs = [
        journal.append(raised("low-pressure", "pump-1", 1)),
        journal.append(raised("low-pressure", "pump-2", 2)),
        journal.append(cleared("low-pressure", "pump-1", 3)),
    ]
    await journal.durable()
    grown = (tmp_path / "journal").stat().st_size
    for seq in seqs:
        await journal.applied(seq)
    assert (tmp_path / "journal").stat().st_size < grown / 2
    await journal.close()

    again = Journal(tmp_path)
    assert again.open() == []
    assert again.active == {("low-pressure", "pump-2")}  # the journal alone rebuilds the active conditions
    assert again.append(cleared("low-pressure", "pump-2", 4)) == seqs[-1] + 1
    await again.close()


async def test_many_appends_are_written_and_fsynced_as_one_group(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    for i in range(1000):  # a burst: the engine hands them on within one loop turn
        journal.append(raised("low-pressure", f"pump-{i}", i))
    await journal.durable()
    assert journal.writes == 1
    await journal.durable()  # nothing pending: no write
    assert journal.writes == 1
    await journal.close()
    again = Journal(tmp_path)
    assert len(again.open()) == 1000
    await again.close()
