"""Terabee Evo People Counter simulator, written from the published format (protocols.md 3.1).

It deliberately does not import the driver's protocol module: a shared encoder and decoder would
hide a misread spec on both sides. Frames (big-endian, CRC-8 poly 0x07 init 0 over every byte
before the CRC): `"PC" counter:i32 in:u16 out:u16 crc` (11 bytes) or, with a sensor id,
`"PC" sensor_id:u32 people:i32 in:u16 out:u16 crc` (15 bytes); `"DD" d1:u16 d2:u16 crc`.

Faults are injected *besides* the real frames (junk, corrupt or truncated copies), never instead
of them, so the device's counters, and therefore the ground truth, stay exact.
"""

from __future__ import annotations

import dataclasses
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from agent.clock import AcceleratedClock
from firmware_sim.pty_device import PtyDevice
from firmware_sim.traffic import ENTRY, Crossing

FAULT_KINDS = ("garbage", "crc", "truncate")
U16 = 1 << 16


def crc8(data: bytes) -> int:
    """CRC-8/poly 0x07, init 0, MSB first, written out bit by bit as in the manual."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc << 1) ^ 0x07 if crc & 0x80 else crc << 1
            crc &= 0xFF
    return crc


def encode_count_frame(count_in: int, count_out: int, people: int, sensor_id: int | None = None) -> bytes:
    """A "PC" frame: 11 bytes without a sensor id, 15 bytes with one."""
    if sensor_id is None:
        body = b"PC" + struct.pack(">iHH", people, count_in % U16, count_out % U16)
    else:
        body = b"PC" + struct.pack(">IiHH", sensor_id, people, count_in % U16, count_out % U16)
    return body + bytes([crc8(body)])


def encode_distance_frame(d1_mm: int, d2_mm: int) -> bytes:
    """A "DD" distance frame (two ToF readings in mm)."""
    body = b"DD" + struct.pack(">HH", d1_mm, d2_mm)
    return body + bytes([crc8(body)])


BPTD_MODE_COMMAND = bytes.fromhex("00210a8d")
RESET_COUNTERS_COMMAND = bytes.fromhex("005508000000007c")


@dataclasses.dataclass
class TerabeeCounters:
    """The device's state: cumulative u16 IN/OUT counters (reset on power loss, wrapping)."""

    sensor_id: int | None = None
    count_in: int = 0
    count_out: int = 0
    people: int = 0  # IN - OUT, signed 32-bit

    def cross(self, direction: str) -> bytes:
        """Count one crossing and return the frame the device sends for it."""
        if direction == ENTRY:
            self.count_in = (self.count_in + 1) % U16
            self.people += 1
        else:
            self.count_out = (self.count_out + 1) % U16
            self.people -= 1
        return self.frame()

    def frame(self) -> bytes:
        """The current counters as a "PC" frame."""
        return encode_count_frame(self.count_in, self.count_out, self.people, self.sensor_id)

    def power_cycle(self) -> None:
        """Counters restart at zero, as after a power loss."""
        self.count_in = self.count_out = self.people = 0


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject and how often (per real frame)."""

    kinds: tuple[str, ...] = ()
    rate: float = 0.05
    distance_frames: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")


def frames_for_crossing(counters: TerabeeCounters, direction: str, plan: FaultPlan, rng: np.random.Generator) -> bytes:
    """The bytes the device sends for one crossing: the real frame plus any injected faults."""
    out = bytearray()
    if plan.distance_frames:
        for _ in range(int(rng.integers(0, 3))):
            out += encode_distance_frame(int(rng.integers(300, 1700)), int(rng.integers(300, 1700)))
    real = counters.cross(direction)
    for kind in plan.kinds:
        if rng.random() >= plan.rate:
            continue
        if kind == "garbage":
            out += rng.integers(0, 256, size=int(rng.integers(1, 24)), dtype=np.uint8).tobytes()
        elif kind == "crc":
            out += real[:-1] + bytes([real[-1] ^ int(rng.integers(1, 256))])
        elif kind == "truncate":
            out += real[: int(rng.integers(3, len(real) - 1))]
    out += real
    return bytes(out)


class TerabeeSimulator:
    """One simulated Terabee per door, each on its own pty, replaying crossings on a clock."""

    def __init__(
        self,
        links: Mapping[str, str | Path],
        events: Iterable[Crossing],
        clock: AcceleratedClock,
        *,
        seed: int = 0,
        sensor_id: bool = False,
        faults: FaultPlan | None = None,
    ) -> None:
        self.clock = clock
        self.faults = faults or FaultPlan()
        self.devices = {door: PtyDevice(link) for door, link in links.items()}
        self.counters = {
            door: TerabeeCounters(sensor_id=(0x5E000000 + i) if sensor_id else None)
            for i, door in enumerate(self.devices)
        }
        self._events = {door: [e for e in events if e.door == door] for door in self.devices}
        unknown = {e.door for e in events} - set(self.devices)
        if unknown:
            raise ValueError(f"events for doors without a device: {sorted(unknown)}")
        self._rngs = {door: np.random.default_rng([seed, i]) for i, door in enumerate(self.devices)}
        self._commands = {door: bytearray() for door in self.devices}
        self._scanned = {door: 0 for door in self.devices}
        self._sent = dict.fromkeys(self.devices, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one thread per door."""
        for door in self.devices:
            thread = threading.Thread(target=self._serve, args=(door,), name=f"terabee-sim-{door}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, door: str) -> None:
        device, rng = self.devices[door], self._rngs[door]
        for event in self._events[door]:
            while True:
                self._collect_commands(door)
                wait_s = (self.clock.real_ns_at(event.t_ns) - time.time_ns()) / 1e9
                if wait_s <= 0:
                    break
                if self._stop.wait(min(wait_s, 0.05)):
                    return
            with self._lock:
                data = frames_for_crossing(self.counters[door], event.direction, self.faults, rng)
                self._sent[door] += 1
            device.write(data)
        while not self._stop.wait(0.05):
            self._collect_commands(door)

    def _collect_commands(self, door: str) -> None:
        received = self.devices[door].read_available()
        if received:
            with self._lock:
                self._commands[door] += received
                self._apply_resets(door)

    def _apply_resets(self, door: str) -> None:
        """The documented "reset people counters" command zeroes the counters; other commands are ignored."""
        buffer = self._commands[door]
        start = max(0, self._scanned[door] - len(RESET_COUNTERS_COMMAND) + 1)
        found = buffer.find(RESET_COUNTERS_COMMAND, start)
        while found != -1:
            self.counters[door].power_cycle()
            found = buffer.find(RESET_COUNTERS_COMMAND, found + len(RESET_COUNTERS_COMMAND))
        self._scanned[door] = len(buffer)

    def host_commands(self, door: str) -> bytes:
        """Everything the host has written to this door's device so far."""
        self._collect_commands(door)
        with self._lock:
            return bytes(self._commands[door])

    def done(self) -> bool:
        """True once every door has replayed all its crossings."""
        with self._lock:
            return all(self._sent[d] == len(self._events[d]) for d in self.devices)

    def unplug(self, door: str) -> None:
        """Pull the USB cable: the device keeps power and counting, its frames go nowhere."""
        self.devices[door].unplug()

    def replug(self, door: str) -> None:
        """Plug it back in: a new pty behind the same link."""
        self.devices[door].replug()

    def power_cycle(self, door: str) -> None:
        """Lose power: the device's counters restart at zero."""
        with self._lock:
            self.counters[door].power_cycle()

    def stop(self) -> None:
        """Stop the threads and unplug every device."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for device in self.devices.values():
            device.close()
