"""The ingest queue: bounded, oldest first, emptied a batch at a time, a full queue holds a producer briefly."""

from __future__ import annotations

import threading
import time

from agent.pipeline.batch_queue import BatchQueue


def test_take_returns_up_to_the_limit_oldest_first() -> None:
    q: BatchQueue[int] = BatchQueue(10)
    for i in range(5):
        assert q.put(i, 0)
    assert q.take(3, 0) == [0, 1, 2]
    assert q.take(10, 0) == [3, 4]
    assert q.take(10, 0) == [] and q.qsize() == 0


def test_a_full_queue_refuses_after_the_timeout_and_keeps_what_it_holds() -> None:
    q: BatchQueue[int] = BatchQueue(2)
    assert q.put(1, 0) and q.put(2, 0)
    started = time.monotonic()
    assert not q.put(3, 0.2)
    assert time.monotonic() - started >= 0.2
    assert q.take(10, 0) == [1, 2]


def test_a_producer_held_by_a_full_queue_goes_on_once_the_writer_takes() -> None:
    q: BatchQueue[int] = BatchQueue(1)
    assert q.put(1, 0)
    result: list[bool] = []
    producer = threading.Thread(target=lambda: result.append(q.put(2, 10)))
    producer.start()
    time.sleep(0.05)  # let it block; taking must wake it (a missed wake-up would hold it the full 10 s)
    started = time.monotonic()
    assert q.take(1, 0) == [1]
    producer.join(5)
    assert result == [True] and time.monotonic() - started < 2
    assert q.take(1, 0) == [2]


def test_a_waiting_writer_wakes_for_the_first_item() -> None:
    q: BatchQueue[int] = BatchQueue(4)
    threading.Timer(0.05, q.put, (7, 0)).start()
    started = time.monotonic()
    assert q.take(4, 5) == [7]
    assert time.monotonic() - started < 2
