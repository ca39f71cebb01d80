"""Early warnings against the forecast, in words an owner reads."""

from __future__ import annotations

from agent.forecast.early_warning import footfall_warning

# A day's forecast: closed until 08:00 and from 18:00; 40 people an hour expected, 80 % range 30 to 50.
FORECAST = [(40.0, 30.0, 50.0) if 8 <= h < 18 else (0.0, 0.0, 0.8) for h in range(24)]


def test_a_shortfall_since_ten_reads_as_percent_under_forecast_since_ten() -> None:
    actual = [0] * 8 + [41, 39] + [24] * 4 + [0] * 10  # 08-10 as forecast, then 40 % fewer
    found = footfall_warning(actual, FORECAST, hour_now=14)
    assert found is not None
    assert found.words() == "footfall 40 % under forecast since 10:00 (96 people, forecast about 160)"


def test_a_busy_afternoon_reads_as_over_forecast() -> None:
    actual = [0] * 8 + [40] * 5 + [70] * 3 + [0] * 8
    found = footfall_warning(actual, FORECAST, hour_now=16)
    assert found is not None and found.since_hour == 13 and found.words().startswith("footfall 75 % over forecast")


def test_an_ordinary_day_and_closed_hours_raise_nothing() -> None:
    assert footfall_warning([0] * 8 + [44, 35, 38, 47, 36] + [0] * 11, FORECAST, hour_now=13) is None
    assert footfall_warning([0] * 24, FORECAST, hour_now=8) is None  # before opening: nothing expected yet


def test_the_hour_in_progress_is_not_judged() -> None:
    actual = [0] * 8 + [40, 40, 40, 2] + [0] * 12  # 11:00 has only just begun
    assert footfall_warning(actual, FORECAST, hour_now=11) is None
