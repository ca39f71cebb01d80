"""The resident agent's side of forecasting: start the daily fit as its own process, and record the outcome.

The fit (agent/forecast/fit.py) imports numpy and fits for seconds; in its own process, none of that stays
in the agent's resident memory (the footprint goal) and a crash there cannot take the agent down. This
module imports nothing heavy. A failure is one log line, a counter (`forecast_fit_failures`), and a
reason in /health and `status` until the next run succeeds; the previous forecast stays shown meanwhile.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.store import Store

log = logging.getLogger(__name__)
TIMEOUT_S = 900.0
ERROR_STATE = "forecast_error"
FAILURES = "forecast_fit_failures"


@dataclass(frozen=True)
class FitOutcome:
    ok: bool
    detail: str  # the fit's JSON summary, or why it failed


def fit_command(db_path: Path, zone: str, now_ns: int) -> list[str]:
    return [sys.executable, "-m", "agent.forecast.fit", "--db", str(db_path), "--zone", zone, "--now-ns", str(now_ns)]


def run_fit(store: Store, db_path: Path, zone: str, now_ns: int, timeout_s: float = TIMEOUT_S) -> FitOutcome:
    """Run one fit in a child process and record how it went in the store's state."""
    try:
        proc = subprocess.run(
            fit_command(db_path, zone, now_ns), capture_output=True, text=True, timeout=timeout_s, check=False
        )
        lines = (proc.stderr or "").strip().splitlines()
        reason = lines[-1][:300] if lines else f"exit code {proc.returncode}"
        outcome = FitOutcome(True, proc.stdout.strip()) if proc.returncode == 0 else FitOutcome(False, reason)
    except subprocess.TimeoutExpired:
        outcome = FitOutcome(False, f"forecast fit took longer than {timeout_s:.0f} s and was stopped")
    except OSError as exc:
        outcome = FitOutcome(False, f"forecast fit could not start: {exc}")
    with store.transaction() as conn:
        if outcome.ok:
            conn.execute("DELETE FROM agent_state WHERE key = ?", (ERROR_STATE,))
        else:
            Store.set_state(conn, ERROR_STATE, outcome.detail)
            Store.bump_counter(conn, FAILURES)
    if outcome.ok:
        log.info("forecast refreshed: %s", outcome.detail)
    else:
        log.error("%s; the previous forecast stays shown", outcome.detail)
    return outcome


DAY_STATE = "forecast_day"  # the local day the last fit was for
ATTEMPT_STATE = "forecast_attempt_wall_ns"
RETRY_NS = 3600 * 10**9


def daily(store: Store, db_path: Path, zone: str, now_ns: int) -> FitOutcome | None:
    """Fit once per local day (and, after a failure, again at most hourly); None when nothing was due."""
    from agent.owner.localtime import LocalZone

    today = LocalZone(zone).at(now_ns).date().isoformat()
    if store.get_state(DAY_STATE) == today:
        return None
    attempt = int(store.get_state(ATTEMPT_STATE, "0") or 0)
    if attempt and 0 <= now_ns - attempt < RETRY_NS:
        return None
    with store.transaction() as conn:
        Store.set_state(conn, ATTEMPT_STATE, str(now_ns))
    outcome = run_fit(store, db_path, zone, now_ns)
    if outcome.ok:
        with store.transaction() as conn:
            Store.set_state(conn, DAY_STATE, today)
    return outcome


def summary(detail: str) -> dict[str, object]:
    """The fit's JSON summary line as a dict ({} when it is not one)."""
    try:
        value = json.loads(detail)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
