"""The coop's district shape over a shop's own grid: profile x day effect per step (any scale).

The model (hub/forecast_model.py, received retained from the hub) holds, per stream, a profile per step of
the week and day factors: the actual factor of each recent day (the district's weather and events that
day), and recurring ones by MM-DD (holidays). The shop scales this shape to its own level
(models.coop_scaled), so nothing of any other shop's level is used.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from agent.forecast.models import Prior

UNUSUAL_LOG = 0.18  # a day whose district factor is further than this from 1 (in log) is unusual


def prior_for(stream_model: dict[str, Any], start: dt.date, steps_per_day: int, steps: int) -> Prior | None:
    """The district shape for `steps` steps from local midnight of `start`; None if the model does not fit."""
    profile = stream_model.get("profile")
    if int(stream_model.get("steps_per_day", 0)) != steps_per_day or not isinstance(profile, list):
        return None
    if len(profile) != 7 * steps_per_day:
        return None
    recent: dict[str, float] = stream_model.get("recent_effects", {})
    recurring: dict[str, float] = stream_model.get("calendar_effects", {})
    days = -(-steps // steps_per_day)
    out = np.empty(days * steps_per_day)
    unusual = np.zeros(days * steps_per_day, dtype=bool)
    prof = np.asarray(profile, dtype=float)
    for d in range(days):
        day = start + dt.timedelta(days=d)
        effect = recent.get(day.isoformat(), recurring.get(f"{day.month:02d}-{day.day:02d}", 1.0))
        w = day.weekday()
        unusual[d * steps_per_day : (d + 1) * steps_per_day] = abs(math.log(max(effect, 1e-3))) > UNUSUAL_LOG
        out[d * steps_per_day : (d + 1) * steps_per_day] = prof[w * steps_per_day : (w + 1) * steps_per_day] * effect
    return Prior(out[:steps], unusual[:steps])
