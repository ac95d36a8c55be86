"""Signed, expiring bearer tokens (JWT, HS256).

Verifying a signature costs more than the rest of a cached search, and clients reuse one token
for many requests, so verified tokens are remembered (bounded, until they expire). A token is
only ever cached after its signature and expiry were checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from service.errors import INVALID_TOKEN, MISSING_TOKEN, Unauthorized

ALGORITHM = "HS256"
ISSUER = "simple-twitter"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    username: str
    expires_at: float


class Tokens:
    def __init__(self, secret: str, ttl_seconds: int, cache_size: int) -> None:
        if not secret:
            raise ValueError("token secret is empty")
        self._secret = secret
        self._ttl = ttl_seconds
        self._cache_size = cache_size
        self._cache: dict[str, Identity] = {}

    def issue(self, user_id: int, username: str) -> str:
        now = int(time.time())
        claims = {"sub": str(user_id), "name": username, "iat": now, "exp": now + self._ttl,
                  "iss": ISSUER}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def identify(self, authorization: str | None) -> Identity:
        if not authorization:
            raise Unauthorized(message=MISSING_TOKEN)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(message=MISSING_TOKEN)
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._cache[token]
        identity = self._verify(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))  # oldest first: dicts keep order
            self._cache[token] = identity
        return identity

    def cached(self, token: str) -> Identity | None:
        """The identity of a token verified before and not yet expired, else None (no verifying:
        the protocol's fast path asks, and leaves every other token to identify())."""
        cached = self._cache.get(token)
        return cached if cached is not None and cached.expires_at > time.time() else None

    def _verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
            return Identity(int(claims["sub"]), str(claims["name"]), float(claims["exp"]))
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
            raise Unauthorized(message=INVALID_TOKEN) from None
