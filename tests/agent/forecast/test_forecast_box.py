"""The box's forecast end to end: raw SQLite rows -> the fit in its own process -> `shopkeeper forecast`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import zoneinfo
from pathlib import Path

from agent.config import AgentConfig
from agent.forecast import job
from agent.owner.localtime import DAYS
from agent.store import Store
from agent.store import forecasts as sql
from devtools.district import simulate
from tests.conftest import make_config

ZONE = "Europe/Berlin"
REPO = Path(__file__).resolve().parents[3]


def _shop(tmp_path: Path, days: int = 45) -> tuple[AgentConfig, dt.date]:
    """A shop whose door counts and bread and coffee sales cover the `days` local days before today."""
    config = make_config(tmp_path, extra=f'\n[owner_page]\ntimezone = "{ZONE}"\n')
    zone = zoneinfo.ZoneInfo(ZONE)
    today = dt.datetime.now(zone).date()
    d = simulate(days=days, start=today - dt.timedelta(days=days), seed=5)
    events: list[tuple[object, ...]] = []
    baskets: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    for h, count in enumerate(d.footfall["shop-00"]):
        at = dt.datetime.combine(d.start + dt.timedelta(days=h // 24), dt.time(h % 24, 25), tzinfo=zone)
        if count:
            events.append(("boot", 0, int(at.timestamp()) * 10**9, 1, "sim", "front", int(count), 0))
    for day in range(days):
        at = dt.datetime.combine(d.start + dt.timedelta(days=day), dt.time(12, 10), tzinfo=zone)
        for category in ("bread", "coffee"):
            cents = int(d.sales["shop-00"]["bread" if category == "bread" else "coffee"][day])
            if cents:
                bid = len(baskets) + 1
                baskets.append((bid, "boot", 0, int(at.timestamp()) * 10**9, 1, "sim", f"r{bid}", "sale", "card",
                                "EUR", cents, "", "", None))  # fmt: skip
                lines.append((bid, category, "", category, category, 1, cents, cents))
    store = Store(config.db_path)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        conn.executemany("INSERT INTO baskets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", baskets)
        conn.executemany("INSERT INTO basket_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)", lines)
    store.close()
    return config, today


def _cli(config: AgentConfig, *args: str) -> subprocess.CompletedProcess[str]:
    path = config.db_path.parent.parent / "agent.toml"
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "forecast", str(path), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip


def test_shopkeeper_forecast_refreshes_in_its_own_process_and_speaks_local_time(tmp_path: Path) -> None:
    config, today = _shop(tmp_path)
    assert (config.db_path.parent.parent / "agent.toml").exists()
    words = _cli(config, "--refresh")
    assert words.returncode == 0, words.stderr
    assert f"({ZONE} time)" in words.stdout
    assert "People coming in, next 7 days" in words.stdout
    assert f"{DAYS[today.weekday()]} {today.day} {today:%b}: " in words.stdout
    assert "Sales by category" in words.stdout and "bread" in words.stdout
    assert "costs no privacy budget" in words.stdout
    assert "None" not in words.stdout

    report = json.loads(_cli(config, "--json").stdout)
    assert [d["day"] for d in report["days"]] == [(today + dt.timedelta(days=i)).isoformat() for i in range(7)]
    for day in report["days"]:
        assert day["lo80"] <= day["people"] <= day["hi80"]
        assert len(day["hours"]) == 24
    assert set(report["categories"]) == {"bread", "coffee"}
    assert report["models"]["footfall"]["history_days"] >= 40
    store = Store(config.db_path)
    run = sql.latest_run(store.conn())
    assert run is not None and run["status"] == "ok" and run["zone"] == ZONE
    # Footfall history was kept per local day: the 45 days before today (the first, partial or not, is kept).
    days = {r[0] for r in store.conn().execute("SELECT DISTINCT day FROM forecast_history WHERE series = 'footfall'")}
    assert max(days) == (today - dt.timedelta(days=1)).isoformat()
    store.close()


def test_the_history_outlives_raw_retention(tmp_path: Path) -> None:
    config, today = _shop(tmp_path, days=20)
    store = Store(config.db_path)
    yesterday = today - dt.timedelta(days=1)
    from agent.owner.localtime import LocalZone

    zone = LocalZone(ZONE)
    with store.transaction() as conn:
        assert sql.refresh_history(conn, zone, yesterday) == 20
        before = sql.history(conn)["footfall"]
        conn.execute("DELETE FROM events WHERE wall_ns < ?", (zone.ns(zone.day_start(zone.ns(
            dt.datetime.combine(today, dt.time(0), tzinfo=zone.tz)), 10)),))  # fmt: skip
        sql.refresh_history(conn, zone, yesterday)
        after = sql.history(conn)["footfall"]
    assert after == before  # days whose raw rows went are kept as they were; the rest recomputed the same
    store.close()


def test_a_failed_fit_is_one_reason_counted_and_the_next_success_clears_it(tmp_path: Path) -> None:
    config, _today = _shop(tmp_path, days=10)
    store = Store(config.db_path)
    failed = job.run_fit(store, tmp_path, ZONE, 0)  # a folder where the database should be
    assert not failed.ok and failed.detail.startswith("forecast fit failed:")
    assert store.get_state(job.ERROR_STATE) == failed.detail
    assert store.counters()[job.FAILURES] == 1
    assert "The last attempt failed" in _cli(config).stdout
    ok = job.run_fit(store, config.db_path, ZONE, dt.datetime.now(dt.UTC).timestamp().__int__() * 10**9)
    assert ok.ok and job.summary(ok.detail)["status"] == "ok"
    assert store.get_state(job.ERROR_STATE) is None
    store.close()


def test_the_daily_job_fits_once_per_local_day(tmp_path: Path) -> None:
    config, today = _shop(tmp_path, days=9)
    store = Store(config.db_path)
    noon = int(dt.datetime.combine(today, dt.time(12), tzinfo=zoneinfo.ZoneInfo(ZONE)).timestamp()) * 10**9
    first = job.daily(store, config.db_path, ZONE, noon)
    assert first is not None and first.ok
    assert job.daily(store, config.db_path, ZONE, noon + 3600 * 10**9) is None
    runs = store.conn().execute("SELECT count(*) FROM forecast_runs").fetchone()[0]
    assert runs == 1
    store.close()


def test_the_resident_side_of_forecasting_never_loads_the_fitting_code() -> None:
    # numpy itself is in the agent today through agent.store's kernels (being moved out elsewhere); what the
    # forecast adds to the resident process must not include the models, statsmodels-like fitting, or the fit.
    code = (
        "import sys; import agent.forecast.job, agent.forecast.words, agent.forecast.cli, agent.owner.forecast_html,"
        " agent.owner.page, agent.owner.status_words; print(sorted(m for m in sys.modules if m in"
        " ('agent.forecast.models', 'agent.forecast.fit', 'agent.forecast.prior', 'hub.forecast_model')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_the_owners_page_shows_the_forecast_in_local_days(tmp_path: Path) -> None:
    from agent.owner import page
    from agent.owner.localtime import LocalZone

    config, today = _shop(tmp_path, days=15)
    assert _cli(config, "--refresh").returncode == 0
    store = Store(config.db_path)
    zone = LocalZone(ZONE)
    now = int(dt.datetime.now(dt.UTC).timestamp()) * 10**9
    html = page.render(page.gather(store, config, zone, now), config, zone, "csrf", False).decode()
    store.close()
    assert '<h2 id="forecast">Forecast, next 7 days</h2>' in html and 'href="#forecast"' in html
    days = [(today + dt.timedelta(days=i)).isoformat() for i in range(7)]
    for day in days:
        assert f'data-day="{day}"' in html
    assert "nothing was sent to make it" in html
    assert 'data-category="bread"' in html


def test_a_new_category_starts_with_its_first_sale(tmp_path: Path) -> None:
    config, today = _shop(tmp_path, days=20)
    zone = zoneinfo.ZoneInfo(ZONE)
    store = Store(config.db_path)
    with store.transaction() as conn:
        for back in (3, 2, 1):
            at = dt.datetime.combine(today - dt.timedelta(days=back), dt.time(15), tzinfo=zone)
            cur = conn.execute(
                "INSERT INTO baskets (boot_id, mono_ns, wall_ns, synced, driver, source_id, kind, payment, currency,"
                " total_cents, flagged, pos_time) VALUES ('b', 0, ?, 1, 'sim', ?, 'sale', 'card', 'EUR', 900, '', '')",
                (int(at.timestamp()) * 10**9, f"cake-{back}"),
            )
            conn.execute(
                "INSERT INTO basket_lines VALUES (?, 'cake', '', 'cake', 'cake', 1, 900, 900)", (cur.lastrowid,)
            )
    store.close()
    report = json.loads(_cli(config, "--refresh", "--json").stdout)
    assert report["models"]["sales:cake"]["history_days"] == 3
    assert report["models"]["sales:bread"]["history_days"] >= 18


def test_the_history_is_bounded_to_its_last_two_years_and_a_margin(tmp_path: Path) -> None:
    config, today = _shop(tmp_path, days=3)
    store = Store(config.db_path)
    from agent.owner.localtime import LocalZone

    zone = LocalZone(ZONE)
    yesterday = today - dt.timedelta(days=1)
    too_old = (yesterday - dt.timedelta(days=sql.KEEP_HISTORY_DAYS + 1)).isoformat()
    kept = (yesterday - dt.timedelta(days=sql.KEEP_HISTORY_DAYS)).isoformat()
    with store.transaction() as conn:
        conn.executemany("INSERT INTO forecast_history VALUES ('footfall', ?, 9, 5)", [(too_old,), (kept,)])
        sql.refresh_history(conn, zone, yesterday)
        days = set(sql.history(conn)["footfall"])
    assert kept in days and too_old not in days
    store.close()
