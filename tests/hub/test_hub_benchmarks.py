"""District benchmarks: quartiles, the k-shop threshold, the published payload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hub.benchmarks import benchmark_payload, quantile, refresh_benchmarks, weekday_hour_profile
from hub.contract import hub_validator
from hub.db import Connection
from hub.storage import store_batch
from tests.hub.test_hub_storage import T0, summary


@pytest.mark.parametrize("values", [[3], [1, 2], [5, 1, 9, 7], list(range(-5, 40, 3))])
def test_quantiles_match_numpy_linear(values: list[int]) -> None:
    for p in (0.25, 0.5, 0.75):
        assert quantile(sorted(values), p) == pytest.approx(float(np.quantile(values, p)))


def test_no_benchmark_below_k_shops() -> None:
    assert benchmark_payload("riverside", T0, 3600, [10, 20, 30, 40], k_min=5) is None
    payload = benchmark_payload("riverside", T0, 3600, [10, 20, 30, 40, 50], k_min=5)
    assert payload is not None and (payload["n_shops"], payload["median"], payload["p25"]) == (5, 30.0, 20.0)
    assert list(hub_validator("benchmark.v1.json").iter_errors(payload)) == []


def test_benchmarks_sum_doors_and_skip_incomplete_shops(conn: Connection) -> None:
    rows = []
    for i in range(3):
        rows += [
            summary(f"s{i}", 0, 1, entries=10 * (i + 1), door="front"),
            summary(f"s{i}", 0, 2, entries=1, door="back"),
        ]
    rows.append(summary("s3", 1, 3, entries=5, door="front"))  # s3 has two doors overall ...
    rows.append(summary("s3", 1, 4, entries=5, door="back"))
    rows.append(summary("s3", 0, 1, entries=999, door="front"))  # ... but only one in window 0: incomplete
    store_batch(conn, "w1", rows)
    published = refresh_benchmarks(conn, "riverside", 3, [T0])
    assert len(published) == 1
    topic, text = published[0]
    assert topic == "coop/v1/riverside/_hub/t1/benchmarks/footfall/2025-11-16T00:00:00Z"
    doc = json.loads(text)
    assert (doc["n_shops"], doc["p25"], doc["median"], doc["p75"]) == (3, 16.0, 21.0, 26.0)
    assert refresh_benchmarks(conn, "riverside", 3, [T0]) == []  # unchanged: not published again
    assert refresh_benchmarks(conn, "riverside", 4, [T0]) == []


def test_weekday_hour_profile_takes_the_median_over_weeks() -> None:
    rows = [
        {"window_start_s": T0 + 9 * 3600 + w * 7 * 86400, "p25": w, "median": 10 * w, "p75": 100 * w} for w in range(3)
    ]
    (cell,) = weekday_hour_profile(rows)
    assert (cell["weekday"], cell["hour"], cell["weeks"], cell["median"]) == (6, 9, 3, 10.0)
