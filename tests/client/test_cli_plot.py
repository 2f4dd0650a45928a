"""``regfit plot`` against a real ``regfit serve``: each kind written as a valid SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
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
    for kind in ("coefficients", "path", "cv", "residuals"):
        target = tmp_path / f"{kind}.svg"
        result = ok(regfit_cli(live_server, "plot", model_id, "--kind", kind, "-o", str(target)))
        assert str(target) in result.stdout
        root = ET.parse(target).getroot()
        ids = [el.attrib["id"] for el in root.iter() if "id" in el.attrib]
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        if kind == "cv":
            assert sorted(i for i in ids if i.startswith("cv-")) == ["cv-l1", "cv-l2"]
    summary = json.loads(
        ok(
            regfit_cli(live_server, "plot", model_id, "-o", str(tmp_path / "c.svg"), "--json")
        ).stdout
    )
    assert summary["kind"] == "coefficients" and summary["bytes"] > 1000
    refused = regfit_cli(live_server, "plot", model_id, "--kind", "pie", "-o", "x.svg")
    assert refused.returncode != 0
