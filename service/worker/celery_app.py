"""The Celery application of ``REGFIT_EXECUTOR=celery``: the ``run_job`` task and ``regfit worker``.

A message carries only a job id. The database decides who runs it: the task claims the job
with a conditional UPDATE (queued, or running on a worker that is gone) and then runs the
same :func:`service.worker.runner.execute` as the local executor. Messages are acknowledged
late and re-queued when a worker process is lost, so delivery is at least once; the claim
and the runner's attempt-conditional writes make every extra delivery harmless (a job
that is finished, cancelled or healthily running elsewhere is acknowledged and ignored).

While an attempt runs, a heartbeat thread refreshes ``jobs.heartbeat_at``. The API's
dispatcher re-queues and re-sends jobs whose heartbeat stopped (a worker killed with
``-9``), so they run again on another worker within ``REGFIT_STALE_AFTER_SECONDS`` even on
Redis, where an unacknowledged message otherwise waits for the visibility timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

from celery import Celery
from sqlalchemy.exc import OperationalError

from service.config import Settings
from service.db import Database
from service.jobs import service as jobs
from service.tables import Job
from service.worker.process import pid_alive

log = logging.getLogger("regfit.celery")

RUN_JOB_TASK = "regfit.run_job"
RETRY_COUNTDOWN_SECONDS = 2.0
# Redis re-delivers an unacknowledged message after the visibility timeout, so it must be
# longer than any job may run; the dispatcher, not the timeout, recovers jobs of dead workers.
MIN_VISIBILITY_TIMEOUT_SECONDS = 3600.0
# Celery's own hard limit only backs up the heartbeat thread, which fails the job in time.
HARD_TIME_LIMIT_GRACE_SECONDS = 60.0
# A stopped attempt (cancelled, timed out) has this long to return before its process ends.
STOP_GRACE_SECONDS = 2.0


def visibility_timeout(settings: Settings) -> float:
    return max(MIN_VISIBILITY_TIMEOUT_SECONDS, 2 * settings.job_time_limit_seconds)


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (broker, queue, limits) with the ``run_job`` task."""
    app = Celery("regfit", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=settings.celery_queue,
        task_time_limit=settings.job_time_limit_seconds + HARD_TIME_LIMIT_GRACE_SECONDS,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # Keep running tasks when the broker connection drops: their message may be
        # redelivered, and the database claim makes that second delivery a no-op.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4.0,
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)},
        enable_utc=True,
    )

    @app.task(name=RUN_JOB_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def run_job(task: Any, job_id: str) -> str:
        try:
            return run_delivery(job_id, settings=settings)
        except OperationalError as exc:  # the database is away; this message comes back later
            log.warning("database unavailable for job %s: %s; retrying", job_id, exc)
            raise task.retry(countdown=RETRY_COUNTDOWN_SECONDS, max_retries=None) from exc

    return app


_process_db: dict[int, Database] = {}


def process_database(settings: Settings) -> Database:
    """This process's engine (pool children never share a parent's connections)."""
    pid = os.getpid()
    db = _process_db.get(pid)
    if db is None:
        _process_db.clear()
        db = _process_db[pid] = Database(settings.database_url)
    return db


def _worker_gone(job: Job) -> bool:
    """A job's worker process on this host has died (its heartbeat may still look fresh)."""

    return job.worker_host == jobs.HOSTNAME and not pid_alive(job.worker_pid)


def run_delivery(job_id: str, *, settings: Settings) -> str:
    """Handles one delivery of ``run_job(job_id)``: claim the job, run it, keep its heartbeat."""
    from service.worker import runner

    db = process_database(settings)
    with db.session() as session:
        attempt = jobs.claim_delivery(
            session=session,
            job_id=job_id,
            pid=os.getpid(),
            stale_before=jobs.stale_cutoff(settings.stale_after_seconds),
            max_attempts=settings.job_max_attempts,
            worker_gone=_worker_gone,
        )
    if attempt is None:
        log.info("job %s: delivery ignored (finished, cancelled or running elsewhere)", job_id)
        return "ignored"
    log.info("job %s: attempt %s started", job_id, attempt)
    try:
        with Heartbeat(db, job_id, attempt, settings):
            status = runner.execute(job_id, attempt, db=db, settings=settings)
    except OperationalError as exc:
        # The attempt is lost, not failed: put the job back for the API to send again.
        reason = f"database error while the job ran: {type(exc.orig).__name__}"
        log.warning("job %s attempt %s: %s", job_id, attempt, reason)
        return _requeue_when_reachable(db, job_id, attempt, reason, settings)
    log.info("job %s: attempt %s ended %s", job_id, attempt, status)
    return status


def _requeue_when_reachable(
    db: Database, job_id: str, attempt: int, reason: str, settings: Settings
) -> str:
    """Re-queues a lost attempt as soon as the database answers again; after
    ``stale_after_seconds`` it is left to the API, which re-queues jobs whose heartbeat
    went stale."""
    deadline = time.monotonic() + settings.stale_after_seconds
    while True:
        try:
            with db.session() as session:
                return jobs.requeue_or_fail(
                    session=session,
                    job_id=job_id,
                    attempt=attempt,
                    reason=reason,
                    max_attempts=settings.job_max_attempts,
                )
        except OperationalError:
            if time.monotonic() > deadline:
                return "lost"
            time.sleep(RETRY_COUNTDOWN_SECONDS / 2)


class Heartbeat:
    """Refreshes an attempt's heartbeat, enforces the time limit, and stops an orphan.

    A pool process whose worker was killed (``-9``) is re-parented; it then exits, so that
    only the re-delivered attempt keeps running.
    """

    def __init__(self, db: Database, job_id: str, attempt: int, settings: Settings) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.interval = settings.heartbeat_seconds
        self.time_limit = settings.job_time_limit_seconds
        self._stop = threading.Event()
        self._parent = os.getppid()
        self._started = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"regfit-heartbeat-{job_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        ended_at: float | None = None  # when this attempt stopped being the job's current one
        while not self._stop.wait(self.interval):
            if os.getppid() != self._parent:
                log.error("job %s: the worker process died; this orphan exits", self.job_id)
                os._exit(70)
            try:
                current = self._beat()
            except Exception as exc:  # the database may be away for a moment
                log.warning("job %s: heartbeat failed: %s", self.job_id, exc)
                continue
            if current:
                continue
            ended_at = ended_at or time.monotonic()
            # Cancelled, timed out or re-queued: the runner stops at its next check, but one
            # long native fit never checks, and a revoke may miss this process. Then the
            # process ends itself; Celery re-queues the message and the claim ignores it.
            if time.monotonic() - ended_at > STOP_GRACE_SECONDS and not self._stop.is_set():
                log.warning(
                    "job %s: attempt %s stopped; ending its process", self.job_id, self.attempt
                )
                os._exit(71)

    def _beat(self) -> bool:
        """Refreshes the heartbeat; False once this attempt is no longer the running one."""
        overdue = time.monotonic() - self._started > self.time_limit
        with self.db.session() as session:
            running = jobs.heartbeat_attempt(
                session=session, job_id=self.job_id, attempt=self.attempt
            )
            if running and overdue:
                # The runner sees the job is no longer running at this attempt and stops.
                jobs.fail(
                    session=session,
                    job_id=self.job_id,
                    attempt=self.attempt,
                    problem=jobs.time_limit_problem(self.time_limit),
                )
                running = False
        return running


def worker_nodename() -> str:
    """Unique per process, so several workers on one host never clash."""
    return f"regfit-{os.getpid()}@{socket.gethostname()}"


def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    """Runs a Celery worker (prefork pool) on ``settings.celery_queue`` until stopped."""
    from service.worker import runner  # pool processes fork with scikit-learn loaded

    runner.reuse_freed_memory(settings.worker_reuse_memory_bytes)  # inherited by the pool
    app = create_celery(settings)
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--queues={settings.celery_queue}",
        f"--hostname={worker_nodename()}",
        f"--loglevel={settings.log_level.upper()}",
        # The database, not state shared between workers, decides who runs what.
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0
