"""A catalogue of hostile messages one coop member can send, each with the one reason the hub must give.

Used by the unit tests (tests/hub/test_hub_hostile_messages.py: parse_message on each) and by the end to
end test against the real coop broker (tests/e2e/test_hostile_coop.py). `reason` None marks a message the
coop broker's ACL refuses (it never reaches the hub); those are checked there, not here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from agent.contract import iso_seconds, parse_iso
from devtools.loadgen import synthetic_summary

COOP = "riverside"


@dataclasses.dataclass(frozen=True)
class Hostile:
    name: str
    topic: str
    payload: bytes
    reason: str | None  # the hub's reason; None: the broker refuses it
    retain: bool = False


def _doc(store: str, start_s: int, window_s: int, seq: int) -> tuple[str, dict[str, Any]]:
    topic, text = synthetic_summary(COOP, store, "front", start_s, seq, 7, window_s=window_s)
    return topic, json.loads(text)


def _after(start: str, seconds: int) -> str:
    return iso_seconds(parse_iso(start) + seconds)


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def hostile_messages(store: str, victim_msg_id: str, start_s: int, window_s: int) -> list[Hostile]:
    """At least 30 kinds of bad message from `store` (its own topics, so the ACL lets most of them through)."""
    topic, base = _doc(store, start_s, window_s, 1)
    prefix = f"coop/v1/{COOP}/{store}"
    out: list[Hostile] = []

    def mutated(name: str, reason: str, change: Callable[[dict[str, Any]], None], on: str = topic) -> None:
        doc = json.loads(json.dumps(base))
        change(doc)
        out.append(Hostile(name, on, _bytes(doc), reason))

    def raw(name: str, payload: bytes, reason: str | None, on: str = topic, retain: bool = False) -> None:
        out.append(Hostile(name, on, payload, reason, retain))

    good = _bytes(base)
    raw("nested 1,000 deep", b"[" * 1000 + b"]" * 1000, "JSON nested too deep")
    raw("nested object 1,000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000, "JSON nested too deep")
    raw("UTF-16 payload", good.decode().encode("utf-16"), "not UTF-8")
    raw("non-UTF-8 bytes", b"\xff\xfe\x00garbage", "not UTF-8")
    raw("UTF-8 BOM", b"\xef\xbb\xbf" + good, "not JSON")
    raw("empty payload", b"", "not JSON")
    raw("truncated JSON", good[:-7], "not JSON")
    raw("100 kB payload", b'{"pad": "' + b"x" * 100_000 + b'"}', "payload too large")
    raw("JSON array", b"[1, 2, 3]", "payload is not a JSON object")
    raw("NaN", good.replace(b'"epsilon": 0.5', b'"epsilon": NaN'), "not JSON: NaN or Infinity")
    raw("Infinity", good.replace(b'"epsilon": 0.5', b'"epsilon": -Infinity'), "not JSON: NaN or Infinity")
    raw("1e999", good.replace(b'"epsilon": 0.5', b'"epsilon": 1e999'), "not JSON: number out of range")
    raw(
        "entries 10**30",
        good.replace(b'"entries": 7', b'"entries": ' + str(10**30).encode()),
        "not JSON: integer too long",
    )
    raw("duplicate key", good.replace(b'"entries": 7', b'"entries": 7, "entries": 8'), "not JSON: duplicate key")
    mutated("entries 2**62", "values.entries out of range", lambda d: d["values"].update(entries=2**62))
    mutated("entries 10**8", "values.entries out of range", lambda d: d["values"].update(entries=10**8))
    mutated("entries 1e30 float", "values.entries not an integer", lambda d: d["values"].update(entries=1e30))
    mutated("entries a string", "values.entries wrong type", lambda d: d["values"].update(entries="seven"))
    mutated("entries a boolean", "values.entries wrong type", lambda d: d["values"].update(entries=True))
    mutated("missing door", "door missing field", lambda d: d.pop("door"))
    mutated("unexpected field", "(root) unexpected field", lambda d: d.update(extra=1))
    mutated("seq 2**62", "seq out of range", lambda d: d.update(seq=2**62))
    mutated("seq 0", "seq out of range", lambda d: d.update(seq=0))
    mutated(
        "2026-02-30",
        "window.start not a real date",
        lambda d: d["window"].update(start="2026-02-30T10:00:00Z", end="2026-02-30T11:00:00Z"),
    )
    mutated(
        "window in 9999",
        "window ends more than a day after the hub's clock",
        lambda d: d["window"].update(start="9999-01-01T00:00:00Z", end=_after("9999-01-01T00:00:00Z", window_s)),
    )
    mutated(
        "window before 2020",
        "window before 2020",
        lambda d: d["window"].update(start="1999-01-01T00:00:00Z", end=_after("1999-01-01T00:00:00Z", window_s)),
    )
    mutated(
        "window.seconds not the topic's",
        "window.seconds not the length its topic names",
        lambda d: d["window"].update(seconds=900),
    )
    mutated("scale 0/1", "privacy.scale out of range", lambda d: d["privacy"].update(scale="0/1"))
    mutated("scale 1/0", "privacy.scale out of range", lambda d: d["privacy"].update(scale="1/0"))
    mutated("epsilon 1e6", "privacy.epsilon out of range", lambda d: d["privacy"].update(epsilon=1e6))
    mutated(
        "gaussian with a Laplace scale",
        "privacy block inconsistent with discrete_gaussian",
        lambda d: d["privacy"].update(mechanism="discrete_gaussian"),
    )
    mutated("sensitivity 0", "privacy.sensitivity out of range", lambda d: d["privacy"].update(sensitivity=0))
    mutated("msg_id squatting", "msg_id does not name its store", lambda d: d.update(msg_id=victim_msg_id))
    mutated("msg_id with a NUL", "msg_id not printable text", lambda d: d.update(msg_id=f"{COOP}/{store}/\x00"))
    mutated(
        "payload names another store",
        "payload's coop/store/tier/stream do not match its topic",
        lambda d: d.update(store="shop-a"),
    )
    mutated("unknown schema", "unknown payload schema", lambda d: d.update(schema="shopkeeper.evil.v9"))
    window_topic = topic.rsplit("/", 1)[0] + "/7s"
    raw("window name outside the contract", good, "topic: not a window name", on=window_topic)
    raw("stream outside the contract", good, "topic: no such stream", on=f"{prefix}/t1/evil/hourly")
    status = {"state": "online", "connection": 2**62, "coop": COOP, "store": store, "agent": "evil"}
    raw("status connection 2**62", _bytes(status), "connection out of range", on=f"{prefix}/status")
    raw(
        "status state",
        _bytes({**status, "connection": 1, "state": "dancing"}),
        "state not an allowed value",
        on=f"{prefix}/status",
    )
    raw(
        "status for another store",
        _bytes({**status, "connection": 1, "store": "shop-a"}),
        "status names another coop or store than its topic",
        on=f"{prefix}/status",
    )
    # Refused by the broker's ACL: never delivered to the hub.
    raw("another store's topic", good, None, on=topic.replace(f"/{store}/", "/shop-a/"))
    raw("the hub's topic", good, None, on=f"coop/v1/{COOP}/_hub/t1/benchmarks/footfall/x")
    raw("topic shape outside the contract", good, None, on=f"{prefix}/junk")
    raw("tier 3", good, None, on=f"{prefix}/t3/footfall/hourly")
    raw("status with a suffix", good, None, on=f"{prefix}/status/extra")
    return out


def retained_flood(store: str, n: int) -> list[Hostile]:
    """`n` retained junk messages on topics the ACL allows (t1/+/+), each a topic the contract does not have."""
    return [
        Hostile(f"retained {i}", f"coop/v1/{COOP}/{store}/t1/junk-{i}/hourly", b"{}", "topic: no such stream", True)
        for i in range(n)
    ]
