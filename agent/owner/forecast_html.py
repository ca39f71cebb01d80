"""The forecast section of the owner's page: the next 7 days in plain words, and today's warning."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from agent.forecast.words import FOOTFALL_DAY, model_words
from agent.owner.localtime import DAYS, money
from agent.store import forecasts as sql


def forecast_html(rep: dict[str, Any] | None, currency: str) -> str:
    """The section (already escaped); says plainly when there is no forecast yet, or why the last one failed."""
    out = ['<h2 id="forecast">Forecast, next 7 days</h2>']
    if rep is None or not rep.get("available"):
        why = f" The last attempt failed: {escape(rep['error'])}." if rep and rep.get("error") else ""
        out.append(f"<p>No forecast yet: the first is made once this box holds a whole day of counts.{why}</p>")
        return "".join(out)
    if rep["warning"]:
        out.append(f'<p class="forecast-warning state-refusing">Today: {escape(rep["warning"])}.</p>')
    made = escape(rep["made_local"])
    out.append(
        f"<p>Made {made} on this box from your own data only; nothing was sent to make it. Ranges hold 80 % of"
        " days.</p>"
    )
    if rep["error"]:
        out.append(f"<p>The latest refresh failed ({escape(rep['error'])}); this is the previous forecast.</p>")
    rows = []
    for d in rep["days"]:
        day = dt.date.fromisoformat(d["day"])
        busiest = f"{d['busiest_hour']:02d}:00 (about {d['busiest_people']})" if d["busiest_people"] else "closed"
        rows.append(
            f'<tr data-day="{escape(d["day"])}" data-people="{d["people"]}"><td>{DAYS[day.weekday()]} {day.day}'
            f" {day:%b}</td><td>{d['people']}</td><td>{d['lo80']} to {d['hi80']}</td><td>{escape(busiest)}</td></tr>"
        )
    if rows:
        out.append(
            '<div class="scroll"><table><thead><tr><th>day</th><th>people</th><th>range</th><th>busiest hour</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    model = rep["models"].get(FOOTFALL_DAY)
    if model:
        out.append(f'<p class="small">How: {escape(model_words(model))}, {model["history_days"]} days of history.</p>')
    for category, values in sorted(rep["categories"].items()):
        cells = ", ".join(
            f"{DAYS[dt.date.fromisoformat(v['day']).weekday()][:3]} {money(v['cents'], currency)}" for v in values
        )
        out.append(
            f'<p class="forecast-sales" data-category="{escape(category)}">{escape(category)}: {escape(cells)}</p>'
        )
    if any(m["model"] == "blend" for m in rep["models"].values()) or sql.FOOTFALL not in rep["models"]:
        out.append(
            '<p class="small">Where your history is short it leans on the coop\'s district pattern, which the hub'
            " built only from secure district sums (their privacy cost is in your budget above).</p>"
        )
    return "".join(out)
