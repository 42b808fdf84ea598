"""Users of the desk and the API: a name, a role, and a bearer token kept only as its SHA-256
digest. A token is shown once, when the user is added; losing it means revoking and adding again.

Users belong to the deployment, not to one estate: one ops database may serve many estates, and a
company's staff work at several. Each user is limited to some estates (`sites`; none: every estate,
for the command centre) and, within them, to some buildings.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import select

from facility.model import now_ns
from facility.site import ID_PATTERN
from facility.store.ops import OpsStore
from facility.store.tables import UserRow


class Role(IntEnum):
    """What a user may do; each role may do what the roles below it may."""

    VIEWER = 1  # read alarms, tasks, devices, reports
    DUTY = 2  # acknowledge and shelve alarms, work tasks and plans
    ENGINEER = 3  # write setpoints, tune rules, drive the simulators
    MANAGER = 4  # reports and vendor figures, as the desk grows them
    ADMIN = 5  # users

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(r.name.lower() for r in cls)
            raise ValueError(f"role: no role {name!r} (known: {known})") from None


@dataclass(frozen=True)
class User:
    """Who is asking. `sites` limits the estates they may reach at all (None: every estate);
    `buildings` what they see and act on within them (None: the whole estate)."""

    name: str
    role: Role
    buildings: frozenset[str] | None = None
    sites: frozenset[str] | None = None

    def may_enter(self, site: str) -> bool:
        """Whether the estate `site` is one of theirs."""
        return self.sites is None or site in self.sites


def _listed(column: str) -> frozenset[str] | None:
    return frozenset(item for item in column.split(",") if item) if column else None


def _joined(items: Iterable[str], what: str) -> str:
    """A comma-separated column of ids: each stripped, none with a comma, in order."""
    kept = sorted({item.strip() for item in items if item.strip()})
    if any("," in item for item in kept):
        raise ValueError(f"{what}: an id has no commas")
    return ",".join(kept)


def _user(row: UserRow) -> User:
    return User(row.name, Role.named(row.role), _listed(row.buildings), _listed(row.sites))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions
        self.site = ops.site  # the estate whose process asks: a user limited to others is refused here

    async def add(
        self, name: str, role: Role, buildings: Iterable[str] = (), sites: Iterable[str] | None = None
    ) -> str:
        """Add a user, limited to `buildings` if any are given, and to the estates `sites` (None:
        every estate); returns the new token, which is kept nowhere else."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("name: 1 to 100 characters")
        limited = _joined(buildings, "building")
        estates = "" if sites is None else _joined(sites, "estate")
        if sites is not None and not estates:
            raise ValueError("estate: name at least one estate, or none for every estate")
        if odd := [s for s in estates.split(",") if estates and not re.fullmatch(ID_PATTERN, s)]:
            raise ValueError(f"estate: {odd[0]!r} is not a site id (lower-case letters, digits, '.', '_', '-')")
        token = secrets.token_urlsafe(32)
        async with self._sessions.begin() as s:
            if (await s.scalars(select(UserRow).where(UserRow.name == name))).first() is not None:
                raise ValueError(f"name: a user {name!r} exists; revoke it first to issue a new token")
            s.add(
                UserRow(
                    name=name,
                    role=role.name.lower(),
                    token_digest=digest(token),
                    created_at=now_ns(),
                    buildings=limited,
                    sites=estates,
                )
            )
        return token

    async def revoke(self, name: str) -> bool:
        """Remove a user and with it their token; False if there was none of that name."""
        async with self._sessions.begin() as s:
            row = (await s.scalars(select(UserRow).where(UserRow.name == name))).first()
            if row is None:
                return False
            await s.delete(row)
            return True

    async def all(self) -> list[tuple[User, int]]:
        """Every user with when they were added, by name."""
        async with self._sessions() as s:
            rows = await s.scalars(select(UserRow).order_by(UserRow.name))
            return [(_user(r), r.created_at) for r in rows]

    async def find(self, token: str) -> User | None:
        """The user a token belongs to. The lookup is by digest, so the token never reaches the
        database and a timing difference says nothing about it."""
        async with self._sessions() as s:
            row = (await s.scalars(select(UserRow).where(UserRow.token_digest == digest(token)))).first()
            return _user(row) if row else None
