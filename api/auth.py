"""Bearer-token authentication and role checks.

Two kinds of token are known: the fixed ones given on the command line (the demo's printed token,
`facility run --token`), whose holders are admins, and the users of the ops store (`facility users
add`), each with a role. Tokens are kept only as SHA-256 digests. The fixed tokens are in memory and
work while the ops store is down; a user's token then gets 503 (we cannot tell whether it is good),
neither 401 (it may well be) nor 500.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from api.unavailable import unavailable
from facility.store.ops import OpsUnavailable
from facility.store.users import Role, User, UserStore, digest

__all__ = ["RateLimit", "Role", "TokenAuth", "User"]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimit:
    """A token bucket per user for the requests that change something: `burst` at once, then
    `per_second`. Enough for a duty officer acknowledging a flood by hand, not for a runaway script."""

    def __init__(self, burst: int = 60, per_second: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._rate = per_second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, when counted)

    def take(self, user: str) -> float:
        """0 if the user may go on (one token is spent), else the seconds until they may."""
        now = self._clock()
        tokens, then = self._buckets.get(user, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - then) * self._rate)
        if tokens < 1:
            self._buckets[user] = (tokens, now)
            return (1 - tokens) / self._rate
        self._buckets[user] = (tokens - 1, now)
        return 0.0


class TokenAuth:
    """A FastAPI dependency giving the request's user; `require(role)` gives one that also checks
    the role (403 with what was needed) and, for a change, the user's rate (429).

    The user is also left on `request.state.user`, where the audit middleware finds who asked."""

    def __init__(self, tokens: dict[str, str], users: UserStore | None = None, limit: RateLimit | None = None) -> None:
        self._fixed = {digest(token): User(name, Role.ADMIN) for token, name in tokens.items()}
        self._users = users
        self._limit = limit or RateLimit()

    async def user_for(self, token: str) -> User | None:
        candidate = digest(token)
        found = None
        for known, user in self._fixed.items():  # constant time: every entry is compared
            if hmac.compare_digest(known, candidate):
                found = user
        if found is None and self._users is not None:
            try:
                found = await self._users.find(token)
            except OpsUnavailable:
                raise unavailable() from None
        return found

    async def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        user = await self.user_for(token.strip())
        if user is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        request.state.user = user
        return user

    def require(self, role: Role) -> Callable[..., Awaitable[User]]:
        async def check(request: Request, user: User = Depends(self)) -> User:
            if user.role < role:
                needed, has = role.name.lower(), user.role.name.lower()
                raise HTTPException(403, f"this needs the role {needed} or above; {user.name} is {has}")
            if request.method not in SAFE_METHODS and (wait := self._limit.take(user.name)):
                raise HTTPException(
                    429,
                    f"too many changes from {user.name}; try again in {wait:.0f} s",
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
            return user

        return check
