"""Throughput and accuracy of the thermal people counter; prints one flat JSON object.

Usage: .venv/bin/python bench/bench_thermal.py [--frames N] [--seeds 1,2,3]

Frames are the simulator's seeded scenarios (firmware_sim.thermal90640), played back to back and
repeated up to --frames. The numba pipeline (`ThermalCounter.feed`, one call per frame, as the
driver runs it) and the plain NumPy pipeline (`ThermalCounterNumpy.feed`) count the same frames in
the same run, pinned to one core; the numba kernels are loaded from the cache before timing.
Accuracy: every scenario for every seed, counted crossings matched to true ones by direction within
1.5 s; accuracy = 1 − (missed + false) / true crossings, over all of them.
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
from devtools.thermal_numpy import ThermalCounterNumpy
from firmware_sim.thermal90640 import SCENARIOS, render_frames, scenario, score_crossings


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


def accuracy(seeds: list[int]) -> dict[str, Any]:
    """Per-scenario and overall accuracy of the numba counter."""
    per: dict[str, Any] = {}
    true = errors = 0
    for name in SCENARIOS:
        scene_true = scene_errors = 0
        for seed in seeds:
            sc = scenario(name, seed)
            counted: list[tuple[float, str]] = []
            counter = ThermalCounter()
            for i, frame in enumerate(render_frames(sc)):
                down, up = counter.feed(frame)
                counted += [(i / sc.fps, "in")] * down + [(i / sc.fps, "out")] * up
            score = score_crossings(sc.crossings(), counted)
            scene_true += score.true_crossings
            scene_errors += score.missed + score.false
        per[f"thermal.accuracy.{name}"] = round(1 - scene_errors / scene_true, 4)
        true, errors = true + scene_true, errors + scene_errors
    return {"thermal.accuracy": round(1 - errors / true, 4), "thermal.true_crossings": true, **per}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000, help="frames to time (>= a few thousand)")
    parser.add_argument("--seeds", default="1,2,3", help="scenario seeds for the accuracy figure")
    args = parser.parse_args()
    cpu = pin_to_one_core()

    pool = np.concatenate([render_frames(scenario(name, 1)) for name in SCENARIOS])
    frames = np.concatenate([pool] * (args.frames // len(pool) + 1))[: args.frames]
    ThermalCounter().feed(frames[0])  # load (or compile) the cached kernels before timing
    numba_rate, numba_out = max((frames_per_s(ThermalCounter(), frames) for _ in range(3)), key=lambda r: r[0])
    numpy_rate, numpy_out = frames_per_s(ThermalCounterNumpy(), frames)

    result: dict[str, Any] = {
        "thermal.frames": len(frames),
        "thermal.cpu": cpu,
        "thermal.frames_per_s": round(numba_rate),
        "thermal.numpy_frames_per_s": round(numpy_rate),
        "thermal.speedup_vs_numpy": round(numba_rate / numpy_rate, 1),
        "thermal.numpy_counts_agree": numba_out == numpy_out,
    }
    result.update(accuracy([int(s) for s in args.seeds.split(",") if s]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
