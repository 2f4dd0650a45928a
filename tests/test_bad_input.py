"""The bad-input table: every case gets a 4xx problem+json naming what is wrong, and
nothing is written (no dataset row, no file, no job)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    text = str(body)
    for needle in needles:
        assert needle in text, (needle, body)
    return body


def nothing_stored(client: TestClient, settings_data_dir: Path) -> None:
    assert client.get("/v1/datasets").json()["total"] == 0
    files = (
        [p for p in settings_data_dir.rglob("*") if p.is_file()]
        if settings_data_dir.exists()
        else []
    )
    assert files == []


UPLOADS = [
    ("empty file", "empty.csv", b"", "text/csv", ()),
    ("binary garbage", "junk.csv", bytes(range(256)) * 40, "text/csv", ()),
    ("ragged csv", "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "text/csv", ("3",)),
]


@pytest.mark.parametrize(
    ("case", "filename", "content", "ctype", "needles"), UPLOADS, ids=[u[0] for u in UPLOADS]
)
def test_bad_uploads(
    client: TestClient,
    settings: Any,
    case: str,
    filename: str,
    content: bytes,
    ctype: str,
    needles: tuple[str, ...],
) -> None:
    response = client.post("/v1/datasets", files={"file": (filename, content, ctype)})
    assert_problem(response, 422, *needles)
    nothing_stored(client, settings.data_dir)


def test_ragged_json_rows(client: TestClient, settings: Any) -> None:
    response = client.post(
        "/v1/datasets", json={"columns": ["a", "b"], "rows": [[1, 2], [3], [4, 5]]}
    )
    body = assert_problem(response, 422)
    assert "/rows/1" in str(body)
    nothing_stored(client, settings.data_dir)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/datasets", "/v1/datasets/synthetic"])
def test_malformed_json(client: TestClient, path: str) -> None:
    response = client.post(
        path, content=b'{"dataset_id": "x", ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400, "JSON")
    assert body["title"] == "Malformed JSON" and body["type"].endswith("/malformed-json")


@pytest.fixture
def dataset(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 40, "n_features": 3, "random_state": 0}
    )
    assert response.status_code == 201
    return response.json()


JOB_CASES = [
    ("unknown dataset", {"dataset_id": "ds_nope"}, 422, "/dataset_id"),
    ("unknown target", {"target": "nope"}, 422, "/target"),
    ("unknown feature", {"features": ["x0", "zz"]}, 422, "/features/1"),
    ("negative alpha", {"penalty": {"type": "l1", "alpha": -1}}, 422, "/penalty/alpha"),
    (
        "l1_ratio above 1",
        {"penalty": {"type": "elasticnet", "alpha": 1, "l1_ratio": 1.5}},
        422,
        "/penalty/l1_ratio",
    ),
    ("unknown penalty type", {"penalty": {"type": "l3", "alpha": 1}}, 422, "/penalty/type"),
    ("alpha as string", {"penalty": {"type": "l1", "alpha": "big"}}, 422, "/penalty/alpha"),
    ("both notations", {"penalty": {"type": "l1", "alpha": 1, "lambda1": 1}}, 422, "/penalty"),
    ("typo in field", {"penalty": {"type": "l1", "alhpa": 1}}, 422, "/penalty/alhpa"),
    ("test_size 1", {"split": {"test_size": 1.0}}, 422, "/split/test_size"),
    (
        "absurd fold count",
        {"tuning": {"space": {"alpha": [0.1, 1.0]}, "cv": {"folds": 10**30}}},
        422,
        "/tuning/cv/folds",
    ),
    (
        "absurd trial count",
        {"tuning": {"strategy": "random", "space": {"alpha": [0.1]}, "n_trials": 10**30}},
        422,
        "/tuning/n_trials",
    ),
]


@pytest.mark.parametrize(
    ("case", "patch", "status", "loc"), JOB_CASES, ids=[c[0] for c in JOB_CASES]
)
def test_bad_job_specs(
    client: TestClient,
    dataset: dict[str, Any],
    case: str,
    patch: dict[str, Any],
    status: int,
    loc: str,
) -> None:
    body = {
        "dataset_id": dataset["id"],
        "target": "y",
        "penalty": {"type": "l1", "alpha": 0.1},
        **patch,
    }
    problem = assert_problem(client.post("/v1/jobs", json=body), status)
    assert any(e["loc"].startswith(loc) for e in problem["errors"]), problem
    assert client.get("/v1/jobs").json()["total"] == 0


GRID = {"alpha": [0.1, 1.0]}
# Errors a model's own check raises name the field they are about, not the model.
EXACT_LOC_CASES = [
    (
        "range low > high",
        {"strategy": "random", "space": {"alpha": {"low": 2, "high": 1}}},
        "/tuning/space/alpha",
    ),
    (
        "log range from 0",
        {"strategy": "random", "space": {"alpha": {"low": 0, "high": 1, "log": True}}},
        "/tuning/space/alpha/low",
    ),
    (
        "extra key in a range",
        {"strategy": "random", "space": {"alpha": {"low": 1, "high": 2, "step": 1}}},
        "/tuning/space/alpha/step",
    ),
    (
        "infinite range bound",
        {"strategy": "random", "space": {"alpha": {"low": 1, "high": "1e400"}}},
        "/tuning/space/alpha/high",
    ),
    ("range in a grid", {"space": {"alpha": {"low": 1, "high": 2}}}, "/tuning/space/alpha"),
    ("negative alpha in a list", {"space": {"alpha": [0.1, -1]}}, "/tuning/space/alpha/1"),
    ("unknown penalty in a list", {"space": {"penalty": ["l1", "l3"]}}, "/tuning/space/penalty/1"),
    ("unknown dimension", {"space": {"alpha": [1.0], "gamma": [1.0]}}, "/tuning/space/gamma"),
    ("l1_ratio for a Ridge job", {"space": {"l1_ratio": [0.5]}}, "/tuning/space/l1_ratio"),
    (
        "cv seed without shuffle",
        {"space": GRID, "cv": {"random_state": 1}},
        "/tuning/cv/random_state",
    ),
    ("more folds than training rows", {"space": GRID, "cv": {"folds": 33}}, "/tuning/cv/folds"),
]


@pytest.mark.parametrize(
    ("case", "tuning", "loc"), EXACT_LOC_CASES, ids=[c[0] for c in EXACT_LOC_CASES]
)
def test_tuning_errors_name_the_field(
    client: TestClient, dataset: dict[str, Any], case: str, tuning: dict[str, Any], loc: str
) -> None:
    body = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}, "tuning": tuning}
    text = json.dumps(body).replace('"1e400"', "1e400")  # a JSON number no float holds
    response = client.post("/v1/jobs", content=text, headers={"content-type": "application/json"})
    problem = assert_problem(response, 422)
    assert [e["loc"] for e in problem["errors"]] == [loc], problem
    assert client.get("/v1/jobs").json()["total"] == 0


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"penalty": {"alpha": 0.1}}, "/penalty/type"),
        ({"penalty": {"type": "l2", "lambda1": 0.2}}, "/penalty/type"),
        ({"penalty": {"lambda1": 0, "lambda2": 0}}, "/penalty/lambda1"),
        ({"penalty": {"type": "l2", "l1_ratio": 0.5}}, "/penalty/l1_ratio"),
        ({"penalty": {"lambda1": 0.2, "alpha": 1}}, "/penalty/alpha"),
        ({"features": ["x0", "x1", "x0"]}, "/features/2"),
        ({"features": ["x0", "y"]}, "/features/1"),
        ({"split": {"test_size": 40}}, "/split/test_size"),
        (
            {
                "penalty": {"lambda1": 0.2, "lambda2": 0.1},
                "tuning": {"space": {"penalty": ["l1", "l2", "elasticnet"]}},
            },
            "/tuning/space/penalty",
        ),
    ],
)
def test_job_errors_name_the_field(
    client: TestClient, dataset: dict[str, Any], patch: dict[str, Any], loc: str
) -> None:
    body = {"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l1"}, **patch}
    problem = assert_problem(client.post("/v1/jobs", json=body), 422)
    assert [e["loc"] for e in problem["errors"]] == [loc], problem
    assert client.get("/v1/jobs").json()["total"] == 0


@pytest.fixture
def model_id(client: TestClient, dataset: dict[str, Any]) -> str:
    job = client.post(
        "/v1/jobs", json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}}
    ).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    return str(done["model_id"])


PREDICT_CASES = [
    ("wrong width", {"rows": [[1.0, 2.0]]}, "/rows/0"),
    ("string value", {"rows": [[1.0, "abc", 3.0]]}, "/rows/0/1"),
    ("bool value", {"rows": [[1.0, True, 3.0]]}, "/rows/0/1"),
    ("NaN string", {"rows": [[1.0, 2.0, "NaN"]]}, "/rows/0/2"),
    ("missing column", {"records": [{"x0": 1.0, "x1": 2.0}]}, "x2"),
    ("rows not a list", {"rows": 5}, "/rows"),
    ("neither rows nor records", {"data": [[1, 2, 3]]}, "/"),
]


@pytest.mark.parametrize(
    ("case", "payload", "loc"), PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES]
)
def test_bad_predictions(
    client: TestClient, model_id: str, case: str, payload: dict[str, Any], loc: str
) -> None:
    problem = assert_problem(client.post(f"/v1/models/{model_id}/predict", json=payload), 422)
    assert loc in str(problem)


def test_predict_nan_literal_and_csv_errors(client: TestClient, model_id: str) -> None:
    raw = b'{"rows": [[1.0, NaN, 3.0]]}'
    response = client.post(
        f"/v1/models/{model_id}/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422) and response.headers["content-type"].startswith(
        PROBLEM
    )
    csv_body = b"x0,x1\n1,2\n"
    assert_problem(
        client.post(
            f"/v1/models/{model_id}/predict", content=csv_body, headers={"content-type": "text/csv"}
        ),
        422,
        "x2",
    )


CSV_PREDICT_CASES = [
    ("bare carriage return", b"age,sex\n1\r2,3\n", "/rows/0", "carriage return"),
    (
        "field over 131072 characters",
        b"x0,x1,x2\n1,2,3\n" + b"9" * 131_073 + b",1,2\n",
        "/rows/1",
        "131072",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "loc", "needle"), CSV_PREDICT_CASES, ids=[c[0] for c in CSV_PREDICT_CASES]
)
def test_unreadable_csv_predictions_name_the_row(
    client: TestClient, model_id: str, case: str, body: bytes, loc: str, needle: str
) -> None:
    response = client.post(
        f"/v1/models/{model_id}/predict", content=body, headers={"content-type": "text/csv"}
    )
    problem = assert_problem(response, 422, needle, f"row {loc.rsplit('/', 1)[1]}")
    assert problem["errors"][0]["loc"] == loc


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/datasets/ds_missing"),
        ("get", "/v1/datasets/ds_missing/rows"),
        ("delete", "/v1/datasets/ds_missing"),
        ("get", "/v1/jobs/job_missing"),
        ("post", "/v1/jobs/job_missing/cancel"),
        ("get", "/v1/models/mdl_missing"),
        ("get", "/v1/models/mdl_missing/export"),
        ("delete", "/v1/models/mdl_missing"),
        ("post", "/v1/models/mdl_missing/predict"),
    ],
)
def test_unknown_ids_are_404(client: TestClient, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"json": {"rows": [[1]]}} if path.endswith("predict") else {}
    assert_problem(getattr(client, method)(path, **kwargs), 404, "missing")


def test_curl_default_form_content_type_is_refused_with_a_hint(
    client: TestClient, model_id: str
) -> None:
    """`curl -d '{...}'` sends application/x-www-form-urlencoded, as a cross-site form does:
    a 415 that says which header to send, never the body read as JSON."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    refused = client.post(
        f"/v1/models/{model_id}/predict", content=b'{"rows": [[1, 2, 3]]}', headers=form
    )
    body = assert_problem(refused, 415, "content-type: application/json", "urlencoded")
    assert body["errors"][0]["loc"] == "header:/content-type"
    ok = client.post(
        f"/v1/models/{model_id}/predict",
        content=b'{"rows": [[1, 2, 3]]}',
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["predictions"]) == 1


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models", "/v1/datasets"])
@pytest.mark.parametrize(
    "query", ["offset=99999999999999999999", "offset=-1", "limit=0", "limit=x"]
)
def test_bad_paging_is_422(client: TestClient, path: str, query: str) -> None:
    problem = assert_problem(client.get(f"{path}?{query}"), 422)
    assert problem["errors"][0]["loc"].startswith("query:/")


NUL_CASES = [
    ("get", "/v1/jobs/job_%00", {}, 404, "path:/"),
    ("post", "/v1/jobs/job_%00/cancel", {}, 404, "path:/"),
    ("get", "/v1/datasets/ds_%00", {}, 404, "path:/"),
    ("get", "/v1/models/m%00", {}, 404, "path:/"),
    ("delete", "/v1/models/m%00", {}, 404, "path:/"),
    ("post", "/v1/models/m%00/predict", {"json": {"rows": [[1]]}}, 404, "path:/"),
    ("get", "/v1/models?limit=5%00", {}, 422, "query:/limit"),
    (
        "post",
        "/v1/datasets?name=a%00b",
        {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}},
        422,
        "query:/name",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "loc"), NUL_CASES, ids=[c[1] for c in NUL_CASES]
)
def test_nul_in_ids_and_queries_is_never_a_500(
    client: TestClient,
    settings: Any,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    loc: str,
) -> None:
    body = assert_problem(getattr(client, method)(path, **kwargs), status, "NUL")
    assert body["errors"][0]["loc"] == loc
    nothing_stored(client, settings.data_dir)


def test_nul_in_a_body_string_is_a_422_and_nothing_is_stored(
    client: TestClient, settings: Any, backend: str
) -> None:
    response = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 5, "n_features": 1, "name": "a\u0000b"}
    )
    if backend == "postgres":  # PostgreSQL cannot store a NUL in text
        assert_problem(response, 422, "NUL")
        nothing_stored(client, settings.data_dir)
    else:  # SQLite stores the name as it is
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "a\u0000b"
