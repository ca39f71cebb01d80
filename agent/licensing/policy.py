"""The shop's licensing policy, from the [licensing] section of the agent's config (docs/licensing.md)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from agent.config.reader import NAME_RE, TableReader
from agent.contract.licensing import decode_public_key
from agent.licensing.catalogue import KINDS

APPROVALS = ("manual", "auto")


@dataclasses.dataclass(frozen=True)
class LicensingPolicy:
    """Which queries this shop answers, and how: kinds, requesters, epsilon per query, approval."""

    coop_public_key: bytes  # Ed25519, 32 raw bytes: only queries it signed are considered
    kinds: tuple[str, ...]
    requesters: tuple[str, ...]
    max_epsilon_per_query: Fraction
    approval: str  # "manual": each query waits for the owner; "auto": answered when the policy allows it

    def refusal(self, kind: str, requester: str, epsilon: Fraction) -> str | None:
        """Why this policy refuses a query, in words for the coop and the owner; None when it allows it."""
        if kind not in self.kinds:
            return f"this shop does not answer {kind} queries (its policy allows: {', '.join(self.kinds) or 'none'})"
        if requester not in self.requesters:
            return f"this shop does not answer queries from {requester!r}"
        if epsilon > self.max_epsilon_per_query:
            return f"asks epsilon {epsilon}, above this shop's largest {self.max_epsilon_per_query} per query"
        return None


def read_licensing(section: TableReader) -> LicensingPolicy | None:
    """The [licensing] section, validated; None when it is absent (the box then takes no queries)."""
    if not section.table:
        return None
    key_text = section.get("coop_public_key", str, fix="paste the key `shopkeeper hub licensing keygen` printed")
    try:
        key = decode_public_key(key_text)
    except ValueError as exc:
        raise section.fail(
            "coop_public_key", str(exc), "paste the base64 key `shopkeeper hub licensing keygen` printed"
        ) from None
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise section.fail(
            "coop_public_key", "needs the cryptography package to verify queries", "pip install 'shopkeeper[coop]'"
        ) from None
    kinds = section.get("kinds", list, [])
    for kind in kinds:
        if kind not in KINDS:
            raise section.fail("kinds", f"{kind!r} is not a query kind", f"use some of {', '.join(KINDS)}")
    requesters = section.get("requesters", list, [])
    if not all(isinstance(r, str) and NAME_RE.match(r) for r in requesters):
        raise section.fail("requesters", "must be a list of names", 'write e.g. requesters = ["coop"]')
    policy = LicensingPolicy(
        coop_public_key=key,
        kinds=tuple(kinds),
        requesters=tuple(requesters),
        max_epsilon_per_query=section.epsilon("max_epsilon_per_query", "0.5"),
        approval=section.choice("approval", "manual", APPROVALS),
    )
    section.reject_unknown()
    return policy
