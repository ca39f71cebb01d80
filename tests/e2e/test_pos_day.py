"""End to end for POS: the ESC/POS simulator prints a day of receipts on a pty, the agent releases
category sales on t2, and nothing of a receipt (item names, prices, receipt numbers, payment) leaves."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.contract import schema_document
from agent.demo import DAY_START
from agent.demo.local_broker import LocalBroker
from agent.privacy.bounds import BasketBounds, LineItem, bound_basket
from agent.privacy.sampler import laplace_tail_bound
from firmware_sim.escpos import CATALOGUE
from tests.e2e.harness import wait_until
from tests.mqtt_watch import Subscriber

TAXONOMY = ("bakery", "dairy", "produce", "drinks", "household", "other")
BOUNDS = BasketBounds(
    max_categories=3, max_items_per_category=10, max_revenue_per_category_cents=3000, max_revenue_per_basket_cents=6000
)


def pos_config(workdir: Path, port: int, link: Path) -> Path:
    # The shop maps its products by name onto its public taxonomy (receipts print names only).
    rules = ",\n".join(
        f'  {{name_pattern = "^{re.escape(p.name)}$", category = "{p.category}"}}'.replace("\\", "\\\\")
        for p in CATALOGUE
    )
    path = workdir / "agent.toml"
    path.write_text(f"""
[agent]
coop = "riverside"
store = "pos-store"
doors = ["front"]
data_dir = "{workdir / "data"}"
[windows]
grace = "2m"
[clock]
sync_source = "always"
[health]
listen = ""
[mqtt]
port = {port}
[pos]
taxonomy = {json.dumps([c for c in TAXONOMY if c != "other"])}
category_rules = [
{rules}
]
[pos.bounds]
max_categories = {BOUNDS.max_categories}
max_items_per_category = {BOUNDS.max_items_per_category}
max_revenue_per_category_cents = {BOUNDS.max_revenue_per_category_cents}
max_revenue_per_basket_cents = {BOUNDS.max_revenue_per_basket_cents}
[drivers.till]
kind = "escpos"
port = "{link}"
code_page = "cp437"
idle_flush_s = 0.03  # 43 simulated seconds at x1440: inside the traffic's 120 s guard band
""")
    return path


def expected_tables(truth: dict) -> dict[tuple[str, str], dict[str, int]]:  # type: ignore[type-arg]
    """Per (hour, category): baskets and revenue after the documented contribution bounds."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for basket in truth["baskets"]:
        if basket["kind"] != "sale":
            continue
        hour = basket["time"][:13] + ":00:00Z"
        items = [LineItem(ln["category"], ln["quantity"], ln["line_total_cents"]) for ln in basket["lines"]]
        contributions = bound_basket(items, TAXONOMY, BOUNDS)
        for category, c in contributions.items():
            cell = out.setdefault((hour, category), {"baskets": 0, "revenue_cents": 0})
            cell["baskets"] += 1
            cell["revenue_cents"] += c.revenue_cents
        if contributions:
            out.setdefault((hour, "all"), {"baskets": 0, "revenue_cents": 0})["baskets"] += 1
    return out


@pytest.mark.slow
def test_a_day_of_receipts_arrives_as_noisy_category_sales_and_nothing_else(
    tmp_path: Path, broker: LocalBroker
) -> None:
    start = DAY_START + dt.timedelta(hours=7)
    hours = 12
    link = tmp_path / "dev" / "till"
    link.parent.mkdir(parents=True)
    config = pos_config(tmp_path, broker.port, link)
    clock = AcceleratedClock.starting_now(int(start.timestamp()) * NS_PER_S - 2 * 3600 * NS_PER_S, 1440.0)
    env = {**os.environ, **clock.env()}
    truth_path = tmp_path / "truth.json"
    sub = Subscriber(broker.port, "#")
    log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - owned by the agent process
    agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", str(config)], env=env, stdout=log, stderr=log)
    db_path = tmp_path / "data" / "shopkeeper.db"

    def agent_connected() -> bool:
        if not db_path.exists():
            return False
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT value FROM agent_state WHERE key = 'mqtt_connections'").fetchone()
        except sqlite3.OperationalError:
            return False
        return row is not None

    # The agent is up (and its driver waiting for the printer) before the first receipt of the day.
    wait_until(agent_connected, 60, "the agent to start")
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim.escpos",
            "--link",
            str(link),
            "--seed",
            "5",
            "--start",
            start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--hours",
            str(hours),
            "--truth",
            str(truth_path),
            "--layout",
            "mixed",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    end_hour = (start + dt.timedelta(hours=hours - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def day_released() -> bool:
        return any(m["window"]["start"] == end_hour and m["stream"] == "sales-revenue/hourly" for m in sub.summaries())

    try:
        sim.wait(hours * 3600 / 1440 + 60)
        wait_until(day_released, 60, "the last hour's sales", lambda: (tmp_path / "agent.log").read_text()[-3000:])
    finally:
        for proc in (agent, sim):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        sub.close()
    truth = json.loads(truth_path.read_text())
    sales = [m for m in sub.summaries() if m["stream"].startswith("sales-")]

    # On the box: every printed sale was parsed, mapped and placed in its hour exactly (before noise).
    db = sqlite3.connect(tmp_path / "data" / "shopkeeper.db")
    stored: dict[int, tuple[str, list[LineItem]]] = {}
    for basket_id, window_ns, category, quantity, total in db.execute(
        "SELECT b.id, b.window_ns, l.category, l.quantity, l.line_total_cents FROM baskets b"
        " JOIN basket_lines l ON l.basket_id = b.id WHERE b.kind = 'sale' AND b.flagged = ''"
    ):
        hour = dt.datetime.fromtimestamp(window_ns / NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        stored.setdefault(basket_id, (hour, []))[1].append(LineItem(category, quantity, total))
    flagged = db.execute("SELECT count(*) FROM baskets WHERE flagged != ''").fetchone()[0]
    db.close()
    local: dict[tuple[str, str], dict[str, int]] = {}
    for hour, items in stored.values():
        contributions = bound_basket(items, TAXONOMY, BOUNDS)
        for category, c in contributions.items():
            cell = local.setdefault((hour, category), {"baskets": 0, "revenue_cents": 0})
            cell["baskets"] += 1
            cell["revenue_cents"] += c.revenue_cents
        if contributions:
            local.setdefault((hour, "all"), {"baskets": 0, "revenue_cents": 0})["baskets"] += 1
    assert flagged == 0
    assert local == expected_tables(truth), "parsed, mapped and windowed exactly as printed"
    assert {m["tier"] for m in sales} == {"t2"}
    assert sum(1 for b in truth["baskets"] if b["kind"] == "sale") > 100, "a real day of trade"

    # Each released value lies within the noise bound of the bounded ground truth. The two streams'
    # bounds each take half of the failure budget: P(a false failure) <= 1e-6.
    expected = expected_tables(truth)
    counts = [m for m in sales if m["stream"] == "sales-count/hourly"]
    revenue = [m for m in sales if m["stream"] == "sales-revenue/hourly"]
    count_bound = laplace_tail_bound(2 * (BOUNDS.count_l1 + 1), 1, len(counts), 0.5e-6)
    revenue_bound = laplace_tail_bound(2 * BOUNDS.revenue_l1, 1, len(revenue), 0.5e-6)
    assert {m["category"] for m in counts} == {*TAXONOMY, "all"} and {m["category"] for m in revenue} == set(TAXONOMY)
    for m in counts:
        true = expected.get((m["window"]["start"], m["category"]), {}).get("baskets", 0)
        assert abs(m["values"]["baskets"] - true) < count_bound, (m["window"], m["category"], m["values"], true)
    for m in revenue:
        true = expected.get((m["window"]["start"], m["category"]), {}).get("revenue_cents", 0)
        assert abs(m["values"]["revenue_cents"] - true) < revenue_bound, (m["window"], m["category"], true)

    # Nothing of a receipt leaves: schema-valid payloads only (no extra field can carry anything), no
    # product name, no receipt number, no payment type, no currency amount as printed.
    schema = schema_document("sales-category.v1.json")
    for m in sales:
        jsonschema.validate(m, schema)
    blob = b"\n".join(payload for _topic, payload, _retain in sub.messages()).decode()
    for product in CATALOGUE:
        assert product.name not in blob and product.name.encode("cp437", "replace").decode("latin-1") not in blob
    for basket in truth["baskets"]:
        assert f'"{basket["receipt_no"]}"' not in blob
    for word in ('"cash"', '"card"', "EUR", "TOTAL", "SUMME"):
        assert word not in blob
