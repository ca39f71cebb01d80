"""A running hub process: invalid payloads are counted and kept aside while it keeps working; the
dashboard renders real plots, footfall and category sales shares, in headless Chromium (screenshots in
test-artifacts/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import LocalBroker, free_port
from devtools.loadgen import FastPublisher, shop_days, synthetic_summary
from hub.db import Database
from tests.hub.conftest import ARTIFACTS, HubProcess, count, dashboard_cookie, http_get, wait_for, write_hub_config

DAY = 1_763_251_200  # 2025-11-16T00:00:00Z
CATEGORIES = ("bakery", "dairy", "produce", "other")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def publish_raw(port: int, items: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bad-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in items:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def test_invalid_payloads_are_counted_kept_aside_and_the_hub_keeps_running(tmp_path: Path) -> None:
    db_path = str(tmp_path / "hub.db")
    with LocalBroker(tmp_path / "broker") as broker:
        hub = HubProcess(write_hub_config(tmp_path / "hub.toml", broker.port, db_path), tmp_path / "hub.log").start()
        try:
            hub.wait_subscribed()
            good_topic, good = synthetic_summary("riverside", "s1", "front", DAY, 1, 7)
            doc = json.loads(good)
            doc["values"]["entries"] = "seven"
            bad = [
                (good_topic, b"\x00\xff garbage"),
                (good_topic, json.dumps(doc).encode()),
                (good_topic, b"[1, 2, 3]"),
                ("coop/v1/riverside/s1/status", b'{"state": "dancing"}'),
                ("coop/v1/riverside/s1/t1/footfall", good.encode()),  # wrong topic shape
            ]
            publish_raw(broker.port, [*bad, (good_topic, good.encode())])
            database = Database(db_path)
            wait_for(lambda: count(database, "SELECT COUNT(*) FROM rejected") == len(bad), 20, "rejections")
            wait_for(lambda: count(database, "SELECT COUNT(*) FROM summaries") == 1, 20, "the good summary")
            assert hub.alive()
            conn = database.connect()
            try:
                rows = conn.query("SELECT topic, reason, payload FROM rejected")
                assert {r[0] for r in rows} >= {good_topic, "coop/v1/riverside/s1/status"}
                assert any("entries" in r[1] for r in rows) and all(r[1] for r in rows)
                assert int(conn.query("SELECT value FROM counters WHERE name = 'rejected@hub-1'")[0][0]) == len(bad)
            finally:
                conn.close()
            # Still working after all that: a later valid summary is stored.
            later_topic, later = synthetic_summary("riverside", "s1", "front", DAY + 3600, 2, 9)
            publish_raw(broker.port, [(later_topic, later.encode())])
            wait_for(lambda: count(database, "SELECT COUNT(*) FROM summaries") == 2, 20, "a later summary")
        finally:
            assert hub.stop() == 0


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.slow
def test_dashboard_plots_render_in_headless_chromium(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "chromium is missing: run deploy/bootstrap.sh (installs Debian's chromium)"
    db_path = str(tmp_path / "hub.db")
    port = free_port()
    with LocalBroker(tmp_path / "broker") as broker:
        cfg = write_hub_config(tmp_path / "hub.toml", broker.port, db_path, k_min=3, dashboard=f"127.0.0.1:{port}")
        hub = HubProcess(cfg, tmp_path / "hub.log").start()
        try:
            hub.wait_subscribed()
            publisher = FastPublisher(broker.port)
            messages = list(shop_days("riverside", 6, DAY, hours=24 * 8))  # 6 shops, 8 days
            # ... and their t2 POS sales on the last day
            messages += shop_days(
                "riverside", 6, DAY + 24 * 7 * 3600, hours=24, doors=(), categories=CATEGORIES, seq_offset=24 * 8 * 2
            )
            assert publisher.publish_all(messages) == len(messages)
            publisher.close()
            database = Database(db_path)

            def published(metric: str) -> int:
                return count(database, "SELECT COUNT(*) FROM benchmarks WHERE metric = ?", (metric,))

            wait_for(lambda: published("footfall") == 24 * 8, 60, "footfall benchmarks")
            wait_for(lambda: published("sales-share") == 24 and published("basket-value") == 24, 60, "sales benchmarks")
            cookie = dashboard_cookie(db_path)
            status, body = http_get(f"http://127.0.0.1:{port}/api/shop/shop-0001", cookie)
            shop = json.loads(body)
            assert status == 200 and shop["store"] == "shop-0001"
            assert "shop-0002" not in body.decode()  # a shop's page never carries another shop's series
            cats = shop["categories"]
            assert set(cats["own"]) == set(CATEGORIES) and cats["district"]["n_shops"] == 6
            assert cats["window"] == "2025-11-23T23:00:00Z"
            district = json.loads(http_get(f"http://127.0.0.1:{port}/api/district", cookie)[1])
            assert set(district["categories"]["categories"]) == set(CATEGORIES)
            ARTIFACTS.mkdir(exist_ok=True)
            from playwright.sync_api import sync_playwright

            # Signed in as the coop admin: the session cookie goes into the browser context.
            name, value = cookie.split("=", 1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
                context = browser.new_context(viewport={"width": 430, "height": 1900})
                context.add_cookies([{"name": name, "value": value, "url": f"http://127.0.0.1:{port}/"}])
                tab = context.new_page()
                for page, shot_name in (("/", "hub-district"), ("/shop/shop-0001?range=month", "hub-shop")):
                    url = f"http://127.0.0.1:{port}{page}"
                    tab.goto(url)
                    dom = tab.content()
                    assert "<svg" in dom and 'class="band"' in dom and 'class="median"' in dom
                    medians = [int(p.split('"')[0]) for p in dom.split('class="median" data-points="')[1:]]
                    assert medians and max(medians) >= 24, "the median line should carry a point per window"
                    bands = dom.count('class="share-band"')
                    assert bands == len(CATEGORIES) and dom.count('class="share-median"') == len(CATEGORIES)
                    if "shop" in page:
                        assert 'class="own"' in dom
                        assert dom.count('class="share-own"') == len(CATEGORIES)
                    shot = ARTIFACTS / f"{shot_name}.png"
                    shot.unlink(missing_ok=True)
                    tab.screenshot(path=str(shot), full_page=True)
                    assert shot.exists() and shot.stat().st_size > 10_000
                browser.close()
        finally:
            hub.stop()
