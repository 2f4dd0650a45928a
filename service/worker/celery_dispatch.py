"""The ``celery`` executor, the API side: send ``run_job`` messages, never lose a job.

``submit`` runs after the job row committed and sends ``run_job(job_id)`` with the job id
as the task id, then marks the row ``dispatched``. When the broker does not answer, the row
stays queued and undispatched, and the dispatcher thread sends it once the broker is back
— or fails it with the reason after ``REGFIT_DISPATCH_TIMEOUT_SECONDS`` of trying. The
same thread re-queues and re-sends running jobs whose heartbeat stopped (their worker was
killed), which is how they run again on another worker. An API killed between the commit
and the send leaves an undispatched row that the next dispatcher sends; one killed between
the send and the mark makes a second message, which the worker's claim ignores.

``is_running`` (``/readyz``) is the dispatcher thread being alive, not the broker being
reachable: while the broker is away the API still accepts jobs (they wait, undispatched)
and serves predictions, so it stays in its load balancer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from sqlalchemy.exc import OperationalError

from service.config import Settings
from service.db import Database
from service.jobs import service as jobs
from service.worker.celery_app import RUN_JOB_TASK, create_celery

log = logging.getLogger("regfit.executor")

POLL_SECONDS = 0.5
DISPATCH_BATCH = 200
MAX_RECOVERY_INTERVAL_SECONDS = 5.0
# Only the first send of a submit: a dead broker must not hold the request for long.
SUBMIT_RETRY_POLICY: dict[str, float] = {"max_retries": 0}
DISPATCH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0.2,
}


class CeleryExecutor:
    """Sends jobs to Celery workers through the broker; re-sends what did not arrive."""

    name = "celery"

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.app = create_celery(settings)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sending: set[str] = set()  # jobs submit() is sending right now
        self._failing_since: dict[str, float] = {}  # job id → first failed send (monotonic)
        self._revokes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._last_recovery = 0.0
        self.broker_error: str | None = None
        self.recovery_interval = min(
            MAX_RECOVERY_INTERVAL_SECONDS, settings.stale_after_seconds / 2
        )

    # -- Executor protocol --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="regfit-celery-dispatcher", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.app.close()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def submit(self, job_id: str) -> None:
        """Sends the job now; if the broker does not take it, the dispatcher retries."""
        with self._lock:
            self._sending.add(job_id)
        try:
            self._send(job_id, attempts=0, retry_policy=SUBMIT_RETRY_POLICY)
        except Exception as exc:
            self._broker_failed(job_id, exc)
            self._wake.set()
        finally:
            with self._lock:
                self._sending.discard(job_id)

    def cancel(self, job_id: str) -> None:
        """The route already marked the job cancelled; stop its process too (off the request)."""
        self._revokes.put(job_id)
        self._wake.set()

    # -- sending ------------------------------------------------------------------------

    def _send(self, job_id: str, *, attempts: int, retry_policy: dict[str, float]) -> None:
        self.app.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            task_id=job_id,
            queue=self.settings.celery_queue,
            retry=True,
            retry_policy=retry_policy,
        )
        self.broker_error = None
        with self._lock:
            self._failing_since.pop(job_id, None)
        try:
            with self.db.session() as session:
                jobs.mark_dispatched(session=session, job_id=job_id, attempts=attempts)
        except OperationalError as exc:  # sent twice later at worst; the claim dedupes
            log.warning("job %s sent, but not marked dispatched: %s", job_id, exc)

    def _broker_failed(self, job_id: str, exc: Exception) -> None:
        self.broker_error = f"{type(exc).__name__}: {exc}"[:300]
        with self._lock:
            self._failing_since.setdefault(job_id, time.monotonic())
        log.warning("job %s not sent to the broker yet: %s", job_id, self.broker_error)

    # -- dispatcher ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except OperationalError as exc:  # the database is away for a moment; keep going
                log.warning("celery dispatcher: database unavailable: %s", exc.orig)
                self._stopping.wait(1.0)
            except Exception:
                log.exception("celery dispatcher tick failed")
                self._stopping.wait(1.0)
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _tick(self) -> None:
        self._revoke_cancelled()
        if time.monotonic() - self._last_recovery >= self.recovery_interval:
            self._recover_stale()
        self._dispatch_pending()

    def _revoke_cancelled(self) -> None:
        while True:
            try:
                job_id = self._revokes.get_nowait()
            except queue.Empty:
                return
            try:
                self.app.control.revoke(job_id, terminate=True, signal="SIGTERM")
            except Exception as exc:  # the runner stops on its own when it sees the status
                log.warning("could not revoke job %s: %s", job_id, exc)

    def _recover_stale(self) -> None:
        """Re-queues running jobs whose worker stopped sending heartbeats."""
        self._last_recovery = time.monotonic()
        cutoff = jobs.stale_cutoff(self.settings.stale_after_seconds)
        with self.db.session() as session:
            recovered = jobs.recover_lost(
                session=session,
                lost=jobs.stale_running(session=session, executor=self.name, older_than=cutoff),
                reason="its worker stopped sending heartbeats",
                max_attempts=self.settings.job_max_attempts,
            )
        for job_id, attempt, outcome in recovered:
            log.warning("job %s lost its worker (try %s): %s", job_id, attempt, outcome)

    def _dispatch_pending(self) -> None:
        with self.db.session(readonly=True) as session:
            pending = jobs.undispatched(session=session, executor=self.name, limit=DISPATCH_BATCH)
        with self._lock:  # forget jobs that left the queue (sent, cancelled)
            for gone in self._failing_since.keys() - {job_id for job_id, _ in pending}:
                del self._failing_since[gone]
        broker_down = False
        for job_id, attempts in pending:
            if self._stopping.is_set():
                return
            with self._lock:
                if job_id in self._sending:
                    continue
            if not broker_down:
                try:
                    self._send(job_id, attempts=attempts, retry_policy=DISPATCH_RETRY_POLICY)
                    continue
                except Exception as exc:
                    broker_down = True  # do not wait on the broker once per job
                    self._broker_failed(job_id, exc)
            self._fail_if_overdue(job_id, attempts)

    def _fail_if_overdue(self, job_id: str, attempts: int) -> None:
        now = time.monotonic()
        with self._lock:
            since = self._failing_since.setdefault(job_id, now)
        waited = now - since
        if waited < self.settings.dispatch_timeout_seconds:
            return
        reason = (
            f"the job could not be sent to the broker for {waited:.0f} s "
            f"(REGFIT_DISPATCH_TIMEOUT_SECONDS={self.settings.dispatch_timeout_seconds:g}): "
            f"{self.broker_error}"
        )
        with self.db.session() as session:
            jobs.fail_undispatched(session=session, job_id=job_id, attempts=attempts, reason=reason)
        with self._lock:
            self._failing_since.pop(job_id, None)
        log.error("job %s failed: %s", job_id, reason)
