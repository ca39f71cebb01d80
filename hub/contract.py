"""Checking incoming messages against the contract the hub shares with the agents (agent/contract).

Streams, topics, window names, UTC time and the payload JSON Schemas come from `agent.contract`, the
one part of the agent the hub imports. Every incoming message is checked here: topic shape, JSON,
schema, that the payload's coop/store/tier/stream match the topic it came on, and that its window
length (`window.seconds`) is the one its topic names.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from agent.contract import (
    HUB_SEGMENT,
    MAX_PAYLOAD_BYTES,
    NAME_RE,
    STATUS_SCHEMA_FILE,
    alert_topic,
    benchmark_topic,
    parse_summary_topic,
    sales_position_topic,
    schema_document,
    schema_files,
    watermark_topic,
)
from agent.contract import iso_seconds as iso
from agent.contract import parse_iso as parse_iso
from hub import payload_bounds as bounds
from hub.wire import Refusal, decode_payload

log = logging.getLogger(__name__)

STATUS_SCHEMA = STATUS_SCHEMA_FILE
__all__ = [
    "HUB_SEGMENT",
    "alert_topic",
    "benchmark_topic",
    "iso",
    "parse_iso",
    "parse_message",
    "sales_position_topic",
    "watermark_topic",
]


def published_json(doc: Any) -> str:
    """The compact, sorted JSON text of what the hub stores and publishes (benchmarks, alerts, the forecast
    model, watermarks): strict, so a NaN or infinity that slipped into a figure raises here, in the periodic
    task that built it (logged, retried next interval), and never reaches a member as invalid JSON."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


@cache
def validator(file_name: str) -> Draft202012Validator:
    """A compiled validator for one of the contract's schema files (agent/contract/schemas)."""
    schema = schema_document(file_name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def summary_schemas() -> dict[str, str]:
    """Payload schema id (its `schema` const) -> schema file, for every stream of the contract."""
    return schema_files()


def noise_variance(privacy: dict[str, Any]) -> float:
    """Variance of one released value's noise: 2q/(1-q)^2 (q = exp(-1/scale)) for discrete Laplace,
    at most sigma2 for the discrete Gaussian (a tight bound once sigma >= 1)."""
    if privacy.get("scale"):
        q = math.exp(-1 / float(Fraction(privacy["scale"])))
        return 2 * q / (1 - q) ** 2
    if privacy.get("sigma2"):
        return float(Fraction(privacy["sigma2"]))
    return 0.0


@cache
def hub_validator(file_name: str) -> Draft202012Validator:
    """A compiled validator for one of the hub's own published schemas (hub/schemas)."""
    schema = json.loads(resources.files("hub").joinpath("schemas", file_name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


@dataclasses.dataclass(frozen=True)
class Summary:
    """A validated, released summary (one door or one sales category, one window)."""

    msg_id: str
    schema: str
    store: str
    stream: str
    tier: str
    key: str
    seq: int
    window_start: str
    window_start_s: int
    window_seconds: int
    mechanism: str
    entries: int | None
    exits: int | None
    amount: int | None  # the one value of a one-value payload (POS sales: baskets or revenue_cents)
    epsilon: float | None
    rho: float | None
    noise_variance: float
    payload: str


@dataclasses.dataclass(frozen=True)
class Status:
    """A validated birth or last-will message."""

    store: str
    state: str
    connection: int
    agent: str


@dataclasses.dataclass(frozen=True)
class Rejected:
    """A refused message: `reason` is from a fixed set (counted per store), `detail` says more about this one."""

    topic: str
    reason: str
    payload: bytes  # at most MAX_PAYLOAD_BYTES + 1 of it: what the hub keeps aside is bounded anyway
    store: str = ""  # the store of its topic, or "" when the topic names none
    detail: str = ""
    size: int = 0  # bytes on the wire


@dataclasses.dataclass(frozen=True)
class Ignored:
    """The hub's own publications (under _hub/), echoed back by the broker."""

    topic: str


Parsed = Summary | Status | Rejected | Ignored


_SCHEMA_WORDS = {
    "type": "wrong type",
    "required": "missing field",
    "additionalProperties": "unexpected field",
    "enum": "not an allowed value",
    "const": "not an allowed value",
    "pattern": "malformed",
    "minimum": "out of range",
    "maximum": "out of range",
    "exclusiveMinimum": "out of range",
    "minLength": "wrong length",
    "maxLength": "wrong length",
}


def _first_error(validator_: Draft202012Validator, doc: Any) -> Refusal | None:
    """The first schema error as a refusal whose reason names a field of the schema (never one of the sender's)."""
    error = next(iter(validator_.iter_errors(doc)), None)
    if error is None:
        return None
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        path += [next((str(k) for k in error.validator_value if k not in error.instance), "?")]
    where = ".".join(path) or "(root)"
    return Refusal(f"{where} {_SCHEMA_WORDS.get(str(error.validator), 'invalid')}", error.message[:300])


def topic_store(coop: str, topic: str) -> str:
    """The store a topic belongs to (its fourth level), or "" when the topic names no store of this coop."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[:3] == ["coop", "v1", coop] and NAME_RE.match(parts[3]):
        return parts[3]
    return ""


def parse_message(coop: str, topic: str, payload: bytes, size: int | None = None, now: float | None = None) -> Parsed:
    """Classify and validate one MQTT message against the contract; never raises, whatever the input.

    `size` is the payload's length on the wire when `payload` was cut short on receipt; `now` the hub's clock.
    """
    size = len(payload) if size is None else size
    try:
        return _parse(coop, topic, payload, size, time.time() if now is None else now)
    except Refusal as refusal:
        reason, detail = refusal.reason, refusal.detail
    except Exception as exc:  # a check this module lacks: refused, counted and logged, never a stopped writer
        log.exception("unexpected error checking a message on %s", topic[:200])
        reason, detail = "unexpected error while checking", f"{type(exc).__name__}: {exc}"[:300]
    return Rejected(topic, reason, payload[: MAX_PAYLOAD_BYTES + 1], topic_store(coop, topic), detail, size)


def _parse(coop: str, topic: str, payload: bytes, size: int, now: float) -> Parsed:
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "coop" or parts[1] != "v1" or parts[2] != coop:
        raise Refusal("topic is not under coop/v1/<coop>/", topic[:200])
    store = parts[3]
    if store == HUB_SEGMENT:
        return Ignored(topic)
    if not NAME_RE.match(store):
        raise Refusal("topic: store is not a valid name", store[:80])
    is_status = len(parts) == 5 and parts[4] == "status"
    if not is_status and len(parts) != 7:
        raise Refusal("topic is not coop/v1/<coop>/<store>/<tier>/<stream>/<window> or .../status", topic[:200])
    doc = decode_payload(payload, size)
    if not isinstance(doc, dict):
        raise Refusal("payload is not a JSON object", type(doc).__name__)
    if is_status:
        return _status(coop, store, doc)
    try:
        where = parse_summary_topic(topic)
    except ValueError as exc:
        text = str(exc)  # names the sender's topic level: kept as detail, the reason stays from a fixed set
        kind = "not a window name" if "window name" in text else "unknown tier" if "tier" in text else "no such stream"
        raise Refusal(f"topic: {kind}", text) from None
    schema_file = summary_schemas().get(str(doc.get("schema"))[:100])
    if schema_file is None:
        raise Refusal("unknown payload schema", str(doc.get("schema"))[:80])
    error = _first_error(validator(schema_file), doc)
    if error:
        raise error
    spec, tier, stream = where.spec, where.tier, where.stream
    if doc["coop"] != coop or doc["store"] != store or doc["tier"] != tier or doc["stream"] != stream:
        raise Refusal("payload's coop/store/tier/stream do not match its topic", f"{doc['store']} {doc['stream']}")
    if doc["schema"] != spec.schema_id:
        raise Refusal("schema is not the one of its stream", f"{spec.segment} carries {spec.schema_id}")
    key = "" if spec.key_field is None else str(doc[spec.key_field])
    if "scope" in doc and doc["scope"] != spec.scope(key):  # optional in v1: agents before it omit the field
        raise Refusal("scope does not match its stream and key", f"{spec.segment} {key[:40]}: {doc['scope']}")
    msg_id = bounds.text("msg_id", doc["msg_id"])
    if not msg_id.startswith(f"{coop}/{store}/"):
        # The contract's ids name their coop and store (agent/contract/topics.py): a store cannot squat another's.
        raise Refusal("msg_id does not name its store", msg_id[:120])
    start_s = bounds.window(doc["window"], where.window_s, now)
    released = bounds.values(doc["values"], spec)
    privacy = doc["privacy"]
    bounds.privacy(privacy, spec)
    return Summary(
        msg_id=msg_id,
        schema=doc["schema"],
        store=store,
        stream=stream,
        tier=tier,
        key=key,
        seq=bounds.sequence(doc["seq"]),
        window_start=doc["window"]["start"],
        window_start_s=start_s,
        window_seconds=where.window_s,
        mechanism=str(privacy["mechanism"]),
        entries=released.get("entries"),
        exits=released.get("exits"),
        amount=single_value(released),
        epsilon=_float_or_none(privacy.get("epsilon")),
        rho=_float_or_none(privacy.get("rho")),
        noise_variance=noise_variance(privacy),
        payload=payload.decode("utf-8"),
    )


def _status(coop: str, store: str, doc: dict[str, Any]) -> Status:
    error = _first_error(validator(STATUS_SCHEMA), doc)
    if error:
        raise error
    if doc["coop"] != coop or doc["store"] != store:
        raise Refusal("status names another coop or store than its topic", f"{doc['coop']}/{doc['store']}"[:120])
    return Status(
        store=store,
        state=doc["state"],
        connection=bounds.connection(doc["connection"]),
        agent=bounds.text("agent", doc["agent"], 100),
    )


def single_value(values: Any) -> int | None:
    """The one released value of a one-value payload (`baskets`, `revenue_cents`, ...); None otherwise."""
    if not isinstance(values, dict) or len(values) != 1:
        return None
    (value,) = values.values()
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
