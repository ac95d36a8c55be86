"""Data access: SQL as named constants, functions that take a connection."""

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one lent by the pool: the functions here accept either.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
