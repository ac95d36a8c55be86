"""Register, log in, look up: the account rules, independent of the web framework."""

from __future__ import annotations

from typing import Any

from service.db import users
from service.db.database import Database
from service.errors import BAD_CREDENTIALS, USER_EXISTS, USER_GONE, InvalidInput, NotFound, Unauthorized
from service.security.passwords import Passwords
from service.security.tokens import Tokens
from service.validate import Registration


class Accounts:
    def __init__(self, db: Database, passwords: Passwords, tokens: Tokens) -> None:
        self._db = db
        self._passwords = passwords
        self._tokens = tokens

    async def register(self, new: Registration) -> dict[str, Any]:
        password_hash = await self._passwords.hash(new.password)
        async with self._db.connection() as conn:
            user_id = await users.create(conn, new.username, new.full_name, password_hash)
        if user_id is None:
            raise InvalidInput(USER_EXISTS)
        return {"user_id": user_id, "username": new.username, "full_name": new.full_name}

    async def login(self, username: str, password: str) -> str:
        async with self._db.connection() as conn:
            user = await users.by_name(conn, username)
        # Unknown users are checked against a dummy hash: same time as a wrong password.
        ok, new_hash = await self._passwords.verify(user["password_hash"] if user else None, password)
        if not ok or user is None:
            raise Unauthorized(message=BAD_CREDENTIALS)
        if new_hash:  # parameters were raised since this hash was made: upgrade it now
            async with self._db.connection() as conn:
                await users.set_hash(conn, user["id"], new_hash)
        return self._tokens.issue(user["id"], user["username"])

    async def me(self, user_id: int) -> dict[str, Any]:
        async with self._db.connection() as conn:
            user = await users.by_id(conn, user_id)
        if user is None:
            raise NotFound(message=USER_GONE)
        return {"user_id": user["id"], "username": user["username"], "full_name": user["full_name"]}
