"""Two-beam IR break on GPIO: gpiozero edges into the pure BeamDirection state machine."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

from agent.driver_api import DoorCount, DriverHealth, DriverOptionError, Sink
from drivers.beam_gpio.protocol import ENTRY, BeamDirection

DOOR_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
PIN_NAME = re.compile(r"^(GPIO\d{1,2}|BCM\d{1,2}|BOARD\d{1,2}|J8:\d{1,2})$")
OPTIONS = (
    "door",
    "pin_a",
    "pin_b",
    "pull_up",
    "min_broken_s",
    "simultaneous_s",
    "timeout_s",
    "rearm_s",
    "swap_direction",
)
TICK_S = 0.05


def _pin(options: Mapping[str, Any], key: str) -> int | str:
    value = options.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 27:
        return value
    if isinstance(value, str) and PIN_NAME.match(value):
        return value
    raise DriverOptionError(
        key, f"{value!r} is not a GPIO pin", 'use a BCM number 0-27 (e.g. 17) or "GPIO17"/"BOARD11"'
    )


def _seconds(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
        raise DriverOptionError(key, f"{value!r} is not 0-60 seconds", f"use {default}")
    return float(value)


class BeamGpioDriver:
    """Counts crossings through two IR beams on GPIO and emits one DoorCount per crossing."""

    kind: ClassVar[str] = "beam_gpio"

    def __init__(
        self,
        name: str,
        door: str,
        pin_a: int | str,
        pin_b: int | str,
        *,
        pull_up: bool = True,
        machine: BeamDirection | None = None,
        swap_direction: bool = False,
        retry_s: float = 5.0,
    ) -> None:
        self.name, self.door, self.pin_a, self.pin_b, self.pull_up = name, door, pin_a, pin_b, pull_up
        self.machine = machine or BeamDirection()
        self.swap_direction = swap_direction
        self.retry_s = retry_s
        self.pin_factory: Any = None  # gpiozero's default; tests set gpiozero.pins.mock.MockFactory()
        self._health = DriverHealth()
        self._lock = threading.Lock()  # the state machine and the counters
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._devices: list[Any] = []
        self._reported = (0, 0, 0)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> BeamGpioDriver:
        """Validate options without any I/O (gpiozero is not imported here)."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; beam_gpio takes {', '.join(OPTIONS)}")
        door = options.get("door")
        if not isinstance(door, str) or not DOOR_NAME.match(door):
            raise DriverOptionError("door", f"{door!r} is not a door name", 'use lowercase letters, digits, "_" or "-"')
        pin_a, pin_b = _pin(options, "pin_a"), _pin(options, "pin_b")
        if pin_a == pin_b:
            raise DriverOptionError("pin_b", "is the same pin as pin_a", "wire beam B to its own GPIO pin")
        for key in ("pull_up", "swap_direction"):
            if not isinstance(options.get(key, key == "pull_up"), bool):
                raise DriverOptionError(key, f"{options[key]!r} is not true or false", "use true or false")
        machine = BeamDirection(
            min_broken_s=_seconds(options, "min_broken_s", 0.04),
            simultaneous_s=_seconds(options, "simultaneous_s", 0.01),
            timeout_s=_seconds(options, "timeout_s", 2.0),
            rearm_s=_seconds(options, "rearm_s", 0.15),
        )
        return cls(
            name,
            door,
            pin_a,
            pin_b,
            pull_up=options.get("pull_up", True),
            machine=machine,
            swap_direction=options.get("swap_direction", False),
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.beam_gpio").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """The one door the beams span."""
        return [self.door]

    def health(self) -> dict[str, Any]:
        """connected, frames (crossings), bad_frames (glitch, ambiguous, timeout), plus those three by name."""
        with self._lock:
            extra = {"glitches": self.machine.glitches, "ambiguous": self.machine.ambiguous}
            extra["timeouts"] = self.machine.timeouts
        return {**self._health.snapshot(), **extra}

    def alive(self) -> bool:
        """False once the background thread has ended without stop() (the supervisor then restarts it)."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def start(self, sink: Sink) -> None:
        """Open the pins (retrying if they cannot be opened) and start the timeout ticker."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:  # a restart after stop() or a crash begins afresh
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"beam-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the pins; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close()

    def _close(self) -> None:
        devices, self._devices = self._devices, []
        for device in devices:
            device.close()
        with self._health.lock:
            self._health.connected = False

    def _open(self, sink: Sink) -> bool:
        try:
            from gpiozero import DigitalInputDevice  # optional dependency: imported only when used

            for beam, pin in (("a", self.pin_a), ("b", self.pin_b)):
                device = DigitalInputDevice(pin, pull_up=self.pull_up, pin_factory=self.pin_factory)
                device.when_activated = lambda beam=beam: self._edge(sink, beam, True)
                device.when_deactivated = lambda beam=beam: self._edge(sink, beam, False)
                self._devices.append(device)
        except Exception as exc:  # ImportError, BadPinFactory, GPIOPinInUse, PinInvalidPin, ...
            self._close()
            with self._health.lock:
                self._health.last_error = str(exc) or type(exc).__name__
            if isinstance(exc, ImportError):  # gpiozero is the `gpio` extra, not in a plain agent install
                hint = "install the gpio extra: pip install 'shopkeeper[gpio]' (or Debian's python3-gpiozero)"
            else:
                hint = "check pin_a/pin_b and the pin factory"
            self._report(sink, "problem", f"GPIO {self.pin_a}/{self.pin_b}: {type(exc).__name__}: {exc}; {hint}")
            return False
        with self._health.lock:
            self._health.connected = True
        return True

    def _run(self, sink: Sink) -> None:
        while not self._stop.is_set() and not self._open(sink):
            if self._stop.wait(self.retry_s):
                return
        while not self._stop.wait(TICK_S):
            with self._lock:
                self.machine.tick(time.monotonic())
            self._after_machine(sink, [])

    def _edge(self, sink: Sink, beam: str, broken: bool) -> None:
        now = time.monotonic()  # stamped first: the edge's time, not the lock's
        with self._lock:
            directions = self.machine.feed(beam, broken, now)
        self._after_machine(sink, directions)

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _after_machine(self, sink: Sink, directions: list[str]) -> None:
        with self._lock:
            counts = (self.machine.glitches, self.machine.ambiguous, self.machine.timeouts)
            new = [b - a for a, b in zip(self._reported, counts, strict=True)]
            self._reported = counts
        for reason, n in zip(("glitch", "ambiguous", "timeout"), new, strict=True):
            for _ in range(n):
                self._report(sink, "bad_frame", reason)
        with self._health.lock:
            self._health.frames += len(directions)
            self._health.bad_frames = sum(counts)
        for direction in directions:
            entry = (direction == ENTRY) != self.swap_direction
            with self._emit_lock:
                if self._stopped:
                    return
                sink.emit(DoorCount(self.door, int(entry), int(not entry)))
