"""The NumPy thermal counter (what the driver runs) against the numba kernels: the same counts and the same
state after every frame, on the driver's golden fixtures and on every simulator scenario; and no JIT loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.kernels.thermal import ThermalCounter
from agent.kernels.thermal_numpy import ThermalCounterNumpy, label_runs
from drivers.thermal90640.protocol import Thermal90640Parser
from firmware_sim.thermal90640 import RATES_HZ, SCENARIOS, render_frames, scenario

GOLDEN = Path(__file__).parents[2] / "drivers" / "thermal90640" / "golden"


def assert_same_frame_by_frame(frames: np.ndarray, rate_hz: float) -> int:
    """Feed both counters; counts, background, noise and tracks must be equal after every frame."""
    rows, cols = frames.shape[1:]
    fast = ThermalCounter(rows, cols, rate_hz=rate_hz)
    plain = ThermalCounterNumpy(rows, cols, rate_hz=rate_hz)
    total = 0
    for i, frame in enumerate(frames):
        counted = fast.feed(frame)
        assert plain.feed(frame) == counted, f"frame {i}"
        assert np.array_equal(plain.bg, fast.bg) and np.array_equal(plain.var, fast.var), f"frame {i}"
        assert np.array_equal(plain.tracks, fast.tracks), f"frame {i}"
        total += sum(counted)
    return total


def golden_frames() -> np.ndarray:
    """Every frame the parser takes out of the golden fixtures, in the fixtures' order."""
    frames = []
    for case in sorted(p for p in GOLDEN.iterdir() if (p / "input.bin").exists()):
        frames += [f.pixels for f in Thermal90640Parser().feed((case / "input.bin").read_bytes())]
    return np.asarray(frames)


@pytest.mark.parametrize("rate_hz", [4.0, 8.0])
def test_both_counters_agree_on_the_golden_fixtures(rate_hz: float) -> None:
    frames = golden_frames()
    assert len(frames) >= 20  # the fixtures hold frames: agreement is not on an empty list
    # Played three times over, so the background has learnt and warm-up is over when the person stands there.
    assert_same_frame_by_frame(np.concatenate([frames] * 3), rate_hz)
    assert_same_frame_by_frame(np.ascontiguousarray(np.concatenate([frames] * 3).transpose(0, 2, 1)), rate_hz)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_both_counters_agree_on_every_scenario_frame_by_frame(rate_hz: float) -> None:
    crossings = sum(
        assert_same_frame_by_frame(render_frames(scenario(name, 1, rate_hz)), rate_hz) for name in SCENARIOS
    )
    assert (
        crossings >= 130
    )  # 145 true crossings at seed 1: people crossed: agreement covers the counting, not only empty floors


def test_both_counters_agree_after_a_rate_change_and_a_track_reset() -> None:
    frames = render_frames(scenario("mixed_busy", 2, 8.0))
    fast, plain = ThermalCounter(rate_hz=8.0), ThermalCounterNumpy(rate_hz=8.0)
    for i, frame in enumerate(frames):
        if i == 300:
            fast.set_rate(5.0)
            plain.set_rate(5.0)
        if i % 250 == 249:
            fast.reset_tracks()
            plain.reset_tracks()
        assert plain.feed(frame) == fast.feed(frame), f"frame {i}"
        assert np.array_equal(plain.tracks, fast.tracks) and np.array_equal(plain.bg, fast.bg), f"frame {i}"


@pytest.mark.parametrize("seed", range(4))
def test_run_labels_number_components_like_the_kernel(seed: int) -> None:
    from agent.kernels.thermal import label_blobs

    mask = np.random.default_rng(seed).random((24, 32)) < 0.25 + 0.1 * seed
    labels = np.zeros((24, 32), dtype=np.int32)
    n = label_blobs(mask.astype(np.uint8), labels, np.zeros(768, dtype=np.int32))
    runs_labels, runs_n, _runs = label_runs(mask)
    assert runs_n == n and np.array_equal(runs_labels, labels)


def test_the_driver_counts_without_loading_numba() -> None:
    code = (
        "import sys, numpy as np\n"
        "from drivers.thermal90640.driver import Thermal90640Driver\n"
        "from firmware_sim.thermal90640 import render_frames, scenario\n"
        "d = Thermal90640Driver.from_options('t', {'port': 'loop://', 'door': 'front'})\n"
        "counts = [d.count(f) for f in render_frames(scenario('single_walkers', 1, 4.0))]\n"
        "jit = [m for m in ('numba', 'llvmlite') if m in sys.modules]\n"
        "print(sum(e for e, _ in counts), sum(x for _, x in counts), jit)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    entries, exits, jit = out.stdout.split(maxsplit=2)
    assert int(entries) + int(exits) >= 10 and jit.strip() == "[]", out.stdout
