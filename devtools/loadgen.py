"""Synthetic, schema-valid shop summaries and a fast QoS 1 publisher (for tests, benchmarks, load trials).

The payloads follow agent/contract/schemas/footfall-door.v1.json and sales-category.v1.json exactly; the values
are made up, so this is never a privacy release, only load for a hub.

From a checkout: python -m devtools.loadgen --port 1883 --shops 50 --hours 24 [--categories food,drink,other]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract import FOOTFALL_DOOR, stream_by_segment, summary_topic
from hub.contract import iso

Message = tuple[str, str]  # topic, payload


def synthetic_summary(
    coop: str, store: str, door: str, window_start_s: int, seq: int, entries: int, window_s: int = 3600
) -> Message:
    """One footfall-door.v1 summary as an agent would publish it."""
    start, stream = iso(window_start_s), FOOTFALL_DOOR.stream(window_s)
    payload = {
        "schema": "shopkeeper.footfall-door.v1",
        "msg_id": f"{coop}/{store}/{stream}/{start}/{door}",
        "seq": seq,
        "coop": coop,
        "store": store,
        "stream": stream,
        "tier": "t1",
        "door": door,
        "window": {"start": start, "end": iso(window_start_s + window_s), "seconds": window_s},
        "values": {"entries": entries, "exits": max(entries - 1, 0)},
        "late": False,
        "privacy": {
            "mechanism": "discrete_laplace",
            "epsilon": 0.5,
            "epsilon_exact": "1/2",
            "rho": None,
            "rho_exact": None,
            "sensitivity": 1,
            "sensitivity_l2_squared": 1,
            "scale": "2/1",
            "sigma2": None,
            "unit": "door event",
            "sampler": "synthetic",
            "post_processing": {"clamp_negative": False, "suppress_below": None},
        },
    }
    topic = summary_topic(coop, store, "t1", FOOTFALL_DOOR, window_s)
    return topic, json.dumps(payload, sort_keys=True, separators=(",", ":"))


def synthetic_sales(
    coop: str,
    store: str,
    kind: str,
    category: str,
    window_start_s: int,
    seq: int,
    value: int | None,
    window_s: int = 3600,
) -> Message:
    """One sales-category.v1 summary (t2) as an agent would publish it; kind is "count" or "revenue"."""
    spec = stream_by_segment(f"sales-{kind}")
    assert spec is not None, kind
    start, stream = iso(window_start_s), spec.stream(window_s)
    payload = {
        "schema": "shopkeeper.sales-category.v1",
        "msg_id": f"{coop}/{store}/{stream}/{start}/{category}",
        "seq": seq,
        "coop": coop,
        "store": store,
        "stream": stream,
        "tier": "t2",
        "category": category,
        "window": {"start": start, "end": iso(window_start_s + window_s), "seconds": window_s},
        "values": {"baskets" if kind == "count" else "revenue_cents": value},
        "late": False,
        "privacy": {
            "mechanism": "discrete_laplace",
            "epsilon": 0.5,
            "epsilon_exact": "1/2",
            "rho": None,
            "rho_exact": None,
            "sensitivity": 4 if kind == "count" else 20000,
            "sensitivity_l2_squared": 4 if kind == "count" else 400000000,
            "scale": "8/1" if kind == "count" else "40000/1",
            "sigma2": None,
            "unit": "one basket",
            "sampler": "synthetic",
            "post_processing": {"clamp_negative": False, "suppress_below": None},
        },
    }
    return summary_topic(coop, store, "t2", spec, window_s), json.dumps(payload, sort_keys=True, separators=(",", ":"))


def shop_hour_sales(
    coop: str, store: str, shop: int, window_start_s: int, first_seq: int, categories: tuple[str, ...]
) -> list[Message]:
    """One shop's sales summaries for one window: baskets per category and `all`, revenue per category."""
    hour = window_start_s // 3600
    out: list[Message] = []
    baskets = {c: 2 + (shop * 5 + hour * 3 + i * 7) % 20 for i, c in enumerate(categories)}
    for c in (*categories, "all"):
        count = sum(baskets.values()) if c == "all" else baskets[c]
        out.append(synthetic_sales(coop, store, "count", c, window_start_s, first_seq + len(out), count))
    for i, c in enumerate(categories):
        revenue = baskets[c] * (300 + 250 * ((shop + i) % 5))
        out.append(synthetic_sales(coop, store, "revenue", c, window_start_s, first_seq + len(out), revenue))
    return out


def shop_days(
    coop: str,
    shops: int,
    day_start_s: int,
    hours: int = 24,
    doors: tuple[str, ...] = ("front", "back"),
    categories: tuple[str, ...] = (),
    seq_offset: int = 0,
) -> Iterator[Message]:
    """Every summary of `shops` shops over `hours` windows, window by window (as they would arrive).

    With `categories` (the last one should be "other"), each shop also publishes its t2 POS sales; each
    store's sequence numbers run from seq_offset + 1."""
    per_hour = len(doors) + (2 * len(categories) + 1 if categories else 0)
    for h in range(hours):
        for s in range(shops):
            for d, door in enumerate(doors):
                entries = 10 + (s * 7 + h * 13 + d * 5) % 50
                yield synthetic_summary(
                    coop, f"shop-{s:04d}", door, day_start_s + h * 3600, seq_offset + h * per_hour + d + 1, entries
                )
            if categories:
                yield from shop_hour_sales(
                    coop,
                    f"shop-{s:04d}",
                    s,
                    day_start_s + h * 3600,
                    seq_offset + h * per_hour + len(doors) + 1,
                    categories,
                )


class FastPublisher:
    """Publishes at QoS 1 as fast as the broker acknowledges, with many messages in flight."""

    def __init__(self, port: int, host: str = "127.0.0.1", client_id: str = "hub-loadgen", inflight: int = 1000):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self._acked = 0
        self._cond = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_publish(self, *_args: object) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def publish_all(self, messages: Iterable[Message], timeout: float = 300.0) -> int:
        """Publish everything, then wait for every PUBACK; returns how many were acknowledged."""
        sent = getattr(self, "_sent", 0)  # cumulative over calls, like the acknowledgement count
        for topic, payload in messages:
            self.client.publish(topic, payload, qos=1)
            sent += 1
        self._sent = sent
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < sent and time.monotonic() < deadline:
                self._cond.wait(0.5)
            return self._acked

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.loadgen", description="Publish synthetic shop days.")
    parser.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    parser.add_argument("--coop", default="riverside", help="coop segment of every topic (default riverside)")
    parser.add_argument("--shops", type=int, default=10, help="number of synthetic shops (default 10)")
    parser.add_argument("--hours", type=int, default=24, help="hourly windows per shop (default 24)")
    parser.add_argument("--days", type=int, default=0, help="days of hourly windows per shop (overrides --hours)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second; 0 = as fast as acknowledged")
    parser.add_argument(
        "--day-start",
        type=int,
        default=1_763_251_200,
        help="first window start, Unix seconds (default 2025-11-16T00:00:00Z)",
    )
    parser.add_argument("--categories", default="", help="comma-separated categories for t2 sales (default none)")
    parser.add_argument("--inflight", type=int, default=1000, help="QoS 1 messages in flight (default 1000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Publish the synthetic days and wait for every PUBACK; exit 1 when some were not acknowledged."""
    args = build_parser().parse_args(argv)
    categories = tuple(c for c in args.categories.split(",") if c)
    hours = args.days * 24 if args.days > 0 else args.hours
    messages = list(shop_days(args.coop, args.shops, args.day_start, hours=hours, categories=categories))
    publisher = FastPublisher(args.port, host=args.host, inflight=args.inflight)
    try:
        started = time.monotonic()
        if args.rate > 0:
            # One second's worth at a time, each chunk acknowledged before the next: a steady, stated rate.
            chunk = max(1, int(args.rate))
            acked = 0
            for i in range(0, len(messages), chunk):
                acked = publisher.publish_all(messages[i : i + chunk])
                pause = started + (i + chunk) / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing to the requested rate, not waiting for a condition
        else:
            acked = publisher.publish_all(messages)
        elapsed = time.monotonic() - started
    finally:
        publisher.close()
    print(f"loadgen: {acked}/{len(messages)} acknowledged in {elapsed:.1f} s", file=sys.stderr)
    return 0 if acked == len(messages) else 1


if __name__ == "__main__":
    sys.exit(main())
