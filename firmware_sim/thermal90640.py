"""GY-MCU90640 simulator (MLX90640 32×24 behind an STM32 on a UART), written from the published format.

It deliberately does not import the driver's protocol module: a shared encoder and decoder would
hide a misread spec on both sides. From the vendor manual (protocols.md 2.1): a frame is 1544
bytes of 16-bit little-endian words: `5A 5A`, `02 06` (data amount 0x0602), 768 pixels row by row
as signed °C×100, the ambient temperature Ta (°C×100), then a checksum word = the sum of the 771
words before it (header words included), modulo 0x10000. Commands from the host are `A5 cmd val
sum` with sum = (A5 + cmd + val) & 0xFF; the emissivity query is answered with `5A 5A XX sum`.

The people, scenarios and ground truth it streams are in `firmware_sim.thermal_scenes` (re-exported
here, so tests and tools import one module).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from firmware_sim.pty_device import PtyDevice
from firmware_sim.thermal_scenes import (  # noqa: F401 - re-exported: the simulator's one public module
    COLS,
    DOOR_ROW,
    ENTRY,
    EXIT,
    RATES_HZ,
    ROWS,
    SCENARIO_BUILDERS,
    SCENARIOS,
    Scenario,
    Score,
    Walker,
    crossing_walker,
    render_frames,
    scenario,
    score_counter,
    score_crossings,
)

FRAME_BYTES = 1544

AUTO_MODE_COMMAND = bytes.fromhex("a53502dc")
QUERY_MODE_COMMAND = bytes.fromhex("a53501db")
QUERY_EMISSIVITY_COMMAND = bytes.fromhex("a55501fb")
RATE_COMMANDS = {0.5: bytes.fromhex("a52500ca"), 1: bytes.fromhex("a52501cb"), 2: bytes.fromhex("a52502cc"),
                 4: bytes.fromhex("a52503cd"), 8: bytes.fromhex("a52504ce")}  # fmt: skip
FAULT_KINDS = ("garbage", "checksum", "truncate")


def checksum(words: list[int]) -> int:
    """The manual's checksum: the 16-bit words added up, keeping the low 16 bits."""
    total = 0
    for word in words:
        total = (total + word) & 0xFFFF
    return total


def encode_frame(pixels_c100: npt.ArrayLike, ta_c100: int) -> bytes:
    """One 1544-byte data frame from 768 pixel values (°C×100, row by row) and Ta (°C×100)."""
    pixels = [int(p) & 0xFFFF for p in np.asarray(pixels_c100, dtype=np.int64).ravel()]
    if len(pixels) != ROWS * COLS:
        raise ValueError(f"a frame has {ROWS * COLS} pixels, not {len(pixels)}")
    words = [0x5A5A, 0x0602, *pixels, ta_c100 & 0xFFFF]
    return struct.pack("<772H", *words, checksum(words))


def command(cmd: int, value: int) -> bytes:
    """A host command `A5 cmd val sum`."""
    return bytes([0xA5, cmd, value, (0xA5 + cmd + value) & 0xFF])


def emissivity_reply(value_x100: int) -> bytes:
    """The module's answer to the emissivity query: `5A 5A XX sum`."""
    return bytes([0x5A, 0x5A, value_x100, (0x5A + 0x5A + value_x100) & 0xFF])


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """Faults injected beside the real frames (never instead of them), with a chance per frame."""

    kinds: tuple[str, ...] = ()
    rate: float = 0.05

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(FAULT_KINDS)}")


def stream_bytes(frames: npt.NDArray[np.int16], faults: FaultPlan, rng: np.random.Generator) -> Iterator[bytes]:
    """The bytes the module sends per frame: faults first (if any), then the real frame."""
    for frame in frames:
        real = encode_frame(frame, 2650)
        extra = b""
        for kind in faults.kinds:
            if rng.random() >= faults.rate:
                continue
            if kind == "garbage":
                extra += rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
            elif kind == "checksum":
                extra += real[:-2] + bytes([real[-2] ^ 0x01, real[-1]])
            else:
                extra += real[: int(rng.integers(4, FRAME_BYTES - 1))]
        yield extra + real


class Thermal90640Simulator:
    """A GY-MCU90640 on a pty: streams a scenario's frames at its frame rate × `speed`, answers commands."""

    def __init__(
        self,
        link: str | Path,
        frames: npt.NDArray[np.int16],
        fps: float,
        *,
        speed: float = 1.0,
        auto_mode: bool = True,
        faults: FaultPlan | None = None,
        seed: int = 0,
        emissivity_x100: int = 95,
    ) -> None:
        self.device = PtyDevice(link)
        self.frames, self.interval_s = frames, 1.0 / (fps * speed)
        self.auto_mode = auto_mode  # the module streams after power-on unless saved in query mode
        self.faults, self.emissivity_x100 = faults or FaultPlan(), emissivity_x100
        self._rng = np.random.default_rng(seed)
        self._commands = bytearray()
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start streaming in a thread."""
        self._thread = threading.Thread(target=self._serve, name="thermal90640-sim", daemon=True)
        self._thread.start()

    def _handle_commands(self) -> None:
        received = self.device.read_available()
        if not received:
            return
        with self._lock:
            self._commands += received
            pending = bytes(self._commands[-len(received) - 3 :])
        for i in range(len(pending) - 3):
            cmd = pending[i : i + 4]
            if cmd[0] != 0xA5 or (cmd[0] + cmd[1] + cmd[2]) & 0xFF != cmd[3]:
                continue
            if cmd == AUTO_MODE_COMMAND:
                self.auto_mode = True
            elif cmd == QUERY_MODE_COMMAND:
                self.auto_mode = False
            elif cmd == QUERY_EMISSIVITY_COMMAND:
                self.device.write(emissivity_reply(self.emissivity_x100))

    def _serve(self) -> None:
        stream = stream_bytes(self.frames, self.faults, self._rng)
        next_at = time.monotonic()
        for data in stream:
            while True:
                self._handle_commands()
                wait = next_at - time.monotonic()
                if wait <= 0 and self.auto_mode:
                    break
                if self._stop.wait(max(min(wait, 0.02), 0.002)):
                    return
            self.device.write(data)  # while unplugged the frame goes nowhere, as on real hardware
            with self._lock:
                self._sent += 1
            next_at = max(next_at + self.interval_s, time.monotonic())  # late (query mode): no burst
        while not self._stop.wait(0.02):
            self._handle_commands()

    def host_commands(self) -> bytes:
        """Everything the host has sent so far."""
        self._handle_commands()
        with self._lock:
            return bytes(self._commands)

    def frames_sent(self) -> int:
        """Frames streamed so far (including any sent while unplugged)."""
        with self._lock:
            return self._sent

    def done(self) -> bool:
        """True once every frame has been streamed."""
        return self.frames_sent() == len(self.frames)

    def stop(self) -> None:
        """Stop streaming and unplug."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.device.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m firmware_sim.thermal90640 --link PATH --scenario NAME [--seed N] [--fps F] [--speed X] ...`."""
    parser = argparse.ArgumentParser(prog="firmware_sim.thermal90640", description=__doc__.splitlines()[0])
    parser.add_argument("--link", type=Path, required=True, help="symlink to create for the pty")
    parser.add_argument("--scenario", choices=SCENARIOS, default="mixed_busy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fps", type=float, help="frames per second (default: the scenario's own rate)")
    parser.add_argument("--speed", type=float, default=1.0, help="play the frames this many times faster")
    parser.add_argument("--repeat", type=int, default=1, help="play the scenario this many times")
    parser.add_argument("--truth", type=Path, help="where to write the ground-truth JSON")
    parser.add_argument("--faults", default="", help=f"comma-separated: {','.join(FAULT_KINDS)}")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument(
        "--query-mode",
        action="store_true",
        help="start as if saved in query mode: stream once the host sends auto mode",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        scene = scenario(args.scenario, args.seed, args.fps)
        faults = FaultPlan(tuple(k for k in args.faults.split(",") if k), args.fault_rate)
    except ValueError as exc:
        print(f"firmware_sim.thermal90640: {exc}", file=sys.stderr)
        return 2
    frames = np.concatenate([render_frames(scene)] * max(1, args.repeat))
    sim = Thermal90640Simulator(
        args.link, frames, scene.fps, speed=args.speed, auto_mode=not args.query_mode, faults=faults, seed=args.seed
    )
    truth = {k: v * max(1, args.repeat) for k, v in scene.truth().items()}
    print(json.dumps({"ready": True, "link": str(args.link), "scenario": scene.name, **truth}), flush=True)
    sim.start()
    try:
        while not sim.done():
            time.sleep(0.1)
    except KeyboardInterrupt:
        return 130
    finally:
        sim.stop()
    if args.truth:
        args.truth.write_text(json.dumps({"scenario": scene.name, "seed": args.seed, **truth}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
