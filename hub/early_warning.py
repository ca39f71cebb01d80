"""Early warnings: a shop's footfall far from its own seasonal baseline, and shops that went quiet.

Method (docs/hub.md, "Early warnings"):
Every verdict is on the shop's own window length: a shop on 15-minute windows is judged window by window
against its own 15-minute windows of past weeks.
- baseline = median of the shop's own footfall in the same weekday and time of day over the last `weeks` weeks
  (at least `min_weeks` of them, else no verdict);
- spread = max(1.4826 * MAD, noise floor); MAD is the median absolute deviation of that history, and the
  floor is the standard deviation that the released values' own noise gives the difference
  observed - baseline: sqrt(V * (1 + pi / (2 n))), V = the noise variance of the observed footfall (per door
  2q/(1-q)^2 with q = exp(-1/scale) for discrete Laplace, sigma2 for the discrete Gaussian, summed over doors)
  and pi/(2n) the extra variance of a median of n such values;
- alert when |observed - baseline| > z * spread.
A shop is flagged `offline` when its last will (or goodbye) says so, and `silent` when nothing came from it
for more than `silent_windows` of its own windows (hub time, or behind the newest window any shop on the same
window length released).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from agent.contract import DEFAULT_WINDOW_S, V1_IMPLIED_WINDOW_S, window_name
from hub.benchmarks import quantile
from hub.config import AlertSettings
from hub.contract import alert_topic, iso, published_json
from hub.db import Connection
from hub.queries import newest_per_length, shop_windows, stores

ALERT_SCHEMA = "shopkeeper.hub-alert.v1"
MAD_TO_SD = 1.4826
WEEK_S = 7 * 86400


@dataclasses.dataclass(frozen=True)
class Verdict:
    observed: float
    baseline: float
    spread: float
    mad_spread: float
    noise_floor: float
    history: int
    z: float

    @property
    def score(self) -> float:
        return (self.observed - self.baseline) / self.spread

    @property
    def kind(self) -> str | None:
        if abs(self.score) <= self.z:
            return None
        return "footfall_high" if self.score > 0 else "footfall_low"


def judge(observed: float, history: list[float], noise_variance: float, settings: AlertSettings) -> Verdict | None:
    """Compare one window with its seasonal history; None while the history is too short."""
    if len(history) < settings.min_weeks:
        return None
    values = sorted(history)
    baseline = quantile(values, 0.5)
    mad = quantile(sorted(abs(v - baseline) for v in values), 0.5)
    floor = math.sqrt(noise_variance * (1 + math.pi / (2 * len(values))))
    return Verdict(
        observed=observed,
        baseline=baseline,
        spread=max(MAD_TO_SD * mad, floor, 1e-9),
        mad_spread=MAD_TO_SD * mad,
        noise_floor=floor,
        history=len(values),
        z=settings.z,
    )


def _alert(coop: str, store: str, kind: str, **detail: Any) -> dict[str, Any]:
    return {
        "schema": ALERT_SCHEMA,
        "coop": coop,
        "store": store,
        "kind": kind,
        "raised_at": iso(int(time.time())),
        **detail,
    }


def _record(conn: Connection, alert_id: str, alert: dict[str, Any], window_s: int | None) -> str | None:
    """Insert once (alert_id is unique across workers); returns the payload when this call raised it."""
    text = published_json(alert)
    inserted = conn.execute(
        "INSERT INTO alerts (alert_id, store, kind, window_start_s, payload, raised_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (alert_id) DO NOTHING",
        (alert_id, alert["store"], alert["kind"], window_s, text, time.time()),
    )
    return text if inserted else None


def _alert_id(store: str, kind: str, window_s: int, start_s: int) -> str:
    """Unique per shop, kind and window; hourly ids keep their v1 form, so a restarted hub raises nothing twice."""
    if window_s == V1_IMPLIED_WINDOW_S:
        return f"{store}/{kind}/{start_s}"
    return f"{store}/{kind}/{window_name(window_s)}/{start_s}"


def footfall_alerts(
    conn: Connection, coop: str, settings: AlertSettings, windows: list[int], only_stores: set[str] | None = None
) -> list[tuple[str, str]]:
    """Judge every complete shop-window in `windows`; returns (topic, payload) of new alerts."""
    out: list[tuple[str, str]] = []
    current = [sw for sw in shop_windows(conn, windows) if only_stores is None or sw.store in only_stores]
    past = {sw.window_start_s - WEEK_S * i for sw in current for i in range(1, settings.weeks + 1)}
    footfall = {
        (h.store, h.window_seconds, h.window_start_s): float(h.footfall) for h in shop_windows(conn, sorted(past))
    }
    for sw in current:
        history = [
            footfall[key]
            for i in range(1, settings.weeks + 1)
            if (key := (sw.store, sw.window_seconds, sw.window_start_s - WEEK_S * i)) in footfall
        ]
        verdict = judge(float(sw.footfall), history, sw.noise_variance, settings)
        if verdict is None or verdict.kind is None:
            continue
        alert = _alert(
            coop,
            sw.store,
            verdict.kind,
            window={
                "start": iso(sw.window_start_s),
                "end": iso(sw.window_start_s + sw.window_seconds),
                "seconds": sw.window_seconds,
            },
            observed=verdict.observed,
            baseline=verdict.baseline,
            spread=verdict.spread,
            noise_floor=verdict.noise_floor,
            score=round(verdict.score, 3),
            z=verdict.z,
            history_weeks=verdict.history,
            method="seasonal median by weekday and time of day, spread max(1.4826 MAD, DP noise floor)",
        )
        text = _record(
            conn, _alert_id(sw.store, verdict.kind, sw.window_seconds, sw.window_start_s), alert, sw.window_start_s
        )
        if text:
            out.append((alert_topic(coop, sw.store), text))
    return out


def liveness_alerts(conn: Connection, coop: str, settings: AlertSettings, now: float) -> list[tuple[str, str]]:
    """Flag shops whose last will says offline, and shops silent for more than `silent_windows` windows."""
    out: list[tuple[str, str]] = []
    shops = stores(conn)
    newest = newest_per_length(shops)
    for shop in shops:
        store = shop["store"]
        if shop["state"] == "offline":
            alert = _alert(
                coop,
                store,
                "offline",
                connection=shop["connection"],
                detail="the shop's last will or goodbye says offline",
            )
            text = _record(conn, f"{store}/offline/{shop['connection']}", alert, None)
            if text:
                out.append((alert_topic(coop, store), text))
        last_window = shop["last_window_s"]
        if is_silent(shop, newest, settings, now):
            alert = _alert(
                coop,
                store,
                "silent",
                last_window=iso(int(last_window)) if last_window else None,
                detail=f"no summary or status for more than {settings.silent_windows} windows",
            )
            text = _record(conn, f"{store}/silent/{last_window}", alert, last_window)
            if text:
                out.append((alert_topic(coop, store), text))
    return out


def is_silent(shop: dict[str, Any], newest: dict[int, int], settings: AlertSettings, now: float) -> bool:
    """Nothing from the shop for more than `silent_windows` of its own windows: by hub time, or behind the newest
    window of its length (`newest`, from newest_per_length). A shop that sent only a status is judged on the
    agent's default window length."""
    window_s = int(shop["window_seconds"] or DEFAULT_WINDOW_S)
    limit = settings.silent_windows * window_s
    last_window, latest = shop["last_window_s"], newest.get(window_s)
    if latest is not None:
        # A window ahead of the hub's clock (the contract admits up to a day: clocks drift) must not make every
        # shop on time look behind it; the newest window counts only up to the hub's own time.
        latest = min(latest, int(now))
    behind = latest is not None and last_window is not None and latest - int(last_window) > limit
    return behind or now - float(shop["last_seen_at"]) > limit
