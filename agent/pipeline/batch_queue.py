"""A bounded FIFO between the drivers and the ingest writer, emptied a batch at a time.

queue.Queue takes its lock and signals a condition for every item on both sides; at a few hundred
thousand readings a second that is most of the writer's cost. Here a producer with room appends
without taking any lock (a deque's append is atomic) and signals only when the writer is asleep, and
the writer takes up to a whole batch in one go. Bounded like before: a full queue holds a producer
for at most its timeout; producers racing for the last free place may overshoot `maxsize` by one
item each (it stays bounded by maxsize plus the number of producer threads).

The lock-free append relies on the GIL ordering a producer's append before its read of
`_taker_waiting`, and the taker raising that flag before it looks for items: either the taker sees
the item, or the producer sees the flag and wakes it. No wake-up is lost.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """Bounded FIFO; `put` waits at most `timeout` for room, `take` returns up to `limit` items at once."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._taker_waiting = False
        self._putters_waiting = 0

    def qsize(self) -> int:
        return len(self._items)

    def put(self, item: T, timeout: float) -> bool:
        """Append `item`; False when the queue stayed full for `timeout` seconds (nothing appended)."""
        items = self._items
        if len(items) < self.maxsize and not self._putters_waiting:  # room, and nobody held up before us
            items.append(item)
            if self._taker_waiting:
                with self._cond:
                    self._cond.notify_all()
            return True
        with self._cond:
            if len(self._items) >= self.maxsize and not self._wait_for_room(timeout):
                return False
            self._items.append(item)
            if self._taker_waiting:
                self._cond.notify_all()
        return True

    def put_nowait(self, item: T) -> bool:
        return self.put(item, 0.0)

    def _wait_for_room(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._putters_waiting += 1
        try:
            while len(self._items) >= self.maxsize:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
        finally:
            self._putters_waiting -= 1

    def take(self, limit: int, timeout: float) -> list[T]:
        """Up to `limit` items, oldest first; waits at most `timeout` for the first one ([] if none came)."""
        with self._cond:
            if not self._items and timeout > 0:
                self._taker_waiting = True  # raised before looking again: see the module's docstring
                try:
                    if not self._items:
                        self._cond.wait(timeout)
                finally:
                    self._taker_waiting = False
            items = self._items
            n = min(limit, len(items))
            taken = [items.popleft() for _ in range(n)]
            if n and self._putters_waiting:
                self._cond.notify_all()
        return taken
