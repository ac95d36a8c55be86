"""Domain errors and the one JSON envelope they are rendered in.

Handlers raise these; service.app maps them (and Sanic's own errors) to responses in one place.
"""

from __future__ import annotations

from typing import Any


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


class MethodNotAllowed(AppError):
    status = 405
    code = "methodNotAllowed"
    message = "Method not allowed"


class PayloadTooLarge(AppError):
    status = 413
    code = "payloadTooLarge"
    message = "Request body too large"


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
