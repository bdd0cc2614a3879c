"""The one error vocabulary.

* Domain errors carry an HTTP status, a stable ``code`` and a message naming the field; every
  HTTP surface answers them as ``{"code", "message"}`` (:func:`error_body`).
* :func:`is_transient_db_error` is the one definition of "the database is unavailable, try
  again": the API, the ingress and the health checks answer it with 503 and ``Retry-After:
  RETRY_AFTER_SECONDS``; tasks retry it with back-off (``worker.tasks.base``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc

__all__ = [
    "RETRY_AFTER_SECONDS",
    "TRANSIENT_DB_ERRORS",
    "UNAVAILABLE",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "TransientDatabaseError",
    "describe_error",
    "error_body",
    "is_transient_db_error",
]

#: seconds a client is asked to wait (``Retry-After``) when the database is unavailable
RETRY_AFTER_SECONDS = 5
#: the 503 answer's code and message
UNAVAILABLE = ("unavailable", "the database is unavailable; retry shortly")

#: Database failures that say nothing about the work itself: retry rather than fail it.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # connection refused or lost, deadlock, SQLite "locked"
    sa_exc.InterfaceError,  # the connection was already closed
    sa_exc.TimeoutError,  # the connection pool is exhausted
)


class TransientDatabaseError(Exception):
    """A unit of work failed for a transient database reason (tasks retry it)."""


def is_transient_db_error(exc: BaseException) -> bool:
    if isinstance(exc, (*TRANSIENT_DB_ERRORS, TransientDatabaseError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def describe_error(exc: BaseException) -> str:
    """A one-line description of an exception: its type and its message's first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:500]}" if text else name


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The body of every error answer: ``{"code", "message"}`` plus, from the API, ``field``."""
    return {"code": code, "message": message, **extra}


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class Invalid(DomainError):
    status = 400
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "insufficient_scope"
