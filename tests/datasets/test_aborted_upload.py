"""An upload its client abandons: one info line, counted as 499, no traceback, no 500."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from test_e2e import Server

pytestmark = pytest.mark.e2e


def _abandon_upload(port: int, *, declared: int, sent: int) -> None:
    """Start a multipart upload of ``declared`` bytes, send ``sent`` of them, and hang up."""
    boundary = "regfitboundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        "a,b\r\n"
    ).encode()
    request = (
        "POST /v1/datasets HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request + head)
        chunk = b"1,2\r\n" * 20_000
        remaining = sent
        while remaining > 0:
            sock.sendall(chunk[:remaining])
            remaining -= len(chunk)
        time.sleep(0.3)  # the server has read and stored part of it


def test_an_abandoned_upload_is_one_info_line_and_a_499(tmp_path: Path) -> None:
    srv = Server(tmp_path, env={"REGFIT_LOG_LEVEL": "info", "REGFIT_LOG_JSON": "true"})
    srv.start()
    try:
        _abandon_upload(srv.port, declared=50_000_000, sent=2_000_000)
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            deadline = time.monotonic() + 10
            metrics = ""
            while time.monotonic() < deadline:
                metrics = client.get("/metrics").text
                if 'route="/v1/datasets",status="499"' in metrics:
                    break
                time.sleep(0.1)
            assert (
                'regfit_http_requests_total{method="POST",route="/v1/datasets",status="499"} 1.0'
                in metrics
            )
            assert 'status="500"' not in metrics
            assert client.get("/v1/datasets").json()["total"] == 0
    finally:
        srv.stop()
    lines = [
        json.loads(line) for line in srv.log_path.read_text().splitlines() if line.startswith("{")
    ]
    text = srv.log_path.read_text()
    assert "Traceback" not in text and '"level":"error"' not in text
    disconnects = [line for line in lines if "disconnected" in line["msg"]]
    assert len(disconnects) == 1 and disconnects[0]["level"] == "info", disconnects
    leftovers = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert leftovers == []
