"""The simulated district's hourly footfall summed by real secure-aggregation rounds (in one process).

Each round covers one week of hourly windows (168 entries); every shop open by the round's end takes part
(with zeros before its first day), adds its own distributed discrete Gaussian share and its masks, and
spends the round's windows in its window ledger before its masked input leaves. The hub learns only the
unmasked noisy sums: the rows below, of the shape of the hub table `secagg_district_totals`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from agent.contract.windows import iso_utc
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.loopback import enrol, open_shops, propose, run_round
from agent.coop.secagg.messages import Roster
from agent.coop.secagg.noise import plan_noise
from agent.coop.secagg.shop import WindowLedger
from agent.privacy.bit_source import BitSource, DeterministicBitSource
from devtools.district import District

HOUR_NS = 3600 * 10**9
WEEK_HOURS = 168
STREAM = "footfall/hourly"
# One door event changes one hour's count by one: L1 = L2 sensitivity 1 for the weekly vector.
SENSITIVITY = 1
RHO = Fraction(1, 32)  # zCDP per window per round: sigma^2 = 16 on each district hourly sum


@dataclass
class SecureTotals:
    """What the hub learnt (rows) and what each shop's window ledger recorded."""

    rows: list[tuple[str, str, int, int, int, float, int]] = field(default_factory=list)
    ledgers: dict[str, WindowLedger] = field(default_factory=dict)
    rho_per_window: Fraction = RHO
    rounds: int = 0

    def table_rows(self) -> list[tuple[str, str, str, str, int, int, int, float, int]]:
        """The same totals as the hub stores them (`secagg_district_totals`, hub/forecast_model.py
        TABLE_COLUMNS order): the whole-store door entries of a `footfall_store` round."""
        return [(r, "footfall_store", "all", "entries", s, w, t, v, n) for r, _m, s, w, t, v, n in self.rows]


def secure_totals(
    district: District, weeks: int | None = None, threshold_share: float = 0.7, noise_seed: int | None = None
) -> SecureTotals:
    """Run one secure round per week of the district (the first `weeks`, default all whole weeks).

    With `noise_seed` every shop's noise share comes from a seeded stream (DeterministicBitSource, tests only:
    whoever knows the seed can subtract the noise), so a test on the totals gets the same totals every run;
    without it, from os.urandom as on a box. The masks cancel in the sum either way.
    """
    start_ns = int(dt.datetime.combine(district.start, dt.time(0), tzinfo=dt.UTC).timestamp()) * 10**9
    weeks = weeks if weeks is not None else district.days // 7
    keys, roster = enrol(len(district.shops))
    ids = dict(zip(sorted(keys), [s.shop_id for s in district.shops], strict=True))  # roster id -> shop
    out = SecureTotals(ledgers={rid: WindowLedger() for rid in keys})
    for week in range(weeks):
        first_hour = week * WEEK_HOURS
        windows = tuple(iso_utc(start_ns + (first_hour + i) * HOUR_NS) for i in range(WEEK_HOURS))
        active = [rid for rid in sorted(keys) if district.shop(ids[rid]).start_day < (week + 1) * 7]
        if len(active) < 3:
            continue
        sub_keys = {rid: keys[rid] for rid in active}
        # Only the shops open by the week's end enrol in its round (a shop joins the coop when it opens).
        sub_roster = Roster(roster.coop, tuple(m for m in roster.members if m.shop_id in sub_keys))
        threshold = max(2, int(np.ceil(threshold_share * len(active))))
        config = propose(sub_roster, f"footfall-w{week:03d}", threshold, WEEK_HOURS, 10**7, SENSITIVITY, RHO,
                         windows=windows)  # fmt: skip
        bits = None if noise_seed is None else _seeded(noise_seed, config.round_id)
        shops = open_shops(sub_keys, sub_roster, config, ledgers=out.ledgers, bits=bits)
        inputs = {rid: district.footfall[ids[rid]][first_hour : first_hour + WEEK_HOURS] for rid in active}
        report = run_round(shops, HubRound(sub_roster, config), inputs)
        if report.aborted is not None or report.total is None:
            raise RuntimeError(f"round {config.round_id} aborted: {report.aborted}")
        variance = float(plan_noise(config).share_sigma2) * len(report.survivors)
        out.rounds += 1
        out.rows += [
            (config.round_id, STREAM, start_ns + (first_hour + i) * HOUR_NS, HOUR_NS, int(report.total[i]), variance,
             len(report.survivors))
            for i in range(WEEK_HOURS)
        ]  # fmt: skip
    return out


def _seeded(seed: int, round_id: str) -> Callable[[str], BitSource]:
    """Each shop's noise stream in one round, from the seed, the round and the shop's place in the roster."""
    return lambda shop: DeterministicBitSource(f"{seed}/{round_id}/{shop}".encode())


def roster_ids(district: District) -> dict[str, str]:
    """Roster id (store-0000, ...) of each simulated shop id, as secure_totals enrols them."""
    keys = sorted(f"store-{i:04d}" for i in range(len(district.shops)))
    return {s.shop_id: k for k, s in zip(keys, district.shops, strict=True)}
