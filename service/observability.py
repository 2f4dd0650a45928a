"""Request ids, JSON logs and Prometheus metrics.

One pure ASGI middleware (not ``BaseHTTPMiddleware``: it sits on the prediction hot path)
gives every request an id, counts it and times it by route *template*, and writes one
access log line. ``/metrics`` serves a per-app registry, so several apps in one process
(tests) never share counters. Job gauges and durations are read from the jobs table when
``/metrics`` is scraped, because jobs run in other processes (or on other machines).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from random import getrandbits  # request ids need to be unique, not secret; uuid4 costs a syscall
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import state
from service.config import Settings
from service.db import Database, utcnow

log = logging.getLogger("regfit")
access_log = logging.getLogger("regfit.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_RAW = REQUEST_ID_HEADER.lower().encode()
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("regfit_request_id", default=None)

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
UNMATCHED_ROUTE = "unmatched"  # 404s: never the raw path, which would explode the label set

# Sub-millisecond buckets: a cached prediction answers in well under a millisecond.
REQUEST_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def current_request_id() -> str | None:
    """The id of the request being handled (``None`` outside a request)."""
    return _request_id.get()


def _incoming_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _REQUEST_ID_HEADER_RAW:
            return value.decode("ascii") if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One route of the app: its path template, methods and path regex."""

    template: str
    methods: frozenset[str]
    regex: re.Pattern[str]


class RouteTable:
    """Which route a request will reach, before routing runs (metrics labels, auth).

    Built from the app's routes (included routers flattened) at the first request, in
    routing order with Starlette's own path compiler, so the first match is the route
    FastAPI dispatches to. Results are cached by method and path: the prediction hot path
    pays one dict lookup.
    """

    CACHE_SIZE = 4096

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._entries: list[RouteEntry] | None = None
        self._cache: dict[tuple[str, str], RouteEntry | None] = {}

    def entries(self) -> list[RouteEntry]:
        if self._entries is None:
            entries = []
            for context in iter_route_contexts(self.app.routes):
                methods = getattr(context.original_route, "methods", None)
                if context.path is None or context.path_format is None or not methods:
                    continue
                regex = compile_path(context.path)[0]
                entries.append(RouteEntry(context.path_format, frozenset(methods), regex))
            self._entries = entries
        return self._entries

    def resolve(self, scope: Scope) -> RouteEntry | None:
        """The route that fully matches the request; ``None`` when it will be a 404 or 405."""
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        key = (scope["method"], path)
        try:
            return self._cache[key]
        except KeyError:
            pass
        method, path = key
        found = next(
            (e for e in self.entries() if method in e.methods and e.regex.match(path)), None
        )
        if len(self._cache) >= self.CACHE_SIZE:  # bounded: paths carry ids
            self._cache.clear()
        self._cache[key] = found
        return found


def route_table(app: FastAPI) -> RouteTable:
    """The app's route table (one per app, shared by the middlewares)."""
    table: RouteTable | None = getattr(app.state, "route_table", None)
    if table is None:
        table = app.state.route_table = RouteTable(app)
    return table


class HttpMetrics:
    """``regfit_http_requests_total`` and ``regfit_http_request_duration_seconds``.

    prometheus-client's ``Counter``/``Histogram`` take a lock per increment (four per
    request); these run on the event loop thread only, so plain dicts and lists do, at a
    fraction of the cost. A scrape (another thread) copies them: it may see a request in
    the counter a moment before it shows in the histogram, never a torn value.
    """

    def __init__(self, buckets: tuple[float, ...] = REQUEST_BUCKETS) -> None:
        self.buckets = buckets
        self._requests: dict[tuple[str, str, int], int] = {}
        # (method, route) → [count per bucket (non-cumulative; last is +Inf), sum of seconds]
        self._durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        series = self._durations.get((method, route))
        if series is None:
            series = self._durations[(method, route)] = ([0] * (len(self.buckets) + 1), [0.0])
        series[0][bisect_left(self.buckets, seconds)] += 1
        series[1][0] += seconds

    def describe(self) -> Iterator[Metric]:
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "regfit_http_requests",
            "HTTP requests by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), n in self._requests.copy().items():
            requests.add_metric([method, route, str(status)], n)
        yield requests
        durations = HistogramMetricFamily(
            "regfit_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            labels=["method", "route"],
        )
        bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        for (method, route), (counts, total) in self._durations.copy().items():
            durations.add_metric(
                [method, route], list(zip(bounds, accumulate(counts), strict=True)), total[0]
            )
        yield durations


# The database a /metrics scrape reads the job gauges from (set by the route for its call).
_scraped_database: ContextVar[Database | None] = ContextVar("regfit_scraped_database", default=None)


class JobsCollector:
    """``regfit_jobs{state}``, ``regfit_queue_depth`` and ``regfit_job_duration_seconds``.

    Computed when ``/metrics`` is scraped: one ``GROUP BY status`` for the gauges, and the
    jobs finished since the previous scrape are added to the duration histogram (run time,
    ``finished_at - started_at``). The histogram therefore counts the jobs that finished
    while this API process was up, whichever worker ran them; with several API replicas
    on one database every replica reports every job (aggregate with ``max``, not ``sum``).
    """

    # Re-read this far back so a job whose worker clock lags, or whose row commits late,
    # is still counted; ids already counted inside the window are skipped.
    OVERLAP = timedelta(minutes=5)

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.durations = Histogram(
            "regfit_job_duration_seconds",
            "Run time of finished jobs (finished_at - started_at), by final status.",
            ("status",),
            registry=None,
            buckets=JOB_BUCKETS,
        )
        self._since: datetime = utcnow()
        self._counted: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("regfit_jobs", "Jobs by state.", labels=["state"])
        yield GaugeMetricFamily("regfit_queue_depth", "Jobs queued and not yet started.")
        yield from self.durations.describe()

    def collect(self) -> Iterator[Metric]:
        from service.tables import Job

        counts: dict[str, int] | None = None
        db = _scraped_database.get()
        if db is not None:
            try:
                with db.session(readonly=True) as session:
                    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
                    counts = dict.fromkeys(JOB_STATES, 0) | {s: int(n) for s, n in rows}
                    self._count_finished(session)
            except Exception:  # a scrape must not fail because the database hiccups
                log.warning("could not read job metrics from the database", exc_info=True)
        if counts is not None:  # unknown is left out (stale), never reported as zero
            jobs = GaugeMetricFamily("regfit_jobs", "Jobs by state.", labels=["state"])
            for state, n in counts.items():
                jobs.add_metric([state], n)
            yield jobs
            yield GaugeMetricFamily(
                "regfit_queue_depth", "Jobs queued and not yet started.", value=counts["queued"]
            )
        yield from self.durations.collect()

    def _count_finished(self, session: Any) -> None:
        from service.tables import Job

        with self._lock:
            since = self._since - self.OVERLAP
            finished = session.execute(
                select(Job.id, Job.status, Job.started_at, Job.finished_at).where(
                    Job.finished_at > since, Job.started_at.is_not(None)
                )
            )
            for job_id, status, started_at, finished_at in finished:
                if job_id in self._counted:
                    continue
                self._counted[job_id] = finished_at
                self.durations.labels(status).observe(
                    max((finished_at - started_at).total_seconds(), 0.0)
                )
                self._since = max(self._since, finished_at)
            horizon = self._since - self.OVERLAP
            self._counted = {k: v for k, v in self._counted.items() if v > horizon}


class ObservabilityMiddleware:
    """Request id, metrics and the access log line for every HTTP request."""

    def __init__(
        self, app: ASGIApp, *, metrics: HttpMetrics, routes: RouteTable, access: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope["headers"]) or f"{getrandbits(128):032x}"
        # Not reset afterwards on purpose: the 500 handler runs in Starlette's outermost
        # middleware, after this one returns, and still needs the id. Each request runs in
        # its own task (own context), so the value cannot leak into another request.
        _request_id.set(request_id)
        id_header = (_REQUEST_ID_HEADER_RAW, request_id.encode("ascii"))
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"]
            entry = self.routes.resolve(scope)
            route = entry.template if entry is not None else UNMATCHED_ROUTE
            self.metrics.observe(method, route, status, elapsed)
            if self.access and access_log.isEnabledFor(logging.INFO):
                path = scope["path"]
                extra = {
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
                key = scope.get("regfit.key")
                if key is not None:
                    extra["key"] = key
                # makeRecord + handle: what ``.info`` does, minus the stack walk for the caller
                # (a third of the cost of a line, on the prediction hot path).
                record = access_log.makeRecord(
                    access_log.name, logging.INFO, __file__, 0, "%s %s %d",
                    (method, path, status), None, None, extra,
                )  # fmt: skip
                access_log.handle(record)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the observability middleware and the ``/metrics`` route to ``app``."""
    disable_created_metrics()  # no ``*_created`` series: they double the output for nothing
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(JobsCollector(app))
    metrics = HttpMetrics()
    registry.register(metrics)
    app.state.metrics_registry = registry
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=metrics,
        routes=route_table(app),
        access=settings.access_log,
    )

    def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics: requests, latencies, jobs by state, queue depth, job durations."""
        # The job gauges read the database of the lifespan serving this scrape.
        token = _scraped_database.set(state.of(request).database)
        try:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        finally:
            _scraped_database.reset(token)

    app.add_api_route(
        "/metrics",
        prometheus_metrics,
        methods=["GET"],
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )


# --- logging ---------------------------------------------------------------------------

# Attributes every LogRecord has; anything else was passed as ``extra`` and is logged as is.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id and the extra fields."""

    _second = -1
    _second_text = ""

    def _timestamp(self, created: float, msecs: float) -> str:
        # Formatting a date is the dearest part of a line; it changes once a second.
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = fields.get("request_id") or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for name in fields.keys() - _STANDARD_ATTRS:
            entry[name] = fields[name]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``log_level``: JSON lines when ``log_json``, else readable text."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Not in our lines, and looking them up costs every record (every request) time.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter
