"""The owner's page in a real browser (headless Chromium) against a running agent fed by the door and till
simulators through a real Mosquitto: today's exact figures equal SQLite, the sensors' states, and a
"what left" list equal, message by message, to what a subscriber on `#` recorded; refused from the
shop's network without a password; readable on a phone. Screenshots go to test-artifacts/."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.demo import DAY_START, simulator_command
from agent.demo.local_broker import LocalBroker, free_port
from firmware_sim.escpos import CATALOGUE
from tests.e2e.harness import lan_address, wait_until
from tests.mqtt_watch import Subscriber

playwright = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ZONE = "Europe/Berlin"  # not the machine's zone: the page must convert, and name it
START = DAY_START + dt.timedelta(hours=9)  # 10:00 in Berlin
HOURS = 3
FACTOR = 360.0  # 3 shop hours in 30 s, and 11 hours of margin before the local day ends


def write_config(workdir: Path, broker_port: int, page_port: int, links: dict[str, Path], till: Path) -> Path:
    rules = ",\n".join(
        f'  {{name_pattern = "^{re.escape(p.name)}$", category = "{p.category}"}}'.replace("\\", "\\\\")
        for p in CATALOGUE
    )
    drivers = "".join(
        f'\n[drivers.{door}_door]\nkind = "terabee"\nport = "{link}"\ndoor = "{door}"\n' for door, link in links.items()
    )
    path = workdir / "agent.toml"
    path.write_text(
        f'[agent]\ncoop = "riverside"\nstore = "owner-store"\ndoors = {json.dumps(list(links))}\n'
        f'data_dir = "{workdir / "data"}"\n[windows]\nlength = "1h"\ngrace = "2m"\n[clock]\nsync_source = "always"\n'
        f'[mqtt]\nport = {broker_port}\n[health]\nlisten = ""\n'
        f'[owner_page]\nlisten = "0.0.0.0:{page_port}"\ntimezone = "{ZONE}"\n'
        f'[pos]\ntaxonomy = ["bakery", "dairy", "produce", "drinks", "household"]\ncategory_rules = [\n{rules}\n]\n'
        f'[drivers.till]\nkind = "escpos"\nport = "{till}"\ncode_page = "cp437"\nidle_flush_s = 0.1\n{drivers}'
    )
    return path


class RunningShop:
    def __init__(self, workdir: Path, broker: LocalBroker) -> None:
        self.workdir = workdir
        (workdir / "dev").mkdir(parents=True)
        self.links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
        self.till = workdir / "dev" / "till"
        self.page_port = free_port()
        self.config = write_config(workdir, broker.port, self.page_port, self.links, self.till)
        self.db = workdir / "data" / "shopkeeper.db"
        self.clock = AcceleratedClock.starting_now(int(START.timestamp()) * NS_PER_S - 1800 * NS_PER_S, FACTOR)
        self.env = {**os.environ, **self.clock.env(), "TZ": "UTC"}
        self.log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - owned by the agent process
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", str(self.config)], env=self.env, stdout=self.log, stderr=self.log
        )
        self.sims: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.page_port}/"

    def start_sims(self) -> None:
        cmd = simulator_command(self.links, START, HOURS, 11, self.workdir / "doors.json", FACTOR)
        self.sims.append(subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL))
        till = [sys.executable, "-m", "firmware_sim.escpos", "--link", str(self.till), "--seed", "5", "--start",
                START.strftime("%Y-%m-%dT%H:%M:%SZ"), "--hours", str(HOURS), "--truth", str(self.workdir / "till.json"),
                "--layout", "mixed"]  # fmt: skip
        self.sims.append(subprocess.Popen(till, env=self.env, stdout=subprocess.DEVNULL))

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def agent_log(self) -> str:
        return (self.workdir / "agent.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in (self.agent, *self.sims):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        self.log.close()


def page_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture
def shop(tmp_path: Path, broker: LocalBroker) -> Iterator[RunningShop]:
    running = RunningShop(tmp_path, broker)
    try:
        yield running
    finally:
        running.stop()


def exact_today(shop: RunningShop, now_ns: int) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[str, int]]:
    """The SQLite truth, written independently of the page's code: per (local hour, door) and per category."""
    zone = zoneinfo.ZoneInfo(ZONE)
    day = dt.datetime.fromtimestamp(now_ns / NS_PER_S, tz=zone).date()
    lo = int(dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()) * NS_PER_S
    hi = int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone).timestamp()) * NS_PER_S
    doors: dict[tuple[str, str], tuple[int, int]] = {}
    for wall, door, entries, exits in shop.query(
        "SELECT wall_ns, door, entries, exits FROM events WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ?", lo, hi
    ):
        hour = dt.datetime.fromtimestamp(wall / NS_PER_S, tz=zone).strftime("%H:00")
        e, x = doors.get((hour, door), (0, 0))
        doors[(hour, door)] = (e + entries, x + exits)
    baskets = dict(
        shop.query(
            "SELECT l.category, count(DISTINCT b.id) FROM baskets b JOIN basket_lines l ON l.basket_id = b.id"
            " WHERE b.kind = 'sale' AND b.flagged = '' AND b.wall_ns >= ? AND b.wall_ns < ? GROUP BY l.category",
            lo,
            hi,
        )
    )
    return doors, baskets


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.mark.slow
def test_owner_page_shows_exact_figures_sensors_and_exactly_what_left(shop: RunningShop, broker: LocalBroker) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    sub = Subscriber(broker.port, "#", client_id="owner-page-watch")
    wait_until(lambda: page_up(shop.url), 60, "the owner page to answer", shop.agent_log)
    shop.start_sims()
    with playwright.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            # While the simulators run, every sensor and the till feed work and say when they last read.
            def all_working() -> bool:
                page.goto(shop.url)
                states = page.eval_on_selector_all("li.sensor", "els => els.map(e => e.dataset.state)")
                return sorted(states) == ["working"] * 3 and "no reading yet" not in page.inner_text("#sensors + ul")

            wait_until(all_working, 60, "every sensor and feed to work", shop.agent_log)
            assert re.search(r"front door counter \(front_door\): last reading (just now|\d+ minutes? ago)",
                             page.inner_text("#sensors + ul"))  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / "owner-page-while-open.png"), full_page=True)
            for sim in shop.sims:
                sim.wait(HOURS * 3600 / FACTOR + 90)
            last_hour = (START + dt.timedelta(hours=HOURS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            sub.wait_for(
                lambda: any(m["window"]["start"] == last_hour for m in sub.summaries()), 90, "the last hour released"
            )

            page.goto(shop.url)
            now_ns = shop.clock.wall_ns()
            page.screenshot(path=str(ARTIFACTS / "owner-page.png"), full_page=True)
            assert f"({ZONE})" in page.inner_text("body")

            # Today's exact figures equal the SQLite truth, hour by hour and door by door, and per category.
            rows = page.eval_on_selector_all(
                "tr.door-hour", "els => els.map(e => [e.dataset.hour, e.dataset.door, +e.dataset.in, +e.dataset.out])"
            )
            doors, baskets = exact_today(shop, now_ns)
            shown = {(h, d): (e, x) for h, d, e, x in rows if (e, x) != (0, 0)}
            assert shown == doors
            assert sum(e for e, _ in doors.values()) > 50, "a real morning of traffic"
            assert {h for h, _d in shown} >= {"10:00", "11:00", "12:00"}, "hours in Berlin time, not UTC"
            categories = page.eval_on_selector_all(
                "tr.category", "els => Object.fromEntries(els.map(e => [e.dataset.category, +e.dataset.baskets]))"
            )
            assert categories == baskets and sum(baskets.values()) > 10

            # What left: message by message what the subscriber on `#` recorded (topic, id, values).
            listed = page.eval_on_selector_all(
                "li.sent",
                "els => els.map(e => [e.dataset.topic, e.dataset.msgId, JSON.parse(e.dataset.values), e.innerText])",
            )
            assert listed and all("with privacy noise; true values stay here" in text for *_x, text in listed)
            ids = {msg_id for _t, msg_id, _v, _text in listed}
            sub.wait_for(
                lambda: ids <= {m["msg_id"] for m in sub.summaries()}, 30, "every listed message at the broker"
            )
            wire = {
                json.loads(payload)["msg_id"]: (topic, json.loads(payload))
                for topic, payload, _retain in sub.messages()
                if not topic.endswith("/status")
            }
            # The page is a snapshot: windows released after it loaded are not on it, every earlier one is.
            newest = max(wire[msg_id][1]["seq"] for msg_id in ids)
            assert ids == {m for m, (_t, payload) in wire.items() if payload["seq"] <= newest}
            for topic, msg_id, values, text in listed:
                wire_topic, payload = wire[msg_id]
                assert (wire_topic, payload["values"]) == (topic, values), msg_id
                if "door" in payload:
                    assert f"{payload['door']} door: {values['entries']} in, {values['exits']} out" in text
                assert re.search(r"ε [\d./]+; ε [\d./]+ per (door event|basket) in this window", text), text
            statuses = page.eval_on_selector_all(
                "li.status-message", "els => els.map(e => [e.dataset.topic, e.dataset.payload])"
            )
            wire_status = [(t, p.decode()) for t, p, _r in sub.messages() if t.endswith("/status")]
            assert [tuple(s) for s in reversed(statuses)] == wire_status, "the status messages, as they left"

            # The simulators closed their ports when their day ended: the page says so, and when they last read.
            def counters_unplugged() -> bool:
                page.goto(shop.url)
                states = dict(
                    page.eval_on_selector_all("li.sensor", "els => els.map(e => [e.dataset.driver, e.dataset.state])")
                )
                return states["front_door"] == states["back_door"] == "not connected"

            wait_until(counters_unplugged, 30, "the door counters to show as not connected", shop.agent_log)
            assert re.search(
                r"front door counter \(front_door\): not connected: .+; last reading", page.inner_text("#sensors + ul")
            )

            # The accountant's export: the link on the page gives the same exact counts, in local hours.
            with page.expect_download() as download:
                page.click("text=door counts per hour, this week")
            lines = Path(download.value.path()).read_text().splitlines()
            assert lines[0] == f"hour ({ZONE}),door,entries,exits"
            exported = {
                (row.split(",")[0][-5:], row.split(",")[1]): tuple(map(int, row.split(",")[2:])) for row in lines[1:]
            }
            assert {k: v for k, v in exported.items() if v != (0, 0)} == doors

            # A phone-sized screen: everything fits its width, the tables scroll inside their boxes.
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
            small = phone.new_page()
            small.goto(shop.url)
            # A mobile browser widens its layout viewport to fit content that overflows: it must stay 390 px.
            assert small.evaluate("[window.innerWidth, document.documentElement.scrollWidth]") == [390, 390]
            assert small.is_visible("#what-left") and small.inner_text("li.sent").strip()
            small.screenshot(path=str(ARTIFACTS / "owner-page-phone.png"), full_page=True)
            phone.close()

            # From the shop's network (this machine's own interface address), without a password: refused.
            lan = lan_address()
            if lan is not None:
                refused = browser.new_page()
                response = refused.goto(f"http://{lan}:{shop.page_port}/")
                assert response is not None and response.status == 403
                assert "owner-password" in refused.inner_text("body")
                refused.screenshot(path=str(ARTIFACTS / "owner-page-lan-refused.png"))
        finally:
            browser.close()
            sub.close()
