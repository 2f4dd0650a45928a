"""The API's contract: /openapi.json describes what the service sends.

Every response of the API tests is validated against the document by the ``client``
fixture (``tests/contract.py``); these tests check the document itself, generate a client
from it, and bound the size of list responses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from support import wait_for_job

from service.db import Database
from service.tables import Model

OPERATIONS = {
    ("post", "/v1/models/{model_id}/predict"): "predict",
    ("get", "/v1/models"): "list_models",
    ("get", "/v1/models/{model_id}"): "get_model",
    ("get", "/v1/models/{model_id}/path"): "get_model_path",
    ("get", "/v1/models/{model_id}/plots/{kind}"): "get_model_plot",
    ("get", "/v1/models/{model_id}/export"): "export_model",
    ("delete", "/v1/models/{model_id}"): "delete_model",
    ("post", "/v1/datasets"): "create_dataset",
    ("post", "/v1/datasets/synthetic"): "create_synthetic",
    ("get", "/v1/datasets"): "list_datasets",
    ("get", "/v1/datasets/{dataset_id}"): "get_dataset",
    ("get", "/v1/datasets/{dataset_id}/rows"): "get_dataset_rows",
    ("delete", "/v1/datasets/{dataset_id}"): "delete_dataset",
    ("post", "/v1/jobs"): "create_job",
    ("get", "/v1/jobs"): "list_jobs",
    ("get", "/v1/jobs/{job_id}"): "get_job",
    ("post", "/v1/jobs/{job_id}/cancel"): "cancel_job",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("get", "/metrics"): "prometheus_metrics",
    # References by version (issue 14): the same operations, named by version.
    ("get", "/v1/models/{model_id}/versions/{version}"): "get_model_by_version",
    ("get", "/v1/models/{model_id}/versions/{version}/export"): "export_model_by_version",
    ("get", "/v1/models/{model_id}/versions/{version}/path"): "get_model_path_by_version",
    ("get", "/v1/models/{model_id}/versions/{version}/plots/{kind}"): "get_model_plot_by_version",
    ("post", "/v1/models/{model_id}/versions/{version}/predict"): "predict_by_version",
    ("post", "/v1/models/{model_id}/invocations"): "invocations",
    ("post", "/v1/models/{model_id}/versions/{version}/invocations"): "invocations_by_version",
    # The registry.
    ("post", "/v1/registry"): "create_registered_model",
    ("get", "/v1/registry"): "list_registered_models",
    ("get", "/v1/registry/{name}"): "get_registered_model",
    ("patch", "/v1/registry/{name}"): "update_registered_model",
    ("delete", "/v1/registry/{name}"): "delete_registered_model",
    ("post", "/v1/registry/{name}/versions"): "create_model_version",
    ("get", "/v1/registry/{name}/versions/{version}"): "get_model_version",
    ("patch", "/v1/registry/{name}/versions/{version}"): "update_model_version",
    ("delete", "/v1/registry/{name}/versions/{version}"): "delete_model_version",
    ("put", "/v1/registry/{name}/aliases/{alias}"): "set_alias",
    ("delete", "/v1/registry/{name}/aliases/{alias}"): "delete_alias",
    # Open Inference Protocol v2.
    ("get", "/v2/health/live"): "v2_live",
    ("get", "/v2/health/ready"): "v2_ready",
    ("get", "/v2/models/{name}"): "v2_metadata",
    ("get", "/v2/models/{name}/ready"): "v2_model_ready",
    ("post", "/v2/models/{name}/infer"): "v2_infer",
    ("get", "/v2/models/{name}/versions/{version}"): "v2_metadata_by_version",
    ("get", "/v2/models/{name}/versions/{version}/ready"): "v2_model_ready_by_version",
    ("post", "/v2/models/{name}/versions/{version}/infer"): "v2_infer_by_version",
}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_operation_ids_are_the_readable_names(client: TestClient) -> None:
    document = _document(client)
    found = {
        (method, path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert found == OPERATIONS


def test_every_error_is_one_problem_schema_and_every_body_is_typed(client: TestClient) -> None:
    document = _document(client)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
    assert {"request_id", "errors", "instance"} <= set(schemas["Problem"]["properties"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            for code, response in responses.items():
                if code == "default" or int(code) >= 400:
                    assert response["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, (method, path, code)
                elif path.endswith("/plots/{kind}"):
                    assert set(response["content"]) == {"image/svg+xml"}, (method, path, code)
                elif path != "/metrics" and code != "204":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema.get("$ref", "").startswith("#/components/schemas/"), (
                        method,
                        path,
                        code,
                        schema,
                    )
    declared = {
        (method, path): set(operation["responses"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert {"404"} <= declared[("get", "/v1/models/{model_id}")]
    assert {"404", "409"} <= declared[("post", "/v1/jobs/{job_id}/cancel")]
    assert {"413", "415", "422"} <= declared[("post", "/v1/models/{model_id}/predict")]
    assert {"413", "415", "422"} <= declared[("post", "/v1/datasets")]
    assert {"422", "429"} <= declared[("post", "/v1/jobs")]
    assert {"503"} <= declared[("get", "/readyz")]


def test_no_bare_object_bodies(client: TestClient) -> None:
    """No ``dict[str, Any]`` body: every object schema names its properties or its values."""
    schemas = _document(client)["components"]["schemas"]
    bare = [
        (name, prop)
        for name, schema in schemas.items()
        for prop, sub in schema.get("properties", {}).items()
        if sub.get("type") == "object"
        and "properties" not in sub
        and "additionalProperties" not in sub
    ]
    assert bare == []


def test_every_schema_is_referenced_and_resolvable(client: TestClient) -> None:
    document = _document(client)
    schemas = document["components"]["schemas"]
    refs = _refs(document["paths"])
    seen: set[str] = set()
    pending = [ref for ref in refs]
    while pending:
        ref = pending.pop()
        assert ref.startswith("#/components/schemas/"), ref
        name = ref.rsplit("/", 1)[1]
        assert name in schemas, f"{ref} does not resolve"
        if name not in seen:
            seen.add(name)
            pending.extend(_refs(schemas[name]))
    assert set(schemas) == seen, f"never referenced: {sorted(set(schemas) - seen)}"


def test_a_generated_client_runs_a_session(client: TestClient, tmp_path: Path) -> None:
    """openapi-python-client generates a client without warnings, and it trains and predicts."""
    (tmp_path / "openapi.json").write_text(json.dumps(_document(client)))
    # The generator has no type for raw file bodies; they are bytes to it.
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "content_type_overrides": {
                    media: "application/octet-stream"
                    for media in (
                        "text/csv",
                        "application/vnd.apache.parquet",
                        "application/x-ndjson",
                        "image/svg+xml",  # the plots
                    )
                },
                "package_name_override": "regfit_client",
            }
        )
    )
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            "openapi.json",
            "--output-path",
            "regfit_client",
            "--meta",
            "none",
            "--config",
            "config.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        from regfit_client import AuthenticatedClient
        from regfit_client.api.datasets import create_synthetic
        from regfit_client.api.jobs import create_job, get_job
        from regfit_client.api.models import get_model
        from regfit_client.models import (
            DatasetOut,
            JobOut,
            JobSpec,
            ModelOut,
            PenaltySpec,
            Predictions,
            PredictRows,
            SyntheticSpec,
        )

        api = AuthenticatedClient(base_url=str(client.base_url), token="unused")
        api.set_httpx_client(client)
        dataset = create_synthetic.sync(
            client=api, body=SyntheticSpec(n_samples=60, n_features=3, random_state=0)
        )
        assert isinstance(dataset, DatasetOut)
        job = create_job.sync(
            client=api,
            body=JobSpec(
                dataset_id=dataset.id, target="y", penalty=PenaltySpec(type_="l1", alpha=0.1)
            ),
        )
        assert isinstance(job, JobOut)
        wait_for_job(client, job.id)
        finished = get_job.sync(job.id, client=api)
        assert isinstance(finished, JobOut) and finished.status.value == "succeeded"
        model = get_model.sync(str(finished.model_id), client=api)
        assert isinstance(model, ModelOut) and model.features == ["x0", "x1", "x2"]
        # The generator's module for a body of several content types (JSON or text/csv) does
        # not import (openapi-python-client 0.29): the call is made here, parsed by its models.
        sent = client.post(
            f"/v1/models/{model.id}/predict", json=PredictRows(rows=[[0.1, 0.2, 0.3]]).to_dict()
        )
        answer = Predictions.from_dict(sent.json())
        assert len(answer.predictions) == 1
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "regfit_client"]:
            del sys.modules[name]


def test_list_items_stay_small_for_models_of_a_large_grid(client: TestClient, db: Database) -> None:
    """31 models of a 2000-candidate search: the list is bounded, the model body is not."""
    ds = client.post(
        "/v1/datasets/synthetic", json={"n_samples": 80, "n_features": 40, "random_state": 0}
    ).json()
    grid = [round(10 ** (-3 + 5 * i / 1999), 12) for i in range(2000)]
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": ds["id"],
            "target": "y",
            "penalty": {"type": "l1"},
            "tuning": {"space": {"alpha": grid}, "cv": {"folds": 2}},
        },
    ).json()
    done = wait_for_job(client, job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    full = client.get(f"/v1/models/{done['model_id']}")
    assert len(full.json()["tuning"]["candidates"]) == 2000
    with db.session() as session:
        model = session.scalars(select(Model)).one()
        for i in range(30):
            copy = Model(
                id=f"mdl_copy{i:02d}",
                job_id=None,
                dataset_id=model.dataset_id,
                name=model.name,
                target=model.target,
                summary=model.summary,
                portable=model.portable,
                fit_seconds=model.fit_seconds,
            )
            session.add(copy)
    listing = client.get("/v1/models", params={"limit": 100})
    page = listing.json()
    assert page["total"] == 31 and len(page["items"]) == 31
    # Each item: ids, metrics, penalty, counts; a few kB at most whatever the search.
    assert len(listing.content) < 31 * 3000 < len(full.content)
    for item in page["items"]:
        assert "coefficients" not in item and "candidates" not in item["tuning"]
        assert item["tuning"]["n_candidates"] == 2000
        assert item["metrics"] == full.json()["metrics"]
    jobs = client.get("/v1/jobs").json()["items"]
    assert jobs and all("spec" not in j for j in jobs)
    datasets = client.get("/v1/datasets").json()["items"]
    assert datasets and all("columns" not in d for d in datasets)
    assert client.get(f"/v1/jobs/{job['id']}").json()["spec"]["tuning"]["space"]["alpha"] == grid
    assert len(client.get(f"/v1/datasets/{ds['id']}").json()["columns"]) == 41
