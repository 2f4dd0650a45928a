"""The Celery executor for real: `regfit migrate`, `regfit worker` and `regfit serve` processes
on this machine's PostgreSQL and Redis (one run on RabbitMQ), with workers and the API killed.

Each test gets its own PostgreSQL database and its own queue name, purged before and after,
so no message ever leaks from one run into another.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PG_ADMIN_URL, unavailable
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from test_e2e import Server, free_port

from service.config import Settings
from service.db import Database
from service.jobs import service as jobs
from service.main import create_app
from service.ml.spec import JobSpec
from service.tables import Job, Model
from service.worker.celery_app import RUN_JOB_TASK, create_celery

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REDIS_URL = os.environ.get("REGFIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
RABBITMQ_URL = os.environ.get("REGFIT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
TERMINAL = ("succeeded", "failed", "cancelled")
SMALL_DATA = {"n_samples": 200, "n_features": 8, "noise": 1.0, "random_state": 0}
# Ill-conditioned with a tiny tolerance: coordinate descent runs until stopped (or max_iter).
SLOW_DATA = {
    "n_samples": 2000,
    "n_features": 300,
    "effective_rank": 3,
    "noise": 1.0,
    "random_state": 0,
}
ENDLESS_FIT = {"type": "l1", "alpha": 1e-7, "tol": 1e-14, "max_iter": 1_000_000}
# Several seconds of coordinate descent, then a model.
SECONDS_FIT = {"type": "l1", "alpha": 1e-7, "tol": 1e-14, "max_iter": 8_000}


# -- brokers ------------------------------------------------------------------------------


def reachable(url: str) -> bool:
    parsed = httpx.URL(url.replace("amqp://", "http://").replace("redis://", "http://"))
    try:
        with socket.create_connection((parsed.host, parsed.port or 80), timeout=1):
            return True
    except OSError:
        return False


def purge_queue(broker_url: str, queue: str) -> None:
    """Drops the queue and any unacknowledged message of it (a killed worker leaves those)."""
    if broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker_url)
        for key in client.scan_iter(match=f"*{queue}*"):  # the queue and its bindings
            client.delete(key)
        for tag, raw in client.hscan_iter("unacked"):
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.close()
    else:
        from kombu import Connection

        with Connection(broker_url, connect_timeout=3) as conn, contextlib.suppress(Exception):
            conn.default_channel.queue_delete(queue)  # fails if never declared


class Cluster:
    """One PostgreSQL database, one broker queue, and the environment every process shares."""

    def __init__(self, workdir: Path, database_url: str, broker_url: str, **extra: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.broker_url = broker_url
        self.queue = "regfit-test-" + uuid.uuid4().hex[:10]
        self.env = {
            **os.environ,
            "REGFIT_DATABASE_URL": database_url,
            "REGFIT_DATA_DIR": str(workdir / "data"),
            "REGFIT_EXECUTOR": "celery",
            "REGFIT_BROKER_URL": broker_url,
            "REGFIT_CELERY_QUEUE": self.queue,
            "REGFIT_HEARTBEAT_SECONDS": "0.5",
            "REGFIT_STALE_AFTER_SECONDS": "3",
            "REGFIT_LOG_LEVEL": "info",
            **extra,
        }
        self.workers: list[Worker] = []
        self.db = Database(database_url)

    def settings(self, **update: Any) -> Settings:
        values = {
            key.removeprefix("REGFIT_").lower(): value
            for key, value in self.env.items()
            if key.startswith("REGFIT_") and key != "REGFIT_REQUIRE_SERVICES"
        }
        return Settings(**{**values, **update}, _env_file=None)  # type: ignore[call-arg]

    def migrate(self) -> None:
        """`regfit migrate`, the one-shot container of the compose stack."""
        done = subprocess.run(
            [sys.executable, "-m", "service", "migrate"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def start_workers(self, count: int, concurrency: int = 1) -> list[Worker]:
        started = [Worker(self, concurrency) for _ in range(count)]
        for worker in started:
            worker.start()
        app = create_celery(self.settings())
        try:
            for worker in started:
                worker.wait_ready(app)
        finally:
            app.close()
        self.workers.extend(started)
        return started

    def close(self, *, purge: bool = True) -> None:
        for worker in self.workers:
            worker.stop()
        self.db.dispose()
        if purge:
            purge_queue(self.broker_url, self.queue)

    # -- reading the database -----------------------------------------------------------

    def job(self, job_id: str) -> Job:
        with self.db.session(readonly=True) as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
            return job

    def model_job_ids(self) -> list[str | None]:
        with self.db.session(readonly=True) as session:
            return list(session.scalars(select(Model.job_id)).all())

    def wait_job(self, job_id: str, timeout: float = 90, until: tuple[str, ...] = TERMINAL) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.status in until:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} is {job.status} after {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(worker.tail() for worker in self.workers)


class Worker:
    """`regfit worker` in its own process group (its pool processes die with the group)."""

    def __init__(self, cluster: Cluster, concurrency: int) -> None:
        self.cluster = cluster
        self.concurrency = concurrency
        self.log_path = cluster.workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--concurrency", str(self.concurrency)],
                cwd=self.cluster.workdir,
                env=self.cluster.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, app: Any, timeout: float = 90) -> None:
        node = f"regfit-{self.pid}@{socket.gethostname()}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}\n{self.tail()}")
            if app.control.ping(destination=[node], timeout=0.5):
                return
        raise AssertionError(f"worker {node} not ready after {timeout} s\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL to the worker's main process only, as when its container is killed."""
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(1)
        with contextlib.suppress(ProcessLookupError):  # pool processes, orphans of a kill -9
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(5)

    def tail(self) -> str:
        return f"--- {self.log_path.name}\n" + self.log_path.read_text(errors="replace")[-4000:]


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def parent_pid(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return int(stat[1]) if stat else None


def computing(pid: int | None, seconds: float = 1.0) -> bool:
    """The process uses the CPU (an idle pool process waiting for work does not)."""
    before = _proc_stat(pid) if pid else None
    time.sleep(seconds)
    after = _proc_stat(pid) if pid else None
    if before is None or after is None or after[0] == "Z":
        return False
    ticks = sum(int(a) - int(b) for a, b in zip(after[11:13], before[11:13], strict=True))
    return ticks / os.sysconf("SC_CLK_TCK") > seconds / 2


def process_runs(pid: int | None) -> bool:
    """The process exists and is not a zombie waiting for its parent to reap it."""
    stat = _proc_stat(pid) if pid else None
    return stat is not None and stat[0] != "Z"


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_url(request: pytest.FixtureRequest) -> str:
    url = REDIS_URL if request.param == "redis" else RABBITMQ_URL
    if not reachable(url):
        unavailable(f"{request.param} at {url} is unreachable")
    return url


@pytest.fixture
def redis_url() -> str:
    if not reachable(REDIS_URL):
        unavailable(f"Redis at {REDIS_URL} is unreachable")
    return REDIS_URL


def make_cluster(
    tmp_path: Path, database_url: str, broker_url: str, **extra: str
) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, database_url, broker_url, **extra)
    purge_queue(broker_url, cluster.queue)
    cluster.migrate()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, broker_url: str) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, pg_url, broker_url)


@pytest.fixture
def redis_cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path, pg_url, redis_url)


def synthetic(client: Any, **params: Any) -> str:
    response = client.post("/v1/datasets/synthetic", json=params)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(client: Any, dataset_id: str, penalty: dict[str, Any]) -> str:
    response = client.post(
        "/v1/jobs", json={"dataset_id": dataset_id, "target": "y", "penalty": penalty}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


# -- the executor on each broker ----------------------------------------------------------


def test_jobs_run_on_workers_cancel_and_redelivery(cluster: Cluster) -> None:
    from sklearn.datasets import make_regression
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cluster.start_workers(2)
    with TestClient(create_app(cluster.settings())) as client:
        assert client.get("/readyz").status_code == 200
        small = synthetic(client, **SMALL_DATA)
        alphas = [0.01, 0.1, 1.0, 10.0]
        ids = [submit(client, small, {"type": "l1", "alpha": a}) for a in alphas]
        done = [cluster.wait_job(job_id) for job_id in ids]
        assert [(j.status, j.attempts, j.dispatched) for j in done] == [("succeeded", 1, True)] * 4
        assert sorted(cluster.model_job_ids()) == sorted(ids)

        X, y = make_regression(**SMALL_DATA)  # type: ignore[call-overload]
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
        reference = make_pipeline(StandardScaler(), Lasso(alpha=0.1)).fit(X_train, y_train)
        model = client.get(f"/v1/models/{done[1].model_id}").json()
        assert model["metrics"]["test"]["r2"] == pytest.approx(
            reference.score(X_test, y_test), rel=1e-9
        )

        # A message delivered again for a finished job is acknowledged and ignored.
        executor = client.app_state["regfit"].executor
        executor.app.send_task(RUN_JOB_TASK, args=[ids[0]], task_id=ids[0])
        deadline = time.monotonic() + 30
        while f"job {ids[0]}: delivery ignored" not in cluster.logs():
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.2)
        assert cluster.job(ids[0]).attempts == 1
        assert sorted(cluster.model_job_ids()) == sorted(ids)

        # Both workers busy with endless fits; cancelling frees them for the next job.
        big = synthetic(client, **SLOW_DATA)
        endless = [submit(client, big, ENDLESS_FIT) for _ in range(2)]
        running = [cluster.wait_job(j, until=("running",)) for j in endless]
        time.sleep(1.5)  # inside the (native, uninterruptible) coordinate descent by now
        started = time.monotonic()
        response = client.post(f"/v1/jobs/{endless[0]}/cancel")  # and revoke(terminate=True)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        with cluster.db.session() as session:  # cancelled where no revoke reaches the worker
            jobs.cancel(session=session, job_id=endless[1])
        follow = submit(client, small, {"type": "l2", "alpha": 1.0})
        assert cluster.wait_job(follow, timeout=30).status == "succeeded"
        assert time.monotonic() - started < 20
        for job in running:  # nothing computes the endless fits any more
            assert not computing(job.worker_pid), (job.id, cluster.logs())
        # The one no revoke reached ended its own process once it saw the status.
        assert f"job {endless[1]}: attempt 1 stopped; ending its process" in cluster.logs()
        assert [cluster.job(j).status for j in endless] == ["cancelled", "cancelled"]
        assert sorted(cluster.model_job_ids()) == sorted([*ids, follow])


def test_worker_killed_mid_job_runs_again_on_another_worker(redis_cluster: Cluster) -> None:
    cluster = redis_cluster
    first, second = cluster.start_workers(2)
    with TestClient(create_app(cluster.settings())) as client:
        big = synthetic(client, **SLOW_DATA)
        job_id = submit(client, big, SECONDS_FIT)
        running = cluster.wait_job(job_id, until=("running",))
        pool_pid = running.worker_pid
        assert pool_pid is not None
        owner = next(w for w in (first, second) if w.pid == parent_pid(pool_pid))
        other = second if owner is first else first
        time.sleep(0.5)
        owner.kill()  # kill -9

        done = cluster.wait_job(job_id, timeout=120)
        assert done.status == "succeeded", (done.error, cluster.logs())
        assert done.attempts == 2
        assert done.worker_pid != pool_pid and parent_pid(done.worker_pid or 0) in (
            other.pid,
            None,  # the pool process may have been recycled since
        )
        assert not process_runs(pool_pid)  # the orphaned pool process stopped itself
        assert cluster.model_job_ids() == [job_id]


# -- the API killed, the database away, the broker away -----------------------------------


def _orphan_undispatched(cluster: Cluster, dataset_id: str) -> str:
    """A job the API committed but was killed before sending (the crash window)."""
    spec = JobSpec.model_validate(
        {"dataset_id": dataset_id, "target": "y", "penalty": {"type": "l2", "alpha": 3.0}}
    )
    with cluster.db.session() as session:
        return jobs.create(session=session, spec=spec, executor="celery", total=1).id


def test_api_killed_mid_flight_loses_nothing(redis_cluster: Cluster) -> None:
    cluster = redis_cluster
    cluster.start_workers(2)
    server = Server(cluster.workdir, env=cluster.env)
    server.start()  # `regfit serve` with the celery executor
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            small = synthetic(client, **SMALL_DATA)
            big = synthetic(client, **SLOW_DATA)
            ids = [submit(client, small, {"type": "l2", "alpha": a}) for a in (0.1, 1, 10)]
            ids.append(submit(client, big, SECONDS_FIT))
            ids += [submit(client, small, {"type": "l1", "alpha": a}) for a in (0.1, 1)]
        assert server.process is not None
        server.process.kill()  # kill -9 while jobs are queued and running
        server.process.wait(10)
        ids.append(_orphan_undispatched(cluster, small))
        server.start()
        for job_id in ids:
            job = cluster.wait_job(job_id, timeout=120)
            assert job.status == "succeeded", (job_id, job.error)
        model_jobs = cluster.model_job_ids()
        assert sorted(model_jobs) == sorted(ids) and len(set(model_jobs)) == len(ids)
    finally:
        server.stop()


def test_postgres_outage_readyz_and_recovery(redis_cluster: Cluster) -> None:
    cluster = redis_cluster
    cluster.env["REGFIT_STALE_AFTER_SECONDS"] = "6"  # longer than the outage
    cluster.start_workers(1)
    server = Server(cluster.workdir, env=cluster.env)
    server.start()
    name = cluster.database_url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def terminate() -> None:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    accepted: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            small = synthetic(client, **SMALL_DATA)

            def load() -> None:
                with httpx.Client(base_url=server.url, timeout=30) as loader:
                    alpha = 0.1
                    while not stop.is_set():
                        response = loader.post(
                            "/v1/jobs",
                            json={
                                "dataset_id": small,
                                "target": "y",
                                "penalty": {"type": "l2", "alpha": alpha},
                            },
                        )
                        statuses.append(response.status_code)
                        if response.status_code == 202:
                            accepted.append(response.json()["id"])
                        alpha *= 1.1
                        time.sleep(0.5)

            loader = threading.Thread(target=load)
            loader.start()
            for _ in range(5):  # connections dropped under load
                time.sleep(0.4)
                terminate()
            with admin.connect() as conn:  # then the database refuses connections a while
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            terminate()
            deadline = time.monotonic() + 10
            while (ready := client.get("/readyz")).status_code != 503:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.1)
            assert "database unreachable" in ready.json()["detail"]
            time.sleep(2.0)
            assert client.get("/readyz").status_code == 503
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            deadline = time.monotonic() + 20
            while (ready := client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            stop.set()
            loader.join(30)
            # No restart: the same API process and worker take and run a new job.
            after = submit(client, small, {"type": "l1", "alpha": 0.5})
            assert cluster.wait_job(after, timeout=60).status == "succeeded"
        # Requests during the outage were refused with 503, never a 500; nothing accepted
        # was lost or ran twice.
        assert set(statuses) <= {202, 503}, statuses
        assert 503 in statuses and len(accepted) >= 3
        for job_id in accepted:
            job = cluster.wait_job(job_id, timeout=120)
            assert job.status == "succeeded", (job_id, job.error, cluster.logs())
        model_jobs = cluster.model_job_ids()
        assert sorted(model_jobs) == sorted([*accepted, after])
    finally:
        stop.set()
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        server.stop()


@pytest.fixture
def redis_server_bin() -> str:
    path = shutil.which("redis-server")
    if path is None:
        unavailable("redis-server is not installed (needed to bring a broker up mid-test)")
    return str(path)


def test_broker_down_at_submit_dispatches_when_it_returns(
    tmp_path: Path, pg_url: str, redis_server_bin: str
) -> None:
    port = free_port()
    cluster = Cluster(tmp_path, pg_url, f"redis://127.0.0.1:{port}/0")  # nothing listens yet
    cluster.migrate()
    redis_process: subprocess.Popen[bytes] | None = None
    try:
        with TestClient(create_app(cluster.settings())) as client:
            small = synthetic(client, **SMALL_DATA)
            job_id = submit(client, small, {"type": "l1", "alpha": 0.2})
            time.sleep(1.5)
            job = cluster.job(job_id)
            assert (job.status, job.dispatched) == ("queued", False)
            assert client.get("/readyz").status_code == 200  # accepting, jobs wait

            redis_process = subprocess.Popen(  # the broker returns
                [redis_server_bin, "--port", str(port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 20
            while not cluster.job(job_id).dispatched:
                assert time.monotonic() < deadline, "not dispatched after the broker returned"
                time.sleep(0.1)
            cluster.start_workers(1)
            assert cluster.wait_job(job_id, timeout=60).status == "succeeded"
            assert cluster.model_job_ids() == [job_id]
    finally:
        cluster.close(purge=False)  # the throw-away broker goes with its data
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)


def test_broker_down_fails_the_job_after_the_dispatch_timeout(settings: Settings) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    celery = settings.model_copy(
        update={"executor": "celery", "broker_url": dead_broker, "dispatch_timeout_seconds": 1.5}
    )
    with TestClient(create_app(celery)) as client:
        small = synthetic(client, **SMALL_DATA)
        job_id = submit(client, small, {"type": "l2"})
        deadline = time.monotonic() + 20
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert job["status"] == "failed", job
        assert job["error"]["title"] == "Job could not be enqueued"
        assert "could not be sent to the broker" in job["error"]["detail"]
        assert "Connection refused" in job["error"]["detail"]


def test_scaleout_drill(redis_url: str, pg_url: str) -> None:
    """benchmarks/scaleout_drill.py, smaller: every job succeeds with exactly one model."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "scaleout_drill.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--jobs=9",
            "--workers=3",
            "--sweeps=1500",
            "--json",
            f"--broker={redis_url}",
        ],
        env={**os.environ, "REGFIT_TEST_PG_ADMIN_URL": PG_ADMIN_URL},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["statuses"] == {"succeeded": 9}
    assert figures["models"] == figures["jobs_with_a_model"] == 9
    assert figures["killed_worker_pid"] and figures["max_attempts_used"] <= 2
