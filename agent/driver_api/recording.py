"""RecordingSink: the Sink of the conformance kit, for a driver's own tests too (`kit.RecordingSink`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from agent.driver_api.contract import state_problem
from agent.driver_api.readings import Reading


class RecordingSink:
    """A Sink that records everything and lets a check wait for a condition.

    Driver state lives in `state` (key -> value; one sink per driver instance). Pass the `state` of
    a previous sink to play a restart: the new run sees what the old one committed.
    """

    def __init__(self, state: Mapping[str, str] | None = None) -> None:
        self.readings: list[Reading] = []
        self.bad: list[str] = []
        self.problems: list[str] = []
        self.state: dict[str, str] = dict(state or {})
        self.refused: list[str] = []  # why a reading or state was refused, as the agent would refuse it
        self._changed = threading.Condition()

    def emit(self, reading: Reading, state: Mapping[str, str] | None = None) -> None:
        """Record a reading and, atomically with it, the state it brings about."""
        with self._changed:
            if self._refused(state):
                return
            self.readings.append(reading)
            self.state.update(state or {})
            self._changed.notify_all()

    def save_state(self, driver: str, state: Mapping[str, str]) -> None:
        """Record state that goes with no reading."""
        with self._changed:
            if not self._refused(state):
                self.state.update(state)
                self._changed.notify_all()

    def load_state(self, driver: str, key: str) -> str | None:
        """The value last recorded for `key`."""
        with self._changed:
            return self.state.get(key)

    def _refused(self, state: Mapping[str, str] | None) -> bool:
        problem = state_problem(state or {})
        if problem is not None:
            self.refused.append(problem)
            self._changed.notify_all()
        return problem is not None

    def bad_frame(self, driver: str, reason: str) -> None:
        """Record a bad frame."""
        with self._changed:
            self.bad.append(reason)
            self._changed.notify_all()

    def problem(self, driver: str, message: str) -> None:
        """Record a problem."""
        with self._changed:
            self.problems.append(message)
            self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Everything is recorded synchronously, so it is always flushed."""
        return True

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until predicate() holds, or fail saying `what` did not happen."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def snapshot(self) -> tuple[list[Reading], list[str], list[str]]:
        """Copies of everything recorded so far."""
        with self._changed:
            return list(self.readings), list(self.bad), list(self.problems)
