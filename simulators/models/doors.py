"""Access-controlled doors: opened by residents with cards, alarmed when forced or held open."""

from __future__ import annotations

import random
from typing import ClassVar

from facility.model import Value
from simulators.models.base import DeviceModel

HELD_OPEN_LIMIT_S = 30.0  # a door open longer than this raises its held-open alarm


class AccessDoor(DeviceModel):
    """A door that a card opens now and then for a few seconds, then closes and locks again."""

    type = "access_door"
    FAULTS: ClassVar[dict[str, str]] = {
        "door_forced": "the door is opened without a card while locked (forced open)",
        "held_open": "the door is propped open past its 30 s limit",
    }
    FLAP: ClassVar[tuple[str, Value, Value]] = ("door_open", False, True)
    MEAN_GAP_S = 90.0  # mean time between card openings

    def __init__(self, device_id: str, rng: random.Random) -> None:
        super().__init__(device_id, rng)
        self.open_for = 0.0
        self.card_open = 0.0  # seconds the door still stays open after a card
        self.next_card = rng.expovariate(1 / self.MEAN_GAP_S)

    def update(self, dt: float, t: float) -> None:
        self.next_card -= dt
        if self.next_card <= 0:  # a resident badges in; the door opens for a few seconds
            self.next_card = self.rng.expovariate(1 / self.MEAN_GAP_S)
            self.card_open = 5.0
        self.card_open = max(0.0, self.card_open - dt)
        forced, propped = "door_forced" in self.faults, "held_open" in self.faults
        door_open = forced or propped or self.card_open > 0
        if propped:  # propped open long ago: already past the limit when the fault is given
            self.open_for = max(self.open_for + dt, HELD_OPEN_LIMIT_S)
        else:
            self.open_for = self.open_for + dt if door_open else 0.0
        held = self.open_for >= HELD_OPEN_LIMIT_S
        self.values = {
            "door_open": door_open,
            "locked": not door_open,
            "forced_open": forced,
            "held_open": held,
            "open_seconds": round(self.open_for, 1),
            "last_event": "forced" if forced else "held_open" if held else "card" if door_open else "closed",
        }
