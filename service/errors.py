"""Domain errors and their rendering as RFC 9457 problem details (``application/problem+json``).

:class:`Problem` is the one documented shape of every error body (and of a failed job's
``error``); :meth:`RegfitError.problem` builds it once, from the error's own fields, so no
handler patches a body or an exception on its way out.
"""

from __future__ import annotations

import errno
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
        title: str | None = None,
        slug: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra
        # An instance may name its own kind (a lost worker, a time limit) without a subclass
        # per case; the class attributes are the defaults.
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        if slug is not None:
            self.slug = slug

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


# -- the documented shape ---------------------------------------------------------------------


class ProblemItem(BaseModel):
    """One offending field, row or cell of a request."""

    loc: str = Field(
        description="JSON pointer into the request body (``/penalty/alpha``, ``/rows/3/2``); "
        "``query:/limit``, ``path:/model_id`` or ``header:/…`` for other parts of the request"
    )
    msg: str
    type: str | None = Field(default=None, description="A machine-readable error kind")


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response, and a failed job's ``error``.

    Extension members (``job_status``, ``reasons``, ``required_roles``, …) may follow.
    """

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description=f"A URI under {PROBLEM_TYPE_BASE} naming the kind of error")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    request_id: str | None = Field(
        default=None,
        description="The request's id (also in the X-Request-ID header and the logs); set on "
        "every error response, absent from a job's stored error",
    )
    errors: list[ProblemItem] | None = None


# What each declared error status means, for the OpenAPI description of a route's responses.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role may not call this route",
    404: "No such resource",
    409: "The resource is not in a state that allows this",
    413: "The request is larger than a configured limit",
    415: "Unsupported content type",
    422: "Invalid input; ``errors`` names each offending field, row or cell",
    429: "Too many requests; retry after ``Retry-After`` seconds",
    500: "Internal error (never for bad input); see the server log",
    503: "The database or the job executor is unavailable; retry shortly",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring ``statuses`` as :class:`Problem` bodies."""
    return {
        status: {"model": Problem, "description": ERROR_DESCRIPTIONS[status]} for status in statuses
    }
