"""Checking incoming messages against the contract the hub shares with the agents (agent/contract).

Streams, topics, window names, UTC time and the payload JSON Schemas come from `agent.contract`, the
one part of the agent the hub imports. Every incoming message is checked here: topic shape, JSON,
schema, that the payload's coop/store/tier/stream match the topic it came on, and that its window
length (`window.seconds`) is the one its topic names.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from agent.contract import (
    HUB_SEGMENT,
    STATUS_SCHEMA_FILE,
    alert_topic,
    benchmark_topic,
    parse_summary_topic,
    schema_document,
    schema_files,
)
from agent.contract import iso_seconds as iso
from agent.contract import parse_iso as parse_iso

STATUS_SCHEMA = STATUS_SCHEMA_FILE
__all__ = ["HUB_SEGMENT", "alert_topic", "benchmark_topic", "iso", "parse_iso", "parse_message"]


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
    topic: str
    reason: str
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Ignored:
    """The hub's own publications (under _hub/), echoed back by the broker."""

    topic: str


Parsed = Summary | Status | Rejected | Ignored


def _first_error(validator_: Draft202012Validator, doc: Any) -> str | None:
    error = next(iter(validator_.iter_errors(doc)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"schema: {where}: {error.message[:200]}"


def parse_message(coop: str, topic: str, payload: bytes) -> Parsed:
    """Classify and validate one MQTT message; never raises for bad input."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "coop" or parts[1] != "v1" or parts[2] != coop:
        return Rejected(topic, "topic is not under coop/v1/<coop>/", payload)
    store = parts[3]
    if store == HUB_SEGMENT:
        return Ignored(topic)
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejected(topic, f"not JSON: {exc}"[:300], payload)
    if not isinstance(doc, dict):
        return Rejected(topic, "payload is not a JSON object", payload)
    if len(parts) == 5 and parts[4] == "status":
        error = _first_error(validator(STATUS_SCHEMA), doc)
        if error:
            return Rejected(topic, error, payload)
        if doc["coop"] != coop or doc["store"] != store:
            return Rejected(topic, "status names another coop or store than its topic", payload)
        return Status(store=store, state=doc["state"], connection=int(doc["connection"]), agent=doc["agent"])
    if len(parts) != 7:
        return Rejected(topic, "topic is not coop/v1/<coop>/<store>/<tier>/<stream>/<window> or .../status", payload)
    schema_file = summary_schemas().get(str(doc.get("schema")))
    if schema_file is None:
        return Rejected(topic, f"unknown payload schema {str(doc.get('schema'))[:80]!r}", payload)
    error = _first_error(validator(schema_file), doc)
    if error:
        return Rejected(topic, error, payload)
    try:
        where = parse_summary_topic(topic)
    except ValueError as exc:
        return Rejected(topic, str(exc)[:300], payload)
    spec, tier, stream = where.spec, where.tier, where.stream
    if doc["coop"] != coop or doc["store"] != store or doc["tier"] != tier or doc["stream"] != stream:
        return Rejected(topic, "payload's coop/store/tier/stream do not match its topic", payload)
    if doc["schema"] != spec.schema_id:
        return Rejected(topic, f"stream {spec.segment} carries {spec.schema_id}, not {doc['schema']}", payload)
    window = doc["window"]
    if window["seconds"] != where.window_s:
        return Rejected(topic, f"window.seconds {window['seconds']} is not the length its topic names", payload)
    start_s = parse_iso(window["start"])
    if parse_iso(window["end"]) - start_s != window["seconds"]:
        return Rejected(topic, "window end - start differs from window.seconds", payload)
    if start_s % where.window_s:
        # Agents align windows to the epoch; the hub compares shops window by window on that grid.
        return Rejected(topic, "window start is not a multiple of window.seconds since the epoch", payload)
    values, privacy = doc["values"], doc["privacy"]
    return Summary(
        msg_id=doc["msg_id"],
        schema=doc["schema"],
        store=store,
        stream=stream,
        tier=tier,
        key="" if spec.key_field is None else str(doc[spec.key_field]),
        seq=int(doc["seq"]),
        window_start=window["start"],
        window_start_s=start_s,
        window_seconds=int(window["seconds"]),
        mechanism=str(privacy.get("mechanism", "")),
        entries=_int_or_none(values.get("entries")),
        exits=_int_or_none(values.get("exits")),
        amount=single_value(values),
        epsilon=_float_or_none(privacy.get("epsilon")),
        rho=_float_or_none(privacy.get("rho")),
        noise_variance=noise_variance(privacy),
        payload=payload.decode("utf-8"),
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
