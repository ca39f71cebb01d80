"""Command line: serve simulated devices on ptys until the simulated interval ends, then write truth.

    python -m firmware_sim terabee --door front=/tmp/x/front --door back=/tmp/x/back --seed 7 \
        --start 2026-11-16T00:00:00Z --hours 24 --factor 1440 --truth truth.json [--sensor-id] \
        [--faults garbage,crc,truncate] [--fault-rate 0.05] [--distance-frames]

The clock is `AcceleratedClock.from_env()` when SHOPKEEPER_CLOCK_* are set (so the agent and the
simulator share one accelerated day), otherwise simulated time starts at --start now and runs
--factor times faster. Once the ptys exist one JSON line `{"ready": true, ...}` goes to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.clock import AcceleratedClock
from firmware_sim.terabee import FAULT_KINDS, FaultPlan, TerabeeSimulator
from firmware_sim.traffic import HOUR_NS, TrafficModel, generate, ground_truth, hour_iso, parse_utc

DOOR_NAME = re.compile(r"^[a-z0-9_-]+$")


def _door(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not DOOR_NAME.match(name) or not path:
        raise argparse.ArgumentTypeError(f"--door {text!r}: expected NAME=PATH with NAME in [a-z0-9_-]")
    return name, path


def _faults(text: str) -> tuple[str, ...]:
    kinds = tuple(k for k in text.split(",") if k)
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown faults {unknown}; use {','.join(FAULT_KINDS)}")
    return kinds


def _utc(text: str) -> str:
    try:
        parse_utc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--start {text!r}: {exc}") from exc
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (exposed so the agent's CLI can embed it)."""
    parser = argparse.ArgumentParser(prog="firmware_sim", description=__doc__.splitlines()[0])
    devices = parser.add_subparsers(dest="device", required=True)
    terabee = devices.add_parser("terabee", help="Terabee Evo People Counter, one pty per door")
    terabee.add_argument(
        "--door",
        type=_door,
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="door name and the symlink path to create for its pty (repeatable)",
    )
    terabee.add_argument("--seed", type=int, default=0)
    terabee.add_argument(
        "--start",
        type=_utc,
        required=True,
        metavar="ISO_UTC",
        help="start of the simulated interval, e.g. 2026-11-16T00:00:00Z",
    )
    terabee.add_argument("--hours", type=float, default=24.0)
    terabee.add_argument("--factor", type=float, default=1440.0, help="simulated seconds per real second")
    terabee.add_argument("--truth", type=Path, required=True, help="where to write the ground-truth JSON")
    terabee.add_argument("--sensor-id", action="store_true", help="send 15-byte frames with a sensor id")
    terabee.add_argument(
        "--faults",
        type=_faults,
        default=(),
        metavar="KINDS",
        help=f"comma-separated fault kinds: {','.join(FAULT_KINDS)}",
    )
    terabee.add_argument("--fault-rate", type=float, default=0.05, help="chance per frame of each fault")
    terabee.add_argument("--distance-frames", action="store_true", help="interleave DD distance frames")
    terabee.add_argument("--guard-s", type=float, default=120.0, help="no crossing this close to hh:00")
    return parser


def run_terabee(
    args: argparse.Namespace, clock: AcceleratedClock | None = None, stop: threading.Event | None = None
) -> dict[str, Any]:
    """Serve the interval, write the truth file and return its content."""
    start_ns = parse_utc(args.start)
    end_ns = start_ns + int(args.hours * HOUR_NS)
    clock = clock or AcceleratedClock.from_env() or AcceleratedClock.starting_now(start_ns, args.factor)
    links = dict(args.door)
    model = TrafficModel(doors=tuple(links), seed=args.seed, guard_s=args.guard_s)
    events = generate(model, start_ns, end_ns)
    plan = FaultPlan(kinds=tuple(args.faults), rate=args.fault_rate, distance_frames=args.distance_frames)
    sim = TerabeeSimulator(links, events, clock, seed=args.seed, sensor_id=args.sensor_id, faults=plan)
    stop = stop or threading.Event()
    sim.start()
    print(json.dumps({"ready": True, "doors": links, "events": len(events)}), flush=True)
    try:
        while not stop.is_set():
            remaining = (clock.real_ns_at(end_ns) - time.time_ns()) / 1e9
            if remaining <= 0 and sim.done():
                break
            stop.wait(min(max(remaining, 0.01), 0.2))
    finally:
        sim.stop()
    truth = {
        "device": "terabee",
        "doors": ground_truth(events, links, start_ns, end_ns),
        "seed": args.seed,
        "start": hour_iso(start_ns) if start_ns % HOUR_NS == 0 else args.start,
        "hours": args.hours,
        "factor": clock.factor,
        "guard_s": args.guard_s,
        "sensor_id": args.sensor_id,
        "faults": list(args.faults),
        "events": len(events),
        "completed": not stop.is_set(),
    }
    tmp = args.truth.with_name(args.truth.name + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, args.truth)
    return truth


# Devices whose simulators have their own command line; `shopkeeper sim <device> --help` shows it.
OTHER_DEVICES = {
    "ld2410": "firmware_sim.ld2410",
    "modbus_counter": "firmware_sim.modbus_counter",
    "thermal90640": "firmware_sim.thermal90640",
    "escpos": "firmware_sim.escpos",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OTHER_DEVICES:
        module = importlib.import_module(OTHER_DEVICES[argv[0]])
        return int(module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_terabee(args, stop=stop)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"firmware_sim: {exc}", file=sys.stderr)
        return 1
    return 0
