"""Logging that stays readable: the same complaint at most once a minute per cause, with a count.

A refusal must always be logged (DESIGN.md promise 8), but a flood of identical bad inputs must not
bury everything else: the first occurrence of a cause is logged at once, repeats within the interval
are counted and summarised in the next line for that cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs a message per cause (key) at most once per `interval_s`, saying how many were held back."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.interval_s, self.monotonic = logger, interval_s, monotonic
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log now if this cause was quiet for the interval (True), else count it (False)."""
        now = self.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
            if len(self._last) > 10_000:  # bounded: forget the quietest causes
                for old in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                    del self._last[old]
        if held:
            message += " (and %d more like it since the last report)"
            args = (*args, held)
        self.logger.log(level, message, *args)
        return True

    def warning(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, message, *args)

    def error(self, key: str, message: str, *args: object) -> bool:
        return self.log(logging.ERROR, key, message, *args)
