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


def test_a_writer_going_to_sleep_as_an_item_arrives_never_misses_it() -> None:
    """The append takes no lock, so the hand-over is raced many times: a lost wake-up costs the 2 s timeout."""
    q: BatchQueue[int] = BatchQueue(10)
    done = threading.Event()

    def produce() -> None:
        for i in range(2000):
            while q.qsize() and not done.is_set():  # put once the writer took the last one and may be dozing off
                time.sleep(0)
            q.put(i, 0)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    got: list[int] = []
    try:
        while len(got) < 2000:
            started = time.monotonic()
            got += q.take(10, 2)
            assert time.monotonic() - started < 1.5, f"a wake-up was lost after {len(got)} items"
    finally:
        done.set()
        producer.join(5)
    assert got == list(range(2000))


def test_producers_racing_for_the_last_places_stay_bounded_and_lose_nothing() -> None:
    q: BatchQueue[int] = BatchQueue(50)
    accepted: list[int] = []

    def produce(base: int) -> None:
        accepted.append(sum(q.put(base + i, 0) for i in range(1000)))

    producers = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join(10)
    assert 50 <= q.qsize() <= 50 + len(producers)  # at most one overshoot per producer thread
    assert len(q.take(1000, 0)) == sum(accepted)
