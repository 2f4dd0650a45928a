"""The executor protocol the API talks to, and the choice of executor by ``REGFIT_EXECUTOR``."""

from __future__ import annotations

from typing import Protocol

from service.config import Settings
from service.db import Database


class Executor(Protocol):
    """Runs queued jobs somewhere other than the API's event loop."""

    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...
    def submit(self, job_id: str) -> None: ...
    def cancel(self, job_id: str) -> None: ...


def create_executor(settings: Settings, db: Database) -> Executor:
    """The executor ``REGFIT_EXECUTOR`` names."""
    if settings.executor == "celery":
        from service.worker.celery_dispatch import CeleryExecutor

        return CeleryExecutor(settings, db)
    from service.worker.local import LocalExecutor

    return LocalExecutor(settings, db)
