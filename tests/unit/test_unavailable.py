"""Which errors are "PostgreSQL unavailable" (503 + Retry-After) and which are bugs (500, logged)."""

import socket

import asyncpg
import pytest

from service.db.pool import outcome_unknown, unavailable


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"), ConnectionResetError(), BrokenPipeError(),
    socket.gaierror(-2, "Name or service not known"), TimeoutError(),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    # PgBouncer's refusals (SQLSTATE 08P01) while PostgreSQL is down or it is full
    asyncpg.exceptions.ProtocolViolationError(
        "server login has been failing, try again later (server_login_retry)"),
    asyncpg.exceptions.ProtocolViolationError("no more connections allowed (max_client_conn)"),
    asyncpg.exceptions.ProtocolViolationError("query_wait_timeout"),
])
def test_connection_loss_is_unavailable(exc: BaseException) -> None:
    assert unavailable(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
    OSError(24, "Too many open files"), FileNotFoundError(), PermissionError(),
    asyncpg.UndefinedColumnError("column \"x\" does not exist"), ValueError(), KeyError("x"),
])
def test_bugs_are_not_unavailable(exc: BaseException) -> None:
    assert not unavailable(exc)


@pytest.mark.parametrize(("exc", "unknown"), [
    # the connection lost after the write was sent: it may have committed
    (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"), True),
    (ConnectionResetError(), True),
    (TimeoutError(), True),  # asyncpg's command_timeout: the server may still commit
    (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
    (asyncpg.exceptions.ProtocolViolationError("server conn crashed?"), True),
    (asyncpg.exceptions.ProtocolViolationError("query timeout"), True),  # PgBouncer's, a statement running
    # PgBouncer refused a statement that never reached a server (1.24's login failure, then 1.18's)
    (asyncpg.exceptions.ProtocolViolationError(
        "server login has been failing, cached error: connect failed (server_login_retry)"), False),
    (asyncpg.exceptions.ProtocolViolationError(
        "server login has been failing, try again later (server_login_retry)"), False),
    (asyncpg.exceptions.ProtocolViolationError("query_wait_timeout"), False),
    (asyncpg.exceptions.ProtocolViolationError("server shutting down"), False),
    # PostgreSQL answered with an error: the transaction was rolled back
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), False),
    (asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"), False),
    # not a database outage at all
    (ValueError(), False),
])
def test_which_lost_writes_may_have_landed(exc: BaseException, unknown: bool) -> None:
    assert outcome_unknown(exc) is unknown


def closed_after(answer: asyncpg.PostgresError) -> BaseException:
    """As asyncpg raises a pooler's answer followed by the connection closing: its message after
    "connection was closed in the middle of operation: ", the answer kept as the cause."""
    exc = asyncpg.exceptions.ConnectionDoesNotExistError(
        f"connection was closed in the middle of operation: {answer.args[0]}")
    exc.__cause__ = answer
    return exc


@pytest.mark.parametrize(("answer", "unknown"), [
    (asyncpg.exceptions.ProtocolViolationError(
        "server login has been failing, cached error: connect failed (server_login_retry)"), False),
    (asyncpg.exceptions.ProtocolViolationError(
        "server login has been failing, cached error: the database system is starting up "
        "(server_login_retry)"), False),
    (asyncpg.exceptions.ProtocolViolationError("query_wait_timeout"), False),
    (asyncpg.exceptions.ProtocolViolationError("server conn crashed?"), True),  # lost while it ran
])
def test_a_pooler_answer_before_the_connection_closed_is_judged_by_the_answer(
        answer: asyncpg.PostgresError, unknown: bool) -> None:
    assert outcome_unknown(closed_after(answer)) is unknown
