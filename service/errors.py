"""Domain errors and the one JSON envelope they are rendered in.

Handlers raise these; error_parts() maps them, and a dependency that is away, to status, body
and headers without any web framework, so the Sanic app and the peer stack answer alike.
"""

from __future__ import annotations

from typing import Any

from service.db.pool import unavailable


class AppError(Exception):
    status = 500
    code = "internalError"
    message = "Internal server error"

    def __init__(self, errors: Any = None, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.errors = errors
        if message:
            self.message = message

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class BadRequest(AppError):
    status = 400
    code = "badRequest"
    message = "Bad request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    message = "Unauthorized"


class NotFound(AppError):
    status = 404
    code = "notFound"
    message = "Not found"


class InvalidInput(AppError):
    status = 422
    code = "invalidInput"
    message = "Invalid input"


class ServiceUnavailable(AppError):
    status = 503
    code = "serviceUnavailable"
    message = "Service temporarily unavailable"
    retry_after = 1


# User-facing messages, kept together so wording stays consistent.
USER_EXISTS = "User exists"
BAD_CREDENTIALS = "Invalid username or password"
MISSING_TOKEN = "Missing bearer token"  # noqa: S105 (a message, not a secret)
INVALID_TOKEN = "Invalid or expired token"  # noqa: S105
USER_GONE = "User no longer exists"
DATABASE_DOWN = "Database unavailable, retry shortly"
HASHING_BUSY = "Too many logins and registrations at once, retry shortly"

BEARER = 'Bearer realm="simple-twitter"'


def error_parts(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(status, body, headers) for a domain error or an unreachable database; None for anything
    else (a framework's own error, or a bug: the caller answers 500 and logs it)."""
    if not isinstance(exc, AppError):
        if not unavailable(exc):
            return None
        exc = ServiceUnavailable(message=DATABASE_DOWN)
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):  # RFC 6750: say which scheme, and why a token failed
        invalid = exc.message in (INVALID_TOKEN, USER_GONE)
        headers["WWW-Authenticate"] = BEARER + (', error="invalid_token"' if invalid else "")
    return exc.status, exc.body(), headers


INTERNAL_ERROR: dict[str, Any] = {"message": "Internal server error", "code": "internalError"}
