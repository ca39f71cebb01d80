"""HLK-LD2410 simulator on a pty, written from the published format (protocols.md 1.2-1.4).

It deliberately does not import the driver's protocol module. The device streams report frames at
about 10 Hz (basic, or engineering after command 0x0062) and answers command frames with ACKs.

Outside config mode the simulated device stays silent for every command except enable config
(0x00FF): the vendor documents say commands are ignored there, and silence is the stricter choice
for a driver (it must time out rather than wait for a failure status). Unknown commands inside
config mode get an ACK with status 1. Config mode and engineering mode end on `replug()` when
`power_cycle=True`, as on a real restart.

    python -m firmware_sim.ld2410 --link /tmp/sim/radar --timeline 0:0,5:1,12:2,20:0 --seconds 30 \
        --truth /tmp/sim/radar-truth.json
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import threading
import time
from pathlib import Path

from firmware_sim.pty_device import PtyDevice

REPORT_HEAD, REPORT_TAIL = b"\xf4\xf3\xf2\xf1", b"\xf8\xf7\xf6\xf5"
CMD_HEAD, CMD_TAIL = b"\xfd\xfc\xfb\xfa", b"\x04\x03\x02\x01"
FIRMWARE_REPLY = bytes.fromhex("0000020116240622")  # type 0, V1.02.22062416, from the published trace


def encode_report(target: int, *, engineering: bool = False, light: int = 0x60, out_pin: int = 1) -> bytes:
    """A report frame for target state 0-3 with plausible distances and energies."""
    moving = target & 1
    still = (target >> 1) & 1
    body = struct.pack("<BHBHBH", target, 81 * moving, 60 * moving, 120 * still, 59 * still, 150 if target else 0)
    if engineering:
        gates = bytes([8, 8]) + bytes([30 * moving] * 9) + bytes([25 * still] * 9) + bytes([light, out_pin])
        payload = b"\x01\xaa" + body + gates + b"\x55\x00"
    else:
        payload = b"\x02\xaa" + body + b"\x55\x00"
    return REPORT_HEAD + struct.pack("<H", len(payload)) + payload + REPORT_TAIL


def encode_ack(cmd: int, status: int, data: bytes = b"") -> bytes:
    """An ACK frame: (cmd | 0x0100) LE, status LE, reply data."""
    payload = struct.pack("<HH", cmd | 0x0100, status) + data
    return CMD_HEAD + struct.pack("<H", len(payload)) + payload + CMD_TAIL


class LD2410Simulator:
    """One radar on a pty: a presence timeline, the config handshake, engineering mode."""

    def __init__(
        self,
        link: str | Path,
        timeline: list[tuple[float, int]] | None = None,
        *,
        report_hz: float = 10.0,
        seed: int = 0,
        garbage_rate: float = 0.0,
    ) -> None:
        self.device = PtyDevice(link)
        self.timeline = sorted(timeline or [(0.0, 0)])
        self.report_hz = report_hz
        self.garbage_rate = garbage_rate
        self.config_mode = False
        self.engineering = False
        self.commands: list[int] = []  # every command word received, in order
        self.truth: list[dict[str, float | bool]] = []  # presence transitions the device reported
        self._rng = random.Random(seed)
        self._override: int | None = None
        self._rx = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._last_present: bool | None = None

    def start(self) -> LD2410Simulator:
        """Start streaming."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="ld2410-sim", daemon=True)
        self._thread.start()
        return self

    def target_at(self, elapsed_s: float) -> int:
        """The target state the timeline (or `set_target`) gives at this moment."""
        with self._lock:
            if self._override is not None:
                return self._override
        state = 0
        for at, target in self.timeline:
            if at <= elapsed_s:
                state = target
        return state

    def set_target(self, target: int) -> None:
        """Override the timeline from now on (tests)."""
        with self._lock:
            self._override = target

    def _serve(self) -> None:
        period = 1.0 / self.report_hz
        while not self._stop.wait(period):
            self._answer_commands()
            elapsed = time.monotonic() - self._t0
            target = self.target_at(elapsed)
            present = target != 0
            if present != self._last_present:
                self._last_present = present
                self.truth.append({"t_s": round(elapsed, 3), "present": present})
            data = encode_report(target, engineering=self.engineering)
            if self.garbage_rate and self._rng.random() < self.garbage_rate:
                data = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 16))) + data
            half = self._rng.randrange(1, len(data))  # frames split across writes must still arrive intact
            self.device.write(data[:half])
            self.device.write(data[half:])

    def _answer_commands(self) -> None:
        self._rx += self.device.read_available()
        while True:
            start = self._rx.find(CMD_HEAD)
            if start < 0:
                del self._rx[: max(0, len(self._rx) - 3)]
                return
            if len(self._rx) < start + 6:
                return
            (length,) = struct.unpack_from("<H", self._rx, start + 4)
            end = start + 6 + length + 4
            if len(self._rx) < end:
                return
            frame = bytes(self._rx[start:end])
            del self._rx[:end]
            if frame[-4:] != CMD_TAIL or length < 2:
                continue
            (cmd,) = struct.unpack_from("<H", frame, 6)
            self.commands.append(cmd)
            reply = self._reply(cmd)
            if reply:
                self.device.write(reply)

    def _reply(self, cmd: int) -> bytes:
        if cmd == 0x00FF:
            self.config_mode = True
            return encode_ack(cmd, 0, b"\x01\x00\x40\x00")
        if not self.config_mode:
            return b""  # ignored outside config mode (see the module docstring)
        if cmd == 0x00FE:
            self.config_mode = False
            return encode_ack(cmd, 0)
        if cmd in (0x0062, 0x0063):
            self.engineering = cmd == 0x0062
            return encode_ack(cmd, 0)
        if cmd == 0x00A0:
            return encode_ack(cmd, 0, FIRMWARE_REPLY)
        return encode_ack(cmd, 1)

    def inject_garbage(self, data: bytes) -> None:
        """Send bytes that are not a frame."""
        self.device.write(data)

    def unplug(self) -> None:
        """Pull the cable."""
        self.device.unplug()

    def replug(self, power_cycle: bool = True) -> None:
        """Plug back in; with power_cycle the modes reset as after a restart."""
        if power_cycle:
            self.config_mode = self.engineering = False
        self._rx.clear()
        self.device.replug()

    def stop(self) -> None:
        """Stop streaming and unplug."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.device.close()


def _timeline(text: str) -> list[tuple[float, int]]:
    points = []
    for part in text.split(","):
        at, _, target = part.partition(":")
        points.append((float(at), int(target)))
    if any(t not in (0, 1, 2, 3) for _, t in points):
        raise argparse.ArgumentTypeError("target states are 0-3")
    return points


def main(argv: list[str] | None = None) -> int:
    """Serve one radar for --seconds, then write the presence ground truth."""
    parser = argparse.ArgumentParser(prog="firmware_sim.ld2410", description=__doc__.splitlines()[0])
    parser.add_argument("--link", type=Path, required=True, help="symlink path to create for the pty")
    parser.add_argument("--timeline", type=_timeline, default=[(0.0, 0)], help="SECONDS:TARGET,... (0-3)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--garbage-rate", type=float, default=0.0)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sim = LD2410Simulator(args.link, args.timeline, seed=args.seed, garbage_rate=args.garbage_rate).start()
    print(json.dumps({"ready": True, "link": str(args.link)}), flush=True)
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        return 130
    finally:
        sim.stop()
    args.truth.write_text(json.dumps({"device": "ld2410", "transitions": sim.truth}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
