"""Job executors: ``local`` (worker processes owned by the API) and ``celery``.

The local executor runs a dispatcher thread in the API process and keeps
``REGFIT_WORKERS`` worker processes alive. The jobs table is the queue: the dispatcher
claims the oldest queued job with a conditional UPDATE and hands it to an idle worker over
a pipe; the worker runs it with its already open database engine and warm caches and says
when it is done, which frees its slot at once. A job thus starts in well under a
millisecond instead of paying a process start, a new engine and cold SQL compilation
(about 0.2 s of every small job when each job had its own process).

Worker processes come from a fork server that has already imported scikit-learn, and they
die with the API process, so a killed API leaves no orphan writing results. Two mechanisms,
either of which suffices: each worker watches a *lifeline* pipe whose write end only the API
holds (end of file: the API is gone, the worker kills itself), and each worker gives up its
inherited copy of the fork server's "alive" pipe, so the fork server exits once the API has
and the kernel's ``PR_SET_PDEATHSIG`` (set in the worker, whose parent is the fork server)
kills the worker without the interpreter's help. A worker also enforces the job's time limit
itself (a ``SIGALRM`` left at its default action ends the process even inside native code),
so no attempt outlives its limit even when the API cannot stop it. Cancelling or timing out
a job terminates its worker process (the only way to stop a fit in native code); a new worker
takes its place, as it does for a worker that died or that has run ``REGFIT_WORKER_MAX_JOBS``
jobs (which bounds what a long-lived process can accumulate, as Celery's
``worker_max_tasks_per_child`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from service import errors
from service.config import Settings
from service.db import Database
from service.jobs import service as jobs
from service.worker.process import pid_alive

log = logging.getLogger("regfit.executor")

POLL_SECONDS = 0.2
TERMINATE_GRACE_SECONDS = 2.0
# Training runs at a lower CPU priority than the API: on a machine with as many cores as
# workers, a fit would otherwise take a whole core from the event loop and prediction
# latency would track the training load (benchmarks/README.md, "Predictions under load").
WORKER_NICENESS = 10
RECOVERY_INTERVAL_SECONDS = 5.0
# A worker ends itself this long after its job's deadline, should the dispatcher not have
# stopped it (the runner refuses to record a success after the deadline in any case).
WORKER_DEADLINE_GRACE_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_with_parent(poll_seconds: float = 0.1) -> None:
    """Exit this process, skipping the interpreter's clean-up, as soon as its parent is gone.

    Called in the fork server (by the module it preloads). multiprocessing lets the fork
    server exit normally once the API is gone, and that clean-up, with scikit-learn, SciPy
    and the BLAS threads loaded, took 3 to more than 5 s on a loaded machine; the workers
    (whose parent it is) are killed by ``PR_SET_PDEATHSIG`` the moment it exits. So the
    first exit handler to run ends the process at once (the fork server holds nothing to
    flush), and a thread (not inherited by the processes it forks) exits it should the API
    die without its pipe reading end of file.
    """
    atexit.register(os._exit, 0)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="regfit-parent-watch", daemon=True).start()


def _release_fork_server() -> None:
    """Close this worker's copy of the fork server's "alive" pipe.

    The fork server exits when every holder of that pipe's write end has closed it, and
    multiprocessing hands a copy to each process it forks: while any worker lived, the fork
    server (the parent ``PR_SET_PDEATHSIG`` watches) outlived a killed API, and so did the
    workers. A worker starts no processes of its own, so it needs no copy.
    """
    server = multiprocessing.forkserver._forkserver
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010 - private, not typed


def _watch_lifeline(lifeline: Connection) -> None:
    """Kill this process as soon as the API process is gone (its lifeline reads end of file).

    The API never writes to the pipe; only the API holds its write end, so end of file
    means the API has exited, however it died. Waiting in ``recv_bytes`` releases the GIL.
    """

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                lifeline.recv_bytes()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="regfit-lifeline", daemon=True).start()


def _arm_deadline(deadline: float | None) -> None:
    """End this process at ``deadline`` (wall clock) plus a grace, or disarm (``None``).

    ``SIGALRM`` is left at its default action, so the kernel ends the process even while a
    fit holds the GIL in native code; the dispatcher, when alive, stops the job first.
    """
    if deadline is None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    remaining = max(deadline - time.time(), 0.0)
    signal.setitimer(signal.ITIMER_REAL, remaining + WORKER_DEADLINE_GRACE_SECONDS)


def worker_main(conn: Connection, settings_json: str, lifeline: Connection | None = None) -> None:
    """Entry point of a local worker process: runs the jobs the dispatcher sends, one at a time.

    Receives ``(job_id, attempt, deadline)`` and answers ``job_id`` when the attempt has
    ended (its outcome is in the jobs table); ``None`` or a closed pipe ends the process. An
    attempt that raises (the database went away) ends the process too: the dispatcher then
    puts the job back in the queue and starts a fresh worker. ``lifeline`` reads end of file
    when the API process is gone, and the worker then kills itself.
    """
    _die_with_parent()
    _release_fork_server()
    if lifeline is not None:
        _watch_lifeline(lifeline)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    from service.ml.threads import threadpool_controller  # found by the fork server already
    from service.worker import runner  # imported by the fork server already

    settings = Settings.model_validate_json(settings_json)
    runner.reuse_freed_memory(settings.worker_reuse_memory_bytes)
    # At most one BLAS thread per core across the workers: OpenBLAS threads spin while they
    # wait, and two workers of two threads each on two cores made a 240000×20 Gram matrix
    # 20× slower than one thread did (benchmarks/README.md, "Fit overhead").
    threadpool_controller().limit(limits=settings.blas_threads_per_worker())
    db = Database(settings.database_url)
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            job_id, attempt, deadline = message
            _arm_deadline(deadline)
            runner.execute(job_id, attempt, db=db, settings=settings, deadline=deadline)
            _arm_deadline(None)
            conn.send(job_id)
    finally:
        db.dispose()


@dataclass
class _Worker:
    """A worker process, the parent's end of its pipe, and the job it runs (if any)."""

    process: BaseProcess
    conn: Connection
    lifeline: Connection
    job_id: str | None = None
    jobs_started: int = 0


@dataclass
class _Running:
    job_id: str
    attempt: int
    process: BaseProcess
    started: float
    worker: _Worker = field(repr=False)
    stop_reason: str | None = None
    stop_sent: float = 0.0


class _Waker:
    """Wakes the dispatcher from any thread: a byte on a pipe it waits on with the workers'."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        os.set_blocking(self.read_fd, False)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending
            os.write(self.write_fd, b"x")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.read_fd, 4096):
                pass

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class LocalExecutor:
    """Worker processes owned by this API process, fed from the jobs table."""

    name = "local"

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.slots = settings.workers
        self._workers: list[_Worker] = []
        self._running: dict[str, _Running] = {}
        self._wake = _Waker()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_recovery = 0.0
        self._last_heartbeat = 0.0
        self._context: Any = None

    # -- public API ---------------------------------------------------------------------

    def start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["service.worker.warmup"])
        self._context = ctx
        self._recover(at_start=True)
        self._thread = threading.Thread(target=self._loop, name="regfit-dispatcher", daemon=True)
        self._thread.start()

    @staticmethod
    def _warm_fork_server() -> None:
        """Start the fork server (and its scikit-learn imports) before the first job needs it."""
        with contextlib.suppress(Exception):
            multiprocessing.forkserver.ensure_running()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Jobs cut short by a shutdown go back to the queue for the next start.
        for run in list(self._running.values()):
            self._terminate(run.process)
            with contextlib.suppress(Exception), self.db.session() as session:
                jobs.requeue_or_fail(
                    session=session,
                    job_id=run.job_id,
                    attempt=run.attempt,
                    reason="the service shut down while the job ran",
                    max_attempts=self.settings.job_max_attempts,
                )
        self._running.clear()
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(TERMINATE_GRACE_SECONDS)
            self._terminate(worker.process)
            worker.conn.close()
            worker.lifeline.close()
        self._workers.clear()
        self._wake.close()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def submit(self, job_id: str) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        self._wake.set()

    def running_jobs(self) -> list[str]:
        return list(self._running)

    # -- dispatcher ---------------------------------------------------------------------

    def _loop(self) -> None:
        self._warm_fork_server()
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # the database may be away for a moment; keep dispatching
                log.exception("dispatcher tick failed")
                time.sleep(1.0)
            # Wakes on a submit or cancel, on a worker finishing a job, or a worker dying.
            waitables: list[Any] = [self._wake.read_fd]
            waitables += [w.conn for w in self._workers if w.job_id is not None]
            waitables += [w.process.sentinel for w in self._workers if w.job_id is None]
            multiprocessing.connection.wait(waitables, timeout=POLL_SECONDS)
            self._wake.clear()

    def _tick(self) -> None:
        self._collect()
        self._reap()
        self._enforce()
        now = time.monotonic()
        if now - self._last_recovery > RECOVERY_INTERVAL_SECONDS:
            self._recover(at_start=False)
        self._replenish()
        self._dispatch()

    def _collect(self) -> None:
        """Frees the workers that reported their job done."""
        for worker in self._workers:
            if worker.job_id is None:
                continue
            try:
                if not worker.conn.poll():
                    continue
                finished = worker.conn.recv()
            except (EOFError, OSError):
                continue  # the process died: _reap handles it
            run = self._running.pop(worker.job_id, None)
            if finished != worker.job_id:
                log.error("worker %s reported job %s, not %s", worker.process.pid, finished, run)
            worker.job_id = None
            if worker.jobs_started >= self.settings.worker_max_jobs:
                self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(None)
        worker.process.join(TERMINATE_GRACE_SECONDS)
        self._terminate(worker.process)
        self._drop(worker)

    def _drop(self, worker: _Worker) -> None:
        with contextlib.suppress(Exception):
            worker.conn.close()
        with contextlib.suppress(Exception):
            worker.lifeline.close()
        self._workers.remove(worker)

    def _reap(self) -> None:
        """Ends the jobs of workers that died (cancelled, timed out, crashed)."""
        for worker in list(self._workers):
            if worker.process.is_alive():
                continue
            worker.process.join(timeout=0)
            self._drop(worker)
            run = self._running.pop(worker.job_id, None) if worker.job_id else None
            if run is None:
                continue
            code = worker.process.exitcode
            with self.db.session() as session:
                state = jobs.statuses(session=session, job_ids=[run.job_id]).get(run.job_id)
                if state != ("running", run.attempt):
                    continue
                # The process ended without finishing the job.
                if run.stop_reason is None and code == -signal.SIGALRM:
                    # The worker's own deadline ended it before the dispatcher did.
                    limit = self.settings.job_time_limit_seconds
                    run.stop_reason = f"time limit of {limit:g} s exceeded"
                if run.stop_reason is not None:
                    jobs.fail(
                        session=session,
                        job_id=run.job_id,
                        attempt=run.attempt,
                        problem=_problem(run.stop_reason),
                    )
                else:
                    jobs.requeue_or_fail(
                        session=session,
                        job_id=run.job_id,
                        attempt=run.attempt,
                        reason=f"worker process exited with code {code}",
                        max_attempts=self.settings.job_max_attempts,
                    )

    def _replenish(self) -> None:
        """Starts worker processes until there is one per slot."""
        while len(self._workers) < self.slots and not self._stopping.is_set():
            parent_end, child_end = self._context.Pipe()
            # Only this process holds the write end: the worker reads end of file when it dies.
            lifeline_r, lifeline_w = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=worker_main,
                args=(child_end, self.settings.model_dump_json(), lifeline_r),
                name="regfit-worker",
                daemon=True,
            )
            try:
                process.start()
            except Exception:
                log.exception("could not start a worker process")
                parent_end.close()
                lifeline_w.close()
                return
            finally:
                child_end.close()
                lifeline_r.close()
            self._workers.append(_Worker(process, parent_end, lifeline_w))

    def _enforce(self) -> None:
        """Terminates cancelled and overdue jobs, refreshes the heartbeat of the rest."""
        if not self._running:
            return
        with self.db.session(readonly=True) as session:
            states = jobs.statuses(session=session, job_ids=list(self._running))
        now = time.monotonic()
        limit = self.settings.job_time_limit_seconds
        for job_id, run in self._running.items():
            if run.stop_reason is None and states.get(job_id) != ("running", run.attempt):
                run.stop_reason = "cancelled"
            elif run.stop_reason is None and now - run.started > limit:
                run.stop_reason = f"time limit of {limit:g} s exceeded"
            if run.stop_reason is not None:
                self._signal(run, now)
        if now - self._last_heartbeat >= self.settings.heartbeat_seconds:
            self._last_heartbeat = now
            with self.db.session() as session:
                jobs.heartbeat(session=session, job_ids=list(self._running))

    def _signal(self, run: _Running, now: float) -> None:
        if run.stop_sent == 0.0:
            run.stop_sent = now
            with contextlib.suppress(Exception):
                run.process.terminate()
        elif now - run.stop_sent > TERMINATE_GRACE_SECONDS:
            with contextlib.suppress(Exception):
                run.process.kill()

    def _dispatch(self) -> None:
        idle = [w for w in self._workers if w.job_id is None and w.process.is_alive()]
        if not idle or self._stopping.is_set():
            return
        with self.db.session(readonly=True) as session:
            candidates = jobs.next_queued(session=session, executor=self.name, limit=len(idle) * 2)
        for job_id in candidates:
            if not idle:
                break
            with self.db.session() as session:
                # The owner's pid: while this API process lives it reaps its workers itself;
                # once it dies they die too, and recovery sees the pid gone.
                attempt = jobs.claim(session=session, job_id=job_id, pid=os.getpid())
            if attempt is None:
                continue  # another process took it
            worker = idle.pop()
            deadline = time.time() + self.settings.job_time_limit_seconds
            try:
                worker.conn.send((job_id, attempt, deadline))
            except (OSError, ValueError) as exc:
                with self.db.session() as session:
                    jobs.requeue_or_fail(
                        session=session,
                        job_id=job_id,
                        attempt=attempt,
                        reason=f"could not hand the job to a worker process: {exc}",
                        max_attempts=self.settings.job_max_attempts,
                    )
                continue
            worker.job_id = job_id
            worker.jobs_started += 1
            self._running[job_id] = _Running(
                job_id, attempt, worker.process, time.monotonic(), worker
            )

    def _recover(self, *, at_start: bool) -> None:
        """Re-queues (or fails) running jobs whose worker is gone."""
        self._last_recovery = time.monotonic()
        with self.db.session() as session:
            orphans = {
                job.id: job
                for job in jobs.running_on_host(session=session, executor=self.name)
                if job.id not in self._running and not pid_alive(job.worker_pid)
            }
            cutoff = jobs.stale_cutoff(self.settings.stale_after_seconds)
            for job in jobs.stale_running(session=session, executor=self.name, older_than=cutoff):
                if job.id not in self._running:
                    orphans[job.id] = job
            recovered = jobs.recover_lost(
                session=session,
                lost=orphans.values(),
                reason="its worker process died",
                max_attempts=self.settings.job_max_attempts,
            )
        for job_id, attempt, outcome in recovered:
            log.warning("recovered job %s (attempt %s): %s", job_id, attempt, outcome)

    @staticmethod
    def _terminate(process: BaseProcess) -> None:
        with contextlib.suppress(Exception):
            process.terminate()
            process.join(TERMINATE_GRACE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join(1.0)


def _problem(reason: str) -> dict[str, Any]:
    if reason == "cancelled":
        return errors.Conflict("job was cancelled").problem()
    return errors.RegfitError(
        reason, status=504, title="Job time limit exceeded", slug="time-limit"
    ).problem()
