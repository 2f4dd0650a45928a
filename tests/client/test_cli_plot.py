"""``regfit plot`` against a real ``regfit serve``: each kind written as a valid SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from regfit import Client
from test_cli_commands import ok, regfit_cli
from test_e2e import Server

pytestmark = pytest.mark.e2e


def test_plot_writes_each_kind_as_svg(
    live_server: Server, diabetes_csv_path: Path, tmp_path: Path
) -> None:
    ok(regfit_cli(live_server, "datasets", "upload", str(diabetes_csv_path), "--name", "plots"))
    trained = ok(
        regfit_cli(
            live_server,
            *("train", "plots", "-t", "target", "--compare", "l1,l2"),
            *("--alpha", "0.01,0.1,1", "--wait", "--json"),
        )
    )
    model_id = json.loads(trained.stdout)["model"]["id"]
    for kind in ("coefficients", "path", "cv", "residuals", "comparison"):
        target = tmp_path / f"{kind}.svg"
        result = ok(regfit_cli(live_server, "plot", model_id, "--kind", kind, "-o", str(target)))
        assert str(target) in result.stdout
        root = ET.parse(target).getroot()
        ids = [el.attrib["id"] for el in root.iter() if "id" in el.attrib]
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        if kind == "cv":
            assert sorted(i for i in ids if i.startswith("cv-")) == ["cv-l1", "cv-l2"]
        if kind == "path":
            assert sorted(i for i in ids if i.startswith("penalty-")) == [
                "penalty-l1",
                "penalty-l2",
            ]
    summary = json.loads(
        ok(
            regfit_cli(live_server, "plot", model_id, "-o", str(tmp_path / "c.svg"), "--json")
        ).stdout
    )
    assert summary["kind"] == "coefficients" and summary["bytes"] > 1000
    refused = regfit_cli(live_server, "plot", model_id, "--kind", "pie", "-o", "x.svg")
    assert refused.returncode != 0


def test_plot_and_path_by_registry_reference(
    live_server: Server, diabetes_csv_path: Path, tmp_path: Path
) -> None:
    ok(regfit_cli(live_server, "datasets", "upload", str(diabetes_csv_path), "--name", "refs"))
    trained = ok(
        regfit_cli(
            live_server,
            *("train", "refs", "-t", "target", "--compare", "l1,l2"),
            *("--alpha", "0.01,0.1,1", "--wait", "--json"),
        )
    )
    model_id = json.loads(trained.stdout)["model"]["id"]
    with httpx.Client(base_url=live_server.url) as http:
        assert http.post("/v1/registry", json={"name": "diabetes"}).status_code == 201
        version = http.post("/v1/registry/diabetes/versions", json={"model_id": model_id})
        assert version.status_code == 201, version.text
        alias = http.put("/v1/registry/diabetes/aliases/champion", json={"version": 1})
        assert alias.status_code == 200, alias.text
        direct = http.get(f"/v1/models/{model_id}/plots/comparison").content
    for ref in ("diabetes@champion", "diabetes/versions/1"):
        target = tmp_path / "by-ref.svg"
        written = ok(
            regfit_cli(live_server, "plot", ref, "-k", "comparison", "-o", str(target), "--json")
        )
        assert json.loads(written.stdout)["model_id"] == model_id
        assert target.read_bytes() == direct
        path = json.loads(ok(regfit_cli(live_server, "models", "path", ref, "--json")).stdout)
        assert set(path["compared"]) == {"l1", "l2"}
    with Client(live_server.url) as client:
        assert client.model_path("diabetes@champion").compared is not None
