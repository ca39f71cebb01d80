"""Start the real agent and the real simulator as separate processes, sharing one accelerated clock."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.clock import NS_PER_S, AcceleratedClock
from agent.demo import DAY_START, simulator_command, write_demo_config

DOORS = ("front", "back")


class Shop:
    """One shop: config, simulator and agent processes, all under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        broker_port: int,
        factor: float = 1440.0,
        hours: int = 24,
        seed: int = 7,
        lead_s: int = 1800,
        start: dt.datetime = DAY_START,
        sim_extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        (workdir / "dev").mkdir(parents=True, exist_ok=True)
        self.links = {door: workdir / "dev" / f"terabee-{door}" for door in DOORS}
        self.config_path = write_demo_config(workdir, broker_port, self.links)
        self.db_path = workdir / "data" / "shopkeeper.db"
        self.truth_path = workdir / "truth.json"
        self.hours, self.seed, self.sim_extra = hours, seed, sim_extra
        # The clock starts `lead_s` simulated seconds before the day so the agent is up before the first event.
        self.start = start
        origin = int(start.timestamp()) * NS_PER_S - lead_s * NS_PER_S
        self.clock = AcceleratedClock.starting_now(origin, factor)
        self.env = {**os.environ, **self.clock.env()}
        self.agent: subprocess.Popen[bytes] | None = None
        self.sim: subprocess.Popen[bytes] | None = None
        self.day_end_ns = int(start.timestamp()) * NS_PER_S + hours * 3600 * NS_PER_S

    def start_sim(self) -> None:
        cmd = simulator_command(self.links, self.start, self.hours, self.seed, self.truth_path, self.clock.factor)
        self.sim = subprocess.Popen([*cmd, *self.sim_extra], env=self.env, stdout=subprocess.DEVNULL)

    def start_agent(self) -> None:
        log = open(self.workdir / "agent.log", "ab")  # noqa: SIM115 - owned by the process
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", str(self.config_path)], env=self.env, stdout=log, stderr=log
        )

    def kill_agent(self, sig: int = signal.SIGKILL) -> None:
        assert self.agent is not None
        self.agent.send_signal(sig)
        self.agent.wait(30)

    def stop(self) -> None:
        for proc in (self.agent, self.sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def wait_sim(self, timeout: float) -> dict[str, Any]:
        assert self.sim is not None
        self.sim.wait(timeout)
        return json.loads(self.truth_path.read_text())

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Read the agent's SQLite file the way an operator would (read-only)."""
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def scalar(self, sql: str, *args: object) -> Any:
        """The first column of the first row, or 0 while the database or table does not exist yet."""
        rows = self.query(sql, *args)
        return rows[0][0] if rows and rows[0][0] is not None else 0

    def agent_log(self) -> str:
        path = self.workdir / "agent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def agent_log_full(self) -> str:
        """Everything every agent process of this shop has logged (the file is appended to)."""
        path = self.workdir / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{on_fail()}")


def iso_hour(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lan_address() -> str | None:
    """This machine's own non-loopback address (what a phone on the shop's network would connect to)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in out if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith("127.")), None)
