"""A change of window length keeps every event, each in exactly one window, and windows on the grid."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from agent.clock import NS_PER_S
from agent.config import load_config
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from tests.conftest import BASE_CONFIG, T0_NS, ManualClock

MINUTE = 60 * NS_PER_S


def config_with_length(tmp_path: Path, length: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(BASE_CONFIG.format(port=1883).replace('length = "1h"', f'length = "{length}"'))
    return path


def add_events_every_minute(store: Store, start_ns: int, minutes: int) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'test', 'front', 1, 0)",
            [(start_ns + m * MINUTE + 7 * NS_PER_S,) for m in range(minutes)],
        )


def released_windows(store: Store) -> list[tuple[int, int]]:
    rows = store.conn().execute(
        "SELECT DISTINCT window_start_ns, window_end_ns FROM release_ledger ORDER BY window_start_ns"
    )
    return [(int(s), int(e)) for s, e in rows]


@pytest.mark.parametrize(
    ("old", "new", "released_before", "expected_lengths_min"),
    [
        # 15 min -> 1 h, changed at 00:15: 00:15 and 00:30 and 00:45 at 15 min, then hourly from 01:00.
        ("15m", "1h", 1, [15, 15, 15, 15, 60, 60]),
        # 1 h -> 15 min, changed at 01:00: already on the new grid, so 15 min from there.
        ("1h", "15m", 1, [60, 15, 15, 15, 15, 15, 15, 15, 15]),
        # 20 min -> 30 min, changed at 00:20: 00:20 and 00:40 at 20 min, then 01:00 on the 30 min grid.
        ("20m", "30m", 1, [20, 20, 20, 30, 30, 30, 30]),
    ],
)
def test_window_length_change_keeps_every_event_once_on_the_grid(
    tmp_path: Path, old: str, new: str, released_before: int, expected_lengths_min: list[int]
) -> None:
    clock = ManualClock()
    first = load_config(config_with_length(tmp_path, old), drivers={})
    store = Store(first.db_path)
    add_events_every_minute(store, T0_NS, 180)  # one entry a minute for three hours
    releaser = WindowReleaser(first, store, clock)
    old_ns = first.window_s * NS_PER_S
    clock.now_ns = T0_NS + released_before * old_ns + first.grace_s * NS_PER_S
    assert releaser.tick() == released_before
    store.close()

    second = load_config(config_with_length(tmp_path, new), drivers={})
    store = Store(second.db_path)
    releaser = WindowReleaser(second, store, clock)
    clock.now_ns = T0_NS + 3 * 3600 * NS_PER_S + second.grace_s * NS_PER_S
    releaser.tick()

    windows = released_windows(store)
    assert [(e - s) // MINUTE for s, e in windows] == expected_lengths_min
    assert all(e == s2 for (_s, e), (s2, _e) in itertools.pairwise(windows)), "no gap, no overlap"
    new_ns = second.window_s * NS_PER_S
    switched = [s for s, e in windows if e - s == new_ns and s >= windows[released_before][0]]
    assert all(s % new_ns == 0 for s in switched), "new-length windows lie on the new grid"
    # Every event counted in exactly one released window, the one that holds its time.
    rows = store.conn().execute("SELECT wall_ns, window_ns FROM events").fetchall()
    assert len(rows) == 180
    starts = {s: e for s, e in windows}
    for wall, window in rows:
        assert window in starts, f"event at {wall} fixed to {window}, which was never released"
        assert window <= wall < starts[window]
    # The payloads say each window's own length.
    for (payload,) in store.conn().execute("SELECT payload FROM outbox"):
        doc = json.loads(payload)
        assert doc["window"]["seconds"] in {(e - s) // NS_PER_S for s, e in windows}
