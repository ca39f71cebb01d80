"""Test kit for data licensing: a fixed coop key, the [licensing] config section, signed queries."""

from __future__ import annotations

import base64
import json
from fractions import Fraction

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.privacy.bits import BitSource
from hub.licensing import compose

COOP_KEY = bytes(range(1, 33))  # a fixed Ed25519 private key, for tests only
OTHER_KEY = bytes(range(101, 133))


def public_key_b64(private: bytes = COOP_KEY) -> str:
    public = Ed25519PrivateKey.from_private_bytes(private).public_key()
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def licensing_section(
    kinds: tuple[str, ...] = ("footfall_hour_of_week",),
    requesters: tuple[str, ...] = ("coop",),
    max_epsilon: str = "1",
    approval: str = "auto",
) -> str:
    return (
        "\n[licensing]\n"
        f'coop_public_key = "{public_key_b64()}"\n'
        f"kinds = {json.dumps(list(kinds))}\n"
        f"requesters = {json.dumps(list(requesters))}\n"
        f'max_epsilon_per_query = "{max_epsilon}"\n'
        f'approval = "{approval}"\n'
    )


def signed_query(
    expires_ns: int,
    kind: str = "footfall_hour_of_week",
    params: dict[str, str] | None = None,
    epsilon: str = "1/2",
    requester: str = "coop",
    credit_cents: int = 250,
    coop: str = "riverside",
    key: bytes = COOP_KEY,
    combine: str = "",
) -> dict[str, object]:
    return compose(
        coop,
        key,
        kind,
        params or {"start": "2025-11-16", "end": "2025-11-17"},
        requester,
        "district footfall study",
        Fraction(epsilon),
        credit_cents,
        expires_ns,
        combine,
    )


def encode(message: dict[str, object]) -> bytes:
    return json.dumps(message, sort_keys=True).encode()


class CountingBits(BitSource):
    """OS randomness that counts the bytes drawn (to prove that a refusal drew none)."""

    def __init__(self) -> None:
        self.drawn = 0

    def read(self, nbytes: int) -> bytes:
        self.drawn += nbytes
        return super().read(nbytes)
