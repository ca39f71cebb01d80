"""A window released before its PUBACK survives SIGKILL: the same noisy values go out under the same id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.demo.local_broker import LocalBroker, free_port
from tests.e2e.harness import Shop, wait_until
from tests.mqtt_watch import Subscriber


@pytest.mark.slow
def test_sigkill_after_release_before_puback_resends_the_stored_values(tmp_path: Path) -> None:
    port = free_port()  # no broker listens yet: released windows wait in the outbox for their PUBACK
    shop = Shop(tmp_path / "shop", port, factor=1440, hours=6)
    try:
        shop.start_agent()
        shop.start_sim()
        wait_until(
            lambda: len(shop.query("SELECT DISTINCT window_start_ns FROM release_ledger")) >= 4,
            60,
            "four released windows",
            shop.agent_log,
        )
        shop.kill_agent()  # SIGKILL: no goodbye, no flush
        ledger_before = shop.query("SELECT window_start_ns, stream, noisy_values, hash FROM release_ledger ORDER BY id")
        outbox_before = {
            msg_id: (seq, payload) for msg_id, seq, payload in shop.query("SELECT msg_id, seq, payload FROM outbox")
        }
        assert shop.query("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NOT NULL") == [(0,)]

        with LocalBroker(tmp_path / "broker", port=port):
            sub = Subscriber(port, "coop/v1/+/+/t1/#")
            try:
                shop.start_agent()
                wait_until(
                    lambda: {m["msg_id"] for m in sub.summaries()} >= set(outbox_before),
                    30,
                    "every pre-kill summary at the subscriber",
                    shop.agent_log,
                )
            finally:
                shop.stop()
                sub.close()
    finally:
        shop.stop()

    received = {m["msg_id"]: m for m in sub.summaries()}
    for msg_id, (seq, payload) in outbox_before.items():
        assert received[msg_id] == json.loads(payload), "same values, same seq, same id: not redrawn"
        assert received[msg_id]["seq"] == seq
    ledger_after = shop.query("SELECT window_start_ns, stream, noisy_values, hash FROM release_ledger ORDER BY id")
    assert ledger_after[: len(ledger_before)] == ledger_before
    released = [(row[0], row[1]) for row in ledger_after]
    assert len(released) == len(set(released)), "no (window, stream) was released twice"
