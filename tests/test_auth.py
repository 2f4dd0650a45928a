"""API keys and roles: the role-by-route matrix, keys from the env and the CLI, start-up rules."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import inspect, select

from service import auth, cli
from service.config import Settings
from service.db import Database
from service.main import create_app
from service.tables import ApiKey

KEYS = {role: f"rfk_test_{role}_{secrets.token_hex(16)}" for role in auth.ROLES}
WRONG_KEY = "rfk_test_wrong_" + secrets.token_hex(16)
CALLERS: dict[str, str | None] = {"no key": None, "wrong key": WRONG_KEY, **KEYS}


def env_keys() -> SecretStr:
    return SecretStr(",".join(f"{role}:{key}" for role, key in KEYS.items()))


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_keys": env_keys()})


@pytest.fixture
def auth_app(auth_settings: Settings) -> FastAPI:
    return create_app(auth_settings, start_executor=False)


@pytest.fixture
def auth_client(auth_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(auth_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``regfit`` configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> None:
    """``regfit …`` in-process against the test database."""
    for name in list(os.environ):
        if name.startswith("REGFIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REGFIT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REGFIT_DATA_DIR", str(settings.data_dir))
    monkeypatch.chdir(settings.data_dir.parent)  # no stray .env file is read


def headers_for(key: str | None, *, style: str = "bearer") -> dict[str, str]:
    if key is None:
        return {}
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, as FastAPI itself enumerates them."""
    found = set()
    for context in iter_route_contexts(app.routes):
        for method in getattr(context.original_route, "methods", None) or ():
            if method != "HEAD" and context.path_format:
                found.add((method, context.path_format))
    return sorted(found)


# --- the matrix ----------------------------------------------------------------------------


def test_every_route_has_an_entry_in_the_role_table(auth_app: FastAPI) -> None:
    routes = app_routes(auth_app)
    assert len(routes) >= 20
    missing = [r for r in routes if (r[0], auth.normalize_template(r[1])) not in auth.ROUTE_ROLES]
    assert not missing, f"add these routes to service.auth.ROUTE_ROLES: {missing}"
    live = {(m, auth.normalize_template(t)) for m, t in routes}
    stale = sorted(set(auth.ROUTE_ROLES) - live)
    assert not stale, f"ROUTE_ROLES lists routes the app does not have: {stale}"


def test_role_matrix_covers_every_route_and_caller(auth_client: TestClient) -> None:
    """Every route x {no key, wrong key, predictor, trainer, admin}: 401, 403 or through."""
    failures = []
    app = auth_client.app
    assert isinstance(app, FastAPI)
    for method, template in app_routes(app):
        allowed = auth.roles_for(method, template)
        path = re.sub(r"\{[^}]*\}", "does-not-exist", template)
        for caller, key in CALLERS.items():
            response = auth_client.request(method, path, headers=headers_for(key), json={})
            status = response.status_code
            if not allowed:
                expected = "through"
            elif key is None or key == WRONG_KEY:
                expected = "401"
            else:
                expected = "through" if caller in allowed else "403"
            got = str(status) if status in (401, 403) else "through"
            if got != expected:
                failures.append(f"{caller:>9} {method} {template}: {status}, expected {expected}")
            elif expected == "401":
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.headers["content-type"] == "application/problem+json"
            elif expected == "403":
                body = response.json()
                assert body["role"] == caller
                assert body["required_roles"] == [r for r in auth.ROLES if r in allowed]
                assert caller in body["detail"] and body["required_roles"][-1] in body["detail"]
    assert not failures, "\n".join(failures)


def test_role_table_matches_the_contract() -> None:
    """The issues' matrix, spelled out: predictor reads models (its reduced view) and the
    registry and predicts (by id, through a registry reference, /invocations and /v2), and no
    more; the export and the path carry the training data's categories."""
    predictor = {k for k, roles in auth.ROUTE_ROLES.items() if "predictor" in roles}
    public = {k for k, roles in auth.ROUTE_ROLES.items() if not roles}
    assert predictor - public == {
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{}"),
        ("POST", "/v1/models/{}/predict"),
        ("GET", "/v1/models/{}/versions/{}"),
        ("POST", "/v1/models/{}/versions/{}/predict"),
        ("POST", "/v1/models/{}/invocations"),
        ("POST", "/v1/models/{}/versions/{}/invocations"),
        ("GET", "/v1/registry"),
        ("GET", "/v1/registry/{}"),
        ("GET", "/v1/registry/{}/versions/{}"),
        ("GET", "/v2/models/{}"),
        ("GET", "/v2/models/{}/ready"),
        ("POST", "/v2/models/{}/infer"),
        ("GET", "/v2/models/{}/versions/{}"),
        ("GET", "/v2/models/{}/versions/{}/ready"),
        ("POST", "/v2/models/{}/versions/{}/infer"),
    }
    for (_method, path), roles in auth.ROUTE_ROLES.items():
        if path.startswith(
            ("/v1/datasets", "/v1/jobs", "/v1/models", "/v1/registry", "/v2/models")
        ):
            assert {"admin", "trainer"} <= roles, path
    assert auth.ROUTE_ROLES[("GET", "/metrics")] == {"admin"}
    assert auth.roles_for("GET", "/v1/unlisted/{x}") == {"admin"}  # fail closed


PREDICTOR_VIEW = {
    "id", "name", "target", "task", "created_at", "features", "dtypes", "penalty",
    "preprocessing", "metrics",
}  # fmt: skip


def test_a_predictor_sees_what_prediction_needs_and_no_category(auth_settings: Settings) -> None:
    """No one-hot vocabulary, coefficient, training summary or export for a predictor key."""
    trainer, predictor = headers_for(KEYS["trainer"]), headers_for(KEYS["predictor"])
    with TestClient(create_app(auth_settings)) as client:
        rows = [["Paris", 1.0, 2.0], ["Rome", 2.0, 3.5], ["Oslo", 3.0, 5.0], ["Paris", 4.0, 4.5]]
        dataset = client.post(
            "/v1/datasets", json={"columns": ["city", "x", "y"], "rows": rows}, headers=trainer
        ).json()
        job = client.post(
            "/v1/jobs",
            json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"},
                  "split": {"test_size": 0}},
            headers=trainer,
        ).json()  # fmt: skip
        deadline = time.monotonic() + 60
        while (done := client.get(f"/v1/jobs/{job['id']}", headers=trainer).json())[
            "status"
        ] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, done
            time.sleep(0.05)
        assert done["status"] == "succeeded", done
        model_id = done["model_id"]

        full = client.get(f"/v1/models/{model_id}", headers=trainer)
        assert "city=Paris" in full.json()["coefficients"]["original"]
        assert client.get(f"/v1/models/{model_id}/export", headers=trainer).status_code == 200
        assert client.get(f"/v1/models/{model_id}/path", headers=trainer).status_code == 200

        view = client.get(f"/v1/models/{model_id}", headers=predictor)
        assert view.status_code == 200
        body = view.json()
        assert set(body) == PREDICTOR_VIEW
        assert body["features"] == ["city", "x"]
        assert body["dtypes"] == {"city": "string", "x": "float64"}
        assert body["task"] == "regression" and body["penalty"]["type"] == "l2"
        assert body["metrics"] == full.json()["metrics"]
        listed = client.get("/v1/models", headers=predictor).json()["items"]
        assert [item["id"] for item in listed] == [model_id]
        assert set(listed[0]) == PREDICTOR_VIEW - {"dtypes"}
        for text in (view.text, client.get("/v1/models", headers=predictor).text):
            for category in ("Paris", "Rome", "Oslo"):
                assert category not in text
            assert dataset["id"] not in text and job["id"] not in text
        for route in ("export", "path"):
            refused = client.get(f"/v1/models/{model_id}/{route}", headers=predictor)
            assert refused.status_code == 403 and refused.json()["role"] == "predictor"
        predicted = client.post(
            f"/v1/models/{model_id}/predict",
            json={"records": [{"city": "Rome", "x": 2.0}]},
            headers=predictor,
        )
        assert predicted.status_code == 200, predicted.text
        assert len(predicted.json()["predictions"]) == 1


def test_unknown_route_is_401_without_key_and_404_with_any_key(auth_client: TestClient) -> None:
    assert auth_client.get("/v1/nothing-here").status_code == 401
    response = auth_client.get("/v1/nothing-here", headers=headers_for(KEYS["predictor"]))
    assert response.status_code == 404


def test_x_api_key_header_works_like_bearer(auth_client: TestClient) -> None:
    key = KEYS["predictor"]
    assert auth_client.get("/v1/models", headers=headers_for(key, style="x-api-key")).is_success
    assert auth_client.get("/v1/models", headers={"Authorization": f"bearer {key}"}).is_success
    assert (
        auth_client.get("/v1/models", headers={"Authorization": f"Basic {key}"}).status_code == 401
    )


def test_refused_before_the_body_is_read(auth_client: TestClient) -> None:
    """A malformed upload without a key is a 401, not a 422: auth runs before parsing."""
    response = auth_client.post(
        "/v1/datasets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


def test_open_without_any_key(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_auth_off_stays_open_even_with_keys(settings: Settings) -> None:
    off = settings.model_copy(update={"api_keys": env_keys(), "auth": "off"})
    with TestClient(create_app(off, start_executor=False)) as client:
        assert client.get("/v1/models").status_code == 200


def test_auth_on_without_keys_refuses_everything_but_health(settings: Settings) -> None:
    on = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(on, start_executor=False)) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/healthz").status_code == 200


def test_bad_env_key_entry_is_refused_without_echoing_it(settings: Settings) -> None:
    secret = "supersecretvalue-123456"
    bad = settings.model_copy(update={"api_keys": SecretStr(f"root:{secret}")})
    with pytest.raises(ValueError, match="entry 1") as info:
        create_app(bad)
    assert secret not in str(info.value)


# --- keys in the database -------------------------------------------------------------------


def create_key_with_cli(role: str, capsys: pytest.CaptureFixture[str], name: str = "ci") -> str:
    assert cli.main(["keys", "create", "--role", role, "--name", name]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(auth.KEY_PREFIX)
    return out


def key_id_of(settings: Settings, key: str) -> str:
    db = Database(settings.database_url)
    try:
        with db.session(readonly=True) as session:
            return session.scalars(
                select(ApiKey.id).where(ApiKey.key_hash == auth.hash_key(key))
            ).one()
    finally:
        db.dispose()


@pytest.mark.usefixtures("cli_env")
def test_cli_key_is_stored_hashed_and_grants_its_role(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create_key_with_cli("trainer", capsys)
    db = Database(settings.database_url)
    try:
        with db.session(readonly=True) as session:
            (row,) = session.scalars(select(ApiKey)).all()
            key_id, name, role, key_hash, prefix = (
                row.id,
                row.name,
                row.role,
                row.key_hash,
                row.prefix,
            )
    finally:
        db.dispose()
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert prefix == key[:8] and role == "trainer" and name == "ci"
    assert not any(key in str(value) for value in (key_id, name, role, key_hash, prefix))
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    for path in (db_file, db_file.with_name(db_file.name + "-wal")):
        if path.exists():
            assert key.encode() not in path.read_bytes()

    assert cli.main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and key[:8] in listing and key not in listing

    # REGFIT_AUTH=auto: a key in the database turns enforcement on.
    with TestClient(create_app(settings, start_executor=False)) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers=headers_for(key)).status_code == 200
        assert client.get("/v1/jobs", headers=headers_for(key)).status_code == 200
        assert client.get("/metrics", headers=headers_for(key)).status_code == 403


@pytest.mark.usefixtures("cli_env")
def test_revoked_key_is_refused(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    kept = create_key_with_cli("predictor", capsys, name="kept")
    revoked = create_key_with_cli("admin", capsys, name="revoked")
    no_cache = settings.model_copy(update={"api_key_cache_seconds": 0})
    with TestClient(create_app(no_cache, start_executor=False)) as client:
        assert client.get("/v1/models", headers=headers_for(revoked)).status_code == 200
        assert cli.main(["keys", "revoke", key_id_of(settings, revoked)]) == 0
        response = client.get("/v1/models", headers=headers_for(revoked))
        assert response.status_code == 401
        assert "invalid_token" in response.headers["www-authenticate"]
        assert client.get("/v1/models", headers=headers_for(kept)).status_code == 200
    assert cli.main(["keys", "revoke", "key_missing"]) == 1


@pytest.mark.usefixtures("cli_env")
def test_verified_keys_are_cached_for_the_ttl(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Within ``api_key_cache_seconds`` a known key costs no database read (so a revocation
    takes effect only after the TTL)."""
    key = create_key_with_cli("predictor", capsys)
    cached = settings.model_copy(update={"api_key_cache_seconds": 30})
    with TestClient(create_app(cached, start_executor=False)) as client:
        assert client.get("/v1/models", headers=headers_for(key)).status_code == 200
        assert cli.main(["keys", "revoke", key_id_of(settings, key)]) == 0
        assert client.get("/v1/models", headers=headers_for(key)).status_code == 200


def test_revoking_the_last_key_does_not_open_the_api(settings: Settings) -> None:
    db = Database(settings.database_url)
    no_cache = settings.model_copy(update={"api_key_cache_seconds": 0})
    try:
        with TestClient(create_app(no_cache, start_executor=False)) as client:
            assert client.get("/v1/models").status_code == 200  # open: no key anywhere
            with db.session() as session:
                row, _key = auth.create(session=session, role="predictor")
            assert client.get("/v1/models").status_code == 401  # a key exists now
            with db.session() as session:
                auth.revoke(session=session, key_id=row.id)
            assert client.get("/v1/models").status_code == 401  # stays closed
    finally:
        db.dispose()


# --- `regfit serve` start-up rules ------------------------------------------------------------


@pytest.fixture
def no_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn.run was called: the server would have bound a socket")

    monkeypatch.setattr(uvicorn, "run", refuse)


@pytest.mark.usefixtures("cli_env", "no_bind")
def test_serve_refuses_a_public_address_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = tmp_path / "fresh.db"
    monkeypatch.setenv("REGFIT_DATABASE_URL", f"sqlite:///{fresh}")
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0 without API keys" in err
    assert "regfit keys create" in err and "REGFIT_AUTH=off" in err
    # It stopped before migrating, let alone binding.
    db = Database(f"sqlite:///{fresh}")
    try:
        assert inspect(db.engine).get_table_names() == []
    finally:
        db.dispose()


@pytest.mark.usefixtures("cli_env", "no_bind")
def test_serve_with_auth_on_and_no_key_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REGFIT_AUTH", "on")
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    assert "REGFIT_AUTH=on but no API key exists" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env", "no_bind")
def test_serve_with_a_bad_key_list_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REGFIT_API_KEYS", "admin")
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    assert "REGFIT_API_KEYS entry 1" in capsys.readouterr().err


def test_serve_check_rules(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(auth.AuthConfigError, match=r"refusing to serve on 10\.1\.2\.3"):
        auth.check_serve_auth(settings, "10.1.2.3")
    with caplog.at_level(logging.WARNING, logger="regfit.auth"):
        assert auth.check_serve_auth(settings, "::1").auth == "auto"
        assert "running without API keys on ::1" in caplog.text
        off = settings.model_copy(update={"auth": "off"})
        assert auth.check_serve_auth(off, "0.0.0.0").auth == "off"
        assert "REGFIT_AUTH=off" in caplog.text
        off_with_keys = off.model_copy(update={"api_keys": env_keys()})
        assert auth.check_serve_auth(off_with_keys, "0.0.0.0").auth == "off"
        assert "the 3 configured API key(s) are ignored" in caplog.text
    keyed = settings.model_copy(update={"api_keys": env_keys()})
    assert auth.check_serve_auth(keyed, "0.0.0.0").auth == "on"  # revoking keys later fails closed
    assert [auth.is_loopback(h) for h in ("127.0.0.1", "127.0.0.5", "localhost", "[::1]")] == [
        True
    ] * 4
    assert [auth.is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com")] == [
        False
    ] * 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.e2e
def test_serve_starts_open_on_loopback_and_says_so(tmp_path: Path) -> None:
    """A real `regfit serve` on 127.0.0.1 without keys: it warns, serves, and logs JSON lines."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGFIT_")}
    env.update(
        REGFIT_DATABASE_URL=f"sqlite:///{tmp_path / 'regfit.db'}",
        REGFIT_DATA_DIR=str(tmp_path / "data"),
        REGFIT_WORKERS="1",
    )
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            response = httpx.get(f"{url}/v1/models", headers={"X-Request-ID": "e2e-open-1"})
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "e2e-open-1"
        finally:
            process.terminate()
            process.wait(timeout=30)
    lines = [orjson.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    warnings = [e for e in lines if "running without API keys on 127.0.0.1" in e["msg"]]
    assert warnings and warnings[0]["level"] == "warning"
    assert "anyone on this machine can use it" in warnings[0]["msg"]
    access = [e for e in lines if e.get("request_id") == "e2e-open-1"]
    assert access and access[0]["logger"] == "regfit.access"
    assert access[0]["route"] == "/v1/models" and access[0]["status"] == 200


def test_openapi_documents_keys_and_roles(auth_client: TestClient) -> None:
    schema = auth_client.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    predict = schema["paths"]["/v1/models/{model_id}/predict"]["post"]
    assert predict["security"] == [{"bearer": []}, {"apiKey": []}]
    assert {"401", "403"} <= set(predict["responses"])
    assert "Roles: admin, trainer, predictor" in predict["description"]
    assert "Roles: admin, trainer (" in schema["paths"]["/v1/jobs"]["post"]["description"]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
