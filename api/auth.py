"""Bearer-token authentication. Tokens are kept only as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request


@dataclass(frozen=True)
class User:
    name: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenAuth:
    """Maps token digests to users; used as a FastAPI dependency."""

    def __init__(self, users: dict[str, str]) -> None:
        self._by_digest = {digest(token): User(name) for token, name in users.items()}

    def user_for(self, token: str) -> User | None:
        candidate = digest(token)
        found = None
        for known, user in self._by_digest.items():
            if hmac.compare_digest(known, candidate):
                found = user
        return found

    async def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        user = self.user_for(token.strip())
        if user is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        return user
