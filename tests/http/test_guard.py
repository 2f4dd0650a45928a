"""The request guard: Host allow-list (DNS rebinding), cross-site writes, JSON content types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support import wait_for_job
from test_e2e import Server

from service.config import Settings
from service.http.guard import host_of, split_list

PROBLEM = "application/problem+json"
SYNTHETIC = {"n_samples": 100, "n_features": 3, "random_state": 0}
FORM = "application/x-www-form-urlencoded"


def problem(response: Any, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["request_id"]
    for needle in needles:
        assert needle in body["detail"], (needle, body)
    return body


def guarded(settings: Settings, base_url: str = "http://localhost:8000", **update: Any) -> Any:
    from service.main import create_app

    update = {"allowed_hosts": "", "allowed_origins": "", **update}
    app = create_app(settings.model_copy(update=update))
    return TestClient(app, base_url=base_url, raise_server_exceptions=False)


@pytest.fixture
def local(settings: Settings) -> Iterator[TestClient]:
    with guarded(settings) as client:
        yield client


def test_host_of() -> None:
    assert host_of("LocalHost:8000") == "localhost"
    assert host_of("[::1]:8000") == "::1"
    assert host_of("::1") == "::1"
    assert host_of("evil.example") == "evil.example"
    assert split_list(" a, b,,c ") == ["a", "b", "c"]


@pytest.mark.parametrize(
    "host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"]
)
def test_loopback_hosts_are_served(local: TestClient, host: str) -> None:
    response = local.get("/v1/models", headers={"host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", ["get", "delete"])
def test_a_rebinding_host_is_refused(local: TestClient, method: str) -> None:
    created = local.post("/v1/datasets/synthetic", json=SYNTHETIC)
    assert created.status_code == 201, created.text
    path = f"/v1/datasets/{created.json()['id']}"
    body = problem(local.request(method, path, headers={"host": "evil.example"}), 400, "host")
    assert body["errors"][0]["loc"] == "header:/host"
    assert local.get(path).status_code == 200  # not deleted


def test_allowed_hosts_setting(settings: Settings) -> None:
    with guarded(settings, allowed_hosts="api.example.com, *.corp.example") as client:
        for host in ("api.example.com", "API.example.com:443", "x.corp.example"):
            assert client.get("/healthz", headers={"host": host}).status_code == 200, host
        for host in ("example.com", "corp.example", "evil.example"):
            problem(client.get("/healthz", headers={"host": host}), 400)
    with guarded(settings, allowed_hosts="*") as client:
        assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 200


def test_wildcard_bind_serves_ip_literals_not_names(settings: Settings) -> None:
    with guarded(settings, host="0.0.0.0") as client:
        assert client.get("/healthz", headers={"host": "10.1.2.3:8000"}).status_code == 200
        assert client.get("/healthz", headers={"host": "[fd00::1]:8000"}).status_code == 200
        problem(client.get("/healthz", headers={"host": "evil.example"}), 400)


@pytest.mark.parametrize("ctype", [FORM, "application/json", "text/plain"])
def test_cross_site_writes_are_refused(local: TestClient, ctype: str) -> None:
    response = local.post(
        "/v1/datasets/synthetic",
        content=b'{"n_samples":100,"n_features":3}',
        headers={"origin": "http://evil.example", "content-type": ctype},
    )
    body = problem(response, 403, "evil.example", "REGFIT_ALLOWED_ORIGINS")
    assert body["errors"][0]["loc"] == "header:/origin"
    assert local.get("/v1/datasets").json()["total"] == 0


def test_sec_fetch_site_cross_site_without_origin_is_refused(local: TestClient) -> None:
    cross = {"sec-fetch-site": "cross-site"}
    problem(local.post("/v1/datasets/synthetic", json=SYNTHETIC, headers=cross), 403)
    same = {"sec-fetch-site": "same-origin"}
    assert local.post("/v1/datasets/synthetic", json=SYNTHETIC, headers=same).status_code == 201
    # Reads stay open to any page's request (a browser does not let the page read the answer).
    assert local.get("/v1/datasets", headers=cross).status_code == 200


def test_own_and_configured_origins_may_write(settings: Settings) -> None:
    with guarded(settings, allowed_origins="https://app.example.com") as client:
        own = client.post(
            "/v1/datasets/synthetic", json=SYNTHETIC, headers={"origin": "http://localhost:8000"}
        )
        assert own.status_code == 201, own.text
        configured = client.post(
            "/v1/datasets/synthetic", json=SYNTHETIC, headers={"origin": "https://app.example.com"}
        )
        assert configured.status_code == 201, configured.text
        other_port = client.post(
            "/v1/datasets/synthetic", json=SYNTHETIC, headers={"origin": "http://localhost:3000"}
        )
        problem(other_port, 403)
        problem(
            client.post("/v1/datasets/synthetic", json=SYNTHETIC, headers={"origin": "null"}), 403
        )
        assert client.get("/v1/datasets").json()["total"] == 2
    with guarded(settings, allowed_origins="*") as client:
        anywhere = client.post(
            "/v1/datasets/synthetic", json=SYNTHETIC, headers={"origin": "http://evil.example"}
        )
        assert anywhere.status_code == 201


@pytest.mark.parametrize("ctype", [FORM, "text/plain", "multipart/form-data; boundary=x", None])
@pytest.mark.parametrize("path", ["/v1/datasets/synthetic", "/v1/jobs"])
def test_json_routes_take_json_only(local: TestClient, path: str, ctype: str | None) -> None:
    headers = {"content-type": ctype} if ctype else {}
    response = local.post(path, content=b'{"n_samples": 100}', headers=headers)
    body = problem(response, 415, "content-type: application/json")
    assert body["errors"][0]["loc"] == "header:/content-type"
    assert body["accepted"] == ["application/json"]
    assert local.get("/v1/datasets").json()["total"] == 0


def test_predict_takes_json_or_csv(local: TestClient) -> None:
    dataset = local.post("/v1/datasets/synthetic", json={**SYNTHETIC, "n_features": 2}).json()
    job = local.post(
        "/v1/jobs", json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}}
    ).json()
    model_id = wait_for_job(local, job["id"])["model_id"]
    path = f"/v1/models/{model_id}/predict"
    as_json = local.post(
        path, content=b'{"rows": [[1, 2]]}', headers={"content-type": "application/json"}
    )
    assert as_json.status_code == 200, as_json.text
    as_csv = local.post(path, content=b"x0,x1\n1,2\n", headers={"content-type": "text/csv"})
    assert as_csv.json() == as_json.json()
    for ctype in (FORM, "text/plain", None):
        headers = {"content-type": ctype} if ctype else {}
        refused = local.post(path, content=b'{"rows": [[1, 2]]}', headers=headers)
        assert problem(refused, 415)["accepted"] == ["application/json", "text/csv"]


@pytest.mark.e2e
def test_real_server_refuses_rebinding_and_cross_site_forms(tmp_path: Path) -> None:
    """The issue's reproductions against `regfit serve`, open on 127.0.0.1."""
    srv = Server(tmp_path, env={"REGFIT_ALLOWED_HOSTS": ""})
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            problem(client.get("/v1/datasets", headers={"host": "evil.example"}), 400)
            form = client.post(
                "/v1/datasets/synthetic",
                content=b'{"n_samples":100,"n_features":3}',
                headers={"origin": "http://evil.example", "content-type": FORM},
            )
            problem(form, 403)
            same_origin_form = client.post(
                "/v1/datasets/synthetic",
                content=b'{"n_samples":100,"n_features":3}',
                headers={"content-type": FORM},
            )
            problem(same_origin_form, 415, "content-type: application/json")
            assert client.get("/v1/datasets").json()["total"] == 0
            ok = client.post("/v1/datasets/synthetic", json=SYNTHETIC)
            assert ok.status_code == 201, ok.text
    finally:
        srv.stop()
