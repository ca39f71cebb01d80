"""The topic and payload contract the hub shares with the agents, and nothing else.

Payload schemas are read from the `agent` package's data files (agent/schemas/*.json) through
importlib.resources; the hub imports no agent code. Every incoming message is checked here: topic
shape, JSON, schema, and that the payload's coop/store/tier match the topic it came on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

STATUS_SCHEMA = "status.v1.json"
# Fields every summary carries; another top-level string field names the key within the stream ("door", ...).
COMMON_FIELDS = frozenset(
    {"schema", "msg_id", "seq", "coop", "store", "stream", "tier", "window", "values", "privacy", "late"}
)
KEY_FIELDS = ("door", "category")  # preferred key fields, then any other string field
HUB_SEGMENT = "_hub"  # the hub writes only under coop/v1/<coop>/_hub/...


@cache
def validator(file_name: str) -> Draft202012Validator:
    """A compiled validator for one of the agent package's schema files."""
    text = resources.files("agent").joinpath("schemas", file_name).read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def summary_schemas() -> dict[str, str]:
    """Payload schema id (its `schema` const) -> schema file, for every summary schema the agent package ships."""
    found: dict[str, str] = {}
    for entry in resources.files("agent").joinpath("schemas").iterdir():
        if not entry.name.endswith(".json") or entry.name == STATUS_SCHEMA:
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        const = schema.get("properties", {}).get("schema", {}).get("const")
        if isinstance(const, str):
            found[const] = entry.name
    return found


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


def parse_iso(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    tier, stream = parts[4], f"{parts[5]}/{parts[6]}"
    if doc["coop"] != coop or doc["store"] != store or doc["tier"] != tier or doc["stream"] != stream:
        return Rejected(topic, "payload's coop/store/tier/stream do not match its topic", payload)
    window = doc["window"]
    start_s = parse_iso(window["start"])
    if parse_iso(window["end"]) - start_s != window["seconds"]:
        return Rejected(topic, "window end - start differs from window.seconds", payload)
    values, privacy = doc["values"], doc["privacy"]
    extra = sorted(k for k, v in doc.items() if k not in COMMON_FIELDS and isinstance(v, str))
    keys = [k for k in KEY_FIELDS if k in extra] + [k for k in extra if k not in KEY_FIELDS]
    return Summary(
        msg_id=doc["msg_id"],
        schema=doc["schema"],
        store=store,
        stream=stream,
        tier=tier,
        key=str(doc[keys[0]]) if keys else "",
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


def benchmark_topic(coop: str, metric: str, window_start: str) -> str:
    return f"coop/v1/{coop}/{HUB_SEGMENT}/t1/benchmarks/{metric}/{window_start}"


def alert_topic(coop: str, store: str) -> str:
    return f"coop/v1/{coop}/{HUB_SEGMENT}/t2/alerts/{store}"
