"""A round's noise share drawn in a real kernel worker: started and warmed when the round is joined, one child
for the whole round (true cells and share), stopped once the share is drawn; and never held for ever."""

from __future__ import annotations

import json
import time
import typing
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agent.clock import Clock as AgentClock
from agent.contract import secagg_hub_topic
from agent.coop.round_kernels import RoundKernels
from agent.coop.round_participant import RoundParticipant
from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.noise import draw_noise_share, plan_noise
from agent.coop.secagg.transport import RoundOpening
from agent.kernels.worker_process import KernelWorker
from agent.privacy.bit_source import DeterministicBitSource
from tests.agent.coop.test_round_participant import Clock, Setup, feed, run_round, state


def participant_with_worker(s: Setup, worker: KernelWorker) -> RoundParticipant:
    clock = typing.cast(AgentClock, Clock())
    return RoundParticipant(s.config, s.store, clock, lambda t, p: s.sent.append((t, p)), kernels=worker)


def released_windows(s: Setup) -> Setup:
    for window, entries in enumerate((4, 5, 6)):
        s.release(window, entries)
    return s


def test_the_worker_is_started_and_warmed_when_the_round_opens(tmp_path: Path) -> None:
    s = released_windows(Setup(tmp_path))
    worker = KernelWorker()
    participant = participant_with_worker(s, worker)
    try:
        opening = RoundOpening(s.round("r-open", range(3)), s.roster)
        feed(participant, secagg_hub_topic("riverside", "r-open", "config"), opening)
        assert s.sent_of("advert") and participant.round_kernels.held
        assert participant.round_kernels.warm.wait(60), "the warm-up never answered"
        assert worker.pid is not None and worker.starts == 1  # before the hub has sent a single share
    finally:
        worker.close()


def test_one_worker_serves_the_round_and_stops_once_the_share_is_drawn(tmp_path: Path) -> None:
    s = released_windows(Setup(tmp_path))
    worker = KernelWorker()
    participant = participant_with_worker(s, worker)
    try:
        total = run_round(s, participant, s.round("r-whole", range(3)), [1, 2, 3])
        row = state(s, "r-whole")
        assert row["state"] == "released" and json.loads(row["true"]) == [4, 5, 6]
        noise = json.loads(row["noise"])
        assert len(noise) == 3 and all(isinstance(v, int) for v in noise)
        assert total.shape == (3,)
        assert worker.starts == 1 and worker.failures == 0  # one child: warm-up, true cells and share
        assert not participant.round_kernels.held and worker.pid is None  # let go once the share was drawn
    finally:
        worker.close()


def test_an_abandoned_round_does_not_hold_the_worker_for_ever() -> None:
    worker = KernelWorker()
    kernels = RoundKernels(worker, hold_max_s=0.5)
    waiting = {"r": SimpleNamespace(shop=SimpleNamespace(step="input", noise=None))}
    try:
        kernels.follow(waiting)
        assert kernels.held and kernels.warm.wait(60)
        assert worker.pid is not None
        time.sleep(0.6)
        kernels.follow(waiting)  # the hub never sent the shares: past hold_max_s the worker goes
        assert not kernels.held and worker.pid is None
        kernels.follow(waiting)
        assert not kernels.held and kernels.warmups == 1  # the same round does not take it again
    finally:
        kernels.close()
        worker.close()


def test_a_round_past_its_share_needs_no_worker() -> None:
    worker = KernelWorker()
    kernels = RoundKernels(worker)
    try:
        kernels.follow({"r": SimpleNamespace(shop=SimpleNamespace(step="check", noise=np.zeros(3, dtype=np.int64)))})
        assert not kernels.held and worker.starts == 0
    finally:
        worker.close()


def test_a_share_from_a_draw_must_be_the_rounds_length_of_int64(tmp_path: Path) -> None:
    config = Setup(tmp_path).round("r-draw", range(3))
    plan = plan_noise(config)
    asked: list[tuple[int, int, int]] = []

    def draw(num: int, den: int, count: int) -> np.ndarray:
        asked.append((num, den, count))
        return np.arange(count, dtype=np.int64)

    assert draw_noise_share(config, plan, draw=draw).tolist() == [0, 1, 2]
    share = plan.share_sigma2
    assert asked == [(share.numerator, share.denominator, 3)]  # the share's exact variance, as a fraction
    with pytest.raises(SecAggError, match="not 3 int64"):
        draw_noise_share(config, plan, draw=lambda n, d, c: np.zeros(c - 1, dtype=np.int64))
    with pytest.raises(SecAggError, match="not 3 int64"):
        draw_noise_share(config, plan, draw=lambda n, d, c: np.zeros(c, dtype=np.float64))
    with pytest.raises(SecAggError, match="seeded bit source"):
        draw_noise_share(config, plan, DeterministicBitSource(b"seed"), draw=draw)
