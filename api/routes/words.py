"""The display words of ids (GET /api/v1/words): the kernel's one table (facility.words), which the
duty desk is served instead of keeping a copy of its own, so that a priority, an alarm state, a task
kind or status, a system and a library team read the same on the page, on paper and in a notice."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Viewer
from facility import words

router = APIRouter(tags=["words"])


@router.get("/words")
async def served_words(user: Viewer) -> dict[str, dict[str, dict[str, str]]]:
    """Every group of words by id, in both languages: {group: {id: {zh, en}}}."""
    return {
        group: {id_: {"zh": w.zh, "en": w.en} for id_, w in table.items()} for group, table in words.table().items()
    }
