"""A Modbus RTU people counter (slave) on a pty, answering FC03/FC04 per our register map.

Written from the Modbus serial-line rules (protocols.md 3.3) and the register map documented in
drivers/modbus_counter/README.md; it does not import the driver's protocol module.

    reg 0-1 entries u32 | 2-3 exits u32 | 4 status | 5 firmware | 6 boot_count | 7 model 0x5343 | 8 reserved

Requests with a bad CRC or for another address get no reply (as the spec says); unknown functions
get exception 01, reads past register 8 exception 02, a count of 0 or > 125 exception 03. Crossings
come from a seeded list replayed in real time, or from `cross()`.

    python -m firmware_sim.modbus_counter --link /tmp/sim/counter --seconds 60 --rate 0.5 --seed 3 \
        --truth /tmp/sim/counter-truth.json
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

REGISTERS = 9
MODEL = 0x5343
FIRMWARE = 0x0103  # 1.3


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS, bit by bit: init 0xFFFF, shift right, xor 0xA001 when the low bit was set."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def frame(body: bytes) -> bytes:
    """Body plus CRC, low byte first."""
    crc = crc16_modbus(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def seeded_crossings(seed: int, seconds: float, rate_per_s: float) -> list[tuple[float, str]]:
    """(offset seconds, "entry" | "exit") as a Poisson stream with a 55 % share of entries."""
    rng = random.Random(seed)
    out, t = [], 0.0
    while rate_per_s > 0:
        t += rng.expovariate(rate_per_s)
        if t >= seconds:
            break
        out.append((round(t, 4), "entry" if rng.random() < 0.55 else "exit"))
    return out


class ModbusCounterSimulator:
    """One RTU slave on a pty with cumulative u32 counters."""

    def __init__(
        self,
        link: str | Path,
        crossings: list[tuple[float, str]] | None = None,
        *,
        slave: int = 1,
        boot_count: int = 1,
    ) -> None:
        self.device = PtyDevice(link)
        self.slave = slave
        self.crossings = sorted(crossings or [])
        self.entries = self.exits = 0
        self.status = 0x0001
        self.boot_count = boot_count
        self.silent = False  # stop answering, as a device with a broken RS-485 line
        self.requests = 0
        self.truth = {"entries": 0, "exits": 0}
        self._rx = bytearray()
        self._noise = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._replayed = 0

    def start(self) -> ModbusCounterSimulator:
        """Start answering requests and replaying crossings."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="modbus-sim", daemon=True)
        self._thread.start()
        return self

    def cross(self, direction: str) -> None:
        """Count one crossing now."""
        with self._lock:
            if direction == "entry":
                self.entries = (self.entries + 1) % (1 << 32)
                self.truth["entries"] += 1
            else:
                self.exits = (self.exits + 1) % (1 << 32)
                self.truth["exits"] += 1

    def power_cycle(self) -> None:
        """Counters restart at zero and the boot counter goes up."""
        with self._lock:
            self.entries = self.exits = 0
            self.boot_count = (self.boot_count + 1) % (1 << 16)

    def registers(self) -> list[int]:
        """The holding registers 0-8."""
        with self._lock:
            return [
                self.entries >> 16,
                self.entries & 0xFFFF,
                self.exits >> 16,
                self.exits & 0xFFFF,
                self.status,
                FIRMWARE,
                self.boot_count,
                MODEL,
                0,
            ]

    def _serve(self) -> None:
        while not self._stop.wait(0.005):
            elapsed = time.monotonic() - self._t0
            while self._replayed < len(self.crossings) and self.crossings[self._replayed][0] <= elapsed:
                self.cross(self.crossings[self._replayed][1])
                self._replayed += 1
            self._rx += self.device.read_available()
            self._answer()

    def answer(self, request: bytes) -> bytes:
        """The reply to one complete request frame (b"" for no reply)."""
        if len(request) < 4 or crc16_modbus(request[:-2]) != request[-2] | request[-1] << 8:
            return b""
        if request[0] != self.slave or self.silent:
            return b""
        function = request[1]
        if function not in (0x03, 0x04):
            return frame(bytes([self.slave, function | 0x80, 0x01]))
        if len(request) != 8:
            return frame(bytes([self.slave, function | 0x80, 0x03]))
        start, count = struct.unpack(">HH", request[2:6])
        if not 1 <= count <= 125:
            return frame(bytes([self.slave, function | 0x80, 0x03]))
        if start + count > REGISTERS:
            return frame(bytes([self.slave, function | 0x80, 0x02]))
        values = self.registers()[start : start + count]
        return frame(bytes([self.slave, function, 2 * count]) + struct.pack(f">{count}H", *values))

    def _answer(self) -> None:
        # Requests from our driver are always 8 bytes (FC03/FC04); anything else is skipped to resync.
        while len(self._rx) >= 8:
            candidate = bytes(self._rx[:8])
            if crc16_modbus(candidate[:6]) == candidate[6] | candidate[7] << 8:
                del self._rx[:8]
                self.requests += 1
                reply = self.answer(candidate)
                if reply:
                    with self._lock:
                        noise, self._noise = bytes(self._noise), bytearray()
                    self.device.write(noise + reply)
            else:
                del self._rx[:1]

    def inject_garbage(self, data: bytes) -> None:
        """Line noise: these bytes go out just before the next reply (the host flushes its input before
        each request, so noise between transactions would never be seen)."""
        with self._lock:
            self._noise += data

    def unplug(self) -> None:
        """Pull the USB-RS485 adapter; the counter keeps counting."""
        self.device.unplug()

    def replug(self) -> None:
        """Plug the adapter back in."""
        self._rx.clear()
        self.device.replug()

    def stop(self) -> None:
        """Stop and unplug."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.device.close()


def main(argv: list[str] | None = None) -> int:
    """Serve one counter for --seconds, then write the ground truth (entries and exits counted)."""
    parser = argparse.ArgumentParser(prog="firmware_sim.modbus_counter", description=__doc__.splitlines()[0])
    parser.add_argument("--link", type=Path, required=True, help="symlink path to create for the pty")
    parser.add_argument("--slave", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=0.2, help="crossings per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    crossings = seeded_crossings(args.seed, args.seconds, args.rate)
    sim = ModbusCounterSimulator(args.link, crossings, slave=args.slave).start()
    print(json.dumps({"ready": True, "link": str(args.link), "crossings": len(crossings)}), flush=True)
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        return 130
    finally:
        sim.stop()
    truth = {"device": "modbus_counter", "seed": args.seed, **sim.truth}
    args.truth.write_text(json.dumps(truth, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
