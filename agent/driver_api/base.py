"""BackgroundDriver: the life cycle every driver shares, written once.

A subclass declares `kind` and `options` (an `Options` table whose keys are its constructor's keyword
arguments) and fills in hooks that run in the driver's own thread:

- `_prepare()`: one-time work before the first connection (loading kernels);
- `_connect(sink)`: open the device (port, socket, pins, folder); raise on failure;
- `_session(sink)`: read and emit until `self._stop` is set; raise when the device goes away;
- `_disconnect()`: close what `_connect` opened (runs after every connection, failed ones too).

The base runs connect -> session -> disconnect in a loop with capped exponential backoff, reports each
outage once through `sink.problem` (and `health()["last_error"]`), counts reconnects, and keeps the
stop gate: once `stop()` returns, nothing more reaches the sink. `start()` only starts the thread, so
a device that cannot be reached never takes the agent down: it is reported and retried.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from agent.driver_api.contract import DriverHealth, Sink
from agent.driver_api.options import Options
from agent.driver_api.readings import Reading
from agent.errors import DriverError

# What a device going away raises: the OS (unplug, refused, address in use) or a driver's own DriverError.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, DriverError)


class DeclaredOptions:
    """from_options and sample_config from a class's declared `options` and its package's sample.toml."""

    kind: ClassVar[str] = ""
    options: ClassVar[Options] = Options()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Any:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        factory: Any = cls  # the subclass's constructor takes the declared keys as keyword arguments
        return factory(name, **cls.options.parse(options, where=cls.kind))

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml shipped next to the driver's module (or, for a subclass, its base's)."""
        for klass in cls.__mro__:
            module = sys.modules.get(klass.__module__)
            if klass is DeclaredOptions or module is None:
                break
            package = module.__name__ if hasattr(module, "__path__") else module.__package__
            sample = resources.files(package or module.__name__).joinpath("sample.toml")
            if sample.is_file():
                return sample.read_text(encoding="utf-8")
        raise FileNotFoundError(f"no sample.toml next to {cls.__module__} (ship it as package data)")


class BackgroundDriver(DeclaredOptions):
    """A driver that works in one background thread: reconnects, backoff, health and the stop gate."""

    outage_errors: ClassVar[tuple[type[BaseException], ...]] = OUTAGE_ERRORS

    def __init__(self, name: str, *, backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0) -> None:
        self.name = name
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, backoff_max_s
        self._health = DriverHealth()
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- the contract ------------------------------------------------------------------------------
    def doors(self) -> list[str]:
        """The public doors this instance reports on; none unless the driver counts a door."""
        return []

    def alive(self) -> bool:
        """False once the thread has ended without stop() (the supervisor then restarts the driver)."""
        return self._stop.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        """connected, frames, bad_frames, reconnects, last_error, plus the driver's own keys."""
        return {**self._health.snapshot(), **self._health_extra()}

    def start(self, sink: Sink) -> None:
        """Start the background thread (again, after stop() or a crash); all device work happens there."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"driver {self.name} already started")
        with self._emit_lock:  # a restart after stop() or a crash begins afresh
            self._stopped = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=f"{self.kind}-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    # -- hooks -------------------------------------------------------------------------------------
    def _health_extra(self) -> dict[str, Any]:
        """Driver-specific health keys."""
        return {}

    def _where(self) -> str:
        """What an outage report names first: the port, address or folder."""
        return self.name

    def _prepare(self) -> None:
        """One-time work in the thread before the first connection."""

    def _connect(self, sink: Sink) -> None:
        """Open the device; raise an OSError or DriverError when it cannot be opened."""

    def _session(self, sink: Sink) -> None:
        """Read and emit until self._stop is set; raise an OSError or DriverError when the device goes away."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Close what _connect opened."""

    # -- the stop gate -----------------------------------------------------------------------------
    def _emit(self, sink: Sink, reading: Reading, state: Mapping[str, str] | None = None) -> bool:
        """Hand a reading (with the driver state it brings about, saved in the same transaction) to the
        sink unless stop() has begun; False when it was dropped for that reason."""
        with self._emit_lock:
            if self._stopped:
                return False
            if state:
                sink.emit(reading, state)
            else:
                sink.emit(reading)  # sinks written before driver state existed keep working
            return True

    def _save_state(self, sink: Sink, state: Mapping[str, str]) -> bool:
        """Save driver state that goes with no reading, unless stop() has begun."""
        with self._emit_lock:
            if self._stopped:
                return False
            sink.save_state(self.name, state)
            return True

    def _emit_all(self, sink: Sink, readings: Sequence[Reading]) -> bool:
        """Emit several readings under one hold of the gate (all or, after stop(), none)."""
        with self._emit_lock:
            if self._stopped:
                return False
            for reading in readings:
                sink.emit(reading)
            return True

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        """sink.problem ("problem") or sink.bad_frame (anything else), unless stop() has begun."""
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _report_bad(self, sink: Sink, now: Mapping[str, int], before: Mapping[str, int]) -> None:
        """Report each bad frame counted since `before`, by reason."""
        for reason, count in now.items():
            for _ in range(count - before.get(reason, 0)):
                self._report(sink, "bad_frame", reason)

    def _set_health(self, **changes: Any) -> None:
        with self._health.lock:
            for key, value in changes.items():
                setattr(self._health, key, value)

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self, sink: Sink) -> None:
        self._prepare()
        delay = self.backoff_initial_s
        ever_connected = reported_outage = False
        while not self._stop.is_set():
            try:
                self._connect(sink)
                with self._health.lock:
                    self._health.connected = True
                    self._health.reconnects += int(ever_connected)
                ever_connected, reported_outage, delay = True, False, self.backoff_initial_s
                self._session(sink)
            except self.outage_errors as exc:
                self._set_health(connected=False, last_error=str(exc) or type(exc).__name__)
                if not reported_outage:  # once per outage, not once per retry
                    self._report(sink, "problem", f"{self._where()}: {exc}; retrying")
                    reported_outage = True
            finally:
                self._disconnect()
                self._set_health(connected=False)  # also when a bug ends the thread: never "connected" while dead
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.backoff_max_s)
