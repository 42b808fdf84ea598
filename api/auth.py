"""Bearer-token authentication and role checks.

Two kinds of token are known: the fixed ones given to the process (the demo's printed token,
`FACILITY_TOKEN` or `FACILITY_TOKEN_FILE` of `facility run`), whose holders are admins, and the
users of the ops store (`facility users add`), each with a role. Tokens are kept only as SHA-256
digests. The fixed tokens are in memory and work while the ops store is down; a user's token then
gets 503 (we cannot tell whether it is good), neither 401 (it may well be) nor 500.

Wrong tokens are throttled per client address (`api.auth_failure_limit`), and changes per user
(`api.change_limit`, `api.user_limits`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping

from fastapi import HTTPException

from api.errors import unavailable
from facility.errors import Unavailable
from facility.site import Api, Limit
from facility.store.users import Role, User, UserStore, digest

__all__ = ["RateLimit", "Role", "TokenAuth", "User"]


log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
THROTTLE_LOG_S = 60.0  # an address being throttled is logged at most this often


class RateLimit:
    """A token bucket per key (a user, a client address): `burst` at once, then `per_second`;
    `own` gives named keys limits of their own (a test client that must not be held back).
    Enough for a duty officer acknowledging a flood by hand, not for a runaway script."""

    MAX_KEYS = 10_000  # past this, keys whose bucket is full again are forgotten

    def __init__(
        self,
        burst: int = 60,
        per_second: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        own: Mapping[str, Limit] | None = None,
    ) -> None:
        self._default = Limit(burst=burst, per_second=per_second)
        self._own = dict(own or {})
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)

    @classmethod
    def of(cls, limit: Limit, own: Mapping[str, Limit] | None = None) -> RateLimit:
        return cls(limit.burst, limit.per_second, own=own)

    def _tokens(self, key: str, now: float) -> tuple[float, Limit]:
        limit = self._own.get(key, self._default)
        tokens, then = self._buckets.get(key, (float(limit.burst), now))
        return min(float(limit.burst), tokens + (now - then) * limit.per_second), limit

    def wait(self, key: str) -> float:
        """Seconds until `key` may go on (0: now), spending nothing."""
        tokens, limit = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / limit.per_second

    def take(self, key: str) -> float:
        """0 if `key` may go on (one token is spent), else the seconds until it may."""
        now = self._clock()
        tokens, limit = self._tokens(key, now)
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            self._forget_full(now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / limit.per_second
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Forget the keys whose bucket has refilled: they are as good as new, and a spray of
        addresses must not grow the table without end."""
        for key in list(self._buckets):
            tokens, limit = self._tokens(key, now)
            if tokens >= limit.burst:
                del self._buckets[key]


def too_many(what: str, wait: float) -> HTTPException:
    """429 with the whole seconds to wait, in the text and in `Retry-After`."""
    seconds = max(1, round(wait))
    return HTTPException(429, f"{what}; try again in {seconds} s", headers={"Retry-After": str(seconds)})


class TokenAuth:
    """Who a token belongs to (`authenticate`) and whether they may do what they ask (`admit`):
    the routes reach it through api.deps, which keeps the user on `request.state.user`, where the
    audit middleware finds who asked."""

    def __init__(self, tokens: dict[str, str], users: UserStore | None = None, settings: Api | None = None) -> None:
        settings = settings or Api()
        self._fixed = {digest(token): User(name, Role.ADMIN) for token, name in tokens.items()}
        self._users = users
        self._limit = RateLimit.of(settings.change_limit, settings.user_limits)
        self._failures = RateLimit.of(settings.auth_failure_limit)
        self._throttled_logged: dict[str, float] = {}  # address -> when its throttling was last logged

    async def user_for(self, token: str) -> User | None:
        candidate = digest(token)
        found = None
        for known, user in self._fixed.items():  # constant time: every entry is compared
            if hmac.compare_digest(known, candidate):
                found = user
        if found is None and self._users is not None:
            try:
                found = await self._users.find(token)
            except Unavailable:
                raise unavailable() from None
        return found

    async def authenticate(self, authorization: str, address: str) -> User:
        """The user of an `Authorization` header, or 401; 403 for a user limited to other estates;
        429 for an address that has failed too often lately (its guesses are not even looked up).
        Asked by the edge before the body is read, and by the routes of an app without the edge."""
        if wait := self._failures.wait(address):
            self._log_throttled(address, wait)
            raise too_many("too many requests with a wrong token from this address", wait)
        scheme, _, token = authorization.partition(" ")
        user = await self.user_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            self._failures.take(address)
            detail = "invalid token" if token.strip() else "missing bearer token"
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
        if self._users is not None and not user.may_enter(self._users.site):
            raise HTTPException(403, f"{user.name} may not reach the estate {self._users.site}")
        return user

    def _log_throttled(self, address: str, wait: float) -> None:
        now = time.monotonic()
        if now - self._throttled_logged.get(address, -THROTTLE_LOG_S) >= THROTTLE_LOG_S:
            self._throttled_logged[address] = now
            if len(self._throttled_logged) > RateLimit.MAX_KEYS:
                self._throttled_logged = {address: now}
            log.warning("authentication: too many wrong tokens from %s; answering 429 for %.0f s", address, wait)

    def admit(self, user: User, role: Role, method: str) -> None:
        """403 (naming the role needed) unless `user` has `role`; 429 when a change (a `method`
        that is not safe) comes faster than the user's rate allows."""
        if user.role < role:
            needed, has = role.name.lower(), user.role.name.lower()
            raise HTTPException(403, f"this needs the role {needed} or above; {user.name} is {has}")
        if method not in SAFE_METHODS and (wait := self._limit.take(user.name)):
            raise too_many(f"too many changes from {user.name}", wait)
