"""Users of the desk and the API: a name, a role, and a bearer token kept only as its SHA-256
digest. A token is shown once, when the user is added; losing it means revoking and adding again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, mapped_column

from facility.model import now_ns
from facility.store.ops import Base, OpsStore


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
    name: str
    role: Role


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, ops: OpsStore) -> None:
        self._sessions = ops.sessions

    async def add(self, name: str, role: Role) -> str:
        """Add a user; returns the new token, which is kept nowhere else."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("name: 1 to 100 characters")
        token = secrets.token_urlsafe(32)
        async with self._sessions.begin() as s:
            if (await s.scalars(select(UserRow).where(UserRow.name == name))).first() is not None:
                raise ValueError(f"name: a user {name!r} exists; revoke it first to issue a new token")
            s.add(UserRow(name=name, role=role.name.lower(), token_digest=digest(token), created_at=now_ns()))
        return token

    async def revoke(self, name: str) -> bool:
        """Remove a user and with it their token; False if there was none of that name."""
        async with self._sessions.begin() as s:
            row = (await s.scalars(select(UserRow).where(UserRow.name == name))).first()
            if row is None:
                return False
            await s.delete(row)
            return True

    async def all(self) -> list[tuple[str, Role, int]]:
        """(name, role, created at) of every user, by name."""
        async with self._sessions() as s:
            rows = await s.scalars(select(UserRow).order_by(UserRow.name))
            return [(r.name, Role.named(r.role), r.created_at) for r in rows]

    async def find(self, token: str) -> User | None:
        """The user a token belongs to. The lookup is by digest, so the token never reaches the
        database and a timing difference says nothing about it."""
        async with self._sessions() as s:
            row = (await s.scalars(select(UserRow).where(UserRow.token_digest == digest(token)))).first()
            return User(row.name, Role.named(row.role)) if row else None
