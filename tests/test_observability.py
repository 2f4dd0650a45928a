"""/metrics, request ids (header and problem bodies) and JSON log lines."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service import observability
from service.config import Settings
from service.db import Database, utcnow
from service.main import create_app
from service.tables import Job


def samples(
    client: TestClient, name: str, **headers: str
) -> dict[tuple[tuple[str, str], ...], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_request_metrics_use_route_templates(client: TestClient) -> None:
    client.get("/v1/models")
    client.get("/v1/models")
    client.get("/v1/models/mdl_secret_id_123")
    client.get("/no/such/route/xyz")
    requests = samples(client, "regfit_http_requests_total")
    assert requests[(("method", "GET"), ("route", "/v1/models"), ("status", "200"))] == 2
    assert requests[(("method", "GET"), ("route", "/v1/models/{model_id}"), ("status", "404"))] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    text = client.get("/metrics").text
    assert "mdl_secret_id_123" not in text and "xyz" not in text  # never raw paths
    durations = samples(client, "regfit_http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/v1/models"))] == 2
    buckets = samples(client, "regfit_http_request_duration_seconds_bucket")
    assert buckets[(("le", "+Inf"), ("method", "GET"), ("route", "/v1/models"))] == 2


def test_refusals_are_counted_under_their_route(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr("admin:" + "a" * 32)})
    with TestClient(create_app(keyed, start_executor=False)) as client:
        client.post("/v1/models/mdl_1/predict", json={"rows": [[1]]})
        requests = samples(client, "regfit_http_requests_total", authorization="Bearer " + "a" * 32)
    key = (("method", "POST"), ("route", "/v1/models/{model_id}/predict"), ("status", "401"))
    assert requests[key] == 1


def add_job(db: Database, job_id: str, status: str, seconds: float | None = None) -> None:
    now = utcnow()
    with db.session() as session:
        job = Job(id=job_id, dataset_id="ds_1", status=status, spec={}, created_at=now)
        if seconds is not None:
            job.started_at = now - timedelta(seconds=seconds)
            job.finished_at = now
        session.add(job)


def test_job_gauges_queue_depth_and_durations(settings: Settings, db: Database) -> None:
    with TestClient(create_app(settings, start_executor=False)) as client:
        add_job(db, "job_q1", "queued")
        add_job(db, "job_q2", "queued")
        add_job(db, "job_r1", "running")
        add_job(db, "job_s1", "succeeded", seconds=3.0)
        add_job(db, "job_f1", "failed", seconds=0.2)
        jobs = samples(client, "regfit_jobs")
        assert jobs == {
            (("state", "queued"),): 2,
            (("state", "running"),): 1,
            (("state", "succeeded"),): 1,
            (("state", "failed"),): 1,
            (("state", "cancelled"),): 0,
        }
        assert samples(client, "regfit_queue_depth") == {(): 2}
        counts = samples(client, "regfit_job_duration_seconds_count")
        assert counts == {(("status", "succeeded"),): 1, (("status", "failed"),): 1}
        # A second scrape does not count the same jobs again; a new one is added.
        add_job(db, "job_c1", "cancelled", seconds=1.0)
        counts = samples(client, "regfit_job_duration_seconds_count")
        assert counts[(("status", "succeeded"),)] == 1
        assert counts[(("status", "cancelled"),)] == 1
        sums = samples(client, "regfit_job_duration_seconds_sum")
        assert sums[(("status", "succeeded"),)] == pytest.approx(3.0, abs=0.01)


def test_request_id_is_echoed_and_in_problem_bodies(client: TestClient) -> None:
    response = client.get("/v1/models/nope", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc.DEF-123_x"
    assert response.json()["request_id"] == "abc.DEF-123_x"
    assert response.headers["content-type"] == "application/problem+json"

    response = client.get("/no/such/route")
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["request_id"] == generated

    response = client.get("/v1/models?limit=0")  # a validation problem
    assert response.status_code in (400, 422)
    assert response.json()["request_id"] == response.headers["x-request-id"]

    assert client.get("/healthz").headers["x-request-id"]


@pytest.mark.parametrize("bad", [b"a" * 129, b"has space", b"semi;colon", "new\u00e9".encode()])
def test_insane_request_ids_are_replaced(client: TestClient, bad: bytes) -> None:
    response = client.get("/healthz", headers={b"X-Request-ID": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_internal_error_carries_the_request_id(settings: Settings) -> None:
    app = create_app(settings, start_executor=False)

    def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-500"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "req-500"
        assert response.json()["request_id"] == "req-500"
        requests = samples(client, "regfit_http_requests_total")
    assert requests[(("method", "GET"), ("route", "/boom"), ("status", "500"))] == 1


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonLogFormatter())
    logger = logging.getLogger("regfit.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_access_log_is_one_json_object_per_request(
    client: TestClient, access_lines: io.StringIO
) -> None:
    client.get("/v1/models/mdl_1", headers={"X-Request-ID": "log-1"})
    (line,) = [json for json in access_lines.getvalue().splitlines() if '"log-1"' in json]
    entry = orjson.loads(line)
    assert entry["request_id"] == "log-1"
    assert entry["level"] == "info" and entry["logger"] == "regfit.access"
    assert entry["method"] == "GET" and entry["path"] == "/v1/models/mdl_1"
    assert entry["route"] == "/v1/models/{model_id}" and entry["status"] == 404
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert entry["msg"] == "GET /v1/models/mdl_1 404"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_access_log_can_be_turned_off(settings: Settings, access_lines: io.StringIO) -> None:
    quiet = settings.model_copy(update={"access_log": False})
    with TestClient(create_app(quiet, start_executor=False)) as client:
        client.get("/healthz")
    assert access_lines.getvalue() == ""


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    logger = logging.getLogger("regfit.test")
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    extra = {"job_id": "j1"}
    record = logger.makeRecord(
        "regfit.test", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info, extra=extra
    )
    entry = orjson.loads(observability.JsonLogFormatter().format(record))
    assert entry["msg"] == "failed x" and entry["level"] == "error" and entry["job_id"] == "j1"
    assert "ValueError: bad" in entry["exc"]
    assert "request_id" not in entry  # outside a request
