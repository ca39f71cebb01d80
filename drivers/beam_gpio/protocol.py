"""Two-beam IR break direction logic: a pure state machine fed (beam, broken, t_monotonic).

Beams A and B sit 10-20 cm apart across the door (protocols.md 3.4). A crossing is one event:

* A beam break counts only if it lasts at least `min_broken_s` (shorter ones are glitches).
* An event starts with the first counted break and ends when both beams have been broken and
  both are clear again. The beam whose break *started* first gives the direction: A then B is an
  entry, B then A an exit.
* Breaks that start less than `simultaneous_s` apart have no order (a cart, two people side by
  side): the event is discarded as ambiguous.
* An event that does not complete within `timeout_s` of its first break (someone stepped in and
  back, or a beam stays blocked) is discarded.
* After an event ends, new breaks are ignored for `rearm_s` (the last leg or bag swinging through).

It never raises; the caller passes time, so tests need no clock.
"""

from __future__ import annotations

import dataclasses

ENTRY = "entry"
EXIT = "exit"
BEAMS = ("a", "b")


@dataclasses.dataclass
class BeamDirection:
    """The state machine; `feed` and `tick` return completed directions ("entry" or "exit")."""

    min_broken_s: float = 0.04
    simultaneous_s: float = 0.01
    timeout_s: float = 2.0
    rearm_s: float = 0.15
    glitches: int = 0
    ambiguous: int = 0
    timeouts: int = 0
    _broken_at: dict[str, float | None] = dataclasses.field(default_factory=lambda: dict.fromkeys(BEAMS))
    _first_break: dict[str, float] = dataclasses.field(default_factory=dict)  # counted breaks in this event
    _event_start: float | None = None
    _rearm_until: float = float("-inf")
    _ignore_until_clear: bool = False

    def feed(self, beam: str, broken: bool, now: float) -> list[str]:
        """One edge on one beam; returns the directions of the events this edge completed."""
        out = self.tick(now)
        if beam not in BEAMS:
            return out
        if broken:
            if self._broken_at[beam] is None:
                self._broken_at[beam] = now
            return out
        started = self._broken_at[beam]
        self._broken_at[beam] = None
        if started is None:
            return out  # a restore without a break: the first edge after start-up
        if self._ignore_until_clear:
            if self._all_clear():
                self._ignore_until_clear = False
            return out
        if now - started < self.min_broken_s:
            self.glitches += 1
            return out
        if started < self._rearm_until:
            return out
        self._first_break.setdefault(beam, started)
        if self._event_start is None:
            self._event_start = min(self._first_break.values())
        if len(self._first_break) == len(BEAMS) and self._all_clear():
            out += self._finish(now)
        return out

    def tick(self, now: float) -> list[str]:
        """Discard an event (or a blocked beam) older than timeout_s; call it periodically."""
        oldest = self._event_start
        for started in self._broken_at.values():
            if started is not None and started >= self._rearm_until and not self._ignore_until_clear:
                oldest = started if oldest is None else min(oldest, started)
        if oldest is not None and now - oldest > self.timeout_s:
            self.timeouts += 1
            self._reset(now)
            # A beam still broken now belongs to the discarded event; wait for it to clear.
            self._ignore_until_clear = not self._all_clear()
        return []

    def _all_clear(self) -> bool:
        return all(v is None for v in self._broken_at.values())

    def _finish(self, now: float) -> list[str]:
        a, b = self._first_break["a"], self._first_break["b"]
        self._reset(now)
        if abs(a - b) < self.simultaneous_s:
            self.ambiguous += 1
            return []
        return [ENTRY if a < b else EXIT]

    def _reset(self, now: float) -> None:
        self._first_break.clear()
        self._event_start = None
        self._rearm_until = now + self.rearm_s
