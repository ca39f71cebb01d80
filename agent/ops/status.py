"""What `shopkeeper status` and `shopkeeper ledger` show: read from the agent's SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time
from fractions import Fraction
from typing import Any

from agent.config import AgentConfig
from agent.contract import iso_utc
from agent.coop.district import my_shop_vs_district
from agent.coop.watermark import WATERMARK_KEY
from agent.errors import StoreError
from agent.owner import status_words as owner_status
from agent.owner.contributions import contributions
from agent.owner.localtime import LocalZone
from agent.owner.sent import window_totals
from agent.privacy.journal import JOURNAL_NAME, JournalError, ReleaseJournal
from agent.privacy.ledger import verify_chain
from agent.privacy.reconcile import lost_windows, watermark_problems
from agent.privacy.reconcile import problems as journal_problems
from agent.store import Store, outbox


def _open(config: AgentConfig) -> Store:
    if not config.db_path.exists():
        raise StoreError(f"{config.db_path} does not exist yet; the agent has not run with this configuration")
    # Only the agent itself checks integrity at start (and moves a damaged file aside); a status query
    # must never move the file from under a running agent.
    return Store(config.db_path, check_integrity=False)


def collect_status(config: AgentConfig) -> dict[str, Any]:
    """Sensors first, then buffered raw data, released windows, the outbox backlog, and connection state."""
    store = _open(config)
    conn = store.conn()
    try:
        owner = owner_status.collect(store, config)
        events, oldest, newest = conn.execute("SELECT count(*), min(wall_ns), max(wall_ns) FROM events").fetchone()
        released, last_window = conn.execute("SELECT count(*), max(window_start_ns) FROM release_ledger").fetchone()
        pending, oldest_pending = outbox.pending(conn)
        delivered, last_delivered = outbox.delivered(conn)
        spent = conn.execute(
            "SELECT stream, count(*), group_concat(DISTINCT CASE WHEN rho != '' THEN 'rho ' || rho"
            " ELSE 'epsilon ' || epsilon END) FROM privacy_spend GROUP BY stream"
        ).fetchall()
        return {
            "store": config.store,
            "coop": config.coop,
            "database": str(config.db_path),
            "raw_events": {
                "count": events,
                "oldest": iso_utc(oldest) if oldest else None,
                "newest": iso_utc(newest) if newest else None,
            },
            "released_windows": released,
            "last_released_window": iso_utc(last_window) if last_window is not None else None,
            "next_window": iso_utc(int(store.get_state("next_window_start_ns") or 0)),
            "outbox": {
                "pending": pending,
                "delivered": delivered,
                "oldest_pending_age_s": round(time.time() - oldest_pending / 1e9, 1) if oldest_pending else None,
                "last_delivered": iso_utc(last_delivered) if last_delivered else None,
                "refused": [
                    {
                        "topic": r.topic,
                        "reason": r.reason,
                        "reason_code": r.code,
                        "held_back": r.held_back,
                        "attempts": r.attempts,
                        "since": iso_utc(r.since_wall_ns),
                        "next_attempt": iso_utc(r.next_attempt_wall_ns),
                    }
                    for r in outbox.rejections(conn)
                ],
            },
            "mqtt_connections": int(store.get_state("mqtt_connections", "0") or 0),
            "epsilon_spent": {s: {"windows": n, "epsilon_per_window": e} for s, n, e in spent},
            "counters": store.counters(),
            "district": my_shop_vs_district(store, limit=12),
            "alerts": [json.loads(p) for (p,) in conn.execute("SELECT payload FROM hub_alerts")],
            **owner,
        }
    finally:
        store.close()


def outbox_refusals(outbox_report: dict[str, Any]) -> list[str]:
    """One line per topic the broker refuses, saying what is held back and what to do."""
    return [
        f"outbox: broker REFUSES {r['topic']}: {r['reason']} (reason code 0x{r['reason_code']:02x});"
        f" {r['held_back']} summaries held back since {r['since']}, try {r['attempts'] + 1} at {r['next_attempt']}"
        " (fix the broker's ACL for this store, then reload the broker)"
        for r in outbox_report.get("refused", [])
    ]


def format_status(report: dict[str, Any]) -> str:
    """The report in plain words: sensors first, then what is kept, what left and what is pending."""
    lines = owner_status.format_words(report)
    lines += outbox_refusals(report["outbox"])
    if report["district"]:
        lines.append("my shop vs district (entries per window; district p25 / median / p75 over n shops):")
        for row in report["district"]:
            mine = "-" if row["mine"] is None else row["mine"]
            lines.append(
                f"  {row['window']}  mine {mine:>5}  district {row['district_p25']:.0f} / "
                f"{row['district_median']:.0f} / {row['district_p75']:.0f} (n={row['n_shops']})"
                f"  {row['position'] or ''}"
            )
    for alert in report["alerts"]:
        lines.append(f"hub alert: {json.dumps(alert, sort_keys=True)}")
    return "\n".join(lines)


def _delivery(conn: sqlite3.Connection) -> dict[int, tuple[int, int, int]]:
    """ledger id -> (delivered, pending, refused) outbox messages."""
    out: dict[int, tuple[int, int, int]] = {}
    for ledger_id, done, refused, total in conn.execute(
        "SELECT ledger_id, sum(delivered_wall_ns IS NOT NULL), sum(delivered_wall_ns IS NULL AND rejections > 0),"
        " count(*) FROM outbox GROUP BY ledger_id"
    ):
        out[int(ledger_id)] = (int(done), int(total) - int(done) - int(refused), int(refused))
    return out


def _delivery_words(counts: tuple[int, int, int] | None) -> str:
    if counts is None:  # delivered rows are pruned with old raw data; a redraw-stopping row may have no messages
        return "delivered (outbox rows since pruned)"
    done, pending, refused = counts
    if refused:
        return f"{refused} refused by the broker, retrying; {done} delivered"
    if pending:
        return f"{pending} pending, {done} delivered"
    return f"delivered ({done} message{'s' if done != 1 else ''})"


def ledger_rows(config: AgentConfig) -> list[dict[str, Any]]:
    """Every released (window, stream), oldest first, with the window in local time, the stream's epsilon, what
    one unit cost in that window over all streams, and the delivery state; then any windows lost (skipped)."""
    zone = LocalZone(config.owner_page.timezone if config.owner_page else "")
    store = _open(config)
    try:
        conn = store.conn()
        totals = window_totals(conn)
        delivery = _delivery(conn)
        units = {int(i): str(u) for i, u in conn.execute("SELECT ledger_id, unit FROM privacy_spend")}
        cursor = conn.execute(
            "SELECT id, window_start_ns, window_end_ns, stream, noisy_values, mechanism, parameters, epsilon,"
            " sampler_version, released_wall_ns, hash FROM release_ledger ORDER BY window_start_ns, id"
        )
        rows: list[dict[str, Any]] = []
        for row_id, start, end, stream, values, mechanism, params, eps, sampler, released, digest in cursor:
            unit = units.get(int(row_id), "")
            total = totals.get((int(start), unit))
            counts = delivery.get(int(row_id))
            rows.append(
                {
                    "id": row_id,
                    "window_start": iso_utc(start),
                    "window_end": iso_utc(end),
                    "window_local": zone.span(int(start), int(end)),
                    "zone": zone.name,
                    "stream": stream,
                    "values": json.loads(values),
                    "mechanism": mechanism,
                    "parameters": json.loads(params),
                    "epsilon": eps,
                    "unit": unit,
                    "epsilon_window_total": None if total is None else _fraction_text(total),
                    "delivery": _delivery_words(counts),
                    "delivered": counts is None or (counts[1] == 0 and counts[2] == 0),
                    "sampler": sampler,
                    "released": iso_utc(released),
                    "hash": digest,
                }
            )
        for from_ns, to_ns, windows in lost_windows(conn):
            rows.append(
                {
                    "state": "lost",
                    "window_start": iso_utc(from_ns),
                    "window_end": iso_utc(to_ns),
                    "window_local": zone.span(from_ns, to_ns),
                    "zone": zone.name,
                    "stream": None,
                    "windows": windows,
                    "delivery": "lost with the database and the journal; at or before the coop's watermark,"
                    " so never drawn again",
                }
            )
        return rows
    finally:
        store.close()


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def format_ledger(rows: list[dict[str, Any]]) -> str:
    """One block per window: its local time (zone named), what one unit cost in it over every stream, then each
    stream's epsilon, delivery state and values."""
    if not rows:
        return "nothing has been released yet"
    zone = rows[0]["zone"]
    lines = [
        f"windows in local time ({zone}); epsilon per unit: each stream's, and the window's total over all streams"
    ]
    current = None
    for row in rows:
        if row.get("state") == "lost":
            lines.append(
                f"{row['window_local']} ({row['window_start']} to {row['window_end']}): {row['windows']} window(s)"
                f" LOST: {row['delivery']}"
            )
            current = None
            continue
        if row["window_start"] != current:
            current = row["window_start"]
            total = f"epsilon {row['epsilon_window_total']} per {row['unit']}" if row["unit"] else "no spend recorded"
            lines.append(f"{row['window_local']} ({row['window_start']}): {total} in this window, all streams")
        if row["mechanism"] == "distributed_discrete_gaussian":  # a secure-aggregation contribution
            values = f"masked input to round {row['values'].get('round_id', '?')} (the hub sees only the sum)"
        else:
            values = "  ".join(
                f"{key}: " + " ".join(f"{f} {n}" for f, n in v.items()) for key, v in row["values"].items()
            )
        lines.append(f"  {row['stream']:<15} epsilon {row['epsilon']:<5} {row['delivery']:<28} {values}")
    return "\n".join(lines)


def round_sentences(config: AgentConfig) -> list[str]:
    """This shop's secure-aggregation rounds in words, newest first (empty when it never took part)."""
    store = _open(config)
    try:
        zone = LocalZone(config.owner_page.timezone if config.owner_page is not None else "")
        return [f"{r['text']} [{r['cost']}]" for r in contributions(store.conn(), zone)]
    finally:
        store.close()


def verify_ledger(config: AgentConfig) -> list[str]:
    """Problems in the ledger's hash chain, in the release journal, between the two, or between the database and
    the coop's watermark (as the agent last read it: `shopkeeper ledger verify` never connects as the store,
    since the broker ties the store's identity to one session and would drop the running agent's)."""
    store = _open(config)
    try:
        journal = ReleaseJournal(config.data_dir / JOURNAL_NAME)
        stored = store.get_state(WATERMARK_KEY)
        found = verify_chain(store.conn()) + watermark_problems(store.conn(), int(stored) if stored else None)
        try:
            return found + journal_problems(store, journal)
        except JournalError as exc:
            return [*found, str(exc)]
    finally:
        store.close()


def watermark_summary(config: AgentConfig) -> str:
    """One line on the coop's watermark for `ledger verify`."""
    store = _open(config)
    try:
        stored = store.get_state(WATERMARK_KEY)
        lost = sum(n for _a, _b, n in lost_windows(store.conn()))
    finally:
        store.close()
    if stored is None:
        return "coop watermark: none read yet (a fresh store, or the hub has stored nothing of it)"
    line = f"coop watermark: released through {iso_utc(int(stored))}"
    return line + (f"; {lost} window(s) at or before it were lost and skipped, never drawn again" if lost else "")
