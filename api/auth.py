"""Bearer-token authentication and role checks.

Two kinds of token are known: the fixed ones given on the command line (the demo's printed token,
`facility run --token`), whose holders are admins, and the users of the ops store (`facility users
add`), each with a role. Tokens are kept only as SHA-256 digests.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from facility.store.users import Role, User, UserStore, digest

__all__ = ["Role", "TokenAuth", "User"]


class TokenAuth:
    """A FastAPI dependency giving the request's user; `require(role)` gives one that also checks
    the role (403 with what was needed)."""

    def __init__(self, tokens: dict[str, str], users: UserStore | None = None) -> None:
        self._fixed = {digest(token): User(name, Role.ADMIN) for token, name in tokens.items()}
        self._users = users

    async def user_for(self, token: str) -> User | None:
        candidate = digest(token)
        found = None
        for known, user in self._fixed.items():  # constant time: every entry is compared
            if hmac.compare_digest(known, candidate):
                found = user
        if found is None and self._users is not None:
            found = await self._users.find(token)
        return found

    async def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        user = await self.user_for(token.strip())
        if user is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        return user

    def require(self, role: Role) -> Callable[..., Awaitable[User]]:
        async def check(user: User = Depends(self)) -> User:
            if user.role < role:
                needed, has = role.name.lower(), user.role.name.lower()
                raise HTTPException(403, f"this needs the role {needed} or above; {user.name} is {has}")
            return user

        return check
