"""Topic and message-id shapes (docs/topics.md): built here for the agent, parsed here for the hub.

coop/v1/<coop>/<store>/<tier>/<segment>/<window name>    a shop's summaries
coop/v1/<coop>/<store>/status                            a shop's retained birth and last will
coop/v1/<coop>/_hub/t1/benchmarks/<metric>/[<window name>/]<window start>   district benchmarks
coop/v1/<coop>/_hub/t2/alerts/<store>                    alerts about one shop
coop/v1/<coop>/_hub/t2/sales-position/<store>            one shop's own position among the district's sales
coop/v1/<coop>/_hub/t2/watermark/<store>                 the newest window end the hub holds of one shop

The three `_hub/t2/.../<store>` topics are private to their store: only the hub writes them and only that
store (and the hub) reads them (deploy/mosquitto/coop.acl).
"""

from __future__ import annotations

import dataclasses

from agent.contract.streams import TIERS, StreamSpec, stream_by_segment
from agent.contract.windows import V1_IMPLIED_WINDOW_S, iso_utc, window_name, window_seconds

ROOT = "coop/v1"
HUB_SEGMENT = "_hub"  # the hub writes only under coop/v1/<coop>/_hub/...; no store may be called this


def summary_topic(coop: str, store: str, tier: str, spec: StreamSpec, window_s: int) -> str:
    """Where one stream of one shop is published, e.g. coop/v1/riverside/store-0042/t1/footfall/hourly."""
    return f"{ROOT}/{coop}/{store}/{tier}/{spec.stream(window_s)}"


def status_topic(coop: str, store: str) -> str:
    return f"{ROOT}/{coop}/{store}/status"


def msg_id(coop: str, store: str, spec: StreamSpec, window_s: int, window_start_ns: int, key: str) -> str:
    """Stable per (store, stream, window, key): the hub de-duplicates on it. One-key streams omit the key."""
    text = f"{coop}/{store}/{spec.stream(window_s)}/{iso_utc(window_start_ns)}"
    return text if spec.key_field is None else f"{text}/{key}"


@dataclasses.dataclass(frozen=True)
class SummaryTopic:
    """A parsed summary topic."""

    coop: str
    store: str
    tier: str
    spec: StreamSpec
    window_s: int

    @property
    def stream(self) -> str:
        return self.spec.stream(self.window_s)


def parse_summary_topic(topic: str) -> SummaryTopic:
    """The parts of a summary topic; ValueError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) != 7 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise ValueError("topic is not coop/v1/<coop>/<store>/<tier>/<stream>/<window>")
    coop, store, tier, segment, name = parts[2:]
    if store == HUB_SEGMENT:
        raise ValueError("topic is under the hub's own _hub/ level")
    if tier not in TIERS:
        raise ValueError(f"tier {tier[:20]!r} is not one of {', '.join(TIERS)}")
    spec = stream_by_segment(segment)
    if spec is None:
        raise ValueError(f"no stream is published as {segment[:40]!r}")
    return SummaryTopic(coop, store, tier, spec, window_seconds(name))


# -- the hub's own topics --------------------------------------------------------------------------
def benchmark_topic(coop: str, metric: str, window_s: int, window_start: str) -> str:
    """Retained district benchmark of one window. Hourly keeps its v1 topic; other lengths name theirs."""
    base = f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/benchmarks/{metric}"
    if window_s == V1_IMPLIED_WINDOW_S:
        return f"{base}/{window_start}"
    return f"{base}/{window_name(window_s)}/{window_start}"


def benchmark_filter(coop: str, window_s: int) -> str:
    """The subscription that receives every benchmark of one window length, and of no other length."""
    base = f"{ROOT}/{coop}/{HUB_SEGMENT}/t1/benchmarks/+"
    return f"{base}/+" if window_s == V1_IMPLIED_WINDOW_S else f"{base}/{window_name(window_s)}/+"


def alert_topic(coop: str, store: str) -> str:
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/alerts/{store}"


def sales_position_topic(coop: str, store: str) -> str:
    """Retained: this shop's own band among the district's POS sales figures (tier 2, this store only)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/sales-position/{store}"


def watermark_topic(coop: str, store: str) -> str:
    """Retained: `released_through`, the newest window end the hub has stored for this store (this store only)."""
    return f"{ROOT}/{coop}/{HUB_SEGMENT}/t2/watermark/{store}"
