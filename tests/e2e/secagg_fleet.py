"""A coop of real agent processes enrolled for secure aggregation: identity keys made on each shop's box,
the roster the hub loads, each agent's [secagg] section pinning the roster's digest, and the hub's [secagg]
section. Each shop runs its Terabee simulators and agent as processes (launch_shop), on one accelerated
clock, over the coop broker (TLS, ACL) of tests/e2e/coop_broker.py."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

from agent.clock import AcceleratedClock
from agent.coop import identity
from agent.coop.secagg.messages import Member, Roster
from agent.demo import write_demo_config
from tests.e2e.coop_broker import CoopBroker
from tests.hub.test_hub_window_lengths_end_to_end import launch_shop


def enrol(root: Path, shops: list[str], coop: str = "riverside") -> tuple[Roster, Path]:
    """Each shop's identity key (created in its data dir, as `shopkeeper` does) and the roster file."""
    members = {}
    for shop in shops:
        key = identity.load_or_create(root / shop / "data" / "secagg-identity.key")
        members[shop] = identity.public_text(key)
    path = root / "roster.json"
    path.write_text(json.dumps({"coop": coop, "members": members}))
    roster = Roster(coop, tuple(Member(s, base64.b64decode(k)) for s, k in sorted(members.items())))
    return roster, path


def start_agent(
    root: Path,
    shop: str,
    broker: CoopBroker,
    clock: AcceleratedClock,
    seed: int,
    roster: Roster,
    window_s: int,
    windows: int,
) -> dict[str, Any]:
    """One shop's simulators and agent, its config carrying TLS, a rho budget and the [secagg] section."""
    workdir = root / shop
    (workdir / "dev").mkdir(parents=True, exist_ok=True)
    links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
    config = write_demo_config(workdir, broker.port, links, window=f"{window_s}s", grace="5s")
    tls = "".join(f'{key} = "{value}"\n' for key, value in broker.tls(shop).items())
    text = config.read_text().replace('store = "demo-store"', f'store = "{shop}"')
    text = text.replace(f'host = "127.0.0.1"\nport = {broker.port}\n', f"port = {broker.port}\n{tls}")
    # The local releases cost (0.5 + 0.5)^2 / 2 of rho per door event and window: a budget of 1 leaves room.
    text = text.replace("budget_epsilon_per_window = 1\n", "budget_epsilon_per_window = 1\nbudget_rho_per_window = 1\n")
    text += (
        f'\n[secagg]\nroster_digest = "{roster.digest().hex()}"\nmax_rho_per_round = "1/8"\n'
        'streams = ["footfall_store"]\n'
    )
    config.write_text(text)
    return launch_shop(workdir, shop, config, links, clock, seed, windows * window_s / 3600)


def hub_secagg_section(roster_path: Path, step_timeout_s: float) -> str:
    return f'\n[secagg]\nroster = "{roster_path}"\nstep_timeout_s = {step_timeout_s}\npoll_s = 0.1\n'


def agent_round(db: Path, round_id: str) -> dict[str, Any] | None:
    """The agent's own record of one round (read-only, as an operator would)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return None
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM secagg_rounds WHERE round_id = ?", (round_id,)).fetchone()
        return None if row is None else dict(row)
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def agent_rows(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
