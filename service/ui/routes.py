"""The dashboard's routes: each page reads the JSON API in-process, as the signed-in key.

The pages are thin: every read and write goes through the ``/v1`` routes (an in-process
ASGI call carrying the session's key), so validation, roles and problem documents are the
API's own. The session is an HttpOnly, SameSite=Strict cookie signed with HMAC-SHA256
holding the key and an expiry; the form posts are cross-site-checked by the guard (Origin)
and by SameSite=Strict. Form routes declare their body type in ``openapi_extra``, which the
guard's content check reads (the JSON routes stay JSON-only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any, Final

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from service import state

COOKIE: Final = "regfit_session"
PLOT_KINDS: Final = ("coefficients", "path", "cv", "residuals", "comparison")
FORM: Final[dict[str, Any]] = {
    "requestBody": {"content": {"application/x-www-form-urlencoded": {}}}
}
MULTIPART: Final[dict[str, Any]] = {"requestBody": {"content": {"multipart/form-data": {}}}}

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)
_process_secret = secrets.token_bytes(32)


def _secret(request: Request) -> bytes:
    configured = state.of(request).settings.ui_session_secret.get_secret_value()
    return configured.encode() if configured else _process_secret


def _sign(request: Request, payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    mac = hmac.new(_secret(request), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _session_key(request: Request) -> str | None:
    """The signed-in key, or None (no cookie, a bad signature, expired)."""
    raw = request.cookies.get(COOKIE)
    if not raw or "." not in raw:
        return None
    body, _, mac = raw.rpartition(".")
    expected = hmac.new(_secret(request), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    payload = json.loads(base64.urlsafe_b64decode(body))
    if payload.get("exp", 0) < time.time():
        return None
    key = payload.get("key")
    return key if isinstance(key, str) else None


def _api(request: Request, key: str | None) -> httpx.AsyncClient:
    """An in-process client of the API, as ``key`` (the lifespan state passed along)."""
    app = request.app
    lifespan_state = request.scope.get("state", {})

    async def with_state(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = dict(lifespan_state)
        await app(scope, receive, send)

    headers = {"authorization": f"Bearer {key}"} if key else {}
    host = request.headers.get("host", "127.0.0.1")
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=with_state),
        base_url=f"http://{host}",
        headers=headers,
        timeout=60,
    )


async def _get(request: Request, path: str) -> httpx.Response:
    async with _api(request, _session_key(request)) as api:
        return await api.get(path)


def _needs_sign_in(response: httpx.Response) -> bool:
    return response.status_code == 401


async def _relay(request: Request, path: str) -> Response:
    """The API's answer to ``GET path`` as is (status, body, content type), or the sign-in."""
    response = await _get(request, path)
    if _needs_sign_in(response):
        return _to_sign_in()
    return Response(
        response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
    )


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"signed_in": bool(_session_key(request)), **context}
    )


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/ui/sign-in", status_code=303)


STATIC: Final = Path(__file__).parent / "static"
_STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript"}


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The dashboard's own stylesheet and script (only the files shipped beside it)."""
    path = STATIC / name
    if path.parent != STATIC or path.suffix not in _STATIC_TYPES or not path.is_file():
        return Response(status_code=404)
    return FileResponse(
        path, media_type=_STATIC_TYPES[path.suffix], headers={"cache-control": "max-age=3600"}
    )


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """Datasets, jobs, models, registered names and the new-job form."""
    async with _api(request, _session_key(request)) as api:
        datasets = await api.get("/v1/datasets")
        if _needs_sign_in(datasets):
            return _to_sign_in()
        jobs = await api.get("/v1/jobs")
        model_list = await api.get("/v1/models")
        names = await api.get("/v1/registry")
    return _page(
        request,
        "home.html",
        datasets=datasets.json().get("items", []) if datasets.is_success else [],
        jobs=jobs.json().get("items", []) if jobs.is_success else [],
        models=model_list.json().get("items", []) if model_list.is_success else [],
        names=names.json().get("items", []) if names.is_success else [],
        error=None if datasets.is_success else datasets.json().get("detail"),
        notice=request.query_params.get("notice"),
    )


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    return _page(request, "sign_in.html", error=None)


@router.post("/sign-in", openapi_extra=FORM)
async def sign_in(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("api_key", "")).strip()
    async with _api(request, key) as api:
        check = await api.get("/v1/models")
    if not key or check.status_code == 401:
        return templates.TemplateResponse(
            request,
            "sign_in.html",
            {"signed_in": False, "error": "unknown or revoked key"},
            status_code=400,
        )
    hours = state.of(request).settings.ui_session_hours
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE,
        _sign(request, {"key": key, "exp": time.time() + hours * 3600}),
        max_age=int(hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.post("/sign-out", openapi_extra=FORM)
async def sign_out(request: Request) -> Response:
    response = _to_sign_in()
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
async def dataset_page(request: Request, dataset_id: str) -> Response:
    response = await _get(request, f"/v1/datasets/{dataset_id}")
    if _needs_sign_in(response):
        return _to_sign_in()
    return _page(request, "dataset.html", dataset=response.json(), ok=response.is_success)


@router.post("/datasets", openapi_extra=MULTIPART)
async def upload(request: Request) -> Response:
    """The upload form's multipart body, passed through to ``POST /v1/datasets``."""
    body = await request.body()
    async with _api(request, _session_key(request)) as api:
        created = await api.post(
            "/v1/datasets", content=body, headers={"content-type": request.headers["content-type"]}
        )
    if _needs_sign_in(created):
        return _to_sign_in()
    if not created.is_success:
        return _page(
            request, "problem.html", problem=created.json(), status_code=created.status_code
        )
    return RedirectResponse(f"/ui/datasets/{created.json()['id']}", status_code=303)


def _alphas(text: str) -> list[float] | dict[str, Any]:
    """``0.01,0.1,1`` (a list) or ``1e-3:10:30:log`` (low:high:count, log-spaced)."""
    text = text.strip()
    if ":" in text:
        low, high, count, *scale = text.split(":")
        import numpy as np

        space = np.geomspace if (scale or ["log"])[0] == "log" else np.linspace
        return [float(a) for a in space(float(low), float(high), int(count))]
    return [float(a) for a in text.split(",") if a.strip()]


@router.post("/jobs", openapi_extra=FORM)
async def new_job(request: Request) -> Response:
    """The new-job form as ``POST /v1/jobs``: task, penalty, λ (alpha) or C form, tuning
    (a classifier's strength and grid are C's)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    penalty: dict[str, Any] = {"type": form.get("penalty", "l2")}
    classifier = form.get("task") == "classification"
    strength = form.get("strength", "").strip()
    if strength:
        penalty["C" if classifier or form.get("form") == "C" else "alpha"] = float(strength)
    if form.get("l1_ratio", "").strip() and penalty["type"] == "elasticnet":
        penalty["l1_ratio"] = float(form["l1_ratio"])
    body: dict[str, Any] = {
        "dataset_id": form.get("dataset_id", ""),
        "target": form.get("target", ""),
        "penalty": penalty,
    }
    if classifier:
        body["task"] = "classification"
    compare = [p for p in form.get("compare", "").replace(" ", "").split(",") if p]
    alphas = form.get("alphas", "").strip()
    if alphas or compare:
        space: dict[str, Any] = {}
        try:
            if alphas:
                space["C" if classifier else "alpha"] = _alphas(alphas)
        except ValueError:
            problem = {
                "title": "Bad alphas",
                "detail": f"alphas {alphas!r}: a list or low:high:n:log",
            }
            return _page(request, "problem.html", problem=problem, status_code=422)
        if compare:
            space["penalty"] = compare
        body["tuning"] = {
            "strategy": form.get("strategy", "grid"),
            "space": space,
            "cv": {"folds": int(form.get("folds") or 5)},
            "select": form.get("select", "best"),
        }
    async with _api(request, _session_key(request)) as api:
        created = await api.post("/v1/jobs", json=body)
    if _needs_sign_in(created):
        return _to_sign_in()
    if not created.is_success:
        return _page(
            request, "problem.html", problem=created.json(), status_code=created.status_code
        )
    return RedirectResponse(f"/ui/jobs/{created.json()['id']}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> Response:
    response = await _get(request, f"/v1/jobs/{job_id}")
    if _needs_sign_in(response):
        return _to_sign_in()
    return _page(request, "job.html", job=response.json(), ok=response.is_success)


@router.get("/jobs/{job_id}/status")
async def job_status(request: Request, job_id: str) -> Response:
    """The job's JSON, for the page's progress polling (the cookie stands for the key)."""
    return await _relay(request, f"/v1/jobs/{job_id}")


@router.post("/jobs/{job_id}/cancel", openapi_extra=FORM)
async def cancel_job(request: Request, job_id: str) -> Response:
    async with _api(request, _session_key(request)) as api:
        await api.post(f"/v1/jobs/{job_id}/cancel")
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.get("/models/{model_id}", response_class=HTMLResponse)
async def model_page(request: Request, model_id: str) -> Response:
    async with _api(request, _session_key(request)) as api:
        model = await api.get(f"/v1/models/{model_id}")
    if _needs_sign_in(model):
        return _to_sign_in()
    if not model.is_success:
        return _page(request, "problem.html", problem=model.json(), status_code=model.status_code)
    body = model.json()
    tuning = body.get("tuning") or {}
    if body.get("task") == "classification":
        return _page(
            request,
            "classifier.html",
            model=body,
            kinds=[k for k in ("coefficients", "path", "cv") if k != "cv" or tuning],
            candidates=sorted(
                tuning.get("candidates", []),
                key=lambda c: -(c["mean_score"] if c["mean_score"] is not None else float("-inf")),
            ),
            prediction=None,
        )
    kinds = [k for k in PLOT_KINDS if k != "cv" or tuning]
    if body.get("n_test", 0) == 0:
        kinds.remove("residuals")
    if not tuning.get("comparison"):
        kinds.remove("comparison")
    candidates = sorted(
        tuning.get("candidates", []),
        key=lambda c: -(c["mean_score"] if c["mean_score"] is not None else float("-inf")),
    )
    return _page(
        request,
        "model.html",
        model=body,
        kinds=kinds,
        candidates=candidates,
        comparison=tuning.get("comparison"),
        prediction=None,
    )


@router.get("/models/{model_id}/plots/{kind}")
async def model_plot(request: Request, model_id: str, kind: str) -> Response:
    """The plot's SVG from the API (an ``<img>`` cannot send the key itself)."""
    return await _relay(request, f"/v1/models/{model_id}/plots/{kind}")


@router.get("/models/{name}/versions/{version}/plots/{kind}")
async def version_plot(request: Request, name: str, version: str, kind: str) -> Response:
    """A registered version's plot, by its reference ``name/versions/n``."""
    return await _relay(request, f"/v1/models/{name}/versions/{version}/plots/{kind}")


@router.get("/registry/{name}", response_class=HTMLResponse)
async def registry_page(request: Request, name: str) -> Response:
    """A registered name: its versions and aliases, each version's model page and plots."""
    response = await _get(request, f"/v1/registry/{name}")
    if _needs_sign_in(response):
        return _to_sign_in()
    if not response.is_success:
        return _page(
            request, "problem.html", problem=response.json(), status_code=response.status_code
        )
    return _page(request, "registry.html", registered=response.json(), kinds=PLOT_KINDS)


@router.post("/models/{model_id}/predict", openapi_extra=FORM)
async def predict(request: Request, model_id: str) -> Response:
    """One row from the form's fields (empty: null) as ``POST /v1/models/{id}/predict``."""
    form = await request.form()
    record: dict[str, Any] = {}
    for name, value in form.items():
        text = str(value).strip()
        if not text:
            record[name] = None
            continue
        try:
            record[name] = float(text)
        except ValueError:
            record[name] = text
    async with _api(request, _session_key(request)) as api:
        answer = await api.post(f"/v1/models/{model_id}/predict", json={"records": [record]})
    if _needs_sign_in(answer):
        return _to_sign_in()
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )
