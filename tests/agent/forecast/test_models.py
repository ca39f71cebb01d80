"""Model selection, intervals and the coop blend on the simulated district (seeded: the outcome is fixed)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from agent.forecast.models import forecast_series, grid_for, seasonal_naive
from agent.forecast.prior import prior_for
from devtools.district import District, simulate
from hub.forecast_model import district_model
from tests.agent.forecast.district_rows import true_rows

WEEK = 168


@functools.cache
def district() -> District:
    return simulate(days=560, seed=11)


def test_the_chosen_model_is_the_best_on_held_out_weeks() -> None:
    d = district()
    y = d.footfall["shop-02"][: 450 * 24]
    fc = forecast_series(y, grid_for(d.start.toordinal(), 24, len(y) + WEEK), WEEK)
    local = {k: v for k, v in fc.holdout_mae.items() if k not in ("coop", "blend")}
    assert set(local) == {"day_profile", "seasonal_naive", "recent_weeks", "ridge_calendar"}
    assert fc.model == min(local, key=local.__getitem__)
    assert fc.naive_scale is not None and fc.naive_scale > 0


def test_a_year_of_history_beats_seasonal_naive_and_the_80_percent_interval_holds() -> None:
    d = district()
    model_err = naive_err = 0.0
    inside = hours = 0
    for shop in ("shop-00", "shop-01", "shop-02", "shop-03", "shop-05"):
        y = d.footfall[shop]
        for day in (400, 470, 540):
            n = day * 24
            grid = grid_for(d.start.toordinal(), 24, n + WEEK)
            fc = forecast_series(y[:n], grid, WEEK)
            truth = y[n : n + WEEK]
            model_err += float(np.abs(fc.point - truth).sum())
            naive_err += float(np.abs(seasonal_naive(y[:n].astype(float), grid, WEEK) - truth).sum())
            is_open = d.open_hours[shop][n : n + WEEK]
            inside += int(((truth >= fc.lo80) & (truth <= fc.hi80))[is_open].sum())
            hours += int(is_open.sum())
            assert np.all(fc.lo80 <= fc.point + 1e-9) and np.all(fc.point <= fc.hi80 + 1e-9)
    assert model_err / naive_err < 0.9
    assert 0.72 <= inside / hours <= 0.88


@pytest.mark.parametrize(("days", "model"), [(3, "day_profile"), (10, "seasonal_naive")])
def test_a_short_history_degrades_to_simpler_models(days: int, model: str) -> None:
    d = district()
    y = d.footfall["shop-04"][: days * 24]
    fc = forecast_series(y, grid_for(d.start.toordinal(), 24, len(y) + WEEK), WEEK)
    assert fc.model == model
    assert len(fc.point) == WEEK and np.all(fc.hi80 >= fc.lo80)


def test_under_a_day_of_history_is_refused_with_a_reason() -> None:
    d = district()
    with pytest.raises(ValueError, match="at least one whole day"):
        forecast_series(d.footfall["shop-04"][:20], grid_for(d.start.toordinal(), 24, 20 + WEEK), WEEK)


def test_a_new_shop_forecasts_better_with_the_coop_model() -> None:
    d = district()
    rows = true_rows(d)
    local = coop = 0.0
    weights = []
    for shop, first in (("shop-01", 400), ("shop-02", 430), ("shop-06", 470), ("shop-07", 500), ("shop-09", 520)):
        origin = first + 7
        model = district_model([r for r in rows if r[2] < rows[0][2] + origin * 86400 * 10**9])
        y = d.footfall[shop][first * 24 : origin * 24]
        grid = grid_for(d.start.toordinal() + first, 24, len(y) + WEEK)
        prior = prior_for(model["streams"]["footfall/hourly"], d.date(first), 24, len(y) + WEEK)
        truth = d.footfall[shop][origin * 24 : origin * 24 + WEEK]
        alone = forecast_series(y, grid, WEEK)
        helped = forecast_series(y, grid, WEEK, prior)
        assert alone.coop_weight is None and helped.coop_weight is not None
        weights.append(helped.coop_weight)
        local += float(np.abs(alone.point - truth).sum())
        coop += float(np.abs(helped.point - truth).sum())
    assert local / coop > 1.15
    assert min(weights) < 1.0  # the weight came from the held-out days, and the coop's shape earned some of it


def test_one_day_of_history_forecasts_with_the_default_spread() -> None:
    """Leaving the only day out leaves nothing: no backtest (it used to be a mean of nothing, NaN, and a
    failed fit at every refresh), and the interval is the default one, not a claim of certainty."""
    d = district()
    y = d.footfall["shop-04"][:24]
    fc = forecast_series(y, grid_for(d.start.toordinal(), 24, 24 + WEEK), WEEK)
    assert fc.model == "day_profile" and fc.holdout_mae == {}
    assert np.all(np.isfinite(fc.point)) and np.all(np.isfinite(fc.lo80)) and np.all(np.isfinite(fc.hi80))
    busy = fc.point > 5
    assert busy.any() and np.all((fc.hi80 - fc.lo80)[busy] > 1.0)
