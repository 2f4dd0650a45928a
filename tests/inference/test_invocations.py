"""MLflow scoring payloads on /invocations give what /predict gives, for the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for_job

pytestmark = pytest.mark.backends("sqlite", "postgres")

COLUMNS = ["size", "city", "rooms"]
QUERY = [[81.0, "Seoul", 2], [55.5, "Busan", 1], [120.0, "Daegu", 4], [None, "Seoul", 3]]


@pytest.fixture
def model_id(client: TestClient) -> str:
    rows = [
        [50.0 + 3 * i, ["Seoul", "Busan", "Incheon"][i % 3], 1 + i % 4, 100.0 + 5 * i + (i % 3)]
        for i in range(40)
    ]
    rows[5][0] = None
    dataset = client.post(
        "/v1/datasets", json={"name": "homes", "columns": [*COLUMNS, "price"], "rows": rows}
    ).json()
    job = client.post(
        "/v1/jobs",
        json={"dataset_id": dataset["id"], "target": "price", "penalty": {"type": "l1"}},
    ).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "succeeded", done
    return str(done["model_id"])


def _invoke(client: TestClient, ref: str, payload: Any) -> Any:
    response = client.post(f"/v1/models/{ref}/invocations", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_mlflow_payload_predicts_as_predict(client: TestClient, model_id: str) -> None:
    expected = client.post(f"/v1/models/{model_id}/predict", json={"rows": QUERY}).json()
    records = [dict(zip(COLUMNS, row, strict=True)) for row in QUERY]
    columns = {name: [row[j] for row in QUERY] for j, name in enumerate(COLUMNS)}
    shuffled = ["rooms", "size", "city"]
    payloads = {
        "dataframe_split": {"dataframe_split": {"columns": COLUMNS, "data": QUERY}},
        "dataframe_split reordered, with index": {
            "dataframe_split": {
                "index": [0, 1, 2, 3],
                "columns": shuffled,
                "data": [[r[name] for name in shuffled] for r in records],
            }
        },
        "dataframe_records": {"dataframe_records": records},
        "instances of rows": {"instances": QUERY},
        "instances of objects": {"instances": records},
        "inputs of columns": {"inputs": columns},
        "inputs of rows": {"inputs": QUERY, "params": {}},
    }
    for what, payload in payloads.items():
        body = _invoke(client, model_id, payload)
        assert body["predictions"] == expected["predictions"], what
        assert body["model_id"] == model_id

    csv = "size,city,rooms\n" + "".join(f"{'' if s is None else s},{c},{r}\n" for s, c, r in QUERY)
    by_csv = client.post(
        f"/v1/models/{model_id}/invocations", content=csv, headers={"content-type": "text/csv"}
    )
    assert by_csv.status_code == 200, by_csv.text
    assert by_csv.json()["predictions"] == expected["predictions"]


def test_mlflow_errors_name_the_field(client: TestClient, model_id: str) -> None:
    url = f"/v1/models/{model_id}/invocations"
    both = client.post(url, json={"instances": QUERY, "inputs": QUERY})
    assert both.status_code == 422
    body = both.json()
    assert body["error_code"] == "BAD_REQUEST" and body["message"] == body["detail"]
    assert both.headers["content-type"] == "application/problem+json"
    assert (
        client.post(url, json={"inputs": QUERY, "params": {"x": 1}}).json()["errors"][0]["loc"]
        == "/params"
    )
    bad_cell = client.post(
        url, json={"dataframe_records": [{"size": "big", "city": "Seoul", "rooms": 1}]}
    )
    assert bad_cell.status_code == 422
    assert bad_cell.json()["errors"][0]["loc"] == "/dataframe_records/0/size"
    bad_row = client.post(url, json={"dataframe_split": {"columns": COLUMNS, "data": [[1.0, "a"]]}})
    assert bad_row.status_code == 422
    missing = client.post("/v1/models/mdl_none/invocations", json={"instances": QUERY})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
