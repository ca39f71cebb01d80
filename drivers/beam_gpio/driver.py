"""Two-beam IR break on GPIO: gpiozero edges into the pure BeamDirection state machine."""

from __future__ import annotations

import re
import threading
import time
from typing import Any, ClassVar

from agent.driver_api import BackgroundDriver, DoorCount, DriverError, DriverOptionError, Sink
from agent.driver_api.options import Option, Options, flag, name, number
from drivers.beam_gpio.protocol import ENTRY, BeamDirection

PIN_NAME = re.compile(r"^(GPIO\d{1,2}|BCM\d{1,2}|BOARD\d{1,2}|J8:\d{1,2})$")
TICK_S = 0.05


def _is_pin(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value <= 27
    return isinstance(value, str) and bool(PIN_NAME.match(value))


def _pin(key: str) -> Option:
    return Option(key, accept=_is_pin, what="a GPIO pin", fix='use a BCM number 0-27 (e.g. 17) or "GPIO17"/"BOARD11"')


def _seconds(key: str) -> Option:
    """A timing of the state machine; its default is the one BeamDirection (protocol.py) declares."""
    default = getattr(BeamDirection, key)
    return number(key, default, low=0, high=60, fix=f"use {default}")


def _two_pins(values: dict[str, Any]) -> None:
    if values["pin_a"] == values["pin_b"]:
        raise DriverOptionError("pin_b", "is the same pin as pin_a", "wire beam B to its own GPIO pin")


class BeamGpioDriver(BackgroundDriver):
    """Counts crossings through two IR beams on GPIO and emits one DoorCount per crossing."""

    kind: ClassVar[str] = "beam_gpio"
    options: ClassVar[Options] = Options(
        name("door"),
        _pin("pin_a"),
        _pin("pin_b"),
        flag("pull_up", True),
        _seconds("min_broken_s"),
        _seconds("simultaneous_s"),
        _seconds("timeout_s"),
        _seconds("rearm_s"),
        flag("swap_direction", False),
        checks=(_two_pins,),
    )

    def __init__(self, name: str, door: str, pin_a: int | str, pin_b: int | str, *, pull_up: bool,
                 swap_direction: bool, min_broken_s: float, simultaneous_s: float, timeout_s: float,
                 rearm_s: float) -> None:  # fmt: skip
        super().__init__(name)
        self.door, self.pin_a, self.pin_b, self.pull_up = door, pin_a, pin_b, pull_up
        self.machine = BeamDirection(min_broken_s, simultaneous_s, timeout_s, rearm_s)
        self.swap_direction = swap_direction
        self.pin_factory: Any = None  # gpiozero's default; tests set gpiozero.pins.mock.MockFactory()
        self._lock = threading.Lock()  # the state machine and the counters
        self._devices: list[Any] = []
        self._reported = (0, 0, 0)

    def doors(self) -> list[str]:
        """The one door the beams span."""
        return [self.door]

    def _health_extra(self) -> dict[str, Any]:
        """glitch, ambiguous and timeout counts by name (bad_frames is their sum)."""
        with self._lock:
            return {"glitches": self.machine.glitches, "ambiguous": self.machine.ambiguous,
                    "timeouts": self.machine.timeouts}  # fmt: skip

    def _where(self) -> str:
        return f"GPIO {self.pin_a}/{self.pin_b}"

    def _connect(self, sink: Sink) -> None:
        try:
            from gpiozero import DigitalInputDevice  # optional dependency (the gpio extra): imported only when used

            for beam, pin in (("a", self.pin_a), ("b", self.pin_b)):
                device = DigitalInputDevice(pin, pull_up=self.pull_up, pin_factory=self.pin_factory)
                device.when_activated = lambda beam=beam: self._edge(sink, beam, True)
                device.when_deactivated = lambda beam=beam: self._edge(sink, beam, False)
                self._devices.append(device)
        except Exception as exc:  # ImportError, BadPinFactory, GPIOPinInUse, PinInvalidPin, ...
            if isinstance(exc, ImportError):  # gpiozero is the `gpio` extra, not in a plain agent install
                hint = "install the gpio extra: pip install 'shopkeeper[gpio]' (or Debian's python3-gpiozero)"
            else:
                hint = "check pin_a/pin_b and the pin factory"
            raise DriverError(f"{type(exc).__name__}: {exc}; {hint}") from exc

    def _session(self, sink: Sink) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                self.machine.tick(time.monotonic())
            self._after_machine(sink, [])

    def _disconnect(self) -> None:
        devices, self._devices = self._devices, []
        for device in devices:
            device.close()

    def _edge(self, sink: Sink, beam: str, broken: bool) -> None:
        now = time.monotonic()  # stamped first: the edge's time, not the lock's
        with self._lock:
            directions = self.machine.feed(beam, broken, now)
        self._after_machine(sink, directions)

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
            if not self._emit(sink, DoorCount(self.door, int(entry), int(not entry))):
                return
