"""Every request body has a byte limit, checked from Content-Length and while it streams,
before any route parses it; predictions are refused by rows before they are parsed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

from service.config import Settings
from service.datasets import files


@pytest.fixture
def small(settings: Settings) -> Iterator[TestClient]:
    """An app with small limits: 4 KiB for most bodies, 64 KiB predictions, 10 rows."""
    from service.main import create_app

    limited = settings.model_copy(
        update={
            "max_request_bytes": 4096,
            "max_predict_bytes": 65536,
            "max_upload_bytes": 32768,
            "max_predict_rows": 10,
        }
    )
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        yield client


def _chunks(total: int, piece: bytes = b" " * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked), as a client streaming it sends it."""
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def _assert_413(response: Any, limit: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["limit_bytes"] == limit, problem
    assert str(limit) in problem["detail"]
    assert problem["request_id"]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/datasets/synthetic"])
def test_small_routes_refuse_big_bodies_by_content_length_and_by_stream(
    small: TestClient, path: str
) -> None:
    padded = b'{"n_samples": 10' + b" " * 5000 + b"}"
    _assert_413(
        small.post(path, content=padded, headers={"content-type": "application/json"}), 4096
    )
    streamed = small.post(path, content=_chunks(8192), headers={"content-type": "application/json"})
    _assert_413(streamed, 4096)
    # Below the limit the route answers as usual.
    fine = small.post(path, json={"n_samples": 10, "n_features": 2, "random_state": 0})
    assert fine.status_code in (201, 422), fine.text


def test_uploads_keep_their_own_limit(small: TestClient, settings: Settings) -> None:
    body = b"a,y\n" + b"1,2\n" * 10_000  # 40 KB
    _assert_413(
        small.post("/v1/datasets", content=body, headers={"content-type": "text/csv"}), 32768
    )
    streamed = small.post(
        "/v1/datasets",
        content=_chunks(40_000, b"1,2\n" * 256),
        headers={"content-type": "text/csv"},
    )
    _assert_413(streamed, 32768)
    assert list(files.tmp_dir(settings.data_dir).iterdir()) == []
    accepted = small.post(
        "/v1/datasets", content=b"a,y\n1,2\n3,4\n", headers={"content-type": "text/csv"}
    )
    assert accepted.status_code == 201, accepted.text


@pytest.fixture
def model_id(small: TestClient) -> str:
    dataset = small.post(
        "/v1/datasets/synthetic", json={"n_samples": 40, "n_features": 2, "random_state": 1}
    ).json()
    job = small.post(
        "/v1/jobs",
        json={"dataset_id": dataset["id"], "target": "y", "penalty": {"type": "l2"}},
    ).json()
    done = wait_for_job(small, job["id"])
    assert done["status"] == "succeeded", done
    return str(done["model_id"])


def test_predict_bodies_are_bounded_by_bytes_and_rows_before_parsing(
    small: TestClient, model_id: str
) -> None:
    url = f"/v1/models/{model_id}/predict"
    whitespace = b'{"rows": [[1, 2]]' + b" " * 70_000 + b"}"
    _assert_413(
        small.post(url, content=whitespace, headers={"content-type": "application/json"}), 65536
    )
    _assert_413(
        small.post(url, content=_chunks(70_000), headers={"content-type": "application/json"}),
        65536,
    )

    eleven = [[0.5, 1.5]] * 11
    too_many = small.post(url, json={"rows": eleven})
    assert too_many.status_code == 413, too_many.text
    assert "11 rows" in too_many.json()["detail"]
    records = small.post(url, json={"records": [{"x0": 1, "x1": 2}] * 11})
    assert records.status_code == 413, records.text

    csv_body = b"x0,x1\n" + b"1,2\n" * 11
    csv_response = small.post(url, content=csv_body, headers={"content-type": "text/csv"})
    assert csv_response.status_code == 413, csv_response.text
    assert csv_response.json()["limit_rows"] == 10
    ten = small.post(url, content=b"x0,x1\n" + b"1,2\n" * 10, headers={"content-type": "text/csv"})
    assert ten.status_code == 200, ten.text
    assert len(ten.json()["predictions"]) == 10
    assert small.post(url, json={"rows": [[0.5, 1.5]] * 10}).status_code == 200
