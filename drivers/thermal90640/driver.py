"""GY-MCU90640 thermal array driver: thin I/O glue around the pure parser and the people counter.

The counter is the NumPy one (agent/kernels/thermal_numpy.py), bit for bit the numba kernels' counts:
the array streams all day, and a numba counter would keep the JIT resident for as long as it does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import serial

from agent.driver_api import DoorCount, DriverOptionError, Sink
from agent.driver_api.options import Option, Options, choice, integer, name, number, serial_port, table
from agent.driver_api.serial import SerialDriver
from agent.kernels.thermal_numpy import ThermalCounterNumpy
from agent.kernels.thermal_params import CountingParams
from drivers.thermal90640.protocol import (
    BAUD_CODES,
    COLS,
    MAX_RATE_AT_BAUD,
    RATE_CODES,
    ROWS,
    Thermal90640Parser,
    ThermalFrame,
    auto_mode_command,
    query_emissivity_command,
    rate_command,
)

DIRECTIONS = ("down", "up", "left", "right")
READ_TIMEOUT_S = 0.2
# Frames arriving slower than this share of rate_hz mean the module runs slower than asked (sources
# disagree on its rate codes, protocols.md 2.1): the counter then follows the measured rate.
SLOW_SHARE = 0.75


@dataclasses.dataclass
class FrameRateMeter:
    """Frames per second over windows of `window` frames; a gap longer than `max_gap_s` starts afresh."""

    window: int = 32
    max_gap_s: float = 2.0
    _first: float = 0.0
    _last: float = -math.inf
    _n: int = 0

    def frame(self, now: float) -> float | None:
        """Note a frame that arrived at monotonic time `now`; the rate once a window is complete."""
        if now - self._last > self.max_gap_s:  # a stall or reconnect is not a slow module
            self._first, self._n = now, 0
        self._last, self._n = now, self._n + 1
        if self._n <= self.window or now <= self._first:
            return None
        rate = (self._n - 1) / (now - self._first)
        self._first, self._n = now, 1
        return rate

    def reset(self) -> None:
        """Forget the frames seen so far (after a reconnect)."""
        self._last, self._n = -math.inf, 0


@dataclasses.dataclass(frozen=True, slots=True)
class Tunable:
    """One key of the `counting` table: the CountingParams field it sets, its type and range."""

    key: str
    field: str
    kind: type
    low: float
    high: float
    meaning: str

    def option(self) -> Option:
        """The declared option, its default taken from CountingParams."""
        default = getattr(CountingParams(), self.field)
        fix = f"use {default!r} (the default {self.meaning})"
        if self.kind is int:
            return integer(self.key, default, low=int(self.low), high=int(self.high), fix=fix)
        return number(self.key, default, low=self.low, high=self.high, fix=fix)


TUNABLES = (
    Tunable("background_s", "background_s", float, 0.5, 3600.0, "seconds the background takes to follow the floor"),
    Tunable("k_sigma", "k_sigma", float, 0.5, 20.0, "foreground threshold in noise sigmas"),
    Tunable("min_delta_c", "min_delta", float, 0.2, 15.0, "minimum °C above the background"),
    Tunable("min_pixels", "min_pixels", int, 1, 200, "smallest blob, in pixels"),
    Tunable("person_width", "person_width", float, 2.0, 30.0, "pixels one person spans across the walk"),
    Tunable("valley_ratio", "valley_ratio", float, 0.05, 0.99, "valley depth that splits two people"),
    Tunable("max_speed_px_s", "max_speed", float, 5.0, 500.0, "pixels a second the fastest person moves"),
    Tunable("max_missing_s", "max_missing_s", float, 0.0, 10.0, "seconds a track may go unseen"),
    Tunable("warmup_s", "warmup_s", float, 0.1, 600.0, "seconds that only learn the background"),
)
# Frame-count keys of earlier versions: their meaning changed with the frame rate, so they are refused
# with the per-second key to set instead (one config line, not a silent reinterpretation).
RENAMED = {
    "max_jump": "set max_speed_px_s = (max_jump - 3) × rate_hz (pixels a second, not a frame)",
    "max_missing": "set max_missing_s = max_missing / rate_hz (seconds, not frames)",
    "warmup_frames": "set warmup_s = warmup_frames / rate_hz (seconds, not frames)",
    "background_rate": "set background_s = 1 / (background_rate × rate_hz) (a time constant in seconds)",
}
MIN_COUNTING_RATE_HZ = 4.0  # below this a runner crosses the view between two frames (docs/performance.md)


class CountingOptions(Options):
    """The `counting` table's options, refusing the old per-frame keys with the per-second one to use."""

    def parse(self, table: Mapping[str, Any], where: str = "", prefix: str = "") -> dict[str, Any]:
        """As Options.parse; an old per-frame key names its replacement."""
        for key in table:
            if key in RENAMED:
                problem = "a per-frame limit, no longer read (frames depend on rate_hz)"
                fix = f"remove it (the default follows rate_hz) or {RENAMED[key]}"
                raise DriverOptionError(prefix + key, problem, fix)
        return super().parse(table, where, prefix)


def _rising_fractions(value: Any) -> bool:
    numbers = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    return numbers and len(value) == 2 and 0.0 < value[0] < value[1] < 1.0


def counting_params(values: dict[str, Any]) -> CountingParams:
    """The validated `counting` table as CountingParams."""
    changes = {t.field: t.kind(values[t.key]) for t in TUNABLES}
    changes["line_a"], changes["line_b"] = (float(v) for v in values["lines"])
    return dataclasses.replace(CountingParams(), **changes)


COUNTING = CountingOptions(
    Option(
        "lines",
        [CountingParams().line_a, CountingParams().line_b],
        _rising_fractions,
        "two rising fractions",
        "use [0.35, 0.65]",
    ),
    *(t.option() for t in TUNABLES),
)


def _rate_fits_baud(values: dict[str, Any]) -> None:
    rate, baudrate = values["rate_hz"], values["baudrate"]
    if rate > MAX_RATE_AT_BAUD[baudrate]:
        raise DriverOptionError(
            "rate_hz",
            f"{rate:g} Hz does not fit through {baudrate} baud",
            f"use rate_hz = {MAX_RATE_AT_BAUD[baudrate]:g} or baudrate = 460800"
            if MAX_RATE_AT_BAUD[baudrate] >= MIN_COUNTING_RATE_HZ
            else "use baudrate = 115200 (4 Hz) or 460800 (8 Hz)",
        )


def _rate_counts_people(values: dict[str, Any]) -> None:
    if values["rate_hz"] < MIN_COUNTING_RATE_HZ:
        raise DriverOptionError(
            "rate_hz",
            f"{values['rate_hz']:g} Hz is too slow to count people (a runner crosses the view between two frames)",
            "use rate_hz = 4 (the default) or 8 (with baudrate = 460800)",
        )


class Thermal90640Driver(SerialDriver):
    """Counts people crossing one door under a GY-MCU90640 and emits DoorCounts as they cross."""

    kind: ClassVar[str] = "thermal90640"
    options: ClassVar[Options] = Options(
        serial_port(),
        name("door"),
        choice("baudrate", 115200, tuple(BAUD_CODES), fix="use 115200 (the default) or 460800"),
        choice("rate_hz", 4, tuple(RATE_CODES), fix="use 4 (the default) or 8", convert=float),
        choice("entry_direction", "down", DIRECTIONS),
        table("counting", COUNTING, convert=counting_params),
        checks=(_rate_fits_baud, _rate_counts_people),
    )

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        baudrate: int,
        rate_hz: float,
        entry_direction: str,
        counting: CountingParams,
    ) -> None:
        super().__init__(name, port, baudrate, read_timeout_s=READ_TIMEOUT_S)
        self.door, self.rate_hz, self.entry_direction = door, rate_hz, entry_direction
        self.counting = counting
        sideways = entry_direction in ("left", "right")
        # The per-frame limits (jump, coasting, warm-up, background) follow the frame rate asked of the module.
        rows, cols = (COLS, ROWS) if sideways else (ROWS, COLS)
        self.counter = ThermalCounterNumpy(rows, cols, self.counting, rate_hz=rate_hz)
        self.parser = Thermal90640Parser()
        self.meter = FrameRateMeter()
        self.measured_rate_hz: float | None = None
        self._slow = False  # frames came slower than asked at the last measurement (reported once)

    def doors(self) -> list[str]:
        """The one door this sensor watches."""
        return [self.door]

    def count(self, pixels: npt.NDArray[np.int16]) -> tuple[int, int]:
        """(entries, exits) completed by one frame, in this mounting's orientation."""
        sideways = self.entry_direction in ("left", "right")
        down, up = self.counter.feed(np.ascontiguousarray(pixels.T) if sideways else pixels)
        return (down, up) if self.entry_direction in ("down", "right") else (up, down)

    def _health_extra(self) -> dict[str, Any]:
        measured = self.measured_rate_hz
        return {
            "frame_rate_hz": None if measured is None else round(measured, 2),
            "counting_rate_hz": self.counter.rate_hz,
        }

    def follow_rate(self, sink: Sink, measured: float) -> None:
        """Count with limits for the measured rate when frames come slower than asked; back when they do not."""
        self.measured_rate_hz = measured
        slow = measured < SLOW_SHARE * self.rate_hz
        # Never below 4 Hz: at slower rates the wider jump limit joins strangers more than it finds runners.
        rate = max(measured, MIN_COUNTING_RATE_HZ) if slow else self.rate_hz
        if abs(rate - self.counter.rate_hz) > 0.1 * self.counter.rate_hz:
            self.counter.set_rate(rate)
        if slow and not self._slow:
            message = (
                f"frames arrive at {measured:.1f} Hz, not the {self.rate_hz:g} Hz asked; counting for {rate:.1f} Hz "
                "(check the module's rate and baud rate; below 4 Hz runners are missed)"
            )
            self._set_health(last_error=message)
            self._report(sink, "problem", message)
        self._slow = slow

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # resync on the next header; a partial frame from before is gone
        self.counter.reset_tracks()  # people moved while we were away; the background is kept
        self.meter.reset()
        # Auto mode and rate may be lost after a power cycle, so they are sent on every connection.
        port.write(auto_mode_command() + rate_command(self.rate_hz) + query_emissivity_command())

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                bad_before = dict(self.parser.bad_reasons)
                self._handle(sink, self.parser.feed(data), bad_before, time.monotonic())

    def _handle(self, sink: Sink, frames: list[ThermalFrame], bad_before: dict[str, int], now: float) -> None:
        self._report_bad(sink, self.parser.bad_reasons, bad_before)
        with self._health.lock:
            self._health.frames = self.parser.frames
            self._health.bad_frames = self.parser.bad_frames
        for frame in frames:
            measured = self.meter.frame(now)
            if measured is not None:
                self.follow_rate(sink, measured)
            entries, exits = self.count(frame.pixels)
            if (entries or exits) and not self._emit(sink, DoorCount(self.door, entries, exits)):
                return
