"""Exceptions of the client: every API error carries the server's problem document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regfit.resources import Job


class RegfitError(Exception):
    """An error answered by the service, as its RFC 9457 problem document.

    ``problem`` is the document as sent (``type``, ``title``, ``status``, ``detail``,
    ``errors`` with a JSON pointer ``loc`` per field, ``request_id``); ``status`` its HTTP
    status (``None`` when no response came, see :class:`ServiceUnreachable`).
    """

    def __init__(self, problem: dict[str, Any], status: int | None = None) -> None:
        self.problem = problem
        self.status = status if status is not None else problem.get("status")
        super().__init__(self._message())

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "error")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or "")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The per-field errors: ``[{"loc": "/penalty/alpha", "msg": …}, …]``."""
        return list(self.problem.get("errors") or [])

    @property
    def request_id(self) -> str | None:
        return self.problem.get("request_id")

    def _message(self) -> str:
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.title}: {self.detail}" if self.detail else f"{status}{self.title}"


class ServiceUnreachable(RegfitError):
    """No answer from the service (refused, timed out, name not resolved)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            {"title": "Service unreachable", "detail": f"no answer from {url}: {reason}"},
            status=None,
        )


class JobFailed(RegfitError):
    """A job that ended ``failed`` or ``cancelled``; ``problem`` is the job's ``error``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        problem = dict(job.error or {})
        problem.setdefault("title", f"Job {job.status}")
        problem.setdefault("detail", job.progress.message or f"job {job.id} {job.status}")
        super().__init__(problem, status=None)
