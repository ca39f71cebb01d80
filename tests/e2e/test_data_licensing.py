"""Data licensing end to end: the real coop broker (deploy/: TLS, per-account ACL), the hub process, five real
agent processes (`agent.cli run`, accelerated clock) holding a seeded day of door events, and the hub's CLI.

The coop asks for footfall by hour of the week over that day. Shops whose policy allows it answer (one after
its owner approves with `shopkeeper queries approve`), the others refuse with their reason; the district
answer is within its stated noise bound of the truth; each shop's ledger holds the answer with the query id
and the credit, and the hub's statement owes exactly those credits. A second query over the same day would
take the day's windows over their lifetime budget: every box refuses it, with nothing spent and nothing
drawn. A replayed query and a forged one are refused and counted by every box, and a store cannot publish a
query at all (the broker's ACL refuses it).

False failure: the district check allows noise up to a bound that holds with probability 1 - 1e-9.
"""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.contract.licensing import query_topic
from agent.licensing.catalogue import HOUR_OF_WEEK_KEYS, hour_of_week
from agent.store import Store
from hub.db import Database
from hub.licensing import district_answer, statement
from tests.e2e.coop_broker import CoopBroker, V5Member, coop_broker
from tests.hub.conftest import HubProcess, wait_for, write_hub_config
from tests.licensing_kit import COOP_KEY, OTHER_KEY, encode, public_key_b64, signed_query

REPO = Path(__file__).resolve().parents[2]
DAY_START_S = 1_763_251_200  # 2025-11-16T00:00:00Z, a Sunday
DAY_END_NS = (DAY_START_S + 86400) * NS_PER_S
SPEED = 7200.0  # two simulated hours a second: the day is released in about 12 s
LEAD_S = 8.0  # real seconds before the day starts, for the agents to come up
FAILURE_PROBABILITY = 1e-9
# shop -> (kinds, requesters, largest epsilon per query, approval)
POLICIES = {
    "shop-1": (["footfall_hour_of_week"], ["coop"], "1", "auto"),
    "shop-2": (["footfall_hour_of_week"], ["coop"], "1", "auto"),
    "shop-3": (["footfall_hour_of_week"], ["coop"], "1", "manual"),
    "shop-4": (["footfall_hour_of_week"], ["city-council"], "1", "auto"),
    "shop-5": (["basket_value_bins"], ["coop"], "1", "auto"),
}
ANSWERING = ("shop-1", "shop-2", "shop-3")
CREDIT = 250
SPENDS = "SELECT count(*) FROM privacy_spend WHERE stream = ?"


def agent_config(
    root: Path, shop: str, broker: CoopBroker, policies: dict[str, Any] | None = None, extra: str = ""
) -> Path:
    kinds, requesters, max_epsilon, approval = (policies or POLICIES)[shop]
    tls = "".join(f'{key} = "{value}"\n' for key, value in broker.tls(shop).items())
    path = root / shop / "agent.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[agent]\ncoop = "riverside"\nstore = "{shop}"\ndoors = ["front"]\ndata_dir = "data"\n\n'
        '[windows]\nlength = "1h"\ngrace = "2m"\n\n[clock]\nsync_source = "always"\n\n'
        '[privacy]\nlifetime_epsilon_per_window = "2"\n\n[privacy.footfall_door]\nepsilon = 0.5\n\n'
        f"[mqtt]\nport = {broker.port}\n{tls}\n"
        '[health]\nlisten = ""\n\n[owner_page]\nlisten = ""\n\n'
        f'[licensing]\ncoop_public_key = "{public_key_b64()}"\nkinds = {json.dumps(kinds)}\n'
        f'requesters = {json.dumps(requesters)}\nmax_epsilon_per_query = "{max_epsilon}"\napproval = "{approval}"\n'
        + extra
    )
    return path


def seed_day(db_path: Path, seed: int) -> list[int]:
    """A day of door entries written to the shop's SQLite file before its agent starts; the true table."""
    rng = random.Random(seed)
    truth = [0] * len(HOUR_OF_WEEK_KEYS)
    rows = []
    for hour in range(24):
        n = rng.randrange(0, 40) if 7 <= hour <= 20 else rng.randrange(0, 3)
        for i in range(n):
            wall = (DAY_START_S + hour * 3600 + (i * 3600) // (n + 1)) * NS_PER_S
            rows.append(("seed", 0, wall, 1, "seed", "front", 1, 0))
            truth[hour_of_week(wall)] += 1
    store = Store(db_path)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    store.close()
    return truth


def shop_query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def released_through(db_path: Path) -> int:
    rows = shop_query(db_path, "SELECT value FROM agent_state WHERE key = 'next_window_start_ns'")
    return int(rows[0][0]) if rows else 0


def counter(db_path: Path, name: str) -> int:
    rows = shop_query(db_path, "SELECT value FROM counters WHERE name = ?", (name,))
    return int(rows[0][0]) if rows else 0


def every_shop_counted(dbs: list[Path], reason: str) -> bool:
    return all(counter(db, f"licensing_refused_{reason}") == 1 for db in dbs)


def query_status(db_path: Path, query_id: str) -> str:
    rows = shop_query(db_path, "SELECT status FROM licensing_queries WHERE query_id = ?", (query_id,))
    return str(rows[0][0]) if rows else ""


def hub_answers(database: Database, query_id: str) -> int:
    conn = database.connect()
    try:
        return int(conn.query("SELECT count(*) FROM licensing_answers WHERE query_id = ?", (query_id,))[0][0])
    finally:
        conn.close()


def ask(desk_config: Path, key_file: Path, epsilon: str, *flags: str) -> str:
    done = subprocess.run(
        [
            sys.executable, "-m", "hub", "licensing", "ask", str(desk_config), "--key", str(key_file),
            "--kind", "footfall_hour_of_week", "--param", "start=2025-11-16", "--param", "end=2025-11-17",
            "--requester", "coop", "--purpose", "district footfall by hour of week", "--epsilon", epsilon,
            "--credit-cents", str(CREDIT), "--expires-in", "3600", *flags,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def approve(config: Path, query_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "queries", "approve", str(config), query_id],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "approved", done.stdout + done.stderr


def run_day(
    root: Path, configs: dict[str, Path], agents: list[subprocess.Popen[bytes]], seed: int
) -> tuple[dict[str, Path], dict[str, list[int]]]:
    """Seed each shop's day, start its agent on one accelerated clock, and wait until every shop released it."""
    dbs = {shop: root / shop / "data" / "shopkeeper.db" for shop in configs}
    truth = {shop: seed_day(dbs[shop], seed + i) for i, shop in enumerate(configs)}
    clock = AcceleratedClock(
        origin_ns=DAY_START_S * NS_PER_S, factor=SPEED, anchor_ns=time.time_ns() + int(LEAD_S * 1e9)
    )
    env = {**os.environ, **clock.env()}
    for shop, config in configs.items():
        log = (root / shop / "agent.log").open("ab")
        agents.append(
            subprocess.Popen([sys.executable, "-m", "agent.cli", "run", str(config)], env=env, stdout=log, stderr=log)
        )
    wait_for(lambda: all(released_through(dbs[s]) >= DAY_END_NS for s in configs), LEAD_S + 60, "the day")
    return dbs, truth


@pytest.mark.slow
def test_data_licensing_end_to_end(tmp_path: Path) -> None:
    shops = list(POLICIES)
    db_path = tmp_path / "hub.db"
    database = Database(str(db_path))
    key_file = tmp_path / "coop-licensing.key"
    key_file.write_text(base64.b64encode(COOP_KEY).decode() + "\n")
    agents: list[subprocess.Popen[bytes]] = []
    hub: HubProcess | None = None
    with coop_broker(tmp_path / "broker", [*shops, "_hub", "_hub-licensing"]) as broker:
        try:
            hub_config = write_hub_config(tmp_path / "hub.toml", broker.port, str(db_path), k_min=3)
            base = hub_config.read_text()
            hub_config.write_text(base + "".join(f'{k} = "{v}"\n' for k, v in broker.tls("_hub").items()))
            desk_config = tmp_path / "desk.toml"  # the licensing desk's own account (deploy/mosquitto/coop.acl)
            desk_config.write_text(base + "".join(f'{k} = "{v}"\n' for k, v in broker.tls("_hub-licensing").items()))
            hub = HubProcess(hub_config, tmp_path / "hub.log").start()
            hub.wait_subscribed()

            configs = {shop: agent_config(tmp_path, shop, broker) for shop in shops}
            dbs, truth = run_day(tmp_path, configs, agents, 100)

            # 1. The coop asks; three shops answer (shop-3 once its owner approves), two refuse with reasons.
            first = ask(desk_config, key_file, "1")
            wait_for(lambda: query_status(dbs["shop-3"], first) == "pending", 20, "shop-3's query to wait")
            approve(configs["shop-3"], first)
            wait_for(lambda: hub_answers(database, first) == len(shops), 30, "every shop's answer")
            conn = database.connect()
            try:
                district = district_answer(conn, first, FAILURE_PROBABILITY)
            finally:
                conn.close()
            assert district["shops"] == list(ANSWERING)
            assert "does not answer queries from 'coop'" in district["refused"]["shop-4"]
            assert "does not answer footfall_hour_of_week queries" in district["refused"]["shop-5"]
            bound = district["noise_bound"]
            assert 0 < bound < 200, bound
            for i, key in enumerate(HOUR_OF_WEEK_KEYS):
                true_total = sum(truth[s][i] for s in ANSWERING)
                assert abs(district["values"][key] - true_total) <= bound, (key, district["values"][key], true_total)

            # Each shop's ledger: the answer with its query id and credit, a spend in each of the 24 windows.
            for shop in shops:
                rows = shop_query(
                    dbs[shop], "SELECT mechanism, parameters FROM release_ledger WHERE stream = ?", (f"query:{first}",)
                )
                assert len(rows) == 1, shop
                mechanism, parameters = rows[0][0], json.loads(rows[0][1])
                assert parameters["query_id"] == first and parameters["credit_cents"] == CREDIT
                spends = shop_query(
                    dbs[shop], "SELECT count(*) FROM privacy_spend WHERE stream = ?", (f"query:{first}",)
                )
                assert (mechanism, spends[0][0]) == (("discrete_laplace", 24) if shop in ANSWERING else ("refused", 0))

            # 2. A second query on the same day would exceed its windows' lifetime budget (hourly 1 + 1 + 1/2 > 2).
            second = ask(desk_config, key_file, "1/2")
            wait_for(lambda: query_status(dbs["shop-3"], second) == "pending", 20, "shop-3's second query")
            approve(configs["shop-3"], second)
            wait_for(lambda: hub_answers(database, second) == len(shops), 30, "every shop's refusal")
            conn = database.connect()
            try:
                refusals = district_answer(conn, second)["refused"]
                owed = statement(conn)
            finally:
                conn.close()
            for shop in ANSWERING:
                assert "lifetime budget" in refusals[shop] and "nothing was drawn" in refusals[shop], refusals[shop]
                rows = shop_query(
                    dbs[shop], "SELECT noisy_values FROM release_ledger WHERE stream = ?", (f"query:{second}",)
                )
                assert rows == [("{}",)]
                spent = shop_query(
                    dbs[shop], "SELECT count(*) FROM privacy_spend WHERE stream = ?", (f"query:{second}",)
                )
                assert spent == [(0,)]

            # The statement: what the coop owes each shop.
            for shop in shops:
                expected = CREDIT if shop in ANSWERING else 0
                assert owed[shop]["credit_cents"] == expected, (shop, owed[shop])
                assert [a["query_id"] for a in owed[shop]["answered"]] == ([first] if shop in ANSWERING else [])
                assert {r["query_id"] for r in owed[shop]["refused"]} == (
                    {second} if shop in ANSWERING else {first, second}
                )

            # 3. A replayed query and a forged one are refused and counted by every box; a store cannot publish one.
            signed = shop_query(dbs["shop-1"], "SELECT signed FROM licensing_queries WHERE query_id = ?", (first,))
            desk = V5Member(broker, "_hub-licensing")
            forged = signed_query(time.time_ns() + 3600 * NS_PER_S, key=OTHER_KEY)
            topic = query_topic("riverside")
            codes = desk.publish_all([(topic, signed[0][0].encode(), False), (topic, encode(forged), False)])
            assert all(not c.is_failure for c in codes), codes
            desk.close()
            for reason in ("forged", "replayed"):
                wait_for(
                    partial(every_shop_counted, list(dbs.values()), reason), 20, f"every box to refuse the {reason}"
                )
            intruder = V5Member(broker, "shop-1")
            (code,) = intruder.publish_all([(topic, encode(forged), False)])
            intruder.close()
            assert code.is_failure, "the broker must refuse a query published by a store"
            assert hub_answers(database, first) == len(shops)  # nothing was answered twice
        finally:
            for process in agents:
                process.terminate()
            for process in agents:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            if hub is not None:
                hub.stop()


# A district figure by secure aggregation: shops 1 to 4 accept, shop 5 refuses by its policy.
DISTRICT_POLICIES = {
    **{f"shop-{i}": (["footfall_hour_of_week"], ["coop"], "1", "auto") for i in range(1, 5)},
    "shop-5": (["basket_value_bins"], ["coop"], "1", "auto"),
}
DISTRICT_SHOPS = ("shop-1", "shop-2", "shop-3", "shop-4")
# epsilon 1/4: the round's rho is 1/32, so with threshold 3 (of 4) each share has variance 16/3 (s > 2: the
# KLS21 bound is the central rho to float precision). The lifetime rho of 3/8 holds the hourly releases (two
# streams at epsilon 1/2 count 1/8 each) and this round (1/32), and not a second round at epsilon 1/2 (1/8 more).
DISTRICT_LIFETIME = 'lifetime_epsilon_per_window = "2"\nlifetime_rho_per_window = "3/8"\n'


@pytest.mark.slow
def test_a_district_query_is_combined_by_secure_aggregation(tmp_path: Path) -> None:
    from tests.e2e.secagg_fleet import enrol, hub_secagg_section

    shops = list(DISTRICT_POLICIES)
    db_path = tmp_path / "hub.db"
    database = Database(str(db_path))
    key_file = tmp_path / "coop-licensing.key"
    key_file.write_text(base64.b64encode(COOP_KEY).decode() + "\n")
    agents: list[subprocess.Popen[bytes]] = []
    hub: HubProcess | None = None
    roster, roster_path = enrol(tmp_path, shops)
    with coop_broker(tmp_path / "broker", [*shops, "_hub", "_hub-licensing"]) as broker:
        try:
            hub_config = write_hub_config(tmp_path / "hub.toml", broker.port, str(db_path), k_min=3)
            base = hub_config.read_text()
            secagg = hub_secagg_section(roster_path, 10.0) + "licensing_wait_s = 60\n"
            hub_config.write_text(base + "".join(f'{k} = "{v}"\n' for k, v in broker.tls("_hub").items()) + secagg)
            desk_config = tmp_path / "desk.toml"
            desk_config.write_text(
                base + "".join(f'{k} = "{v}"\n' for k, v in broker.tls("_hub-licensing").items()) + secagg
            )
            hub = HubProcess(hub_config, tmp_path / "hub.log").start()
            hub.wait_subscribed()

            section = f'\n[secagg]\nroster_digest = "{roster.digest().hex()}"\nstreams = []\n'
            configs = {}
            for shop in shops:
                path = agent_config(tmp_path, shop, broker, DISTRICT_POLICIES, section)
                path.write_text(path.read_text().replace('lifetime_epsilon_per_window = "2"\n', DISTRICT_LIFETIME))
                configs[shop] = path
            dbs, truth = run_day(tmp_path, configs, agents, 200)

            query_id = ask(desk_config, key_file, "1/4", "--district")
            wait_for(lambda: district_round(database, query_id).startswith("round released"), 90, "the round")
            conn = database.connect()
            try:
                district = district_answer(conn, query_id, FAILURE_PROBABILITY)
                owed = statement(conn)
                singles = conn.query(
                    "SELECT answer_values FROM licensing_answers WHERE query_id = ? AND answer_values IS NOT NULL",
                    (query_id,),
                )
            finally:
                conn.close()
            assert district["shops"] == list(DISTRICT_SHOPS), district
            assert "does not answer footfall_hour_of_week queries" in district["refused"]["shop-5"]
            # The coop never held one shop's table: what it stored per shop is the keys of the acceptance only.
            assert len(singles) == 4
            assert all(set(json.loads(v)) == {"keys", "l2_sensitivity"} for (v,) in singles)
            bound = district["noise_bound"]
            assert district["noise_variance"] == pytest.approx(4 * 16 / 3)  # four shares of variance 16/3
            assert 0 < bound < 60, bound
            for i, key in enumerate(HOUR_OF_WEEK_KEYS):
                true_total = sum(truth[s][i] for s in DISTRICT_SHOPS)
                assert abs(district["values"][key] - true_total) <= bound, (key, district["values"][key], true_total)
            for shop in shops:
                expected = CREDIT if shop in DISTRICT_SHOPS else 0
                assert owed[shop]["credit_cents"] == expected, (shop, owed[shop])

            # Each accepting shop's ledger: the acceptance (no spend), the round's row with the query id and the
            # credit, and the round's rho spent in each of the day's 24 windows, kind query.
            for shop in DISTRICT_SHOPS:
                rows = shop_query(
                    dbs[shop],
                    "SELECT stream, mechanism, parameters FROM release_ledger WHERE stream LIKE ? ORDER BY id",
                    (f"query:{query_id}%",),
                )
                assert [(s, m) for s, m, _p in rows] == [
                    (f"query:{query_id}", "accepted_for_secure_round"),
                    (f"query:{query_id}/round", "distributed_discrete_gaussian"),
                ], rows
                parameters = json.loads(rows[1][2])
                assert parameters["query_id"] == query_id and parameters["credit_cents"] == CREDIT
                spends = shop_query(
                    dbs[shop], "SELECT rho, kind FROM privacy_spend WHERE stream = ?", (f"query:{query_id}/round",)
                )
                assert len(spends) == 24 and all(k == "query" and Fraction(r) >= Fraction(1, 32) for r, k in spends)
                assert query_status(dbs[shop], query_id) == "answered"

            # A second district query on the same day would take its windows over their lifetime rho: every
            # accepting box refuses it before anything is drawn or sent, and no round is planned.
            second = ask(desk_config, key_file, "1/2", "--district")
            wait_for(lambda: hub_answers(database, second) == len(shops), 30, "every shop's refusal")
            conn = database.connect()
            try:
                refusals = district_answer(conn, second)["refused"]
            finally:
                conn.close()
            for shop in DISTRICT_SHOPS:
                assert "lifetime_rho_per_window" in refusals[shop] and "nothing was drawn" in refusals[shop]
            wait_for(lambda: district_round(database, second).startswith("no round"), 20, "no second round")
        finally:
            for process in agents:
                process.terminate()
            for process in agents:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            if hub is not None:
                hub.stop()


def district_round(database: Database, query_id: str) -> str:
    conn = database.connect()
    try:
        rows = conn.query("SELECT district_note FROM licensing_queries WHERE query_id = ?", (query_id,))
        return str(rows[0][0]) if rows else ""
    finally:
        conn.close()
