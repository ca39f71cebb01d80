"""`shopkeeper demo`: a simulated shop day, end to end, on this machine.

A private Mosquitto on a loopback port, the Terabee simulator on two pseudo-terminals, the agent on
an accelerated clock, and a watcher that prints every summary as it arrives. It stops by itself and
says where the SQLite file is and what was published.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import NS_PER_S, AcceleratedClock
from agent.config import load_config
from agent.demo.local_broker import LocalBroker

DAY_START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # a Monday
DOORS = ("front", "back")


# The demo's broker is on loopback: up, it answers the watermark subscription in milliseconds; down, the
# agent should not hold its (accelerated) windows for the production default of a minute.
WATERMARK_WAIT_S = 3


def write_demo_config(
    workdir: Path, broker_port: int, links: dict[str, Path], window: str = "1h", grace: str = "2m"
) -> Path:
    """The agent configuration the demo (and the end-to-end tests) run with."""
    drivers = "".join(
        f'\n[drivers.{door}_door]\nkind = "terabee"\nport = "{link}"\ndoor = "{door}"\n' for door, link in links.items()
    )
    path = workdir / "agent.toml"
    path.write_text(
        f'[agent]\ncoop = "riverside"\nstore = "demo-store"\ndoors = {json.dumps(list(links))}\n'
        f'data_dir = "{workdir / "data"}"\n\n'
        f'[windows]\nlength = "{window}"\ngrace = "{grace}"\n\n[clock]\nsync_source = "always"\n\n'
        f"[privacy]\nbudget_epsilon_per_window = 1\n\n[privacy.footfall_door]\nepsilon = 0.5\n\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nwatermark_wait_s = {WATERMARK_WAIT_S}\n'
        '\n[health]\nlisten = "127.0.0.1:0"\n'
        f'\n[owner_page]\nlisten = "127.0.0.1:0"\n{drivers}'
    )
    return path


def simulator_command(
    links: dict[str, Path], start: dt.datetime, hours: int, seed: int, truth: Path, factor: float
) -> list[str]:
    doors = [arg for door, link in links.items() for arg in ("--door", f"{door}={link}")]
    return [
        sys.executable,
        "-m",
        "firmware_sim",
        "terabee",
        *doors,
        "--seed",
        str(seed),
        "--start",
        start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--hours",
        str(hours),
        "--factor",
        repr(factor),
        "--truth",
        str(truth),
    ]


class Watcher:
    """A plain MQTT subscriber on the coop's topics that prints each summary as it arrives."""

    def __init__(self, port: int, quiet: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.quiet = quiet
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-watcher")
        self.client.on_connect = lambda c, *_: c.subscribe("coop/v1/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        with self._lock:
            self.messages.append({"topic": message.topic, **payload})
        if self.quiet:
            return
        if "values" in payload:
            v = payload["values"]
            print(
                f"  {message.topic}  {payload['window']['start']}  {payload.get('door', 'all'):<6}"
                f" in {v['entries']:>4}  out {v['exits']:>4}  (epsilon {payload['privacy']['epsilon']},"
                f" seq {payload['seq']})",
                flush=True,
            )
        else:
            print(f"  {message.topic}  {json.dumps(payload, sort_keys=True)}", flush=True)

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if "values" in m]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_demo(directory: str, factor: float = 1440.0, hours: int = 24, seed: int = 42) -> int:
    """Run the demo; returns 0 when every window of the day was published."""
    from agent.ops.runtime import Agent  # imported here so numba loads before the clock starts

    workdir = Path(directory).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "dev").mkdir(parents=True)
    links = {door: workdir / "dev" / f"terabee-{door}" for door in DOORS}
    truth_path = workdir / "ground-truth.json"
    end_ns = int(DAY_START.timestamp()) * NS_PER_S + hours * 3600 * NS_PER_S
    print(f"shopkeeper demo: a simulated day at x{factor:g} (about {hours * 3600 / factor:.0f} s) in {workdir}")
    with LocalBroker(workdir / "broker") as broker:
        print(f"mosquitto on 127.0.0.1:{broker.port}; try: mosquitto_sub -p {broker.port} -t 'coop/#' -v")
        config = load_config(write_demo_config(workdir, broker.port, links))
        watcher = Watcher(broker.port)
        clock = AcceleratedClock.starting_now(int(DAY_START.timestamp()) * NS_PER_S, factor)
        sim = subprocess.Popen(
            simulator_command(links, DAY_START, hours, seed, truth_path, factor), env={**os.environ, **clock.env()}
        )
        agent = Agent(config, clock)
        agent.start()
        if agent.owner_page is not None:
            print(f"your own page (exact figures, and what left the shop): http://127.0.0.1:{agent.owner_page.port}/")
        deadline = time.monotonic() + hours * 3600 / factor + 90
        try:
            while time.monotonic() < deadline:
                if agent.releaser.next_window_start() >= end_ns and agent.publisher.pending() == 0:
                    break
                time.sleep(0.2)
        finally:
            agent.stop()
            sim.wait(timeout=60)
            time.sleep(0.5)
            watcher.stop()
    return _report(workdir, config.db_path, watcher.summaries(), truth_path, hours)


def _report(workdir: Path, db_path: Path, summaries: list[dict[str, Any]], truth_path: Path, hours: int) -> int:
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else {"doors": {}}
    print(f"\npublished {len(summaries)} summaries; the raw data stayed in {db_path}")
    print(f"{'hour (UTC)':<21} {'door':<6} {'published in/out':>17} {'true in/out':>12}")
    for msg in sorted(summaries, key=lambda m: (m["window"]["start"], m.get("door", "~all"))):
        key, hour = msg.get("door", "all"), msg["window"]["start"]
        doors = DOORS if key == "all" else (key,)
        true = {f: sum(truth["doors"].get(d, {}).get(hour, {}).get(f, 0) for d in doors) for f in ("entries", "exits")}
        print(
            f"{hour:<21} {key:<6} {msg['values']['entries']:>8}/{msg['values']['exits']:<8}"
            f" {true['entries']:>5}/{true['exits']:<5}"
        )
    print(
        f"\nground truth: {truth_path}\nSQLite: {db_path}\ninspect: shopkeeper status {workdir / 'agent.toml'};"
        f" shopkeeper ledger {workdir / 'agent.toml'}"
    )
    expected = hours * (len(DOORS) + 1)  # each door, plus the store total
    if len(summaries) < expected:
        print(f"demo incomplete: {len(summaries)} of {expected} summaries arrived", file=sys.stderr)
        return 1
    return 0
