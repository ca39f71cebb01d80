"""The coop manager's dashboard in a real browser: Debian's headless Chromium driven by Playwright.

Accounts are created with the real command (`python -m hub add-user`); the hub database is filled the way the
subscriber fills it (hub.contract.parse_message + hub.storage.store_batch over loadgen summaries) and the
benchmark and alert pass runs once. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.queries import benchmarks_between, shop_windows
from tests.hub.web_fixtures import ADMIN_PASSWORD, SHOP_PASSWORD, Served, serve

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serve(tmp_path)


@pytest.fixture
def browser() -> Iterator[object]:
    assert Path(CHROMIUM).exists(), "chromium is missing: run deploy/bootstrap.sh (installs Debian's chromium)"
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _sign_in(page: object, base: str, name: str, password: str) -> None:
    page.goto(base + "/")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]
    page.fill("input[name=name]", name)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(base + "/")  # type: ignore[attr-defined]


def _shot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    assert path.stat().st_size > 10_000
    return path


@pytest.mark.slow
def test_admin_and_shop_in_a_real_browser(served: Served, browser: object, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{served.port}"
    # one more account through the real command, password on stdin
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "add-user",
            "shop2",
            "--role",
            "shop",
            "--store",
            "shop-0002",
            "--config",
            str(tmp_path / "hub.toml"),
            "--password-stdin",
        ],
        input="another-password\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    conn = served.database.connect()
    try:
        everyone = [str(r[0]) for r in conn.query("SELECT store FROM stores ORDER BY store")]
    finally:
        conn.close()
    assert len(everyone) == 4

    # -- the coop admin sees every shop, the alerts, and can acknowledge one ---------------------------
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    _sign_in(page, base, "coop-admin", ADMIN_PASSWORD)
    for store in everyone:
        assert page.locator(f'a[href="/shop/{store}"]').count() >= 1
    assert page.locator("#alerts .alert").count() >= 1
    _shot(page, "hub-browser-district-admin")

    page.click("nav >> text=Alerts")
    page.wait_for_url(base + "/alerts")
    first = page.locator(".alert").first
    text = first.inner_text()
    assert "observed" in text and "baseline" in text and "band" in text and "since" in text
    alert_id = first.get_attribute("data-alert-id")
    _shot(page, "hub-browser-alerts")
    first.locator("button", has_text="Acknowledge").click()
    page.wait_for_url(base + "/alerts")
    acked = page.locator(f'.alert.acked[data-alert-id="{alert_id}"]')
    assert acked.count() == 1 and "acknowledged by coop-admin" in acked.inner_text()

    # the alert's chart link opens the shop's day around that window
    acked.locator("text=chart at that time").click()
    page.wait_for_load_state()
    assert "/shop/" in page.url and "range=day" in page.url
    assert page.locator("svg path.own").count() == 1

    # -- the date range: one day of hourly windows, then a week compared with the week before ---------
    page.goto(base + "/shop/shop-0001")
    page.select_option("select[name=range]", "day")
    page.fill("input[name=date]", "2025-11-30")
    page.click("form.range button")
    page.wait_for_load_state()
    assert "range=day" in page.url
    assert page.locator("svg path.own").first.get_attribute("data-points") == "24"
    page.select_option("select[name=range]", "week")
    page.select_option("select[name=compare]", "week")
    page.click("form.range button")
    page.wait_for_load_state()
    assert page.locator("svg path.compare").count() == 1
    assert page.locator("svg text", has_text="Sat 29 Nov").count() >= 1  # dated axis
    _shot(page, "hub-browser-shop-week")

    # -- the CSV download holds the rows the database holds -------------------------------------------
    with page.expect_download() as info:
        page.click("a.export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    conn = served.database.connect()
    try:
        start = 1_763_852_400 + 86400  # 2025-11-24 00:00 Europe/Amsterdam, the week ending 2025-11-30
        own = [s for s in shop_windows(conn, store="shop-0001", window_s=3600) if start <= s.window_start_s]
        own = [s for s in own if s.window_start_s < start + 7 * 86400]
        band = {int(b["window_start_s"]): b for b in benchmarks_between(conn, 3600, start, start + 7 * 86400)}
    finally:
        conn.close()
    assert len(rows) == len(own) > 0
    for row, sw in zip(rows, own, strict=True):
        assert int(row["footfall"]) == sw.footfall and row["store"] == "shop-0001"
        assert float(row["p75"]) == pytest.approx(float(band[sw.window_start_s]["p75"]))
    page.click("nav >> text=Sign out")
    page.wait_for_url(base + "/login")
    context.close()

    # -- a shop sees its own shop and the district, nothing of another shop, on a phone -------------------
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    page = phone.new_page()
    _sign_in(page, base, "shop1", SHOP_PASSWORD)
    body = page.content()
    assert "shop-0001" in body and not any(s in body for s in everyone if s != "shop-0001")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the district page scrolls sideways on a phone ({width} px)"
    _shot(page, "hub-browser-district-shop-phone")
    response = page.goto(base + "/shop/shop-0002")
    assert response is not None and response.status == 404
    page.goto(base + "/alerts")
    stores_shown = {a.get_attribute("data-alert-id").split("/")[0] for a in page.locator(".alert").all()}
    assert stores_shown <= {"shop-0001"}
    page.goto(base + "/")
    page.click("nav >> text=Sign out")
    page.wait_for_url(base + "/login")
    assert page.goto(base + "/shop/shop-0001").url.startswith(base + "/login")  # type: ignore[union-attr]
    phone.close()
