"""Secure aggregation end to end: the coop broker exactly as deployed (TLS, client certificates, the ACL of
deploy/mosquitto/coop.acl), ten real agent processes on Terabee simulators (accelerated clock) and the hub
process, then the hub's attack played by a compromised hub on the hub's own account.

Rounds (each over fresh windows, so the differencing trap never refuses one; a round covers the `entries`
of three one-minute windows of footfall_store, L2 sensitivity 1):
1. all ten shops: the stored district totals are exactly the sum of what each shop put in (true values,
   read from its own database) plus its own noise share, and that noise is within the stated bound;
2. three shops SIGKILLed as the round opens: it still completes, over the seven survivors;
3. two more killed once their masked input left (five of ten left, threshold six): the round aborts, stores
   nothing, and the windows of every shop that sent an input stay spent;
4. the compromised hub declares a shop dropped after its masked input arrived: it obtains the shop's mask
   key but never its seed (the honest shops refuse a second request), so what it can compute is uniform.
No agent process maps numba or llvmlite, before or after the first round: each shop's noise share is drawn
in its kernel worker, which is warmed when the round opens so the input step still meets the 4 s timeout.

Noise bound: every shop's share is an exact discrete Gaussian of variance s^2 = 4, so a sum over m shops is
subgaussian with variance proxy 4m, and P(|noise| > 6.5 sqrt(4m)) <= 2 exp(-6.5^2 / 2) = 1.3e-9 per cell;
six cells are checked: false-failure probability below 1e-8. The attack check (every cell of the unmasked
remainder farther than 2^40 from the true value) fails falsely with probability below 3 * 2^-23 = 3.6e-7.
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
import typing
import urllib.request
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import NS_PER_S, AcceleratedClock
from agent.contract import secagg_delivery_topic, secagg_hub_topic
from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.messages import Message, Roster, RoundConfig, UnmaskRequest, UnmaskResponse
from agent.coop.secagg.primitives import AgreementKey
from agent.coop.secagg.shamir import Share, combine
from agent.coop.secagg.shop import pair_mask
from agent.coop.secagg.transport import SHOP_STEP_KINDS, RoundOpening, SurvivorList, decode_step
from hub import secagg_store
from hub.db import Database
from tests.e2e.coop_broker import CoopBroker, coop_broker
from tests.e2e.secagg_fleet import agent_round, agent_rows, enrol, hub_secagg_section, start_agent
from tests.e2e.test_resident_without_jit import jit_mapped
from tests.hub.conftest import HubProcess, wait_for, write_hub_config
from tests.hub.test_hub_window_lengths_end_to_end import DAY, delivered_window, hub_query

SHOPS = [f"shop-{i:02d}" for i in range(10)]
WINDOW_S = 60
WINDOWS = 12  # four rounds of three windows
REAL_S_PER_WINDOW = 1.5
LEAD_S = 20.0  # ten agents start on two cores
THRESHOLD = 6  # 2t > n: one survivor list per round
RHO = Fraction(1, 48)  # sigma^2 = 1/(2 rho) = 24 = t * 4: each share has variance 4 (s = 2, tau ~ 1e-16)
STEP_TIMEOUT_S = 4.0
K_SIGMAS = 6.5


def round_cells(first: int) -> tuple[str, ...]:
    start = int(DAY.timestamp()) + first * WINDOW_S
    return secagg_store.window_cells("footfall_store", "all", ("entries",), start, WINDOW_S, 3)


def plan(db_path: Path, round_id: str, first: int) -> None:
    conn = Database(str(db_path)).connect()
    try:
        planned = secagg_store.PlannedRound(
            round_id, "footfall_store", round_cells(first), THRESHOLD, 100_000, 1, RHO, 0, 0
        )
        with conn.transaction():
            secagg_store.plan_round(conn, planned)
    finally:
        conn.close()


def round_status(db_path: Path, round_id: str) -> tuple[str, int | None, str]:
    rows = hub_query(db_path, f"SELECT status, shops, reason FROM secagg_rounds WHERE round_id = '{round_id}'")
    return (str(rows[0][0]), rows[0][1], str(rows[0][2])) if rows else ("", None, "")


def check_released(db_path: Path, round_id: str, agents: list[dict[str, Any]], shops: int) -> None:
    """Stored totals == sum over the summed shops of (true + own noise), and the noise within the bound."""
    totals = hub_query(
        db_path,
        "SELECT window_start_ns, total, noise_variance, shops FROM secagg_district_totals"
        f" WHERE round_id = '{round_id}' ORDER BY window_start_ns",
    )
    assert len(totals) == 3 and {int(r[3]) for r in totals} == {shops}
    recorded = [agent_round(a["db"], round_id) for a in agents]
    summed = [r for r in recorded if r is not None and r["state"] == "released" and r["included"]]
    assert len(summed) == shops
    true = np.sum([json.loads(r["true_values"]) for r in summed], axis=0)
    noise = np.sum([json.loads(r["noise_values"]) for r in summed], axis=0)
    assert [int(r[1]) for r in totals] == [int(v) for v in true + noise]
    assert all(float(r[2]) == 4.0 * shops for r in totals)
    assert np.all(np.abs(noise) <= K_SIGMAS * math.sqrt(4.0 * shops))
    starts = [int(r[0]) for r in totals]
    for a in agents:
        r = agent_round(a["db"], round_id)
        if r is None or not r["included"]:
            continue
        assert r["survivors"] == shops and r["reason"] and r["input_sent_wall_ns"] is not None
        # What the shop put in is its own count of entries in each window, straight from its raw events.
        counted = [
            int(agent_rows(a["db"], "SELECT COALESCE(SUM(entries), 0) FROM events WHERE window_ns = ?", s)[0][0])
            for s in starts
        ]
        assert json.loads(r["true_values"]) == counted, a["shop"]


class CompromisedHub:
    """The hub's account (certificate `_hub`) run by an attacker who follows the protocol until unmasking."""

    def __init__(self, broker: CoopBroker, round_id: str) -> None:
        self.round_id = round_id
        self.got: dict[str, dict[str, Message]] = defaultdict(dict)
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="_hub", protocol=mqtt.MQTTv5)
        self.client.tls_set(str(broker.pki / "ca.crt"), str(broker.pki / "_hub.crt"), str(broker.pki / "_hub.key"))
        self.ready = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        assert self.ready.wait(10)
        time.sleep(0.3)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe(f"coop/v1/riverside/+/secagg/{self.round_id}/+", qos=1)
        self.ready.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if parts[3] == "_hub":
            return
        decoded = decode_step(parts[6], bytes(message.payload), SHOP_STEP_KINDS)
        with self.lock:
            self.got[parts[6]][parts[3]] = decoded

    def send(self, topic: str, message: Message | None) -> None:
        self.client.publish(topic, b"" if message is None else message.encode(), qos=1, retain=True).wait_for_publish(
            10
        )

    def wait(self, step: str, count: int, timeout: float = 20) -> dict[str, Message]:
        wait_for(lambda: len(self.got[step]) >= count, timeout, f"{count} {step} messages")
        with self.lock:
            return dict(self.got[step])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def play_attack(broker: CoopBroker, roster: Roster, alive: list[dict[str, Any]]) -> None:
    """Declare a shop dropped after its masked input arrived; its value must stay hidden."""
    rid = "attack"
    shops = tuple(sorted(a["shop"] for a in alive))
    config = RoundConfig(
        "riverside", rid, roster.digest(), shops, 3, 0, 3, 100_000, 1, 1, 24, 0, round_cells(9)
    )  # n = 5, t = 3: sigma^2 = 12, shares of variance 4
    core = HubRound(roster, config)
    evil = CompromisedHub(broker, rid)
    topic = lambda step: secagg_hub_topic("riverside", rid, step)  # noqa: E731
    try:
        evil.send(topic("config"), RoundOpening(config, roster))
        for advert in evil.wait("advert", len(shops)).values():
            core.receive_advert(advert)  # type: ignore[arg-type]
        evil.send(topic("adverts"), core.advert_bundle())
        for bundle in evil.wait("shares", len(shops)).values():
            core.receive_shares(bundle)  # type: ignore[arg-type]
        for shop, delivery in core.deliveries().items():
            evil.send(secagg_delivery_topic("riverside", rid, shop), delivery)
        for masked in evil.wait("input", len(shops)).values():
            core.receive_masked_input(masked)  # type: ignore[arg-type]
        victim = shops[0]
        others = shops[1:]
        evil.send(topic("survivors"), SurvivorList(core.tag, others))  # the victim "dropped"
        signatures = evil.wait("survivors", len(others))
        assert victim not in signatures  # the victim refuses a list without itself
        request = UnmaskRequest(core.tag, others, (victim,), {s: m.signature for s, m in signatures.items()})  # type: ignore[attr-defined]
        evil.send(topic("unmask"), request)
        responses = {s: typing.cast(UnmaskResponse, r) for s, r in evil.wait("unmask", len(others)).items()}
        assert all(victim not in r.seed_shares for r in responses.values())
        key_shares = [
            Share(config.index_of(s), int.from_bytes(r.key_shares[victim], "big")) for s, r in responses.items()
        ]
        key = AgreementKey(combine(key_shares[:3], 3))
        assert key.public_bytes == core.adverts[victim].mask_public  # the mask key is indeed rebuilt
        remainder = core.inputs[victim].copy()
        for peer in others:
            mask = pair_mask(key.agree(core.adverts[peer].mask_public), core.tag, victim, peer, config.length)
            remainder = remainder - mask if victim < peer else remainder + mask
        truth = json.loads(wait_value(alive, victim, rid, "true_values"))
        gap = (remainder.view(np.int64) - np.asarray(truth, dtype=np.int64)).astype(object)
        assert all(abs(int(g)) > 2**40 for g in gap)  # input + noise + a ChaCha20 self-mask: uniform
        # Now the seed: the same survivors with the victim back in. Every honest shop refuses a second request.
        with evil.lock:
            evil.got["unmask"].clear()
        second = UnmaskRequest(core.tag, shops, (), request.signatures)
        evil.send(topic("unmask"), second)
        wait_for(
            lambda: all(
                (agent_round(a["db"], rid) or {}).get("state") == "refused" for a in alive if a["shop"] in others
            ),
            20,
            "every survivor to refuse the second unmask request",
        )
        assert not evil.got["unmask"]  # nothing more came back: the victim's seed stays unknown
        for step in ("config", "adverts", "survivors", "unmask"):
            evil.send(topic(step), None)
    finally:
        evil.close()


def wait_value(agents: list[dict[str, Any]], shop: str, round_id: str, column: str) -> str:
    db = next(a["db"] for a in agents if a["shop"] == shop)
    wait_for(lambda: bool((agent_round(db, round_id) or {}).get(column)), 10, f"{shop}'s {column}")
    return str((agent_round(db, round_id) or {})[column])


def jit_in_sys_modules(agent: dict[str, Any]) -> int:
    """The agent's own `shopkeeper_jit_resident` (numba or llvmlite in its sys.modules), over real HTTP."""
    text = Path(agent["log"].name).read_text(errors="replace")
    match = re.search(r"health and metrics on (http://\S+)/health", text)
    assert match, f"{agent['shop']} logs where its health endpoint is"
    with urllib.request.urlopen(match.group(1) + "/metrics", timeout=5) as response:
        found = re.search(r"^shopkeeper_jit_resident (\S+)$", response.read().decode(), re.M)
    assert found
    return int(float(found.group(1)))


def kill(agent: dict[str, Any]) -> None:
    agent["agent"].send_signal(signal.SIGKILL)
    agent["agent"].wait(10)


@pytest.mark.slow
def test_secure_aggregation_over_the_coop_broker(tmp_path: Path) -> None:
    day_s = int(DAY.timestamp())
    db_path = tmp_path / "hub.db"
    roster, roster_path = enrol(tmp_path, SHOPS)
    agents: list[dict[str, Any]] = []
    hub: HubProcess | None = None
    with coop_broker(tmp_path / "broker", [*SHOPS, "_hub"]) as broker:
        try:
            config = write_hub_config(tmp_path / "hub.toml", broker.port, str(db_path), k_min=3)
            tls = "".join(f'{key} = "{value}"\n' for key, value in broker.tls("_hub").items())
            config.write_text(config.read_text() + tls + hub_secagg_section(roster_path, STEP_TIMEOUT_S))
            hub = HubProcess(config, tmp_path / "hub.log").start()
            hub.wait_subscribed()
            clock = AcceleratedClock(
                origin_ns=day_s * NS_PER_S,
                factor=WINDOW_S / REAL_S_PER_WINDOW,
                anchor_ns=time.time_ns() + int(LEAD_S * 1e9),
            )
            agents = [
                start_agent(tmp_path, shop, broker, clock, 101 + i, roster, WINDOW_S, WINDOWS)
                for i, shop in enumerate(SHOPS)
            ]
            by_shop = {a["shop"]: a for a in agents}

            def released(first: int, group: list[dict[str, Any]]) -> None:
                last = day_s + (first + 2) * WINDOW_S
                wait_for(lambda: all(delivered_window(a, last) for a in group), LEAD_S + 60, f"window {first + 2}")

            # 1. Everyone.
            released(0, agents)
            # No JIT in any resident agent (issue 20): the noise share is drawn in the kernel worker.
            assert {a["shop"]: jit_mapped(a["agent"].pid) for a in agents} == {a["shop"]: [] for a in agents}
            plan(db_path, "r-all", 0)
            wait_for(lambda: round_status(db_path, "r-all")[0] in ("released", "aborted"), 30, "round r-all")
            assert round_status(db_path, "r-all")[:2] == ("released", 10), round_status(db_path, "r-all")
            wait_for(
                lambda: all((agent_round(a["db"], "r-all") or {}).get("state") == "released" for a in agents),
                10,
                "every shop to learn the result",
            )
            check_released(db_path, "r-all", agents, 10)
            assert {a["shop"]: jit_mapped(a["agent"].pid) for a in agents} == {a["shop"]: [] for a in agents}
            assert {a["shop"]: jit_in_sys_modules(a) for a in agents} == {a["shop"]: 0 for a in agents}

            # 2. Three shops killed as the round opens.
            released(3, agents)
            plan(db_path, "r-dropout", 3)
            wait_for(lambda: round_status(db_path, "r-dropout")[0] not in ("", "planned"), 10, "round r-dropout open")
            for shop in SHOPS[:3]:
                kill(by_shop[shop])
            alive = [by_shop[s] for s in SHOPS[3:]]
            wait_for(lambda: round_status(db_path, "r-dropout")[0] in ("released", "aborted"), 30, "round r-dropout")
            assert round_status(db_path, "r-dropout")[:2] == ("released", 7), round_status(db_path, "r-dropout")
            wait_for(
                lambda: all((agent_round(a["db"], "r-dropout") or {}).get("state") == "released" for a in alive),
                10,
                "the survivors to learn the result",
            )
            check_released(db_path, "r-dropout", agents, 7)

            # 3. Two more killed once their masked input left: five of ten, threshold six.
            released(6, alive)
            plan(db_path, "r-abort", 6)
            victims = alive[:2]
            # Each victim is killed as soon as its own masked input is committed (polled every 20 ms): its next
            # step needs the hub's round trip and another 0.2 s tick of its round job. Whether it was killed
            # before or after publishing, five shops cannot reach the threshold of six at a later step.
            deadline = time.monotonic() + 30
            pending = list(victims)
            while pending and time.monotonic() < deadline:
                for victim in list(pending):
                    if (agent_round(victim["db"], "r-abort") or {}).get("state") == "input_sent":
                        kill(victim)
                        pending.remove(victim)
                time.sleep(0.02)
            assert not pending, "a victim never sent its masked input"
            alive = alive[2:]
            wait_for(lambda: round_status(db_path, "r-abort")[0] in ("released", "aborted"), 30, "round r-abort")
            status, shops, reason = round_status(db_path, "r-abort")
            assert status == "aborted" and shops is None, (status, reason)
            assert hub_query(db_path, "SELECT COUNT(*) FROM secagg_district_totals WHERE round_id = 'r-abort'") == [
                (0,)
            ]
            sent = [a for a in agents if (agent_round(a["db"], "r-abort") or {}).get("input_sent_wall_ns")]
            assert len(sent) >= 5  # every live shop sent its input before the round fell short
            starts = [day_s * NS_PER_S + (6 + i) * WINDOW_S * NS_PER_S for i in range(3)]
            for a in sent:  # the differencing trap: those windows never enter another round
                spent = agent_rows(
                    a["db"], "SELECT window_start_ns, round_id FROM secagg_windows WHERE round_id = 'r-abort'"
                )
                assert sorted(int(s) for s, _r in spent) == starts
                charged = agent_rows(
                    a["db"],
                    "SELECT COUNT(*) FROM privacy_spend WHERE stream = 'secagg:footfall_store'"
                    " AND rho != '' AND window_start_ns >= ?",
                    starts[0],
                )
                assert charged[0][0] >= 3
            wait_for(
                lambda: all((agent_round(a["db"], "r-abort") or {}).get("state") == "aborted" for a in alive),
                10,
                "the live shops to learn of the abort",
            )

            # 4. The hub's best attack, by whoever holds the hub's certificate (the real hub stopped first).
            assert hub.stop() == 0
            released(9, alive)
            play_attack(broker, roster, alive)
        finally:
            for a in agents:
                for proc in (a["agent"], a["sim"]):
                    if proc.poll() is None:
                        proc.terminate()
                        try:
                            proc.wait(15)
                        except Exception:
                            proc.kill()
                a["log"].close()
            if hub:
                hub.stop()
