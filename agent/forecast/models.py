"""Forecast one series (hourly footfall, or one category's daily sales) for the next week, with intervals.

Pure numpy on arrays; no I/O. The series starts at local midnight and has `steps_per_day` steps a day (24 or
1), so a week is P = 7 * steps_per_day steps. Candidates, each needing more history than the last:
- `day_profile`: the mean of each step of the day over the days seen (anything from one day on);
- `seasonal_naive`: last week again (the usual baseline, and the MASE scale);
- `recent_weeks`: the mean of the same step of the week over the last four weeks;
- `ridge_calendar`: a ridge regression of log1p(y) on step-of-week indicators and, from 300 days on,
  two annual harmonics, weighting recent weeks more (half-life eight weeks) so a shop's level can move;
- `coop` and `blend`: the coop's district shape (hub/forecast_model.py) scaled to this shop's own level per
  step of the day, and a weighted mean of it with the best local candidate.
The model is chosen by held-out error (the last weeks, each forecast from the data before it), and a short
history is scored leave-one-day-out instead; the blend weight is chosen the same way. The intervals come
from the same held-out residuals: a variance a*yhat + b*yhat^2 (counting noise plus a day's shared factor)
fitted to them, and the empirical 10 % and 90 % quantiles of the standardised residuals.
"""

from __future__ import annotations

import dataclasses

import numpy as np

Array = np.ndarray
HALF_LIFE_WEEKS = 8.0
RIDGE_LAMBDA = 1.0
MAX_FIT_DAYS = 420
HOD_SHRINK, DOW_SHRINK = 0.05, 0.05  # pseudo-counts of the coop scaling, as shares of a mean cell
OPEN_PRIOR = 0.9  # older history adds little and costs time on a Pi
BLEND_WEIGHTS = tuple(w / 10 for w in range(11))  # the local share of a blend
Z_NORMAL_80 = 1.2815515655446004


@dataclasses.dataclass(frozen=True)
class Grid:
    """Calendar of a series: weekday and day of year of each step, and steps per day."""

    steps_per_day: int
    weekday: Array  # (steps,) 0 = Monday
    doy: Array  # (steps,) 1..366

    @property
    def period(self) -> int:
        return 7 * self.steps_per_day

    def phase(self) -> Array:
        """Step of the week of each step (0 .. period - 1)."""
        return self.weekday * self.steps_per_day + np.arange(len(self.weekday)) % self.steps_per_day

    def head(self, n: int) -> Grid:
        return Grid(self.steps_per_day, self.weekday[:n], self.doy[:n])


@dataclasses.dataclass
class SeriesForecast:
    """The next steps of one series: model, point forecast, 80 % interval, and how it was chosen."""

    model: str
    point: Array
    lo80: Array
    hi80: Array
    holdout_mae: dict[str, float]
    naive_scale: float | None  # in-sample MAE of seasonal naive (the MASE denominator); None under a week
    history_steps: int
    coop_weight: float | None = None  # the local share when blended with the coop (None: no coop used)


@dataclasses.dataclass(frozen=True)
class Prior:
    """The coop's district shape over a series' steps (history and horizon), and its unusual days."""

    shape: Array
    unusual: Array  # (steps,) bool: the district's day was far from usual (a holiday, its eve)

    def head(self, n: int) -> Prior:
        return Prior(self.shape[:n], self.unusual[:n])


def day_profile(y: Array, grid: Grid, horizon: int) -> Array:
    spd = grid.steps_per_day
    days = len(y) // spd
    prof = y[-days * spd :].reshape(days, spd).mean(axis=0) if days else np.zeros(spd)
    start = len(y) % spd
    return np.asarray(prof[(start + np.arange(horizon)) % spd], dtype=float)


def seasonal_naive(y: Array, grid: Grid, horizon: int) -> Array:
    p = grid.period
    last = y[-p:]
    return np.asarray(last[np.arange(horizon) % p], dtype=float)


def recent_weeks(y: Array, grid: Grid, horizon: int, weeks: int = 4) -> Array:
    p = grid.period
    k = min(weeks, len(y) // p)
    block = y[len(y) - k * p :].reshape(k, p).mean(axis=0)
    return np.asarray(block[np.arange(horizon) % p], dtype=float)


def _features(grid: Grid, annual: bool) -> Array:
    phase = grid.phase()
    cols = [np.eye(grid.period)[phase]]
    if annual:
        angle = 2 * np.pi * grid.doy / 365.25
        cols.append(np.stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)], axis=1))
    return np.hstack(cols)


def ridge_calendar(y: Array, grid: Grid, horizon: int, future: Grid | None = None) -> Array:
    """Weighted ridge on log1p(y); `future` is the grid of the `horizon` steps after y."""
    spd = grid.steps_per_day
    keep = min(len(y), MAX_FIT_DAYS * spd)
    y_fit, g_fit = y[-keep:], Grid(spd, grid.weekday[len(y) - keep : len(y)], grid.doy[len(y) - keep : len(y)])
    annual = keep >= 300 * spd
    x = _features(g_fit, annual)
    age_weeks = (keep - 1 - np.arange(keep)) / grid.period
    w = 0.5 ** (age_weeks / HALF_LIFE_WEEKS)
    xtw = x.T * w
    beta = np.linalg.solve(xtw @ x + RIDGE_LAMBDA * np.eye(x.shape[1]), xtw @ np.log1p(y_fit))
    if future is None:
        raise ValueError("ridge_calendar needs the grid of the forecast steps")
    return np.asarray(np.clip(np.expm1(_features(future, annual) @ beta), 0.0, None))


def coop_scaled(
    y: Array, prior: Array, spd: int, first_weekday: int, leave_out: int | None = None, unusual: Array | None = None
) -> Array:
    """The coop's shape scaled to this shop: its level, then its own step-of-day and weekday ratios to the
    shape (two alternating passes, each ratio shrunk towards 1 by pseudo-counts so that one quiet day or hour
    does not zero it). `prior` covers the history y and the steps after it; y[0] is on `first_weekday`.
    `leave_out` names a day of y whose own values are not used (the leave-one-day-out score); `unusual` marks
    steps of days the district found far from usual (a holiday: this shop may have shut while others opened),
    which would tell little about this shop's usual ratios and are not used either."""
    n = len(y)
    steps = np.arange(len(prior))
    hod, dow = steps % spd, (first_weekday + steps // spd) % 7
    used = np.ones(n)
    if leave_out is not None:
        used[leave_out * spd : (leave_out + 1) * spd] = 0.0
    if unusual is not None and not unusual[:n].all():
        used[unusual[:n]] = 0.0
    total = (prior[:n] * used).sum()
    fitted = prior * ((y * used).sum() / total if total > 0 else 0.0)
    for _ in range(2):
        for key, size, share in ((hod, spd, HOD_SHRINK), (dow, 7, DOW_SHRINK)):
            own = np.bincount(key[:n], weights=y * used, minlength=size)
            fit = np.bincount(key[:n], weights=fitted[:n] * used, minlength=size)
            pseudo = share * fit.mean() if fit.mean() > 0 else 1.0
            fitted = fitted * ((own + pseudo) / (fit + pseudo))[key]
    # An hour of the week that was empty every time it was seen, where the scaled shape expected people, was
    # most likely closed (opening hours differ by weekday, which the two ratios cannot express): scale it by
    # the posterior that it is open, a priori OPEN_PRIOR, with Poisson odds exp(-expected) of seeing nobody.
    period = 7 * spd
    phase = (first_weekday * spd + steps) % period
    seen = np.bincount(phase[:n], weights=used, minlength=period)
    nonzero = np.bincount(phase[:n], weights=used * (y > 0), minlength=period)
    expected = np.bincount(phase[:n], weights=used * fitted[:n], minlength=period)
    empty = (seen > 0) & (nonzero == 0)
    odds = OPEN_PRIOR * np.exp(-expected)
    p_open = np.where(empty, odds / (odds + (1 - OPEN_PRIOR)), 1.0)
    return np.asarray(fitted * p_open[phase])


def dispersion(point: Array, actual: Array) -> tuple[float, float, float, float]:
    """(a, b, q10, q90): variance a*yhat + b*yhat^2 fitted to residuals, and quantiles of standardised ones."""
    active = (point >= 0.5) | (actual > 0)
    p, r = point[active], (actual - point)[active]
    if len(p) < 10:
        return 1.0, 0.05, -Z_NORMAL_80, Z_NORMAL_80
    design = np.stack([p, p * p], axis=1)
    coef, *_ = np.linalg.lstsq(design, r * r, rcond=None)
    a, b = max(float(coef[0]), 0.0), max(float(coef[1]), 0.0)
    if a == 0.0 and b == 0.0:
        a = float(np.mean(r * r) / max(np.mean(p), 1e-9))
    z = r / np.sqrt(a * p + b * p * p + 0.25)
    if len(z) < 30:
        return a, b, -Z_NORMAL_80, Z_NORMAL_80
    return a, b, float(np.quantile(z, 0.1)), float(np.quantile(z, 0.9))


def interval(point: Array, spread: tuple[float, float, float, float]) -> tuple[Array, Array]:
    a, b, q10, q90 = spread
    sd = np.sqrt(a * point + b * point * point + 0.25)
    return np.clip(point + q10 * sd, 0.0, None), np.clip(point + q90 * sd, 0.0, None)


def _local_candidates(n: int, period: int) -> list[str]:
    names = ["day_profile"]
    if n >= period:
        names += ["seasonal_naive", "recent_weeks"]
    if n >= 3 * period:
        names.append("ridge_calendar")
    return names


def _predict(name: str, y: Array, grid: Grid, horizon: int) -> Array:
    """Candidate `name` from history y on grid[:len(y)], for the `horizon` steps after it."""
    n = len(y)
    if name == "day_profile":
        return day_profile(y, grid, horizon)
    if name == "seasonal_naive":
        return seasonal_naive(y, grid, horizon)
    if name == "recent_weeks":
        return recent_weeks(y, grid, horizon)
    future = Grid(grid.steps_per_day, grid.weekday[n : n + horizon], grid.doy[n : n + horizon])
    return ridge_calendar(y, grid.head(n), horizon, future)


def _backtests(
    y: Array, grid: Grid, prior: Prior | None, names: list[str]
) -> tuple[dict[str, list[Array]], list[Array]]:
    """Held-out predictions of each candidate: the last weeks (each from what came before), or, under three
    weeks of history, each day left out in turn (predicted by day_profile of the rest, and by the coop)."""
    p, spd, n = grid.period, grid.steps_per_day, len(y)
    first = int(grid.weekday[0])
    preds: dict[str, list[Array]] = {k: [] for k in names + (["coop"] if prior is not None else [])}
    actual: list[Array] = []
    if n >= 3 * p:
        folds = min(4, n // p - 2)
        for f in range(folds, 0, -1):
            cut = n - f * p
            for name in names:
                if name in _local_candidates(cut, p):
                    preds[name].append(_predict(name, y[:cut], grid, p))
            if prior is not None:
                preds["coop"].append(_scaled(y[:cut], prior.head(cut + p), spd, first)[cut:])
            actual.append(y[cut : cut + p])
        preds = {k: v for k, v in preds.items() if len(v) == len(actual)}
        return preds, actual
    days = n // spd
    if days < 2:  # leaving the only day out leaves nothing to predict it from: no held-out evidence
        return {}, []
    for d in range(days):
        keep = np.ones(n, dtype=bool)
        keep[d * spd : (d + 1) * spd] = False
        rest = y[keep].reshape(-1, spd)
        preds["day_profile"].append(rest.mean(axis=0))
        if prior is not None:
            scaled = _scaled(y, prior.head(n), spd, first, leave_out=d)
            preds["coop"].append(scaled[d * spd : (d + 1) * spd])
        actual.append(y[d * spd : (d + 1) * spd])
    return {k: v for k, v in preds.items() if len(v) == len(actual)}, actual


def _mae(pred: list[Array], actual: list[Array]) -> float:
    return float(np.mean(np.abs(np.concatenate(pred) - np.concatenate(actual))))


def _scaled(y: Array, prior: Prior, spd: int, first: int, leave_out: int | None = None) -> Array:
    return coop_scaled(y, prior.shape, spd, first, leave_out, prior.unusual)


def forecast_series(y: Array, grid: Grid, horizon: int, prior: Prior | None = None) -> SeriesForecast:
    """Forecast the `horizon` steps after y. `grid` covers y and the horizon; `prior`, when given, is the
    coop's district shape over the same steps (any scale). Needs at least one whole day of history."""
    y = np.asarray(y, dtype=float)
    n, p, spd = len(y), grid.period, grid.steps_per_day
    if n < spd:
        raise ValueError(f"a forecast needs at least one whole day of history ({spd} steps), not {n}")
    if prior is not None and (len(prior.shape) < n + horizon or prior.shape[:n].sum() <= 0):
        prior = None
    names = _local_candidates(n, p)
    preds, actual = _backtests(y, grid, prior, names)
    scores = {k: _mae(v, actual) for k, v in preds.items()}
    local = {k: s for k, s in scores.items() if k != "coop"}
    best_local = min(local, key=local.__getitem__) if local else "day_profile"
    chosen, weight = best_local, None
    held_pred = preds.get(best_local)
    if prior is not None and "coop" in preds:
        blends = {w: _mae([w * a + (1 - w) * b for a, b in zip(preds[best_local], preds["coop"], strict=True)], actual)
                  for w in BLEND_WEIGHTS}  # fmt: skip
        weight = min(blends, key=blends.__getitem__)
        scores["blend"] = blends[weight]
        if weight < 1.0:
            chosen = "blend"
            held_pred = [weight * a + (1 - weight) * b for a, b in zip(preds[best_local], preds["coop"], strict=True)]
    # In short histories the leave-one-day-out stand-in for last week is day_profile; the forecast itself
    # still uses last week once there is one (the truer local estimate of each hour of the week).
    local_name = best_local if n >= 3 * p or n < p else "seasonal_naive"
    point = _predict(local_name, y, grid, horizon)
    if chosen == "blend" and prior is not None and weight is not None:
        coop = _scaled(y, prior.head(n + horizon), spd, int(grid.weekday[0]))[n:]
        point = weight * point + (1 - weight) * coop
    # Without held-out predictions there is no evidence of the spread: the default (dispersion of too few
    # points), never the zero residuals of the forecast against itself, which would claim certainty.
    empty = np.zeros(0)
    spread = dispersion(np.concatenate(held_pred), np.concatenate(actual)) if held_pred else dispersion(empty, empty)
    lo, hi = interval(point, spread)
    scale = float(np.mean(np.abs(y[p:] - y[:-p]))) if n > p else None
    label = chosen if chosen == "blend" else local_name
    return SeriesForecast(label, point, lo, hi, scores, scale, n, weight)


def grid_for(start_ordinal: int, steps_per_day: int, steps: int) -> Grid:
    """The grid of `steps` steps from local midnight of the day with proleptic ordinal `start_ordinal`."""
    import datetime as dt

    days = -(-steps // steps_per_day)
    dates = [dt.date.fromordinal(start_ordinal + d) for d in range(days)]
    weekday = np.repeat([d.weekday() for d in dates], steps_per_day)[:steps]
    doy = np.repeat([d.timetuple().tm_yday for d in dates], steps_per_day)[:steps]
    return Grid(steps_per_day, weekday, doy)
