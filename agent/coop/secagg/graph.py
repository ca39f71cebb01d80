"""Who masks with whom and who holds whose shares: every pair (SecAgg) or a random ring graph (SecAgg+).

With `neighbours = k > 0` the participants are placed on a ring in the order of SHA-256(round tag, shop
id) and each shop pairs with the k/2 shops on either side (a Harary graph under a per-round random
permutation, as in Bell et al., CCS 2020). Each shop's secrets are then shared among its neighbourhood
(itself and its k neighbours) with a strict-majority threshold, so the work per shop is O(k), not O(n).
The graph is fixed by the configuration alone (not by who showed up), so the hub cannot reshape it by
dropping messages; it can choose the round id, which is why the security of this mode is statistical
(see docs/secure-aggregation.md).
"""

from __future__ import annotations

from functools import cache

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.messages import RoundConfig
from agent.coop.secagg.primitives import digest


def complete(config: RoundConfig) -> bool:
    """True when every pair of participants masks and shares (plain SecAgg)."""
    return config.neighbours == 0 or config.neighbours >= len(config.participants) - 1


def check_graph(config: RoundConfig) -> None:
    """Refuse graph parameters that break the protocol's guarantees."""
    n, t, c = len(config.participants), config.threshold, config.colluders
    if list(config.participants) != sorted(set(config.participants)):
        raise SecAggError("participants must be sorted and distinct")
    if not 1 <= t <= n:
        raise SecAggError(f"threshold {t} must be between 1 and {n} participants")
    # Each honest shop signs one survivor list per round: two different lists with t signatures each would need
    # 2t <= n + c signatures, so 2t > n + c leaves the hub one list only.
    if 2 * t <= n + c:
        raise SecAggError(f"threshold {t} must exceed (participants {n} + colluders {c}) / 2")
    if not complete(config) and (config.neighbours % 2 or config.neighbours < 2):
        raise SecAggError(f"neighbours={config.neighbours} must be 0 (all pairs) or an even number >= 2")


def share_threshold(config: RoundConfig) -> int:
    """How many holders must answer to rebuild one shop's secret."""
    if complete(config):
        return config.threshold
    return (config.neighbours + 1) // 2 + 1


@cache
def _ring(tag: bytes, participants: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(participants, key=lambda shop: digest(tag, shop.encode())))


def neighbours_of(config: RoundConfig, tag: bytes, shop_id: str) -> tuple[str, ...]:
    """The shops `shop_id` masks with and shares to (itself excluded), in participant order."""
    if complete(config):
        return tuple(p for p in config.participants if p != shop_id)
    ring = _ring(tag, config.participants)
    pos = ring.index(shop_id)
    half = config.neighbours // 2
    around = {ring[(pos + step) % len(ring)] for step in range(-half, half + 1) if step != 0}
    return tuple(p for p in config.participants if p in around)
