"""The stored forecast as an owner reads it (`shopkeeper forecast`, the local page, `status`): plain words,
local time, and the same facts as a dict for `--json`. Pure Python: runs in the resident agent too."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from agent.forecast.early_warning import footfall_warning
from agent.owner.localtime import DAYS, LocalZone, money
from agent.store import forecasts as sql

FOOTFALL_DAY = "footfall:day"
MODEL_WORDS = {
    "day_profile": "the average day so far (under a week of history)",
    "seasonal_naive": "last week again",
    "recent_weeks": "the average of the last four weeks",
    "ridge_calendar": "a calendar regression over your history",
    "blend": "your own counts blended with the coop's district pattern",
}


def _day_words(day: str) -> str:
    d = dt.date.fromisoformat(day)
    return f"{DAYS[d.weekday()]} {d.day} {d:%b}"


def report(conn: sqlite3.Connection, zone: LocalZone, now_ns: int) -> dict[str, Any] | None:
    """The newest forecast as plain facts, with today's warning and the last failure; None if there is none."""
    run = sql.latest_run(conn)
    error = conn.execute("SELECT value FROM agent_state WHERE key = 'forecast_error'").fetchone()
    if run is None:
        return {"available": False, "error": error[0] if error else ""} if error else None
    out: dict[str, Any] = {
        "available": True,
        "zone": zone.name,
        "made_local": zone.clock(int(run["made_wall_ns"])),
        "error": error[0] if error else "",
        "days": [],
        "categories": {},
        "models": {},
    }
    series = run["series"]
    for name, s in series.items():
        out["models"][name] = {k: s[k] for k in ("model", "coop_weight", "history_days", "holdout_mae")}
    hourly = series.get(sql.FOOTFALL, {}).get("values", [])
    for v in series.get(FOOTFALL_DAY, {}).get("values", []):
        hours = [h for h in hourly if h["day"] == v["day"]]
        peak = max(hours, key=lambda h: h["point"]) if hours else None
        out["days"].append({
            "day": v["day"], "people": round(v["point"]), "lo80": round(v["lo80"]), "hi80": round(v["hi80"]),
            "busiest_hour": peak["step"] if peak else None, "busiest_people": round(peak["point"]) if peak else None,
            "hours": [{"hour": h["step"], "people": round(h["point"], 1), "lo80": round(h["lo80"], 1),
                       "hi80": round(h["hi80"], 1)} for h in hours],
        })  # fmt: skip
    for name, s in series.items():
        if name.startswith(sql.SALES_PREFIX):
            out["categories"][name.removeprefix(sql.SALES_PREFIX)] = [
                {"day": v["day"], "cents": round(v["point"]), "lo80_cents": round(v["lo80"]),
                 "hi80_cents": round(v["hi80"])}
                for v in s["values"]
            ]  # fmt: skip
    out["warning"] = warning_today(conn, zone, now_ns, hourly)
    return out


def warning_today(conn: sqlite3.Connection, zone: LocalZone, now_ns: int, hourly: list[dict[str, Any]]) -> str:
    """Today's early warning in words, or "" (no forecast for today, or nothing unusual)."""
    now = zone.at(now_ns)
    today = [h for h in hourly if h["day"] == now.date().isoformat()]
    if len(today) != 24:
        return ""
    forecast = [(h["point"], h["lo80"], h["hi80"]) for h in sorted(today, key=lambda h: h["step"])]
    actual = sql.footfall_today(conn, zone, now.date(), now_ns)
    found = footfall_warning(actual, forecast, now.hour)
    return found.words() if found else ""


def model_words(model: dict[str, Any]) -> str:
    text = MODEL_WORDS.get(model["model"], model["model"])
    if model["model"] == "blend" and model.get("coop_weight") is not None:
        text += f" (your own counts weigh {model['coop_weight'] * 100:.0f} %, chosen on held-out days)"
    return text


def format_report(rep: dict[str, Any] | None, currency: str = "") -> str:
    """`shopkeeper forecast` in plain words."""
    if rep is None:
        return "No forecast yet: the first is made once the box holds a whole day of the shop's own counts."
    if not rep["available"]:
        return f"No forecast yet. The last attempt failed: {rep['error']}"
    lines = [f"Forecast made {rep['made_local']} ({rep['zone']} time), from this shop's own data on this box."]
    if rep["error"]:
        lines.append(f"The latest refresh failed ({rep['error']}); this is the previous forecast.")
    if rep["warning"]:
        lines.append(f"Today: {rep['warning']}.")
    if rep["days"]:
        model = rep["models"].get(FOOTFALL_DAY) or rep["models"].get(sql.FOOTFALL)
        lines.append("")
        lines.append("People coming in, next 7 days (80 % of days fall in the range):")
        for d in rep["days"]:
            busiest = (f", busiest {d['busiest_hour']:02d}:00-{d['busiest_hour'] + 1:02d}:00 (about"
                       f" {d['busiest_people']})") if d["busiest_people"] else ""  # fmt: skip
            if d["hi80"] <= 1:
                lines.append(f"  {_day_words(d['day'])}: closed, by your counts")
                continue
            lines.append(f"  {_day_words(d['day'])}: about {d['people']} ({d['lo80']} to {d['hi80']}){busiest}")
        hours = rep["models"].get(sql.FOOTFALL)
        if model and hours:
            lines.append(f"  How: days by {model_words(model)}; hours by {model_words(hours)};"
                         f" {hours['history_days']} days of history.")  # fmt: skip
    if rep["categories"]:
        lines += ["", "Sales by category, next 7 days (80 % range in brackets):"]
    for category, values in sorted(rep["categories"].items()):
        days = "; ".join(
            f"{DAYS[dt.date.fromisoformat(v['day']).weekday()][:3]} {money(v['cents'])}"
            f" ({money(v['lo80_cents'])}-{money(v['hi80_cents'])})"
            for v in values
        )
        lines.append(f"  {category}{' in ' + currency if currency else ''}: {days}")
    lines.append("")
    lines.append("Nothing was sent to make this forecast; it costs no privacy budget.")
    if any(m["model"] == "blend" for m in rep["models"].values()):
        lines.append(
            "It uses the coop's district pattern, built only from the secure district sums your box took part"
            " in (their cost is in your ledger)."
        )
    return "\n".join(lines)
