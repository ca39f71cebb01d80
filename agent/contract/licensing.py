"""The licensing protocol agent and hub share (docs/licensing.md): topics, the signed query, the noise bound.

The coop signs each query with its Ed25519 key; the box verifies it with the coop's public key from config.

What is signed is the query object in canonical JSON (sorted keys, no spaces), after a domain tag, so a
signature made for anything else (a secure-aggregation message, another protocol version) never verifies
as a query. Only `cryptography` does the cryptography; it is in the `coop` extra.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from typing import Any

from agent.contract.topics import answer_store, answer_topic, query_topic
from agent.contract.windows import NS_PER_S

DOMAIN = b"shopkeeper/licensing/query/v1\n"
QUERY_SCHEMA = "shopkeeper.licensing.query/1"
ANSWER_SCHEMA = "shopkeeper.licensing.answer/1"
ANSWERED, REFUSED = "answered", "refused"
# A district query (combine = secure_aggregation): the box says it will enter the round, with the public keys
# of its table and the L2 sensitivity it needs declared; its values go only into the round's masked sum.
ACCEPTED = "accepted"

# The catalogue's kinds and their parameters (the tables and their sensitivities: agent/licensing/catalogue.py).
FOOTFALL_HOUR_OF_WEEK = "footfall_hour_of_week"
CATEGORY_SHARES_BY_MONTH = "category_shares_by_month"
BASKET_VALUE_BINS = "basket_value_bins"
KINDS = (FOOTFALL_HOUR_OF_WEEK, CATEGORY_SHARES_BY_MONTH, BASKET_VALUE_BINS)
MAX_RANGE_DAYS = 366
COUNT_FIELD = "count"  # the one value field of a query's table in a secure round's cells
SECURE_AGGREGATION = "secure_aggregation"  # the only `combine` a query may ask for (absent: each shop answers)
__all__ = ["answer_store", "answer_topic", "query_topic"]  # declared in topics.py, with the others


class BadQuery(ValueError):
    """A query that is not a well-formed member of the catalogue; the message says why."""


def query_range(kind: str, params: dict[str, Any]) -> tuple[int, int]:
    """[start, end) in ns of a kind's parameters; BadQuery naming what is wrong."""
    if not isinstance(params, dict):
        raise BadQuery("params is not an object")
    try:
        if kind == CATEGORY_SHARES_BY_MONTH:
            if set(params) != {"month"}:
                raise BadQuery("category_shares_by_month takes exactly {month: YYYY-MM}")
            first = dt.datetime.strptime(str(params["month"]), "%Y-%m").replace(tzinfo=dt.UTC)
            after = (first + dt.timedelta(days=32)).replace(day=1)
            return int(first.timestamp()) * NS_PER_S, int(after.timestamp()) * NS_PER_S
        if kind in (FOOTFALL_HOUR_OF_WEEK, BASKET_VALUE_BINS):
            if set(params) != {"start", "end"}:
                raise BadQuery(f"{kind} takes exactly {{start, end}} as UTC dates YYYY-MM-DD, end excluded")
            start = dt.datetime.strptime(str(params["start"]), "%Y-%m-%d").replace(tzinfo=dt.UTC)
            end = dt.datetime.strptime(str(params["end"]), "%Y-%m-%d").replace(tzinfo=dt.UTC)
        else:
            raise BadQuery(f"kind {str(kind)[:40]!r} is not in the catalogue ({', '.join(KINDS)})")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadQuery):
            raise
        raise BadQuery(f"params: {exc}") from None
    if not start < end or (end - start).days > MAX_RANGE_DAYS:
        raise BadQuery(f"the date range must be 1 to {MAX_RANGE_DAYS} days, start before end")
    return int(start.timestamp()) * NS_PER_S, int(end.timestamp()) * NS_PER_S


def answer_msg_id(coop: str, store: str, query_id: str) -> str:
    return f"{coop}/{store}/licensing/{query_id}"


def laplace_tail(scale: float, cells: int, failure_probability: float) -> int:
    """Smallest k with P(some cell of `cells` iid discrete Laplace(scale) draws has |X| >= k) <= the
    failure probability, by the union bound over cells: P(|X| >= k) = 2 q^k / (1 + q), q = exp(-1/scale)."""
    log_q = -1.0 / scale
    k = math.ceil((math.log(failure_probability / (2 * cells)) + math.log1p(math.exp(log_q))) / log_q)
    return max(1, k)


def district_noise_bound(scales: list[float], cells: int, failure_probability: float) -> int:
    """A bound B such that, with probability at least 1 - failure_probability, every cell of the sum of the
    shops' noised answers is within B of the sum of their true answers: each of the n shops' noise stays
    below its own tail at failure_probability / n (union bound over shops), and the bounds add."""
    if not scales:
        return 0
    share = failure_probability / len(scales)
    return sum(laplace_tail(s, cells, share) for s in scales)


def gaussian_tail(variance: float, cells: int, failure_probability: float) -> int:
    """A whole k with P(some cell of the district sum has |noise| >= k) <= the failure probability, when each
    cell's noise is a sum of independent discrete Gaussians of total variance `variance`.

    A discrete Gaussian N_Z(0, s^2) is s^2-subgaussian (its moment generating function is at most
    exp(t^2 s^2 / 2): Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy"), the
    parameters of independent subgaussians add, so P(|X| >= k) <= 2 exp(-k^2 / (2 variance)); union bound
    over the cells.
    """
    if variance <= 0:
        return 0
    return max(1, math.ceil(math.sqrt(2 * variance * math.log(2 * cells / failure_probability))))


def canonical(query: dict[str, Any]) -> bytes:
    return DOMAIN + json.dumps(query, sort_keys=True, separators=(",", ":")).encode()


def decode_public_key(text: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key; ValueError when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"decodes to {len(raw)} bytes, an Ed25519 public key has 32")
    return raw


def verify(public_key: bytes, query: dict[str, Any], signature_b64: str) -> bool:
    """True when `signature_b64` is the coop's signature of exactly this query."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, canonical(query))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def sign(private_key_raw: bytes, query: dict[str, Any]) -> str:
    """The coop's base64 signature of a query (the hub's side; private_key_raw is 32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(private_key_raw)
    return base64.b64encode(key.sign(canonical(query))).decode()


def new_keypair() -> tuple[bytes, str]:
    """(raw private key, base64 public key) for a coop that starts licensing."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw, base64.b64encode(public).decode()
