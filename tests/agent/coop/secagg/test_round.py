"""Whole rounds in one process: the unmasked sum is exact, dropouts are survived, too few survivors abort."""

from __future__ import annotations

import numpy as np
import pytest

from agent.coop.secagg.errors import Refused, RoundAborted, SecAggError
from agent.coop.secagg.loopback import run_round

from .conftest import Coop


def expected(inputs: dict[str, np.ndarray], shops: dict, survivors: tuple[str, ...]) -> np.ndarray:
    """True sum of the survivors' inputs plus the sum of their own noise shares, in int64."""
    return sum(inputs[s].astype(np.int64) + shops[s].noise for s in survivors)  # type: ignore[return-value]


@pytest.mark.parametrize("n, threshold", [(10, 7), (20, 14)])
def test_full_round_unmasks_the_true_sum_plus_the_noise_shares_exactly(n: int, threshold: int) -> None:
    coop = Coop(n)
    config, shops, hub = coop.round("r-full", threshold)
    inputs = coop.inputs(config)
    report = run_round(shops, hub, inputs)
    assert report.aborted is None
    assert report.survivors == config.participants
    assert np.array_equal(report.total, expected(inputs, shops, report.survivors))
    # The masked inputs themselves are nothing like the inputs.
    assert not any(np.array_equal(hub.inputs[s].view(np.int64), inputs[s]) for s in shops)


@pytest.mark.parametrize("n, threshold", [(10, 7), (20, 14)])
def test_round_completes_with_30_percent_gone_after_sending_masked_inputs(n: int, threshold: int) -> None:
    coop = Coop(n)
    config, shops, hub = coop.round("r-late", threshold)
    inputs = coop.inputs(config)
    gone = list(config.participants)[: n * 3 // 10]
    report = run_round(shops, hub, inputs, drop_after_input=gone)
    assert report.aborted is None
    # Their inputs arrived, so they are in the sum; the others rebuilt their self-mask seeds.
    assert report.survivors == config.participants
    assert np.array_equal(report.total, expected(inputs, shops, report.survivors))


@pytest.mark.parametrize("n, threshold", [(10, 7), (20, 14)])
def test_round_completes_with_30_percent_dropped_before_their_masked_inputs(n: int, threshold: int) -> None:
    coop = Coop(n)
    config, shops, hub = coop.round("r-drop", threshold)
    inputs = coop.inputs(config)
    dropped = list(config.participants)[-(n * 3 // 10) :]
    report = run_round(shops, hub, inputs, drop_before_input=dropped)
    assert report.aborted is None
    assert set(report.survivors) == set(config.participants) - set(dropped)
    # Their pairwise masks were removed with their rebuilt mask keys; their inputs are not in the sum.
    assert np.array_equal(report.total, expected(inputs, shops, report.survivors))


def test_secagg_plus_neighbour_graph_round_with_dropouts_is_exact() -> None:
    coop = Coop(20)
    config, shops, hub = coop.round("r-plus", 14, neighbours=8)
    inputs = coop.inputs(config)
    report = run_round(shops, hub, inputs, drop_before_input=["store-0003"], drop_after_input=["store-0011"])
    assert report.aborted is None
    assert np.array_equal(report.total, expected(inputs, shops, report.survivors))
    assert all(len(shop.neighbours) == 8 for shop in shops.values())


def test_too_few_survivors_aborts_and_reveals_nothing(coop10: Coop) -> None:
    config, shops, hub = coop10.round("r-few", 7)
    inputs = coop10.inputs(config)
    report = run_round(shops, hub, inputs, drop_before_input=list(config.participants)[:4])
    assert report.total is None and report.aborted is not None and "threshold" in report.aborted
    assert hub.responses == {} and hub.signatures == {}
    with pytest.raises(RoundAborted):
        hub.finish()
    # A hub that asks anyway, with the six survivors it has, gets refusals and no share.
    six = tuple(sorted(hub.inputs))
    for shop_id in six:
        with pytest.raises(RoundAborted):
            shops[shop_id].sign_survivors(six)
        assert shops[shop_id].revealed == {}
    # Those windows are spent all the same: the differencing trap.
    assert all(coop10.ledgers[s].spent == {"r-few": "r-few"} for s in six)


def test_a_window_enters_at_most_one_round(coop10: Coop) -> None:
    config, shops, hub = coop10.round("r-a", 7, windows=("2026-11-30",))
    run_round(shops, hub, coop10.inputs(config), drop_before_input=list(config.participants)[:4])  # aborts
    config_b, shops_b, hub_b = coop10.round("r-b", 7, windows=("2026-11-30", "2026-12-01"))
    with pytest.raises(Refused, match="already entered"):
        run_round(shops_b, hub_b, coop10.inputs(config_b))


def test_too_few_unmask_answers_abort_at_the_hub(coop10: Coop) -> None:
    config, shops, hub = coop10.round("r-quiet", 7)
    inputs = coop10.inputs(config)
    report = run_round(shops, hub, inputs)
    assert report.aborted is None
    # Replay the last step with only six answers: six shares of each seed cannot rebuild it (t = 7).
    answers = dict(list(hub.responses.items())[:6])
    hub.responses = answers
    with pytest.raises(RoundAborted, match="needed"):
        hub.finish()


@pytest.mark.parametrize(
    "threshold, colluders, problem",
    [(5, 0, "exceed"), (7, 4, "exceed"), (11, 0, "between")],
)
def test_configurations_that_break_a_guarantee_are_refused(
    coop10: Coop, threshold: int, colluders: int, problem: str
) -> None:
    with pytest.raises(SecAggError, match=problem):
        coop10.round("r-bad", threshold, colluders=colluders)


def test_a_sum_that_could_wrap_around_is_refused(coop10: Coop) -> None:
    with pytest.raises(SecAggError, match="overflow"):
        coop10.round("r-wrap", 7, value_bound=1 << 60)


def test_the_neighbour_graph_is_symmetric_and_regular() -> None:
    coop = Coop(30)
    _config, shops, _ = coop.round("r-graph", 21, neighbours=6)
    for shop_id, shop in shops.items():
        assert len(shop.neighbours) == 6 and shop_id not in shop.neighbours
        assert all(shop_id in shops[v].neighbours for v in shop.neighbours)
