"""The Terabee simulator: byte-exact frames, exact counters, faults beside real frames, the CLI."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np

from agent.clock import AcceleratedClock
from drivers.terabee.protocol import CounterDeltas, TerabeeParser
from firmware_sim.cli import main
from firmware_sim.pty_device import PtyDevice
from firmware_sim.terabee import (
    BPTD_MODE_COMMAND,
    FaultPlan,
    TerabeeCounters,
    TerabeeSimulator,
    crc8,
    encode_count_frame,
    frames_for_crossing,
)
from firmware_sim.traffic import HOUR_NS, TrafficModel, generate, ground_truth, parse_utc

START = parse_utc("2026-11-16T00:00:00Z")


def tiny_decode(frame: bytes) -> tuple[int | None, int, int, int]:
    """An independent decoder written from the manual's table, for the sim's own check."""
    assert frame[:2] == b"PC"
    assert crc8(frame[:-1]) == frame[-1]
    if len(frame) == 11:
        return (None, *struct.unpack(">iHH", frame[2:10]))
    return struct.unpack(">IiHH", frame[2:14])


def test_sim_crc_matches_the_verified_examples() -> None:
    assert crc8(bytes.fromhex("00 21 0A")) == 0x8D
    assert crc8(bytes.fromhex("00 55 08 00 00 00 00")) == 0x7C


def test_count_frames_are_byte_exact_in_both_lengths() -> None:
    assert encode_count_frame(3, 1, 2) == bytes.fromhex("5043 00000002 0003 0001 3b".replace(" ", ""))
    assert tiny_decode(encode_count_frame(7, 8, -1, 42)) == (42, -1, 7, 8)


def test_counters_wrap_at_u16() -> None:
    counters = TerabeeCounters(count_in=65535)
    assert tiny_decode(counters.cross("in"))[2] == 0


def test_faults_never_change_the_counters_the_driver_recovers() -> None:
    rng = np.random.default_rng(3)
    plan = FaultPlan(kinds=("garbage", "crc", "truncate"), rate=0.5, distance_frames=True)
    counters = TerabeeCounters(sensor_id=5)
    parser, deltas = TerabeeParser(), CounterDeltas()
    stream = b"".join(frames_for_crossing(counters, d, plan, rng) for d in ["in", "out"] * 100 + ["in"] * 7)
    frames = parser.feed(stream) + parser.flush()
    entries = exits = 0
    for frame in frames:
        got_in, got_out = deltas.update(frame)
        entries, exits = entries + got_in, exits + got_out
    assert (entries, exits) == (107, 100)
    assert parser.bad_frames > 50 and parser.distance_frames > 50


def test_simulator_frames_on_a_pty_decode_to_the_ground_truth(tmp_path: Path) -> None:
    import serial

    doors = ("front", "back")
    end = START + 24 * HOUR_NS
    events = generate(TrafficModel(doors=doors, seed=11), START, end)
    clock = AcceleratedClock.starting_now(START, 86400 / 2.0)  # one simulated day in two real seconds
    links = {door: tmp_path / door for door in doors}
    sim = TerabeeSimulator(links, events, clock, seed=11, sensor_id=True, faults=FaultPlan(("garbage", "crc")))
    ports = {door: serial.serial_for_url(str(link), baudrate=115200, timeout=0.05) for door, link in links.items()}
    parsers = {door: TerabeeParser() for door in doors}
    last: dict[str, tuple[int, int]] = dict.fromkeys(doors, (0, 0))
    try:
        for port in ports.values():
            port.write(BPTD_MODE_COMMAND)
        sim.start()
        deadline = time.monotonic() + 30
        while not (sim.done() and all(p.in_waiting == 0 for p in ports.values())):
            assert time.monotonic() < deadline
            for door, port in ports.items():
                for frame in parsers[door].feed(port.read(port.in_waiting or 1)):
                    last[door] = (frame.count_in, frame.count_out)
        for door, port in ports.items():
            for frame in parsers[door].feed(port.read(4096)) + parsers[door].flush():
                last[door] = (frame.count_in, frame.count_out)
        assert all(sim.host_commands(door) == BPTD_MODE_COMMAND for door in doors)
    finally:
        sim.stop()
        for port in ports.values():
            port.close()
    truth = ground_truth(events, doors, START, end)
    for door in doors:
        expected = (
            sum(c["entries"] for c in truth[door].values()),
            sum(c["exits"] for c in truth[door].values()),
        )
        assert last[door] == expected


def test_unplug_drops_frames_but_the_device_keeps_counting(tmp_path: Path) -> None:
    with PtyDevice(tmp_path / "dev") as device:
        device.unplug()
        assert not os.path.lexists(tmp_path / "dev")
        assert device.write(b"PC") == 0
        device.replug()
        assert os.path.realpath(tmp_path / "dev") == device.slave_name


def test_cli_serves_the_interval_and_writes_the_truth_file(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    argv = [
        "terabee",
        "--door",
        f"front={tmp_path / 'front'}",
        "--seed",
        "7",
        "--start",
        "2026-11-16T08:00:00Z",
        "--hours",
        "2",
        "--factor",
        "14400",
        "--truth",
        str(truth_path),
        "--faults",
        "garbage,truncate",
    ]
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(main(argv)))
    runner.start()
    runner.join(timeout=20)
    assert result == [0]
    truth = json.loads(truth_path.read_text())
    assert truth["seed"] == 7 and truth["completed"]
    assert set(truth["doors"]["front"]) == {"2026-11-16T08:00:00Z", "2026-11-16T09:00:00Z"}
    expected = ground_truth(
        generate(TrafficModel(doors=("front",), seed=7), START + 8 * HOUR_NS, START + 10 * HOUR_NS),
        ("front",),
        START + 8 * HOUR_NS,
        START + 10 * HOUR_NS,
    )
    assert truth["doors"] == expected
    assert sum(c["entries"] for c in truth["doors"]["front"].values()) > 0
