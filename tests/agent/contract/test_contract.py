"""The stream contract: window names, topics and message ids round trip; every shipped schema matches its stream."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.contract import (
    FOOTFALL_DOOR,
    FOOTFALL_STORE,
    SALES_COUNT,
    STATUS_SCHEMA_FILE,
    STREAMS,
    WINDOW_LENGTHS,
    benchmark_filter,
    benchmark_topic,
    is_window_length,
    iso_seconds,
    iso_utc,
    msg_id,
    parse_iso,
    parse_summary_topic,
    schema_document,
    shipped_schema_files,
    stream_by_name,
    summary_topic,
    window_name,
    window_seconds,
)

REPO = Path(__file__).resolve().parents[3]
NS = 1_000_000_000
START = 1_763_283_600  # 2025-11-16T09:00:00Z


def test_todays_window_names_are_kept_exactly() -> None:
    names = {60: "60s", 300: "300s", 900: "15min", 1800: "1800s", 3600: "hourly", 7200: "7200s", 86400: "daily"}
    assert {s: window_name(s) for s in names} == names


def test_every_window_length_round_trips_through_its_name() -> None:
    assert WINDOW_LENGTHS[0] == 60 and WINDOW_LENGTHS[-1] == 86400 and 900 in WINDOW_LENGTHS
    assert all(86400 % s == 0 for s in WINDOW_LENGTHS)
    assert [window_seconds(window_name(s)) for s in WINDOW_LENGTHS] == list(WINDOW_LENGTHS)


@pytest.mark.parametrize("name", ["3600s", "900s", "86400s", "0060s", "7s", "59s", "7000s", "hour", "", "s"])
def test_names_no_length_would_get_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        window_seconds(name)


def test_window_lengths_are_at_least_a_minute_and_divide_a_day() -> None:
    assert [s for s in (30, 59, 60, 61, 900, 1000, 3600, 86400, 172800) if is_window_length(s)] == [
        60,
        900,
        3600,
        86400,
    ]


def test_hourly_topics_and_ids_are_the_published_v1_ones() -> None:
    assert summary_topic("riverside", "store-0042", "t1", FOOTFALL_DOOR, 3600) == (
        "coop/v1/riverside/store-0042/t1/footfall/hourly"
    )
    assert msg_id("riverside", "store-0042", FOOTFALL_DOOR, 3600, START * NS, "front") == (
        "riverside/store-0042/footfall/hourly/2025-11-16T09:00:00Z/front"
    )
    # A one-key stream has no key in its id.
    assert msg_id("riverside", "s1", FOOTFALL_STORE, 900, START * NS, "all") == (
        "riverside/s1/footfall-total/15min/2025-11-16T09:00:00Z"
    )


@pytest.mark.parametrize("window_s", [60, 900, 3600, 86400])
def test_every_stream_topic_parses_back_to_its_stream_and_length(window_s: int) -> None:
    for spec in STREAMS:
        parsed = parse_summary_topic(summary_topic("riverside", "s1", spec.tier, spec, window_s))
        assert (parsed.coop, parsed.store, parsed.tier, parsed.spec, parsed.window_s) == (
            "riverside",
            "s1",
            spec.tier,
            spec,
            window_s,
        )
        assert parsed.stream == spec.stream(window_s)


@pytest.mark.parametrize(
    "topic",
    [
        "coop/v1/riverside/s1/t1/footfall",  # no window
        "coop/v1/riverside/s1/t1/footfall/3600s",  # not the name the agent uses
        "coop/v1/riverside/s1/t3/footfall/hourly",  # tier 3 never leaves the box
        "coop/v1/riverside/s1/t1/sales/hourly",  # no such stream
        "coop/v1/riverside/_hub/t1/footfall/hourly",
        "coop/v2/riverside/s1/t1/footfall/hourly",
    ],
)
def test_malformed_summary_topics_are_refused(topic: str) -> None:
    with pytest.raises(ValueError):
        parse_summary_topic(topic)


def test_benchmark_topics_name_the_length_and_each_filter_gets_only_its_own() -> None:
    hourly = benchmark_topic("riverside", "footfall", 3600, "2025-11-16T09:00:00Z")
    quarter = benchmark_topic("riverside", "footfall", 900, "2025-11-16T09:00:00Z")
    assert hourly == "coop/v1/riverside/_hub/t1/benchmarks/footfall/2025-11-16T09:00:00Z"
    assert quarter == "coop/v1/riverside/_hub/t1/benchmarks/footfall/15min/2025-11-16T09:00:00Z"

    def matches(pattern: str, topic: str) -> bool:
        regex = "^" + re.escape(pattern).replace(r"\+", "[^/]+") + "$"
        return re.match(regex, topic) is not None

    assert matches(benchmark_filter("riverside", 3600), hourly) and not matches(
        benchmark_filter("riverside", 3600), quarter
    )
    assert matches(benchmark_filter("riverside", 900), quarter) and not matches(
        benchmark_filter("riverside", 900), hourly
    )


def test_utc_text_round_trips_and_truncates_to_the_second() -> None:
    assert iso_utc(START * NS + NS - 1) == iso_seconds(START) == "2025-11-16T09:00:00Z"
    assert parse_iso(iso_seconds(START)) == START
    with pytest.raises(ValueError):
        parse_iso("2025-11-16 09:00:00")


def test_stream_names_are_the_ledger_names_and_unique() -> None:
    # These names are hashed into every shop's release ledger: a rename would break every chain.
    assert [s.name for s in STREAMS] == ["footfall_door", "footfall_store", "sales_count", "sales_revenue"]
    assert len({s.segment for s in STREAMS}) == len(STREAMS)
    assert stream_by_name("sales_count") is SALES_COUNT


def test_every_shipped_schema_loads_and_is_used() -> None:
    files = shipped_schema_files()
    assert set(files) == {s.schema_file for s in STREAMS} | {STATUS_SCHEMA_FILE}
    for name in files:
        assert schema_document(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("spec", STREAMS, ids=lambda s: s.name)
def test_each_streams_schema_matches_its_spec(spec) -> None:  # type: ignore[no-untyped-def]
    schema = schema_document(spec.schema_file)
    props = schema["properties"]
    assert props["schema"]["const"] == spec.schema_id
    assert set(spec.value_names) <= set(props["values"]["properties"])
    if spec.key_field is None:
        assert not {"door", "category"} & set(props)
    else:
        assert spec.key_field in schema["required"] and spec.key_field in props
    # The window length is carried in the payload, within the lengths the contract allows.
    seconds = props["window"]["properties"]["seconds"]
    assert "seconds" in props["window"]["required"]
    assert (seconds["minimum"], seconds["maximum"]) == (WINDOW_LENGTHS[0], WINDOW_LENGTHS[-1])
    stream = re.compile(props["stream"]["pattern"])
    assert all(stream.match(spec.stream(s)) for s in WINDOW_LENGTHS)
    others = [o for o in STREAMS if o.schema_file != spec.schema_file]
    assert not any(stream.match(o.stream(3600)) for o in others)
    for value in spec.values:
        assert value.minimum < 0 < value.maximum  # noisy values may be negative
        assert value.holds(None) and value.holds(0) and not value.holds(value.maximum + 1)
    # `scope` is optional in v1 (older agents omit it), and allows exactly the scopes the stream's keys have.
    assert "scope" in props and "scope" not in schema["required"]
    allowed = {props["scope"]["const"]} if "const" in props["scope"] else set(props["scope"]["enum"])
    keys = ["all"] if spec.key_field is None else ["front", "all"] if spec.key_field == "door" else ["bakery", "all"]
    assert {spec.scope(k) for k in keys} == allowed


def test_the_contract_and_the_hub_import_nothing_else_of_the_agent() -> None:
    code = (
        "import sys, agent.contract, hub.contract, hub.dashboard, hub.tasks, hub.subscriber, hub.runtime, hub.cli;"
        "print(sorted(m for m in sys.modules if m == 'agent' or m.startswith('agent.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    modules = ast.literal_eval(out)
    assert modules and all(m == "agent" or m.startswith("agent.contract") for m in modules), modules


def test_the_topic_contract_page_lists_every_stream_as_declared() -> None:
    text = (REPO / "docs" / "topics.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0].startswith("`") and cells[1].startswith("`"):
            rows[cells[0].strip("`")] = cells
    assert set(rows) == {s.name for s in STREAMS}
    for spec in STREAMS:
        _name, segment, schema_id, key, values, tier, epsilon, unit = rows[spec.name]
        assert (segment, schema_id) == (f"`{spec.segment}`", f"`{spec.schema_id}`")
        assert key.startswith(f"`{spec.key_field}`") if spec.key_field else key.startswith("none")
        assert all(f"`{v}`" in values for v in spec.value_names)
        assert (tier, epsilon, unit) == (spec.tier, spec.default_epsilon, spec.unit)
