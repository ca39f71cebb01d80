"""Shared set-up for the secure-aggregation tests: an enrolled coop and a round proposal."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.loopback import enrol, open_shops, propose
from agent.coop.secagg.messages import Roster, RoundConfig
from agent.coop.secagg.primitives import IdentityKey
from agent.coop.secagg.shop import ShopRound
from agent.privacy.sampler import DeterministicBitSource


class Coop:
    """An enrolled coop of `n` shops, ready to open rounds."""

    def __init__(self, n: int) -> None:
        self.keys: dict[str, IdentityKey]
        self.roster: Roster
        self.keys, self.roster = enrol(n)
        self.ledgers: dict = {}

    def round(
        self, round_id: str, threshold: int, length: int = 24, neighbours: int = 0, **kwargs: object
    ) -> tuple[RoundConfig, dict[str, ShopRound], HubRound]:
        """Propose a round; open every shop's side (deterministic noise bits) and the hub's."""
        options: dict = {"value_bound": 10**9, "sensitivity": 20_000, "rho": Fraction(1, 8)} | kwargs
        config = propose(self.roster, round_id, threshold, length, neighbours=neighbours, **options)
        shops = open_shops(
            self.keys,
            self.roster,
            config,
            self.ledgers,
            bits=lambda s: DeterministicBitSource(f"{round_id}/{s}".encode()),
        )
        return config, shops, HubRound(self.roster, config)

    def inputs(self, config: RoundConfig, seed: int = 7) -> dict[str, np.ndarray]:
        """Random inputs within the round's bound, one vector per shop."""
        rng = np.random.default_rng(seed)
        return {
            s: rng.integers(-config.value_bound, config.value_bound + 1, config.length) for s in config.participants
        }


@pytest.fixture
def coop10() -> Coop:
    return Coop(10)


@pytest.fixture
def coop20() -> Coop:
    return Coop(20)
