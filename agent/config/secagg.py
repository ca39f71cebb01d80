"""The [secagg] section: whether this shop takes part in the coop's secure-aggregation rounds, and on what terms.

The hub proposes each round; these settings are the shop's own limits on what it accepts (the hub is not
trusted to choose the privacy level): the roster digest it enrolled with, the most rho one round may
charge each window, which streams may be summed, and how many honest shops a round must assume.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from fractions import Fraction
from pathlib import Path

from agent.config.reader import TableReader
from agent.privacy.plan import StreamPlan

IDENTITY_FILE = "secagg-identity.key"


@dataclasses.dataclass(frozen=True)
class SecAggSettings:
    roster_digest: bytes  # SHA-256 of the coop roster this shop enrolled in (its pinned copy)
    max_rho: Fraction  # the most zCDP rho one round may charge each window it covers
    streams: tuple[str, ...]  # the streams whose true values this shop lets be summed
    min_honest: int  # a round's threshold minus assumed colluders must be at least this
    identity_key: Path  # the shop's Ed25519 identity key (created by `shopkeeper coop-identity`)


def read_secagg(section: TableReader, data_dir: Path, streams: tuple[StreamPlan, ...]) -> SecAggSettings | None:
    """The settings, or None when the section is absent or `enabled = false`."""
    if not section.table or not section.get("enabled", bool, True):
        section.reject_unknown()
        return None
    if importlib.util.find_spec("cryptography") is None:
        raise section.fail("enabled", "needs the coop extra (cryptography)", "pip install 'shopkeeper[coop]'")
    digest_hex = section.get("roster_digest", str, fix="add the roster digest the coop gave you at enrolment")
    try:
        digest = bytes.fromhex(digest_hex)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise section.fail("roster_digest", "is not 64 hex digits", "copy the digest exactly as the coop printed it")
    names = section.get("streams", list, ["footfall_store"])
    known = {p.name for p in streams}
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise section.fail("streams", f"{name!r} is not a released stream", f"use some of {sorted(known)}")
    settings = SecAggSettings(
        roster_digest=digest,
        max_rho=section.epsilon("max_rho_per_round", "1/8"),
        streams=tuple(names),
        min_honest=section.int_in("min_honest", 2, 1, 10_000),
        identity_key=data_dir / IDENTITY_FILE,
    )
    section.reject_unknown()
    return settings
