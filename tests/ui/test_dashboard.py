"""The dashboard: the session cookie and the role checks through the ASGI app, then the
whole flow in a real headless Chromium against `regfit serve` (sign in, upload, a penalty
comparison job watched to 100 %, the model page's five plots, a prediction from the form),
with every request going to the service alone."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import make_regression
from test_docs import assert_only_the_service
from test_e2e import Server

TRAINER_KEY = "rfk_" + "t" * 40
PREDICTOR_KEY = "rfk_" + "p" * 40
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


def _keyed_client(tmp_path: Path) -> TestClient:
    from service import migrate
    from service.config import Settings
    from service.main import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        data_dir=tmp_path / "data",
        api_keys=f"trainer:{TRAINER_KEY},predictor:{PREDICTOR_KEY}",
        _env_file=None,
    )
    migrate.upgrade_to_head(settings.database_url)
    return TestClient(create_app(settings, start_executor=False), base_url="http://127.0.0.1")


def test_sign_in_sets_a_signed_strict_http_only_cookie(tmp_path: Path) -> None:
    with _keyed_client(tmp_path) as client:
        page = client.get("/ui", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/ui/sign-in"
        wrong = client.post("/ui/sign-in", data={"api_key": "rfk_" + "x" * 40})
        assert wrong.status_code == 400 and "unknown or revoked" in wrong.text
        signed = client.post("/ui/sign-in", data={"api_key": TRAINER_KEY}, follow_redirects=False)
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert TRAINER_KEY not in client.get("/ui").text  # the key never shows in a page
        assert client.get("/ui").status_code == 200
        # A tampered cookie is no session.
        value = client.cookies.get("regfit_session")
        assert value is not None
        client.cookies.clear()
        client.cookies.set("regfit_session", value[:-2] + "00")
        assert client.get("/ui", follow_redirects=False).status_code == 303


def test_the_dashboard_respects_roles_and_refuses_cross_site_posts(tmp_path: Path) -> None:
    with _keyed_client(tmp_path) as client:
        client.post("/ui/sign-in", data={"api_key": PREDICTOR_KEY})
        # A predictor key cannot read datasets: the page shows the API's 403, not the data.
        assert "needs the" in client.get("/ui").text
        assert client.get("/ui/models/mdl_x/plots/path").status_code == 403
        refused = client.post(
            "/ui/jobs", data={"target": "y"}, headers={"origin": "http://evil.example"}
        )
        assert refused.status_code == 403


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ui"), env={"REGFIT_API_KEYS": f"trainer:{TRAINER_KEY}"})
    srv.start()
    yield srv
    srv.stop()


def _csv(path: Path) -> Path:
    X, y = make_regression(n_samples=300, n_features=6, n_informative=3, noise=5, random_state=1)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"x{j}" for j in range(6)), "y"])
        writer.writerows(np.column_stack([X, y]).tolist())
    return path


@pytest.mark.e2e
def test_the_dashboard_in_a_browser(browser: Any, server: Server, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(server.url + "/")
    assert page.url == server.url + "/ui/sign-in"
    page.fill("input[name=api_key]", TRAINER_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/ui")

    page.set_input_files("#upload input[type=file]", str(_csv(tmp_path / "sales.csv")))
    page.click("#upload button")
    page.wait_for_selector("#columns")
    assert page.locator("#columns tr").count() == 1 + 7

    page.goto(server.url + "/ui")
    page.fill("#new-job input[name=target]", "y")
    page.select_option("#new-job select[name=penalty]", "l1")
    page.fill("#new-job input[name=alphas]", "1e-3:10:12:log")
    page.fill("#new-job input[name=compare]", "l1,l2,elasticnet")
    page.fill("#new-job input[name=folds]", "3")
    page.select_option("#new-job select[name=select]", "1se")
    page.click("#new-job button[type=submit]")
    page.wait_for_selector("#progress")
    page.wait_for_function(
        "document.getElementById('percent').textContent === '100 %'", timeout=60_000
    )
    # The progress reaches its total as the fit ends, a moment before the model is stored.
    page.wait_for_function(
        "document.getElementById('status').textContent !== 'running'", timeout=30_000
    )
    assert page.locator("#status").inner_text() == "succeeded"

    page.click("#model-link a")
    page.wait_for_selector("#candidates")
    plots = page.locator("img.plot")
    assert plots.count() == 5
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.plot'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    kinds = sorted(plots.nth(i).get_attribute("data-kind") for i in range(5))
    assert kinds == ["coefficients", "comparison", "cv", "path", "residuals"]
    assert page.locator("#comparison tr").count() == 1 + 3

    # The candidates table sorts by score (descending, then ascending on a second click).
    header = page.locator("#candidates th[data-sort]")
    header.click()
    scores = [float(s) for s in page.locator("#candidates tbody td:nth-child(4)").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    header.click()
    scores = [float(s) for s in page.locator("#candidates tbody td:nth-child(4)").all_inner_texts()]
    assert scores == sorted(scores)

    for j in range(6):
        page.fill(f"#predict input[name=x{j}]", str(0.5 * j))
    page.click("#predict button")
    page.wait_for_function("document.getElementById('prediction').textContent.length > 0")
    text = page.locator("#prediction").inner_text()
    assert text.startswith("prediction: "), text
    float(text.removeprefix("prediction: "))

    # The page load time, as the browser measured it (navigation start to load event).
    started = time.perf_counter()
    page.reload()
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.plot'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    wall = time.perf_counter() - started
    timing = page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; })()"
    )
    print(
        f"model page: DOMContentLoaded {timing['dcl']:.0f} ms, load {timing['load']:.0f} ms, "
        f"plots shown after {wall * 1000:.0f} ms"
    )
    if os.environ.get("REGFIT_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "model-page.png"), full_page=True)
        page.goto(server.url + "/ui")
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    assert_only_the_service(requested, server)
    page.close()
