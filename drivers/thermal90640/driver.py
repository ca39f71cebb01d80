"""GY-MCU90640 thermal array driver: thin I/O glue around the pure parser and the counting kernels."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import serial

from agent.driver_api import DoorCount, DriverOptionError, Sink
from agent.kernels.thermal import CountingParams, ThermalCounter
from agent.serial_driver import SerialDriver
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

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("port", "door", "baudrate", "rate_hz", "entry_direction", "counting")
DIRECTIONS = ("down", "up", "left", "right")
READ_TIMEOUT_S = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class Tunable:
    """One key of the `counting` table: the CountingParams field it sets, its type and range."""

    key: str
    field: str
    kind: type
    low: float
    high: float
    meaning: str


TUNABLES = (
    Tunable("background_rate", "alpha", float, 0.0001, 0.5, "background learning rate per frame"),
    Tunable("k_sigma", "k_sigma", float, 0.5, 20.0, "foreground threshold in noise sigmas"),
    Tunable("min_delta_c", "min_delta", float, 0.2, 15.0, "minimum °C above the background"),
    Tunable("min_pixels", "min_pixels", int, 1, 200, "smallest blob, in pixels"),
    Tunable("person_width", "person_width", float, 2.0, 30.0, "pixels one person spans across the walk"),
    Tunable("valley_ratio", "valley_ratio", float, 0.05, 0.99, "valley depth that splits two people"),
    Tunable("max_jump", "max_jump", float, 1.0, 30.0, "pixels a person may move between frames"),
    Tunable("max_missing", "max_missing", int, 0, 50, "frames a track may go unseen"),
    Tunable("warmup_frames", "warmup", int, 1, 1000, "frames that only learn the background"),
)


def _number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, int | float)


def parse_counting(table: Any) -> CountingParams:
    """The `counting` sub-table as CountingParams; raises DriverOptionError naming `counting.<key>`."""
    if not isinstance(table, Mapping):
        raise DriverOptionError("counting", f"{table!r} is not a table", "write it as [drivers.<name>.counting]")
    known = {t.key: t for t in TUNABLES}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key == "lines":
            ok = (
                isinstance(value, list)
                and len(value) == 2
                and all(_number(v, float) for v in value)
                and 0.0 < value[0] < value[1] < 1.0
            )
            if not ok:
                raise DriverOptionError("counting.lines", f"{value!r} is not two rising fractions", "use [0.35, 0.65]")
            changes["line_a"], changes["line_b"] = float(value[0]), float(value[1])
            continue
        tunable = known.get(key)
        if tunable is None:
            names = ", ".join([*known, "lines"])
            raise DriverOptionError(f"counting.{key}", "unknown option", f"remove it; counting takes {names}")
        if not _number(value, tunable.kind) or not tunable.low <= value <= tunable.high:
            default = getattr(CountingParams(), tunable.field)
            raise DriverOptionError(
                f"counting.{key}",
                f"{value!r} is not a {tunable.kind.__name__} in [{tunable.low:g}, {tunable.high:g}]",
                f"use {default!r} (the default {tunable.meaning})",
            )
        changes[tunable.field] = tunable.kind(value)
    return dataclasses.replace(CountingParams(), **changes)


class Thermal90640Driver(SerialDriver):
    """Counts people crossing one door under a GY-MCU90640 and emits DoorCounts as they cross."""

    kind: ClassVar[str] = "thermal90640"

    def __init__(
        self,
        name: str,
        port: str,
        door: str,
        *,
        baudrate: int = 115200,
        rate_hz: float = 4.0,
        entry_direction: str = "down",
        counting: CountingParams | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            port,
            baudrate,
            read_timeout_s=READ_TIMEOUT_S,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        self.door, self.rate_hz, self.entry_direction = door, rate_hz, entry_direction
        self.counting = counting or CountingParams()
        sideways = entry_direction in ("left", "right")
        self.counter = (
            ThermalCounter(COLS, ROWS, self.counting) if sideways else ThermalCounter(ROWS, COLS, self.counting)
        )
        self.parser = Thermal90640Parser()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Thermal90640Driver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; thermal90640 takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError(
                "port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..." (or a pyserial URL)'
            )
        door = options.get("door")
        if not isinstance(door, str) or not DOOR_NAME.match(door):
            raise DriverOptionError(
                "door", f"{door!r} is not a door name", 'use lowercase letters, digits, "_" or "-", e.g. "front"'
            )
        baudrate = options.get("baudrate", 115200)
        if isinstance(baudrate, bool) or baudrate not in BAUD_CODES:
            raise DriverOptionError(
                "baudrate", f"{baudrate!r} is not a GY-MCU90640 line speed", "use 115200 (the default) or 460800"
            )
        rate = options.get("rate_hz", 4)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or float(rate) not in RATE_CODES:
            raise DriverOptionError("rate_hz", f"{rate!r} is not a module frame rate", "use 0.5, 1, 2, 4 or 8")
        if float(rate) > MAX_RATE_AT_BAUD[baudrate]:
            raise DriverOptionError(
                "rate_hz",
                f"{rate} Hz does not fit through {baudrate} baud",
                f"use rate_hz = {MAX_RATE_AT_BAUD[baudrate]:g} or baudrate = 460800",
            )
        direction = options.get("entry_direction", "down")
        if direction not in DIRECTIONS:
            raise DriverOptionError(
                "entry_direction", f"{direction!r} is not a direction", f"use one of {', '.join(DIRECTIONS)}"
            )
        counting = parse_counting(options.get("counting", {}))
        return cls(
            name,
            port.strip(),
            door,
            baudrate=baudrate,
            rate_hz=float(rate),
            entry_direction=direction,
            counting=counting,
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.thermal90640").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """The one door this sensor watches."""
        return [self.door]

    def count(self, pixels: npt.NDArray[np.int16]) -> tuple[int, int]:
        """(entries, exits) completed by one frame, in this mounting's orientation."""
        sideways = self.entry_direction in ("left", "right")
        down, up = self.counter.feed(np.ascontiguousarray(pixels.T) if sideways else pixels)
        return (down, up) if self.entry_direction in ("down", "right") else (up, down)

    def _prepare(self) -> None:
        # Load (or compile) the kernels before the port opens, so the first frames are not left
        # waiting in the UART buffer while numba reads its cache.
        ThermalCounter(self.counter.rows, self.counter.cols, self.counting).feed(
            np.zeros((self.counter.rows, self.counter.cols), dtype=np.int16)
        )

    def _on_connect(self, port: serial.SerialBase, first: bool) -> None:
        self.parser.reset()  # resync on the next header; a partial frame from before is gone
        self.counter.reset_tracks()  # people moved while we were away; the background is kept
        # Auto mode and rate may be lost after a power cycle, so they are sent on every connection.
        port.write(auto_mode_command() + rate_command(self.rate_hz) + query_emissivity_command())

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                bad_before = dict(self.parser.bad_reasons)
                self._handle(sink, self.parser.feed(data), bad_before)

    def _handle(self, sink: Sink, frames: list[ThermalFrame], bad_before: dict[str, int]) -> None:
        self._report_bad(sink, self.parser.bad_reasons, bad_before)
        with self._health.lock:
            self._health.frames = self.parser.frames
            self._health.bad_frames = self.parser.bad_frames
        for frame in frames:
            entries, exits = self.count(frame.pixels)
            if (entries or exits) and not self._emit(sink, DoorCount(self.door, entries, exits)):
                return
