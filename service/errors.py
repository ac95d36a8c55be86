"""The API's two JSON envelopes: success ({"data", "code": "success"}) and error ({"message",
"code", "errors"?}), with the domain errors and the one table of error codes.

Handlers raise these; error_parts() maps them, and a dependency that is away, to status, body
and headers without any web framework, so the Sanic app, the balancer's own error pages and the
peer stack answer alike.
"""

from __future__ import annotations

from typing import Any

from service.db.pool import unavailable

# The error code for each HTTP status the service (or its balancer) answers with.
CODES = {400: "badRequest", 401: "unauthorized", 404: "notFound", 405: "methodNotAllowed",
         408: "requestTimeout", 413: "payloadTooLarge", 422: "invalidInput", 500: "internalError",
         502: "serviceUnavailable", 503: "serviceUnavailable", 504: "serviceUnavailable"}


def error_code(status: int) -> str:
    return CODES.get(status, "badRequest" if status < 500 else "internalError")


def success(data: bytes, extra: bytes = b"") -> bytes:
    """The success envelope around already-serialized data: {"data": ..., "code": "success"...}.
    The one place it is written (post, search, register, and the peer stacks)."""
    return b'{"data":' + data + b',"code":"success"' + extra + b"}"


class AppError(Exception):
    status = 500
    code = CODES[500]
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
    code = CODES[400]
    message = "Bad request"


class Unauthorized(AppError):
    status = 401
    code = CODES[401]
    message = "Unauthorized"


class NotFound(AppError):
    status = 404
    code = CODES[404]
    message = "Not found"


class InvalidInput(AppError):
    status = 422
    code = CODES[422]
    message = "Invalid input"


class ServiceUnavailable(AppError):
    status = 503
    code = CODES[503]
    message = "Service temporarily unavailable"
    retry_after = 1


# User-facing messages, kept together so wording stays consistent.
USER_EXISTS = "User exists"
BAD_CREDENTIALS = "Invalid username or password"
MISSING_TOKEN = "Missing bearer token"  # noqa: S105 (a message, not a secret)
INVALID_TOKEN = "Invalid or expired token"  # noqa: S105
USER_GONE = "User no longer exists"
DATABASE_DOWN = "Database unavailable, retry shortly"
# The 503s after which a write may have landed: the connection was lost after the write was
# sent and before PostgreSQL's answer came back (WRITE_UNKNOWN), or it landed and could not be
# announced to the caches (NOT_YET_SHOWN). Every other 503 on a write means not written.
WRITE_UNKNOWN = ("Database connection lost during the write: the tweet may have been saved; "
                 "search for it before posting again")
# The service log's line for each such post, followed by the error that cut it off.
WRITE_UNKNOWN_LOGGED = "post answered 503, outcome unknown:"
HASHING_BUSY = "Too many logins and registrations at once, retry shortly"
NOT_YET_SHOWN = ("The tweet was saved, but the cache could not be told: it may not show in searches "
                 "on every server yet; do not post it again")

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


INTERNAL_ERROR: dict[str, Any] = {"message": AppError.message, "code": CODES[500]}
