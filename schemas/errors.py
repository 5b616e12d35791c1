"""One exception hierarchy for all of Retrace.

Each error carries a stable ``code`` (used in API bodies ``{"error": {"code", "message"}}``), an
HTTP status for the API and an exit code for the CLI. Messages say what was wrong and with what.

Every class registers its ``code`` when it is defined (``__init_subclass__``): a subclass must
declare its own code, and a code names one class only. :func:`error_class` turns the code of an
API error body back into its class, so a client raises the server's error as it was raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

_BY_CODE: dict[str, type[RetraceError]] = {}


class RetraceError(Exception):
    """Base class of every error Retrace raises on purpose."""

    code: ClassVar[str] = "retrace_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 2

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, dict[str, str]]:
        """The JSON error body the API returns."""
        return {"error": {"code": self.code, "message": self.message}}


def _register(cls: type[RetraceError]) -> None:
    """Enter ``cls`` under its own ``code``; an inherited or reused code is a programming error."""
    if "code" not in vars(cls):
        raise TypeError(
            f"{cls.__qualname__} must declare its own error code (inherits {cls.code!r})"
        )
    taken = _BY_CODE.get(cls.code)
    reloaded = taken is not None and (taken.__module__, taken.__qualname__) == (
        cls.__module__,
        cls.__qualname__,
    )
    if taken is not None and not reloaded:
        raise TypeError(
            f"error code {cls.code!r} of {cls.__qualname__} is already {taken.__qualname__}'s"
        )
    _BY_CODE[cls.code] = cls


_register(RetraceError)


def error_class(code: str) -> type[RetraceError] | None:
    """The error class registered under ``code`` (an API body's ``error.code``), or None."""
    return _BY_CODE.get(code)


def registered_errors() -> Mapping[str, type[RetraceError]]:
    """Every error class by code (read-only view; includes subclasses defined outside schemas)."""
    return MappingProxyType(_BY_CODE)


class ConfigError(RetraceError):
    """A setting, flag or config file is invalid."""

    code = "config_error"
    http_status = 400


class InvalidInputError(RetraceError):
    """A request body, query parameter or file could not be used as given."""

    code = "invalid_input"
    http_status = 400


class PayloadTooLargeError(InvalidInputError):
    code = "payload_too_large"
    http_status = 413


class ConflictError(InvalidInputError):
    """The request contradicts state already recorded (e.g. a second decision): HTTP 409."""

    code = "conflict"
    http_status = 409


class UnsupportedMediaTypeError(InvalidInputError):
    code = "unsupported_media_type"
    http_status = 415


class AuthError(RetraceError):
    """Missing or invalid credentials."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(RetraceError):
    code = "forbidden"
    http_status = 403


class NotFoundError(RetraceError):
    """The thing asked for does not exist (in this project)."""

    code = "not_found"
    http_status = 404


class OverloadedError(RetraceError):
    """Back-pressure: the caller should retry after ``retry_after`` seconds."""

    code = "overloaded"
    http_status = 503

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyRequestsError(OverloadedError):
    """Too much work in flight right now (HTTP 429); retry after ``retry_after`` seconds."""

    code = "too_many_requests"
    http_status = 429


class TooManyJobsError(TooManyRequestsError):
    """Every background-job slot (replays, resumes) of the collector is busy (HTTP 429)."""

    code = "too_many_jobs"


class StoreError(RetraceError):
    """The trace store failed or is unreachable."""

    code = "store_error"
    http_status = 503


class StoreLockedError(StoreError):
    """The embedded store directory is owned by another process."""

    code = "store_locked"


class SchemaVersionError(StoreError):
    """The store's schema is newer than this code understands (or otherwise incompatible)."""

    code = "schema_version"


class CollectorUnreachableError(StoreError):
    """A client could not talk to the collector at all (refused, timed out, reset, not HTTP).

    Raised by ``CollectorClient``, never by the collector itself; the message names the URL.
    """

    code = "collector_unreachable"


class SandboxError(RetraceError):
    """A sandbox backend cannot run, or failed outside the tool's own code."""

    code = "sandbox_error"


class PolicyError(RetraceError):
    """A policy file is invalid."""

    code = "policy_error"
    http_status = 400


class ReplayError(RetraceError):
    """A replay could not be set up (unknown trace, missing data, bad mode)."""

    code = "replay_error"
    http_status = 400


class TrajectoryIncompleteError(ReplayError):
    """The recorded trace lacks what the chosen replay mode needs; the message names it."""

    code = "trajectory_incomplete"


# What a client is told when the store fails: its own error text (engine messages, hosts,
# paths) stays in the collector's log.
STORE_UNAVAILABLE = (
    "the trace store could not answer; retry later (details are in the collector log)"
)
