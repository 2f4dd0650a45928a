"""Domain errors and their rendering as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import errno
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://regfit.dev/problems/"


class RegfitError(Exception):
    """Base of every error the API turns into a problem+json response.

    ``errors`` holds per-field details: ``{"loc": "/penalty/alpha", "msg": "..."}``
    with a JSON pointer into the request body (or ``rows/3/2`` style paths for data).
    """

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra
        if status is not None:
            self.status = status

    def problem(self) -> dict[str, Any]:
        """Return the problem details body for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str] | None:
        """Response headers this error needs besides its body (none by default)."""
        return None


class NotFound(RegfitError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(RegfitError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class MalformedJSON(RegfitError):
    """The body is not JSON at all (a 400; a JSON body with bad content is a 422)."""

    status = 400
    slug = "malformed-json"
    title = "Malformed JSON"


class InvalidInput(RegfitError):
    """The request is well formed but its content cannot be used (bad data, bad spec)."""

    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class PayloadTooLarge(RegfitError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(RegfitError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class TooManyRequests(RegfitError):
    """A caller is over a quota; ``Retry-After`` says when to try again."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_seconds: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds, **extra)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_seconds)}


class Unauthorized(RegfitError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(RegfitError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class ServiceUnavailable(RegfitError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class InsufficientStorage(RegfitError):
    """The disk (or quota) holding the data directory is full: nothing was stored."""

    status = 507
    slug = "insufficient-storage"
    title = "Insufficient storage"


class ClientClosedRequest(RegfitError):
    """The client went away before its body ended (nginx's 499, for the logs and metrics)."""

    status = 499
    slug = "client-closed-request"
    title = "Client closed request"


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk or the quota is full (pyarrow keeps only the message)."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


class FitError(RegfitError):
    """A training job cannot proceed with the data it was given (e.g. missing target values)."""

    status = 422
    slug = "fit-error"
    title = "Training failed"


def field_error(loc: str, msg: str) -> dict[str, Any]:
    """One entry of a problem's ``errors`` list, with ``loc`` a JSON pointer."""
    return {"loc": loc, "msg": msg}
