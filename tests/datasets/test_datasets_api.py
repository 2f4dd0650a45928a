"""The datasets API through the real app: uploads, summaries, rows, delete, synthetic, bad input."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import make_regression

from service.config import Settings
from service.main import create_app

pytestmark = pytest.mark.backends("sqlite", "postgres")

PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://regfit.dev/problems/")
    assert body["title"] and body["detail"]
    return body


def stored_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file()) if data_dir.exists() else []


def assert_nothing_stored(client: TestClient, data_dir: Path) -> None:
    assert client.get("/v1/datasets").json()["total"] == 0
    assert stored_files(data_dir) == []


def upload(client: TestClient, filename: str, content: bytes, ctype: str, **data: str) -> Any:
    return client.post("/v1/datasets", files={"file": (filename, content, ctype)}, data=data)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def data_dir(settings: Settings) -> Path:
    return settings.data_dir


def client_with(settings: Settings, **limits: int) -> Iterator[TestClient]:
    custom = settings.model_copy(update=limits)
    with TestClient(create_app(custom), raise_server_exceptions=False) as test_client:
        yield test_client


# -- uploads --------------------------------------------------------------------------------


CSV = b"x,label,y,flag\n1,a,2.5,true\n2,,NA,false\n3,b,1.0,\n4,a,NaN,true\n"


def test_csv_upload_returns_201_with_location_and_summaries(
    client: TestClient, data_dir: Path
) -> None:
    response = upload(client, "sales.csv", CSV, "text/csv", name="sales")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert body["id"].startswith("ds_")
    assert body["name"] == "sales"
    assert body["source_format"] == "csv"
    assert (body["n_rows"], body["n_columns"]) == (4, 4)
    x, label, y, flag = body["columns"]
    assert x == {
        "name": "x", "dtype": "int64", "kind": "numeric", "n_missing": 0,
        "min": 1, "max": 4, "mean": 2.5, "std": pytest.approx(np.std([1, 2, 3, 4], ddof=1)),
    }  # fmt: skip
    assert label["dtype"] == "string" and label["n_missing"] == 1
    assert label["n_unique"] == 2 and label["n_unique_capped"] is False
    assert label["top"] == [{"value": "a", "count": 2}, {"value": "b", "count": 1}]
    assert y["dtype"] == "float64" and y["n_missing"] == 2
    assert (y["min"], y["max"], y["mean"]) == (1.0, 2.5, 1.75)
    assert (
        flag["dtype"] == "bool" and flag["n_missing"] == 1 and flag["mean"] == pytest.approx(2 / 3)
    )
    path = data_dir / f"{body['id']}.parquet"
    import hashlib

    assert body["size_bytes"] == path.stat().st_size
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert client.get(f"/v1/datasets/{body['id']}").json() == body
    assert [p.name for p in stored_files(data_dir)] == [path.name]


def test_summaries_match_numpy(client: TestClient) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(3.0, 2.0, size=5000)
    values[rng.choice(5000, size=300, replace=False)] = np.nan
    ints = rng.integers(-1000, 1000, size=5000)
    lines = ["v,i"] + [
        f"{'' if np.isnan(v) else repr(float(v))},{i}" for v, i in zip(values, ints, strict=True)
    ]
    response = upload(client, "n.csv", "\n".join(lines).encode(), "text/csv")
    assert response.status_code == 201, response.text
    v, i = response.json()["columns"]
    present = values[~np.isnan(values)]
    assert v["n_missing"] == 300
    assert v["min"] == present.min() and v["max"] == present.max()
    assert v["mean"] == pytest.approx(present.mean(), rel=1e-12)
    assert v["std"] == pytest.approx(present.std(ddof=1), rel=1e-12)
    assert (i["min"], i["max"]) == (int(ints.min()), int(ints.max()))
    assert i["mean"] == pytest.approx(ints.mean(), rel=1e-12)
    assert i["std"] == pytest.approx(ints.std(ddof=1), rel=1e-12)


def test_parquet_upload(client: TestClient) -> None:
    table = pa.table(
        {
            "a": pa.array([1, 2, None], pa.int32()),
            "b": pa.array([0.5, float("nan"), 2.0], pa.float32()),
            "c": pa.array(["x", "y", None]).dictionary_encode(),
            "d": pa.array([1, 2, 3], pa.timestamp("s")),
        }
    )
    response = upload(client, "t.parquet", parquet_bytes(table), "application/vnd.apache.parquet")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source_format"] == "parquet"
    assert [(c["name"], c["dtype"], c["n_missing"]) for c in body["columns"]] == [
        ("a", "int64", 1),
        ("b", "float64", 1),  # NaN is stored as missing
        ("c", "string", 1),
        ("d", "string", 0),  # timestamps are kept as text
    ]
    rows = client.get(f"/v1/datasets/{body['id']}/rows").json()
    assert rows["rows"][0][:3] == [1, 0.5, "x"]
    assert rows["rows"][0][3].startswith("1970-01-01 00:00:01")
    assert rows["rows"][1][:3] == [2, None, "y"]


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/octet-stream"])
def test_jsonl_upload(client: TestClient, ctype: str) -> None:
    lines = [{"a": 1, "b": "x"}, {"a": 2.5}, {"b": "y", "c": True}, {"a": None, "c": False}]
    content = b"\n".join(json.dumps(line).encode() for line in lines) + b"\n"
    response = upload(client, "d.jsonl", content, ctype)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source_format"] == "jsonl"
    assert [(c["name"], c["dtype"]) for c in body["columns"]] == [
        ("a", "float64"),
        ("b", "string"),
        ("c", "bool"),
    ]
    rows = client.get(f"/v1/datasets/{body['id']}/rows").json()["rows"]
    assert rows == [[1.0, "x", None], [2.5, None, None], [None, "y", True], [None, None, False]]


def test_json_rows_and_records(client: TestClient) -> None:
    response = client.post(
        "/v1/datasets",
        json={"name": "inline", "columns": ["a", "b"], "rows": [[1, "x"], [2.5, None]]},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "inline" and body["source_format"] == "json"
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    rows = client.get(f"/v1/datasets/{body['id']}/rows").json()
    assert rows["columns"] == ["a", "b"] and rows["rows"] == [[1.0, "x"], [2.5, None]]

    response = client.post("/v1/datasets", json={"records": [{"a": 1}, {"b": "x", "a": 2}]})
    assert response.status_code == 201, response.text
    rows = client.get(f"/v1/datasets/{response.json()['id']}/rows").json()
    assert rows["columns"] == ["a", "b"] and rows["rows"] == [[1, None], [2, "x"]]


def test_list_is_newest_first_and_paginated(client: TestClient) -> None:
    ids = []
    for index in range(3):
        response = client.post("/v1/datasets", json={"columns": ["a"], "rows": [[index]]})
        ids.append(response.json()["id"])
    page = client.get("/v1/datasets", params={"limit": 2}).json()
    assert page["total"] == 3 and (page["limit"], page["offset"]) == (2, 0)
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    page = client.get("/v1/datasets", params={"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in page["items"]] == ids[:1]


def test_rows_paging(client: TestClient) -> None:
    n = 2500
    content = "i,s\n" + "".join(f"{i},{'' if i % 7 == 0 else f's{i}'}\n" for i in range(n))
    dataset = upload(client, "r.csv", content.encode(), "text/csv").json()
    page = client.get(
        f"/v1/datasets/{dataset['id']}/rows", params={"limit": 3, "offset": 13}
    ).json()
    assert page == {
        "columns": ["i", "s"],
        "rows": [[13, "s13"], [14, None], [15, "s15"]],
        "total": n,
        "limit": 3,
        "offset": 13,
    }
    tail = client.get(f"/v1/datasets/{dataset['id']}/rows", params={"limit": 1000, "offset": 2000})
    assert [row[0] for row in tail.json()["rows"]] == list(range(2000, n))
    past = client.get(f"/v1/datasets/{dataset['id']}/rows", params={"offset": 5000}).json()
    assert past["rows"] == [] and past["total"] == n
    problem(client.get(f"/v1/datasets/{dataset['id']}/rows", params={"limit": 0}), 422)


def test_delete_removes_row_and_file(client: TestClient, data_dir: Path) -> None:
    dataset = upload(client, "a.csv", CSV, "text/csv").json()
    assert (data_dir / f"{dataset['id']}.parquet").exists()
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert_nothing_stored(client, data_dir)
    for method, url in [
        ("GET", f"/v1/datasets/{dataset['id']}"),
        ("GET", f"/v1/datasets/{dataset['id']}/rows"),
        ("DELETE", f"/v1/datasets/{dataset['id']}"),
    ]:
        body = problem(client.request(method, url), 404)
        assert dataset["id"] in body["detail"]


# -- synthetic ------------------------------------------------------------------------------


def test_synthetic_equals_make_regression(client: TestClient, data_dir: Path) -> None:
    params = {"n_samples": 300, "n_features": 7, "n_informative": 3, "noise": 0.5,
              "bias": 2.0, "random_state": 42}  # fmt: skip
    response = client.post("/v1/datasets/synthetic", json={**params, "name": "synth"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source_format"] == "synthetic" and body["name"] == "synth"
    assert [c["name"] for c in body["columns"]] == [f"x{j}" for j in range(7)] + ["y"]
    X, y = make_regression(**params)
    table = pq.read_table(data_dir / f"{body['id']}.parquet")
    stored = np.column_stack([table.column(f"x{j}").to_numpy() for j in range(7)])
    assert stored.tobytes() == X.tobytes()
    assert table.column("y").to_numpy().tobytes() == y.tobytes()


def test_synthetic_with_effective_rank_defaults(client: TestClient, data_dir: Path) -> None:
    response = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 50, "effective_rank": 5, "random_state": 3}
    )
    assert response.status_code == 201, response.text
    X, y = make_regression(n_samples=50, effective_rank=5, random_state=3)
    table = pq.read_table(data_dir / f"{response.json()['id']}.parquet")
    assert table.num_columns == 101
    assert np.array_equal(table.column("x99").to_numpy(), X[:, 99])
    assert np.array_equal(table.column("y").to_numpy(), y)


@pytest.mark.parametrize("n_features", [1, 4])
def test_synthetic_with_one_sample_is_one_row(
    client: TestClient, data_dir: Path, n_features: int
) -> None:
    """make_regression squeezes a one-row target to 0-d; the stored dataset keeps its row."""
    params = {"n_samples": 1, "n_features": n_features, "random_state": 0}
    response = client.post("/v1/datasets/synthetic", json=params)
    assert response.status_code == 201, response.text
    assert response.json()["n_rows"] == 1
    X, y = make_regression(**params)
    table = pq.read_table(data_dir / f"{response.json()['id']}.parquet")
    assert table.num_rows == 1
    assert table.column("x0").to_numpy().tolist() == X[:, 0].tolist()
    assert table.column("y").to_numpy().tolist() == np.atleast_1d(y).tolist()
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SyntheticSpec"]
    assert schema["properties"]["n_samples"]["minimum"] == 1


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"n_samples": 0}, "/n_samples"),
        ({"n_samples": 10, "bogus": 1}, "/bogus"),
        ({"n_samples": 10, "noise": -1}, "/noise"),
        ({"n_samples": 10**9}, "/n_samples"),
        ({"n_features": 20_000}, "/n_features"),
    ],
)
def test_synthetic_rejects_bad_parameters(
    client: TestClient, data_dir: Path, payload: dict[str, Any], loc: str
) -> None:
    body = problem(client.post("/v1/datasets/synthetic", json=payload), 422)
    assert loc in [error["loc"] for error in body["errors"]]
    assert_nothing_stored(client, data_dir)


# -- bad input: a 4xx problem naming the fault, and nothing left behind ---------------------


GARBAGE = bytes(range(256)) * 64
BAD_UPLOADS = [
    # (case, filename, content, content type, status, detail needle, error loc)
    ("empty file", "e.csv", b"", "text/csv", 422, "empty", "/file"),
    ("header only", "h.csv", b"a,b\n", "text/csv", 422, "dataset has no rows", "/file"),
    ("blank lines only", "b.csv", b"\n\n\n", "text/csv", 422, "empty", "/file"),
    ("empty jsonl", "e.jsonl", b"\n\n", "application/x-ndjson", 422, "no rows", "/file"),
    ("binary garbage csv", "g.csv", GARBAGE, "text/csv", 422, "not a valid CSV file", "/file"),
    ("invalid utf-8", "u.csv", b"a,b\n\xff\xfe,1\n", "text/csv", 422, "not a valid CSV", "/file"),
    ("garbage jsonl", "g.jsonl", GARBAGE, "application/x-ndjson", 422, "JSON Lines", "/file"),
    (
        "ragged csv",
        "r.csv",
        b"a,b,c\n1,2,3\n4,5\n",
        "text/csv",
        422,
        "line 3: expected 3 columns, found 2",
        "/file/lines/3",
    ),
    (
        "duplicate names",
        "d.csv",
        b"a,b,a\n1,2,3\n",
        "text/csv",
        422,
        "duplicate column names: ['a']",
        "/columns",
    ),
    ("empty name", "n.csv", b"a,,c\n1,2,3\n", "text/csv", 422, "must not be empty", "/columns/1"),
    (
        "invalid json line",
        "j.jsonl",
        b'{"a": 1}\n{"a": 2\n',
        "application/x-ndjson",
        422,
        "line 2",
        "/file/lines/2",
    ),
    (
        "json line not an object",
        "j.jsonl",
        b'{"a": 1}\n[1, 2]\n',
        "application/x-ndjson",
        422,
        "line 2: expected a JSON object",
        "/file/lines/2",
    ),
    (
        "nested json value",
        "j.jsonl",
        b'{"a": 1, "b": [1]}\n',
        "application/x-ndjson",
        422,
        "'b'",
        "/file/lines/1",
    ),
    (
        "mixed json types",
        "j.jsonl",
        b'{"a": 1}\n{"a": "x"}\n',
        "application/x-ndjson",
        422,
        "line 2",
        "/file/lines/2",
    ),
    (
        "corrupt parquet",
        "c.parquet",
        b"PAR1" + GARBAGE + b"PAR1",
        "application/vnd.apache.parquet",
        422,
        "not a valid Parquet file",
        "/file",
    ),
    (
        "csv named parquet",
        "c.parquet",
        b"a,b\n1,2\n",
        "application/octet-stream",
        422,
        "Parquet",
        "/file",
    ),
    (
        "infinite value",
        "i.csv",
        b"a\n1\n1e999\n",
        "text/csv",
        422,
        "infinite value at row 1",
        "/rows/1/a",
    ),
    (
        "unknown type",
        "f.xlsx",
        b"PK\x03\x04",
        "application/octet-stream",
        415,
        "cannot tell the format",
        "/file",
    ),
]


@pytest.mark.parametrize(
    ("case", "filename", "content", "ctype", "status", "needle", "loc"),
    BAD_UPLOADS,
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_bad_uploads(
    client: TestClient,
    data_dir: Path,
    case: str,
    filename: str,
    content: bytes,
    ctype: str,
    status: int,
    needle: str,
    loc: str,
) -> None:
    body = problem(upload(client, filename, content, ctype), status)
    assert needle in body["detail"], body
    assert loc in [error["loc"] for error in body["errors"]], body
    assert_nothing_stored(client, data_dir)


def test_nested_parquet_column_is_rejected(client: TestClient, data_dir: Path) -> None:
    table = pa.table({"ok": [1, 2], "tags": [[1], [2, 3]]})
    body = problem(upload(client, "n.parquet", parquet_bytes(table), "application/x-parquet"), 422)
    assert "'tags'" in body["detail"] and "not supported" in body["detail"]
    assert_nothing_stored(client, data_dir)


BAD_JSON_BODIES = [
    (
        "ragged row",
        {"columns": ["a", "b"], "rows": [[1, 2]] * 7 + [[3]]},
        "/rows/7",
        "expected a list of 2 values",
    ),
    ("object value", {"columns": ["a", "b"], "rows": [[1, 2], [3, {"x": 1}]]}, "/rows/1/1", "'b'"),
    ("list value in record", {"records": [{"a": 1}, {"a": [1]}]}, "/records/1/a", "'a'"),
    ("mixed kinds", {"columns": ["a"], "rows": [[1], ["x"]]}, "/rows/1/0", "mixes"),
    ("no rows", {"columns": ["a"], "rows": []}, "/rows", "dataset has no rows"),
    ("no data at all", {"name": "x"}, "/columns", "'columns' and 'rows'"),
    ("both shapes", {"columns": ["a"], "rows": [[1]], "records": [{"a": 1}]}, "/records", "either"),
    ("unknown field", {"columns": ["a"], "rows": [[1]], "extra": 1}, "/extra", "unknown field"),
    ("duplicate columns", {"columns": ["a", "a"], "rows": [[1, 2]]}, "/columns", "duplicate"),
    ("record not an object", {"records": [{"a": 1}, 5]}, "/records/1", "expected an object"),
    ("name too long", {"name": "n" * 300, "columns": ["a"], "rows": [[1]]}, "/name", "255"),
    ("huge integer", {"columns": ["a"], "rows": [[1], [2**64 - 1]]}, "/rows/1/0", "64-bit"),
]


@pytest.mark.parametrize(
    ("case", "payload", "loc", "needle"), BAD_JSON_BODIES, ids=[c[0] for c in BAD_JSON_BODIES]
)
def test_bad_json_bodies(
    client: TestClient, data_dir: Path, case: str, payload: Any, loc: str, needle: str
) -> None:
    body = problem(client.post("/v1/datasets", json=payload), 422)
    assert needle in body["detail"], body
    assert loc in [error["loc"] for error in body["errors"]], body
    assert_nothing_stored(client, data_dir)


def test_malformed_json_body_is_400(client: TestClient, data_dir: Path) -> None:
    response = client.post(
        "/v1/datasets", content=b'{"columns": [', headers={"content-type": "application/json"}
    )
    assert problem(response, 400)["title"] == "Malformed JSON"
    assert_nothing_stored(client, data_dir)


def test_missing_file_part(client: TestClient, data_dir: Path) -> None:
    response = client.post("/v1/datasets", files={"other": ("a.csv", CSV, "text/csv")})
    body = problem(response, 422)
    assert body["errors"][0]["loc"] == "/file"
    assert_nothing_stored(client, data_dir)


def test_malformed_multipart(client: TestClient, data_dir: Path) -> None:
    headers = {"content-type": "multipart/form-data; boundary=xyz"}
    body = problem(client.post("/v1/datasets", content=b"--xyz\r\nno end", headers=headers), 422)
    assert "multipart" in body["detail"]
    problem(
        client.post("/v1/datasets", content=b"x", headers={"content-type": "multipart/form-data"}),
        422,
    )
    assert_nothing_stored(client, data_dir)


def test_other_content_types_are_415(client: TestClient) -> None:
    response = client.post(
        "/v1/datasets", content=b"a,b\n1,2\n", headers={"content-type": "text/plain"}
    )
    assert "multipart/form-data" in problem(response, 415)["detail"]


def test_upload_size_limit_is_413(settings: Settings) -> None:
    for client in client_with(settings, max_upload_bytes=1000):
        big = b"a,b\n" + b"1,2\n" * 1000
        body = problem(upload(client, "big.csv", big, "text/csv"), 413)
        assert "1000 bytes" in body["detail"]
        # Without a Content-Length the limit still holds while streaming.
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
        chunks = iter([part] + [b"1,2\n" * 100] * 20)
        headers = {"content-type": "multipart/form-data; boundary=b"}
        problem(client.post("/v1/datasets", content=chunks, headers=headers), 413)
        problem(client.post("/v1/datasets", json={"columns": ["a"], "rows": [[1]] * 500}), 413)
        assert_nothing_stored(client, settings.data_dir)


def test_row_and_column_limits_are_413(settings: Settings) -> None:
    for client in client_with(settings, max_rows=10, max_columns=3):
        rows = b"a\n" + b"1\n" * 11
        assert "10 rows" in problem(upload(client, "r.csv", rows, "text/csv"), 413)["detail"]
        wide = b"a,b,c,d\n1,2,3,4\n"
        assert "4 columns" in problem(upload(client, "w.csv", wide, "text/csv"), 413)["detail"]
        table = pa.table({"a": list(range(11))})
        problem(upload(client, "r.parquet", parquet_bytes(table), "application/x-parquet"), 413)
        problem(upload(client, "r.jsonl", b'{"a": 1}\n' * 11, "application/x-ndjson"), 413)
        assert_nothing_stored(client, settings.data_dir)


# -- types that change late, and a big streamed upload --------------------------------------


def test_csv_whose_later_rows_change_type(client: TestClient) -> None:
    # 1.2M int rows fill more than the reader's first 8 MiB block, then floats and text come.
    n = 1_200_000
    head = "\n".join(f"{i},{i % 10}" for i in range(n))
    content = f"a,b\n{head}\n1.5,abc\n".encode()
    response = upload(client, "late.csv", content, "text/csv")
    assert response.status_code == 201, response.text
    body = response.json()
    a, b = body["columns"]
    assert (a["dtype"], b["dtype"]) == ("float64", "string")
    assert b["n_unique"] == 11 and a["max"] == n - 1
    last = client.get(f"/v1/datasets/{body['id']}/rows", params={"offset": n - 1, "limit": 5})
    assert last.json()["rows"] == [[float(n - 1), str((n - 1) % 10)], [1.5, "abc"]]


@pytest.mark.slow
def test_50mb_csv_upload_streams(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    block = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rng.normal(size=(20_000, 8)))
    header = ",".join(f"c{j}" for j in range(8)) + "\n"
    repeats = 50 * 2**20 // (len(block) + 1) + 1
    content = (header + (block + "\n") * repeats).encode()
    assert len(content) > 50 * 2**20
    started = time.perf_counter()
    response = upload(client, "big.csv", content, "text/csv")
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["n_rows"] == 20_000 * repeats
    assert elapsed < 30, elapsed
