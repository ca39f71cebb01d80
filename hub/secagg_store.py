"""SQL of the hub's secure-aggregation rounds and released district totals (hub migration 0110), and the
coop's roster file. SQLite and PostgreSQL alike (hub/db.py)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from agent.contract import NAME_RE
from agent.coop.secagg.messages import Member, Roster
from agent.coop.secagg.transport import Cell, parse_cell
from hub.db import Connection
from hub.errors import HubConfigError


def load_roster(path: Path, coop: str) -> Roster:
    """The enrolled identity keys; HubConfigError naming the file and the entry that is wrong."""
    where = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubConfigError(where, "(file)", f"cannot be read as JSON ({exc})", "write the roster file") from None
    if not isinstance(doc, dict) or doc.get("coop") != coop or not isinstance(doc.get("members"), dict):
        raise HubConfigError(where, "coop", f'is not {{"coop": "{coop}", "members": {{...}}}}', "fix the roster")
    members = []
    for shop, key in sorted(doc["members"].items()):
        try:
            public = base64.b64decode(str(key), validate=True)
        except binascii.Error:
            public = b""
        if not NAME_RE.match(shop) or len(public) != 32:
            raise HubConfigError(
                where, f"members.{shop[:40]}", "is not a store id with a base64 Ed25519 key", "re-enrol"
            )
        members.append(Member(shop, public))
    if len(members) < 2:
        raise HubConfigError(where, "members", "needs at least two shops", "enrol more shops")
    return Roster(coop, tuple(members))


@dataclass(frozen=True)
class PlannedRound:
    round_id: str
    stream: str
    cells: tuple[str, ...]
    threshold: int
    value_bound: int
    sensitivity: int
    rho: Fraction
    colluders: int
    neighbours: int
    participants: tuple[str, ...] = ()  # the shops asked; empty: every enrolled shop


def window_cells(
    stream: str, key: str, fields: tuple[str, ...], first_start_s: int, window_s: int, count: int
) -> tuple[str, ...]:
    """The cells of `count` consecutive windows of one key of one stream (every field of each window)."""
    return tuple(
        Cell(stream, key, f, first_start_s + i * window_s, window_s).name for i in range(count) for f in fields
    )


def plan_round(conn: Connection, planned: PlannedRound) -> None:
    """Queue a round for the coordinator (the operator's `shopkeeper hub secagg-plan`, or a test)."""
    for cell in planned.cells:
        if parse_cell(cell).stream != planned.stream:
            raise ValueError(f"cell {cell[:80]} is not of stream {planned.stream}")
    conn.execute(
        "INSERT INTO secagg_rounds (round_id, stream, cells, threshold, value_bound, sensitivity, rho, colluders,"
        " neighbours, participant_list, status, reason, planned_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', '', ?)",
        (
            planned.round_id,
            planned.stream,
            json.dumps(list(planned.cells)),
            planned.threshold,
            planned.value_bound,
            planned.sensitivity,
            str(planned.rho),
            planned.colluders,
            planned.neighbours,
            json.dumps(list(planned.participants)) if planned.participants else None,
            time.time(),
        ),
    )


def next_planned(conn: Connection) -> PlannedRound | None:
    """The oldest round still waiting to run."""
    rows = conn.query(
        f"SELECT {_COLUMNS} FROM secagg_rounds WHERE status = 'planned' ORDER BY planned_at, round_id LIMIT 1"
    )
    return _planned(rows[0]) if rows else None


def unfinished(conn: Connection) -> list[PlannedRound]:
    """Rounds that were running when the hub stopped (neither planned nor ended)."""
    rows = conn.query(
        f"SELECT {_COLUMNS} FROM secagg_rounds"
        " WHERE status NOT IN ('planned', 'released', 'aborted', 'refused') ORDER BY planned_at"
    )
    return [_planned(r) for r in rows]


_COLUMNS = "round_id, stream, cells, threshold, value_bound, sensitivity, rho, colluders, neighbours, participant_list"


def _planned(row: tuple[Any, ...]) -> PlannedRound:
    rid, stream, cells, t, bound, sens, rho, colluders, neighbours, participants = row
    return PlannedRound(
        str(rid), str(stream), tuple(json.loads(cells)), int(t), int(bound), int(sens), Fraction(str(rho)),
        int(colluders), int(neighbours), tuple(json.loads(participants)) if participants else (),
    )  # fmt: skip


def set_status(conn: Connection, round_id: str, status: str, participants: int | None = None) -> None:
    conn.execute(
        "UPDATE secagg_rounds SET status = ?, participants = COALESCE(?, participants) WHERE round_id = ?",
        (status, participants, round_id),
    )


def finish(conn: Connection, round_id: str, status: str, reason: str, shops: int | None) -> None:
    conn.execute(
        "UPDATE secagg_rounds SET status = ?, reason = ?, shops = ?, finished_at = ? WHERE round_id = ?",
        (status, reason[:500], shops, time.time(), round_id),
    )


def store_totals(
    conn: Connection, round_id: str, cells: tuple[str, ...], totals: list[int], noise_variance: float, shops: int
) -> None:
    """One row per cell of a released round, in the round's own transaction with its status."""
    rows = []
    for text, total in zip(cells, totals, strict=True):
        cell = parse_cell(text)
        rows.append(
            (
                round_id,
                cell.stream,
                cell.key,
                cell.field,
                cell.window_start_s * 1_000_000_000,
                cell.window_s * 1_000_000_000,
                int(total),
                float(noise_variance),
                shops,
            )
        )
    conn.executemany(
        "INSERT INTO secagg_district_totals (round_id, stream, key, field, window_start_ns, window_ns, total,"
        " noise_variance, shops) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def district_totals(conn: Connection, stream: str, limit: int = 200) -> list[tuple[int, str, int, float, int]]:
    """(window start ns, field, total, noise variance, shops), newest windows first, for the dashboard."""
    return [
        (int(s), str(f), int(t), float(v), int(n))
        for s, f, t, v, n in conn.query(
            "SELECT window_start_ns, field, total, noise_variance, shops FROM secagg_district_totals"
            " WHERE stream = ? ORDER BY window_start_ns DESC, field LIMIT ?",
            (stream, limit),
        )
    ]
