"""Against a real server: tritonclient and MLflow payloads agree with /predict, and an alias
moved under load answers with zero errors, each response naming a version current within the
documented delay (checked across two API processes sharing one database)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from test_e2e import Server, wait_for_job

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = [[0.1, -0.2, 0.3, 1.0], [1.0, 2.0, -1.0, 0.0], [0.0, 0.5, 0.25, -2.0]]
ALIAS_DELAY = 1.0  # registry_ref_cache_seconds, the documented bound


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, list[str]]]:
    """A server with "churn" versions 1 and 2 (champion on 1)."""
    server = Server(tmp_path)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            dataset = http.post(
                "/v1/datasets/synthetic",
                json={"n_samples": 80, "n_features": 4, "noise": 3.0, "random_state": 2},
            ).json()
            ids = []
            for alpha in (0.5, 80.0):
                job = http.post(
                    "/v1/jobs",
                    json={
                        "dataset_id": dataset["id"],
                        "target": "y",
                        "penalty": {"type": "l2", "alpha": alpha},
                        "register": {"name": "churn", "alias": "champion"},
                    },
                ).json()
                done = wait_for_job(http, job["id"])
                assert done["status"] == "succeeded", done
                ids.append(done["model_id"])
            http.put("/v1/registry/churn/aliases/champion", json={"version": 1})
        yield server, ids
    finally:
        server.stop()


def test_tritonclient_and_mlflow_payloads_match_predict(served: tuple[Server, list[str]]) -> None:
    server, ids = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        expected = [
            http.post(f"/v1/models/{i}/predict", json={"rows": ROWS}).json()["predictions"]
            for i in ids
        ]
        columns = ["x0", "x1", "x2", "x3"]
        for payload in (
            {"dataframe_split": {"columns": columns, "data": ROWS}},
            {"dataframe_records": [dict(zip(columns, r, strict=True)) for r in ROWS]},
            {"instances": ROWS},
            {"inputs": {c: [r[j] for r in ROWS] for j, c in enumerate(columns)}},
        ):
            body = http.post("/v1/models/churn@champion/invocations", json=payload).json()
            assert body["predictions"] == expected[0], payload

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("churn") and client.is_model_ready("churn", "2")
        meta = client.get_model_metadata("churn")
        assert meta["versions"] == ["1", "2"]
        assert [i["name"] for i in meta["inputs"]] == columns
        for binary in (False, True):
            tensor = triton.InferInput("input-0", [len(ROWS), 4], "FP64")
            tensor.set_data_from_numpy(np.array(ROWS, dtype=np.float64), binary_data=binary)
            wanted = triton.InferRequestedOutput("predict", binary_data=False)
            result = client.infer("churn", [tensor], outputs=[wanted], request_id="r1")
            np.testing.assert_array_equal(result.as_numpy("predict"), expected[0])
            response = result.get_response()
            assert (response["model_name"], response["model_version"]) == ("churn", "1")
            assert response["id"] == "r1"
            by_version = client.infer("churn", [tensor], model_version="2")
            np.testing.assert_array_equal(by_version.as_numpy("predict"), expected[1])
        per_column = []
        for j, name in enumerate(columns):
            column = triton.InferInput(name, [len(ROWS)], "FP64")
            column.set_data_from_numpy(np.array([r[j] for r in ROWS]), binary_data=True)
            per_column.append(column)
        np.testing.assert_array_equal(
            client.infer("churn", per_column).as_numpy("predict"), expected[0]
        )
        with pytest.raises(triton.InferenceServerException, match="no version 9"):
            client.infer("churn", per_column, model_version="9")
    finally:
        client.close()


def test_alias_moved_under_load(served: tuple[Server, list[str]], tmp_path: Path) -> None:
    server, ids = served
    # A second API process on the same database: a move must reach it within the delay too.
    other = Server(tmp_path, env={"REGFIT_WORKERS": "1"})
    other.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            expected = {
                version: http.post(f"/v1/models/{i}/predict", json={"rows": ROWS}).json()[
                    "predictions"
                ]
                for version, i in zip((1, 2), ids, strict=True)
            }
        moves: list[tuple[float, float, int]] = [(0.0, 0.0, 1)]  # (sent, answered, version)
        seen: list[tuple[float, float, int, str]] = []
        failures: list[str] = []
        stop = threading.Event()

        def load(url: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    response = http.post("/v1/models/churn@champion/predict", json={"rows": ROWS})
                    answered = time.monotonic()
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    body = response.json()
                    version = body["version"]
                    if body["predictions"] != expected[version]:
                        failures.append(f"version {version} answered other predictions")
                    if response.headers["x-regfit-model-version"] != str(version):
                        failures.append("the header and the body disagree")
                    seen.append((sent, answered, version, url))

        threads = [
            threading.Thread(target=load, args=(url,))
            for url in (server.url, other.url, server.url, other.url)
        ]
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            # Moves further apart than the delay, so that a stale answer cannot pass for a
            # current one: 1.5 s after a move, only the new version may answer.
            deadline = time.monotonic() + 8
            version = 1
            while time.monotonic() < deadline:
                time.sleep(ALIAS_DELAY + 0.8)
                version = 3 - version
                sent = time.monotonic()
                moved = http.put("/v1/registry/churn/aliases/champion", json={"version": version})
                assert moved.status_code == 200, moved.text
                moves.append((sent, time.monotonic(), version))
            time.sleep(ALIAS_DELAY + 0.8)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        other.stop()

    assert not failures, failures[:5]
    assert len(seen) > 100
    assert {v for _, _, v, _ in seen} == {1, 2}
    slack = 0.2  # scheduling on a loaded 2-core machine
    stale = []
    for sent, answered, version, url in seen:
        # The versions the alias pointed at at some moment in [sent - delay, answered].
        current = set()
        for k, (move_sent, _, moved_to) in enumerate(moves):
            until = moves[k + 1][1] if k + 1 < len(moves) else float("inf")
            if move_sent <= answered and until >= sent - ALIAS_DELAY - slack:
                current.add(moved_to)
        if version not in current:
            stale.append((round(sent, 3), version, url))
    assert not stale, f"{len(stale)} of {len(seen)} responses were stale: {stale[:5]}"
    last_move = moves[-1]
    settled = [v for sent, _, v, _ in seen if sent > last_move[1] + ALIAS_DELAY + slack]
    assert settled and set(settled) == {last_move[2]}
