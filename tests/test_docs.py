"""The API docs: ``GET /`` leads to the dashboard, which links them; /docs (Swagger UI)
and /redoc work offline, with their assets served by the app itself — checked in a real
headless Chromium (Debian's
``chromium`` driven by Playwright) whose every request must go to the service alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from test_e2e import Server

from service.main import DOCS_STATIC


def test_home_redirects_to_the_docs_and_assets_are_served(client: TestClient) -> None:
    home = client.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/ui"
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page  # nothing from a CDN
    css = client.get("/docs/assets/swagger-ui/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/docs/assets/redoc/redoc.standalone.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.content == (DOCS_STATIC / "redoc" / "redoc.standalone.js").read_bytes()
    for outside in ("/docs/assets/../main.py", "/docs/assets/swagger-ui/../../main.py"):
        assert client.get(outside).status_code == 404
    assert client.get("/docs/assets/nothing.js").status_code == 404
    for licence in ("swagger-ui/LICENSE", "redoc/LICENSE"):
        assert (DOCS_STATIC / licence).is_file()


def test_docs_need_no_key_when_keys_are_enforced(tmp_path: Path) -> None:
    from service.config import Settings
    from service.main import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        data_dir=tmp_path / "data",
        api_keys="admin:rfk_" + "a" * 40,
        _env_file=None,  # type: ignore[call-arg]
    )
    from service import migrate

    migrate.upgrade_to_head(settings.database_url)
    with TestClient(create_app(settings, start_executor=False)) as anonymous:
        for path in ("/", "/docs", "/redoc", "/docs/assets/swagger-ui/swagger-ui-bundle.js"):
            assert anonymous.get(path, follow_redirects=False).status_code in (200, 307), path
        assert anonymous.get("/v1/datasets").status_code == 401


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("docs"))
    srv.start()
    yield srv
    srv.stop()


def open_page(browser: Any, url: str, ready: str) -> tuple[Any, list[str]]:
    """The page at ``url`` once ``ready`` (a selector) shows, and every URL it requested."""
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.wait_for_selector(ready, timeout=30_000)
    return page, requested


def assert_only_the_service(requested: list[str], server: Server) -> None:
    service = urlsplit(server.url).netloc
    remote = [
        url
        for url in requested
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).netloc != service
    ]
    assert requested and not remote, remote


@pytest.mark.e2e
def test_swagger_ui_shows_the_operations(browser: Any, docs_server: Server) -> None:
    page, requested = open_page(browser, docs_server.url + "/docs", ".opblock")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/jobs" in [p.replace("\u200b", "") for p in paths]
    assert len(paths) >= 15
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("regfit")
    assert_only_the_service(requested, docs_server)
    assert any(url.endswith("/openapi.json") for url in requested)
    page.close()


@pytest.mark.e2e
def test_redoc_renders(browser: Any, docs_server: Server) -> None:
    page, requested = open_page(browser, docs_server.url + "/redoc", "h1")
    page.get_by_text("/v1/models/{model_id}/predict").first.wait_for(timeout=30_000)
    assert page.locator("h1").first.inner_text().startswith("regfit")
    assert page.locator("[data-section-id^='tag/']").count() >= 3  # datasets, jobs, models
    assert_only_the_service(requested, docs_server)
    page.close()
