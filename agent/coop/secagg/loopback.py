"""Run whole rounds in one process, every message carried as canonical bytes (tests and benchmarks).

This stands in for the MQTT transport: each message is encoded by its sender and decoded by its
receiver, so the encodings are exercised, and the bytes each shop sends and receives and the CPU time of
each party (time.process_time around its own work, decoding included) are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

from agent.coop.secagg.errors import RoundAborted
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.messages import Member, Message, Roster, RoundConfig, decode
from agent.coop.secagg.primitives import IdentityKey
from agent.coop.secagg.shop import ShopRound, WindowLedger
from agent.privacy.sampler import BitSource, Int64Array

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
        roster.coop, round_id, roster.digest(), participants, threshold, neighbours, length, value_bound,
        sensitivity, rho.numerator, rho.denominator, colluders, windows or (round_id,),
    )  # fmt: skip


def open_shops(
    keys: dict[str, IdentityKey],
    roster: Roster,
    config: RoundConfig,
    ledgers: dict[str, WindowLedger] | None = None,
    bits: Callable[[str], BitSource | None] | None = None,
) -> dict[str, ShopRound]:
    """Every participant's ShopRound, each pinning the roster digest it enrolled with."""
    ledgers = ledgers if ledgers is not None else {}
    return {
        shop: ShopRound(
            keys[shop], shop, roster, roster.digest(), config,
            ledgers.setdefault(shop, WindowLedger()), bits(shop) if bits else None,
        )  # fmt: skip
        for shop in config.participants
    }


class Wire:
    """Carries messages as bytes and books the bytes and CPU time of each party."""

    def __init__(self, report: RoundReport) -> None:
        self.report = report

    def carry(self, message: M, sender: str | None, receivers: Iterable[str]) -> M:
        """Encode at the sender, decode once (every receiver gets the same bytes); book the bytes."""
        data = message.encode()
        receivers = list(receivers)
        for party in ([sender] if sender else []) + receivers:
            self.report.shop_bytes[party] = self.report.shop_bytes.get(party, 0) + len(data)
        start = time.process_time()
        decoded = decode(data)
        spent = time.process_time() - start
        for party in receivers:  # decoded once here, but every receiving shop would decode its own copy
            self.report.shop_cpu_s[party] = self.report.shop_cpu_s.get(party, 0.0) + spent
        assert type(decoded) is type(message)
        return decoded  # type: ignore[return-value]

    def shop(self, shop_id: str, work: Callable[[], T]) -> T:
        """Run a shop's step and book its CPU time."""
        start = time.process_time()
        try:
            return work()
        finally:
            self.report.shop_cpu_s[shop_id] = self.report.shop_cpu_s.get(shop_id, 0.0) + time.process_time() - start

    def hub(self, work: Callable[[], T]) -> T:
        """Run a hub step and book its CPU time."""
        start = time.process_time()
        try:
            return work()
        finally:
            self.report.hub_cpu_s += time.process_time() - start


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
            advert = wire.shop(shop_id, shop.advertise)
            wire.hub(lambda a=advert, s=shop_id: hub.receive_advert(wire.carry(a, s, [])))
        bundle = wire.hub(hub.advert_bundle)
        gone |= set(drop_before_shares)
        live = [s for s in shops if s not in gone]
        received = wire.carry(bundle, None, live)
        for shop_id in live:
            shares = wire.shop(shop_id, lambda s=shop_id: shops[s].share_keys(received))
            wire.hub(lambda b=shares, s=shop_id: hub.receive_shares(wire.carry(b, s, [])))
        deliveries = wire.hub(hub.deliveries)
        gone |= set(drop_before_input)
        for shop_id, delivery in deliveries.items():
            if shop_id in gone:
                continue
            got = wire.carry(delivery, None, [shop_id])
            masked = wire.shop(shop_id, lambda s=shop_id, d=got: shops[s].masked_input(d, inputs[s]))
            wire.hub(lambda m=masked, s=shop_id: hub.receive_masked_input(wire.carry(m, s, [])))
        gone |= set(drop_after_input)
        survivors = wire.hub(hub.survivors)
        report.survivors = survivors
        for shop_id in survivors:
            if shop_id in gone:
                continue
            signature = wire.shop(shop_id, lambda s=shop_id: shops[s].sign_survivors(survivors))
            wire.hub(lambda g=signature, s=shop_id: hub.receive_survivor_signature(wire.carry(g, s, [])))
        request = wire.hub(hub.unmask_request)
        responders = [s for s in survivors if s not in gone]
        carried = wire.carry(request, None, responders)
        for shop_id in responders:
            response = wire.shop(shop_id, lambda s=shop_id: shops[s].unmask(carried))
            wire.hub(lambda r=response, s=shop_id: hub.receive_unmask_response(wire.carry(r, s, [])))
        report.total = wire.hub(hub.finish)
    except RoundAborted as exc:
        report.aborted = str(exc)
    return report
