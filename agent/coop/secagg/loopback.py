"""Run whole rounds in one process, every message carried as canonical bytes (tests and benchmarks).

This stands in for the MQTT transport: each message is encoded by its sender and decoded by its
receiver, so the encodings are exercised, and the bytes each shop sends and receives and the CPU time of
each party (time.process_time around its own work, decoding included) are counted.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import TypeVar

from agent.coop.secagg.errors import RoundAborted
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.messages import Member, Message, Roster, RoundConfig, decode
from agent.coop.secagg.primitives import IdentityKey
from agent.coop.secagg.shop import RoundPolicy, ShopRound, WindowLedger
from agent.privacy.bit_source import BitSource, Int64Array

M = TypeVar("M", bound=Message)
T = TypeVar("T")


@dataclass
class RoundReport:
    """What one round produced and what it cost."""

    total: Int64Array | None = None
    aborted: str | None = None
    survivors: tuple[str, ...] = ()
    shop_cpu_s: dict[str, float] = field(default_factory=dict)
    shop_bytes: dict[str, int] = field(default_factory=dict)
    hub_cpu_s: float = 0.0


def enrol(count: int, coop: str = "riverside") -> tuple[dict[str, IdentityKey], Roster]:
    """`count` shops with fresh identity keys, and the roster that enrols them."""
    keys = {f"store-{i:04d}": IdentityKey() for i in range(count)}
    roster = Roster(coop, tuple(Member(shop, key.public_bytes) for shop, key in sorted(keys.items())))
    return keys, roster


def propose(
    roster: Roster,
    round_id: str,
    threshold: int,
    length: int,
    value_bound: int,
    sensitivity: int,
    rho: Fraction,
    neighbours: int = 0,
    colluders: int = 0,
    windows: tuple[str, ...] = (),
) -> RoundConfig:
    """A round over every member of `roster`."""
    participants = tuple(sorted(m.shop_id for m in roster.members))
    return RoundConfig(
        roster.coop,
        round_id,
        roster.digest(),
        participants,
        threshold,
        neighbours,
        length,
        value_bound,
        sensitivity,
        rho.numerator,
        rho.denominator,
        colluders,
        windows or (round_id,),
    )


def open_shops(
    keys: dict[str, IdentityKey],
    roster: Roster,
    config: RoundConfig,
    ledgers: dict[str, WindowLedger] | None = None,
    bits: Callable[[str], BitSource | None] | None = None,
    policy: RoundPolicy | None = None,
) -> dict[str, ShopRound]:
    """Every participant's ShopRound, each pinning the roster digest it enrolled with.

    Without `policy` each shop accepts the proposal's rho and sensitivity (simulations and benchmarks).
    """
    ledgers = ledgers if ledgers is not None else {}
    return {
        shop: ShopRound(
            keys[shop],
            shop,
            roster,
            roster.digest(),
            config,
            ledgers.setdefault(shop, WindowLedger()),
            policy or RoundPolicy(Fraction(config.rho_num, config.rho_den), config.sensitivity),
            bits(shop) if bits else None,
        )
        for shop in config.participants
    }


class Wire:
    """Carries messages as bytes and books the bytes and CPU time of each party."""

    def __init__(self, report: RoundReport) -> None:
        self.report = report

    def _book(self, party: str | None, seconds: float) -> None:
        if party is None:
            self.report.hub_cpu_s += seconds
        else:
            self.report.shop_cpu_s[party] = self.report.shop_cpu_s.get(party, 0.0) + seconds

    def carry(self, message: M, sender: str | None, receivers: Iterable[str] | None) -> M:
        """Encode at the sender, decode at the receivers (None: the hub); book bytes and CPU to each party.

        The bytes are decoded once, and that time is booked to every receiving shop (each decodes its copy).
        """
        start = time.process_time()
        data = message.encode()
        self._book(sender, time.process_time() - start)
        parties = [] if receivers is None else list(receivers)
        for party in ([sender] if sender else []) + parties:
            self.report.shop_bytes[party] = self.report.shop_bytes.get(party, 0) + len(data)
        start = time.process_time()
        decoded = decode(data)
        spent = time.process_time() - start
        targets: list[str | None] = list(parties) if parties else [None]
        for target in targets:
            self._book(target, spent)
        if type(decoded) is not type(message):
            raise AssertionError(f"{message.kind} decoded as {decoded.kind}")
        return typing.cast(M, decoded)

    def to_hub(self, handler: Callable[[M], None], message: M, sender: str) -> None:
        """Carry a shop's message to the hub and run the hub's handler on it."""
        decoded = self.carry(message, sender, None)
        self.hub(lambda: handler(decoded))

    def shop(self, shop_id: str, work: Callable[[], T]) -> T:
        """Run a shop's step and book its CPU time."""
        start = time.process_time()
        try:
            return work()
        finally:
            self._book(shop_id, time.process_time() - start)

    def hub(self, work: Callable[[], T]) -> T:
        """Run a hub step and book its CPU time."""
        start = time.process_time()
        try:
            return work()
        finally:
            self._book(None, time.process_time() - start)


def run_round(
    shops: dict[str, ShopRound],
    hub: HubRound,
    inputs: dict[str, Int64Array],
    drop_before_shares: Iterable[str] = (),
    drop_before_input: Iterable[str] = (),
    drop_after_input: Iterable[str] = (),
) -> RoundReport:
    """One round; `drop_*` shops go silent at that point (after input = after sending their masked input)."""
    report = RoundReport()
    wire = Wire(report)
    gone: set[str] = set()
    try:
        for shop_id, shop in shops.items():
            wire.to_hub(hub.receive_advert, wire.shop(shop_id, shop.advertise), shop_id)
        bundle = wire.hub(hub.advert_bundle)
        gone |= set(drop_before_shares)
        live = [s for s in shops if s not in gone]
        received = wire.carry(bundle, None, live)
        for shop_id in live:
            shares = wire.shop(shop_id, partial(shops[shop_id].share_keys, received))
            wire.to_hub(hub.receive_shares, shares, shop_id)
        deliveries = wire.hub(hub.deliveries)
        gone |= set(drop_before_input)
        for shop_id, delivery in deliveries.items():
            if shop_id in gone:
                continue
            got = wire.carry(delivery, None, [shop_id])
            masked = wire.shop(shop_id, partial(shops[shop_id].masked_input, got, inputs[shop_id]))
            wire.to_hub(hub.receive_masked_input, masked, shop_id)
        gone |= set(drop_after_input)
        survivors = wire.hub(hub.survivors)
        report.survivors = survivors
        for shop_id in survivors:
            if shop_id in gone:
                continue
            signature = wire.shop(shop_id, partial(shops[shop_id].sign_survivors, survivors))
            wire.to_hub(hub.receive_survivor_signature, signature, shop_id)
        request = wire.hub(hub.unmask_request)
        responders = [s for s in survivors if s not in gone]
        carried = wire.carry(request, None, responders)
        for shop_id in responders:
            response = wire.shop(shop_id, partial(shops[shop_id].unmask, carried))
            wire.to_hub(hub.receive_unmask_response, response, shop_id)
        report.total = wire.hub(hub.finish)
    except RoundAborted as exc:
        report.aborted = str(exc)
    return report
