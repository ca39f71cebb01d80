"""What the dashboard and its JSON API show, per window length, and why a part is empty when it is.

Shops are compared only with shops on the same window length, so the district view has one section per
length some shop publishes (or some benchmark was computed for); a shop's own page is on its own length.
Where a section has nothing to show, `reason` says why (no summary yet, refused messages, too few shops
for k_min, incomplete windows), so nobody is left with a bare "no data yet".
"""

from __future__ import annotations

import json
import time
from typing import Any

from agent.contract import window_name
from hub.benchmarks import BASKET_VALUE, SALES_SHARE, weekday_hour_profile
from hub.config import HubConfig
from hub.contract import iso, parse_iso
from hub.db import Connection
from hub.early_warning import is_silent
from hub.queries import (
    alerts,
    benchmarks,
    latest_benchmark_payload,
    latest_window,
    newest_per_length,
    open_gaps,
    rejections,
    shop_sales,
    shop_streams,
    shop_windows,
    stores,
    window_lengths,
)
from hub.sales_position import positions
from hub.storage import counters

RECENT_WINDOWS = 24 * 7
HISTORY = 24 * 7 * 8  # benchmarks read for the typical-week profile


def status_data(conn: Connection, config: HubConfig, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    gaps = open_gaps(conn)
    rows = stores(conn)
    newest = newest_per_length(rows)
    shops = []
    for shop in rows:
        shop_gaps = [g for g in gaps if g["store"] == shop["store"]]
        seconds = shop["window_seconds"]
        shops.append(
            {
                **shop,
                "window": window_name(int(seconds)) if seconds is not None else None,
                "last_window": iso(int(shop["last_window_s"])) if shop["last_window_s"] is not None else None,
                "silent": is_silent(shop, newest, config.alerts, now),
                "open_gaps": len(shop_gaps),
                "missing": sum(g["last_missing"] - g["first_missing"] + 1 for g in shop_gaps),
            }
        )
    return {"coop": config.coop, "stores": shops, "counters": counters(conn), "newest_window": latest_window(conn)}


def _district_shares(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The district part of a published sales-share benchmark (already an aggregate over >= k shops)."""
    if payload is None:
        return None
    return {
        "window": payload["window"]["start"],
        "window_start_s": parse_iso(payload["window"]["start"]),
        "window_seconds": payload["window"]["seconds"],
        "n_shops": payload["n_shops"],
        "categories": payload.get("categories") or {},
    }


def nothing_received_reason(conn: Connection, config: HubConfig) -> str:
    """Why the hub has no summary at all."""
    refused, latest = rejections(conn)
    if refused:
        return (
            f"No summary stored yet: {refused} message(s) were refused, the latest because: {latest}"
            " (counted per store and reason in table `rejected_summary`)."
        )
    return f"No summary has arrived yet from any shop (the hub subscribes to {config.topic_filter})."


def footfall_reason(conn: Connection, config: HubConfig, window_s: int, n_shops: int) -> str:
    """Why a window length has no footfall benchmark: no complete shop-window, or fewer than k_min shops in one."""
    name = window_name(window_s)
    newest = max(
        (
            s["last_window_s"]
            for s in stores(conn)
            if s["window_seconds"] == window_s and s["last_window_s"] is not None
        ),
        default=None,
    )
    recent = [] if newest is None else [int(newest) - i * window_s for i in range(RECENT_WINDOWS)]
    per_window: dict[int, int] = {}
    for sw in shop_windows(conn, recent, window_s=window_s):
        per_window[sw.window_start_s] = per_window.get(sw.window_start_s, 0) + 1
    best = max(per_window.values(), default=0)
    if best == 0:
        return (
            f"No {name} benchmark yet: none of the {n_shops} shop(s) on {name} windows has a complete window"
            " (its store total, or every one of its doors, released and not suppressed)."
        )
    return (
        f"No {name} benchmark yet: at most {best} shop(s) completed the same {name} window, and a district"
        f" benchmark needs at least k_min = {config.k_min} shops."
    )


T2_HIDDEN = (
    "District quartiles of POS sales (tier 2) are shown to the coop admin only: with few shops they are"
    " single shops' values. Each shop sees its own position among the district on its own page."
)


def district_section(
    conn: Connection, config: HubConfig, window_s: int, n_shops: int, admin: bool = True
) -> dict[str, Any]:
    """The district view of one window length; tier-2 quartiles only for the admin (`admin`)."""
    rows = benchmarks(conn, window_s=window_s, limit=HISTORY)
    section: dict[str, Any] = {
        "window_seconds": window_s,
        "window": window_name(window_s),
        "shops": n_shops,
        "benchmarks": rows,
        "weekday_hour": weekday_hour_profile(rows),
        "reason": None if rows else footfall_reason(conn, config, window_s, n_shops),
    }
    if not admin:  # tier 2 stays tier 2: nothing derived from other shops' sales for a shop account
        return {**section, "categories": None, "basket_value": [], "sales_note": T2_HIDDEN}
    return {
        **section,
        # Category sales shares of the newest window with >= k shops (t2 POS streams, post-processing).
        "categories": _district_shares(latest_benchmark_payload(conn, SALES_SHARE, window_s=window_s)),
        "basket_value": benchmarks(conn, BASKET_VALUE, limit=RECENT_WINDOWS, window_s=window_s),
    }


def district_data(conn: Connection, config: HubConfig, admin: bool = True) -> dict[str, Any]:
    """One section per window length; the top-level fields repeat the section most shops use. A shop account
    (`admin` false) gets no figure derived from other shops' tier-2 values."""
    per_length: dict[int, int] = {}
    for shop in stores(conn):
        if shop["window_seconds"] is not None:
            per_length[int(shop["window_seconds"])] = per_length.get(int(shop["window_seconds"]), 0) + 1
    sections = [district_section(conn, config, s, per_length.get(s, 0), admin) for s in window_lengths(conn)]
    main = max(sections, key=lambda s: (s["shops"], -s["window_seconds"]), default=None)
    return {
        "coop": config.coop,
        "k_min": config.k_min,
        "window_seconds": main["window_seconds"] if main else None,
        "benchmarks": main["benchmarks"] if main else [],
        "weekday_hour": main["weekday_hour"] if main else [],
        "categories": main["categories"] if main else None,
        "basket_value": main["basket_value"] if main else [],
        "windows": sections,
        "sales_note": None if admin else T2_HIDDEN,
        "reason": main["reason"] if main else nothing_received_reason(conn, config),
    }


def shop_categories(
    conn: Connection, store: str, window_s: int | None = None, k_min: int = 5, admin: bool = True
) -> dict[str, Any] | None:
    """The shop's own category shares (its own t2 figures) for its newest window that has a district
    benchmark (else its newest window), with its own band among the district (hub/sales_position.py); the
    district quartiles only for the admin (`admin`), never for a shop account."""
    own = [s for s in shop_sales(conn, store=store, window_s=window_s) if s.shares() is not None]
    if not own:
        return None
    seconds = own[-1].window_seconds if window_s is None else window_s
    own = [s for s in own if s.window_seconds == seconds]
    published = {int(b["window_start_s"]) for b in benchmarks(conn, SALES_SHARE, window_s=seconds)}
    chosen = next((s for s in reversed(own) if s.window_start_s in published), own[-1])
    everyone = shop_sales(conn, [chosen.window_start_s], window_s=seconds)
    shares = {s.store: share for s in everyone if (share := s.shares())}
    values = {s.store: basket for s in everyone if (basket := s.basket_value()) is not None}
    position = positions("", chosen.window_start_s, seconds, shares, values, k_min).get(store)
    out: dict[str, Any] = {
        "window": iso(chosen.window_start_s),
        "window_start_s": chosen.window_start_s,
        "window_seconds": seconds,
        "own": chosen.shares(),
        "own_revenue_cents": chosen.revenue,
        "own_baskets": chosen.baskets,
        "own_basket_value": chosen.basket_value(),
        "position": None
        if position is None
        else {"categories": position["categories"], "basket_value": position["basket_value"]},
        "district": None,
        "district_basket_value": None,
    }
    if admin:
        district = _district_shares(latest_benchmark_payload(conn, SALES_SHARE, chosen.window_start_s, seconds))
        dv = latest_benchmark_payload(conn, BASKET_VALUE, chosen.window_start_s, seconds)
        out["district"] = district
        out["district_basket_value"] = {k: dv[k] for k in ("n_shops", "p25", "median", "p75")} if dv else None
    return out


def _shop_reason(
    conn: Connection, config: HubConfig, store: str, window_s: int | None, own: list[Any], band: dict[int, Any]
) -> str | None:
    """Why the shop's footfall chart, or its district band, is empty."""
    if window_s is None:
        return "This shop has sent only its status so far: no summary has arrived from it."
    name = window_name(window_s)
    if not own:
        released = sorted({r["stream"] for r in shop_streams(conn, store)})
        if not any(r.startswith("footfall") for r in released):
            return f"This shop releases no footfall stream (only {', '.join(released) or 'nothing yet'})."
        return (
            f"No complete {name} window from this shop yet: its store total, or every one of its doors, must be"
            " released and not suppressed."
        )
    if not any(s.window_start_s in band for s in own):
        return (
            f"No district band for these {name} windows: fewer than k_min = {config.k_min} shops completed"
            " the same window."
        )
    return None


def shop_data(conn: Connection, config: HubConfig, store: str, admin: bool = True) -> dict[str, Any] | None:
    """One shop's page; a shop account (`admin` false) sees no other shop's tier-2 figure, not even a quartile."""
    status = next((s for s in status_data(conn, config)["stores"] if s["store"] == store), None)
    if status is None:
        return None
    window_s = int(status["window_seconds"]) if status["window_seconds"] is not None else None
    own = [] if window_s is None else shop_windows(conn, store=store, window_s=window_s)[-RECENT_WINDOWS:]
    band = {b["window_start_s"]: b for b in benchmarks(conn, window_s=window_s)} if window_s else {}
    return {
        "store": store,
        "status": status,
        "window_seconds": window_s,
        "window": status["window"],
        "footfall": [
            {
                "window_start_s": s.window_start_s,
                "window": iso(s.window_start_s),
                "footfall": s.footfall,
                "district": {k: band[s.window_start_s][k] for k in ("n_shops", "p25", "median", "p75")}
                if s.window_start_s in band
                else None,
            }
            for s in own
        ],
        "reason": _shop_reason(conn, config, store, window_s, own, band),
        "released": shop_streams(conn, store),
        "alerts": [{**a, "payload": json.loads(a["payload"])} for a in alerts(conn, store)],
        "gaps": open_gaps(conn, store),
        "categories": shop_categories(conn, store, window_s, config.k_min, admin),
    }
