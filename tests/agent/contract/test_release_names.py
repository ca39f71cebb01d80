"""What the agent releases is named by the contract, window by window: the hub accepts every summary as sent."""

from __future__ import annotations

import json
from pathlib import Path

from agent.clock import NS_PER_S
from agent.config import load_config
from agent.contract import parse_summary_topic, window_name
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from hub.contract import Summary, parse_message
from tests.agent.test_window_length_change import add_events_every_minute, config_with_length
from tests.conftest import T0_NS, ManualClock


def test_windows_still_on_the_old_length_are_named_by_their_own_length(tmp_path: Path) -> None:
    clock = ManualClock()
    first = load_config(config_with_length(tmp_path, "15m"), drivers={})
    store = Store(first.db_path)
    add_events_every_minute(store, T0_NS, 120)
    clock.now_ns = T0_NS + 900 * NS_PER_S + first.grace_s * NS_PER_S
    assert WindowReleaser(first, store, clock).tick() == 1
    store.close()
    second = load_config(config_with_length(tmp_path, "1h"), drivers={})  # windows go on at 15 min until 01:00
    store = Store(second.db_path)
    clock.now_ns = T0_NS + 2 * 3600 * NS_PER_S + second.grace_s * NS_PER_S
    WindowReleaser(second, store, clock).tick()
    names = set()
    for topic, payload, msg_id in store.conn().execute("SELECT topic, payload, msg_id FROM outbox"):
        doc = json.loads(payload)
        seconds = doc["window"]["seconds"]
        where = parse_summary_topic(topic)
        assert where.window_s == seconds and doc["stream"] == where.stream == where.spec.stream(seconds)
        assert msg_id == doc["msg_id"] and f"/{window_name(seconds)}/" in msg_id
        parsed = parse_message("riverside", topic, payload.encode())
        assert isinstance(parsed, Summary), parsed
        names.add(window_name(seconds))
    assert names == {"15min", "hourly"}
