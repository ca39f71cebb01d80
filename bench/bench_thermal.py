"""Throughput and accuracy of the thermal people counter; prints one flat JSON object.

Usage: .venv/bin/python bench/bench_thermal.py [--frames N] [--seeds 1,2,3] [--table]

Frames are the simulator's seeded scenarios (firmware_sim.thermal90640) at 8 frames a second, played
back to back and repeated up to --frames. The numba pipeline (`ThermalCounter.feed`, the fast
reference) and the NumPy counter the driver runs (`ThermalCounterNumpy.feed`, one call per frame, so the
resident agent never loads numba) count the same frames in the same run, pinned to one core; the numba
kernels are loaded from the cache first. `thermal.numpy_counts_agree`: the same counts frame by frame.
Accuracy: every scenario for every seed at each rate of RATES_HZ (4, 8 and 16 frames a second), with
the default parameters for that rate; counted crossings matched to true ones by direction within
1.5 s; accuracy = 1 − (missed + false) / true crossings, pooled per rate (`thermal.accuracy_4hz`, ...)
and per scenario and rate (`thermal.accuracy_4hz.<scenario>`). `thermal.accuracy` pools all rates.
`thermal.numpy_core_share_at_8hz`: the share of one core the driver's counter takes at 8 frames a second.
`--table` also prints the per-scenario table of docs/performance.md to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.kernels.thermal import ThermalCounter
from agent.kernels.thermal_numpy import ThermalCounterNumpy
from firmware_sim.thermal90640 import RATES_HZ, SCENARIOS, Score, render_frames, scenario, score_counter


def pin_to_one_core() -> int | None:
    """Run on one CPU (the first this process may use); returns it, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def frames_per_s(counter: ThermalCounter | ThermalCounterNumpy, frames: np.ndarray) -> tuple[float, list[Any]]:
    """Frames per second of `counter.feed` over `frames`, and what it returned."""
    start = time.perf_counter()
    out = [counter.feed(frame) for frame in frames]
    return len(frames) / (time.perf_counter() - start), out


def scores(seeds: list[int]) -> dict[tuple[float, str], list[Score]]:
    """The numba counter's score for every rate, scenario and seed, with the defaults for that rate."""
    return {
        (rate, name): [score_counter(ThermalCounter(rate_hz=rate).feed, scenario(name, seed, rate)) for seed in seeds]
        for rate in RATES_HZ
        for name in SCENARIOS
    }


def _accuracy(scored: list[Score]) -> float:
    true = sum(s.true_crossings for s in scored)
    return round(1 - sum(s.missed + s.false for s in scored) / true, 4)


def accuracy(scored: dict[tuple[float, str], list[Score]]) -> dict[str, Any]:
    """Accuracy per rate, per rate and scenario, and over everything."""
    out: dict[str, Any] = {"thermal.accuracy": _accuracy([s for run in scored.values() for s in run])}
    for rate in RATES_HZ:
        key = f"thermal.accuracy_{rate:g}hz"
        out[key] = _accuracy([s for (r, _), run in scored.items() if r == rate for s in run])
        out.update({f"{key}.{name}": _accuracy(run) for (r, name), run in scored.items() if r == rate})
    # The same walkers at every rate, so the same true crossings: one figure.
    out["thermal.true_crossings"] = sum(s.true_crossings for name in SCENARIOS for s in scored[(RATES_HZ[0], name)])
    return out


def table(scored: dict[tuple[float, str], list[Score]], seeds: list[int]) -> str:
    """The per-scenario accuracy table of docs/performance.md (markdown)."""
    head = "| scenario | fps | frames | true crossings | counted | missed | false | accuracy |\n" + "|---" * 8 + "|\n"
    rows = []
    for rate in RATES_HZ:
        every: list[Score] = []
        n_frames = 0
        for name in SCENARIOS:
            run = scored[(rate, name)]
            frames = sum(scenario(name, seed, rate).n_frames() for seed in seeds)
            every += run
            n_frames += frames
            rows.append(_row(name, rate, frames, run))
        rows.append(_row(f"**all at {rate:g} Hz**", rate, n_frames, every, bold=True))
    return head + "\n".join(rows)


def _row(name: str, rate: float, frames: int, run: list[Score], bold: bool = False) -> str:
    true, counted = sum(s.true_crossings for s in run), sum(s.counted for s in run)
    missed, false = sum(s.missed for s in run), sum(s.false for s in run)
    acc = f"{100 * (1 - (missed + false) / true):.1f} %"
    return (
        f"| {name} | {rate:g} | {frames} | {true} | {counted} | {missed} | {false} | {f'**{acc}**' if bold else acc} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000, help="frames to time (>= a few thousand)")
    parser.add_argument("--seeds", default="1,2,3", help="scenario seeds for the accuracy figure")
    parser.add_argument("--table", action="store_true", help="print the docs' accuracy table to stderr")
    args = parser.parse_args()
    cpu = pin_to_one_core()

    pool = np.concatenate([render_frames(scenario(name, 1, 8.0)) for name in SCENARIOS])
    frames = np.concatenate([pool] * (args.frames // len(pool) + 1))[: args.frames]
    ThermalCounter(rate_hz=8.0).feed(frames[0])  # load (or compile) the cached kernels before timing
    runs = (frames_per_s(ThermalCounter(rate_hz=8.0), frames) for _ in range(3))
    numba_rate, numba_out = max(runs, key=lambda r: r[0])
    numpy_runs = (frames_per_s(ThermalCounterNumpy(rate_hz=8.0), frames) for _ in range(3))
    numpy_rate, numpy_out = max(numpy_runs, key=lambda r: r[0])

    result: dict[str, Any] = {
        "thermal.frames": len(frames),
        "thermal.cpu": cpu,
        "thermal.frames_per_s": round(numba_rate),
        "thermal.numpy_frames_per_s": round(numpy_rate),
        "thermal.speedup_vs_numpy": round(numba_rate / numpy_rate, 1),
        "thermal.numpy_counts_agree": numba_out == numpy_out,
        # What the driver's counter costs the resident agent: the share of one core here at 8 frames a second.
        "thermal.numpy_core_share_at_8hz": round(8.0 / numpy_rate, 5),
    }
    seeds = [int(s) for s in args.seeds.split(",") if s]
    scored = scores(seeds)
    result.update(accuracy(scored))
    if args.table:
        print(table(scored, seeds), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
