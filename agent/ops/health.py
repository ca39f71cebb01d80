"""A loopback HTTP endpoint: /health (JSON) and /metrics (Prometheus text format 0.0.4)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from agent.privacy.reconcile import LOST_COUNTER
from agent.store import outbox, releases

if TYPE_CHECKING:
    from agent.ops.runtime import Agent

log = logging.getLogger(__name__)

Sample = tuple[str, dict[str, str], float]
LICENSING_REFUSED = "licensing_refused_"  # counters of agent/licensing/inbox.py
LICENSING_SHOWN_NS = 3600 * 1_000_000_000
HELP = {
    "shopkeeper_outbox_pending": ("gauge", "Summaries released but not yet acknowledged by the broker."),
    "shopkeeper_outbox_oldest_pending_age_seconds": ("gauge", "Age of the oldest undelivered summary."),
    "shopkeeper_outbox_rejected_total": ("counter", "PUBACKs with a failure reason code (refusals), by reason."),
    "shopkeeper_licensing_queries_refused_total": (
        "counter",
        "Licensing queries refused unanswered (forged, replayed, expired, malformed), by reason.",
    ),
    "shopkeeper_outbox_held_back": ("gauge", "Pending summaries held back because the broker refuses their topic."),
    "shopkeeper_raw_events": ("gauge", "Raw door events held in the local database."),
    "shopkeeper_db_used_bytes": ("gauge", "Bytes of the SQLite file holding data."),
    "shopkeeper_disk_bound_reached": ("gauge", "1 when the storage bound is reached and nothing more may be dropped."),
    "shopkeeper_dropped_total": ("counter", "Raw events dropped by retention, by reason."),
    "shopkeeper_events_accepted_total": ("counter", "Readings committed to SQLite by this process."),
    "shopkeeper_driver_connected": ("gauge", "1 while the driver talks to its device."),
    "shopkeeper_driver_reconnects_total": ("counter", "Reconnects after an unplug or error."),
    "shopkeeper_driver_bad_frames_total": ("counter", "Corrupt or truncated frames skipped."),
    "shopkeeper_driver_restarts_total": ("counter", "Restarts of a driver by the supervisor."),
    "shopkeeper_bad_frames_reported_total": ("counter", "Unusable frames or requests drivers reported, by reason."),
    "shopkeeper_readings_refused_total": ("counter", "Readings the store could not take, by driver and reason."),
    "shopkeeper_driver_problems_total": ("counter", "Problems drivers reported (logged, rate-limited)."),
    "shopkeeper_duplicate_baskets_total": ("counter", "POS baskets refused as already recorded (same source id)."),
    "shopkeeper_windows_released_total": ("counter", "Windows released, by stream."),
    "shopkeeper_windows_lost_total": (
        "counter",
        "Windows at or before the coop's watermark that the database and the journal had lost: skipped, never drawn.",
    ),
    "shopkeeper_epsilon_last_window": (
        "gauge",
        "Epsilon one privacy unit cost in the newest released window, over all its streams (per window, not summed"
        " over windows: windows compose in parallel, docs/privacy.md).",
    ),
    "shopkeeper_epsilon_budget_per_window": ("gauge", "The most one unit may cost in any window (the accountant)."),
    "shopkeeper_forecast_fit_failures_total": (
        "counter",
        "Daily forecast fits that failed (the reason is in /health).",
    ),
    "shopkeeper_mqtt_connected": ("gauge", "1 while connected to the coop broker."),
    "shopkeeper_mqtt_connections_total": ("counter", "Successful broker connections (CONNACKs), persisted."),
    "shopkeeper_clock_synced": ("gauge", "1 when wall time is trusted and windows may be released."),
    "shopkeeper_jit_resident": (
        "gauge",
        "1 when numba or llvmlite is loaded in the agent process (it belongs in the worker).",
    ),
    "shopkeeper_kernel_worker_starts_total": ("counter", "Kernel worker processes started (one per release tick)."),
    "shopkeeper_kernel_worker_failures_total": ("counter", "Kernel worker deaths, hangs and failed requests."),
}
LOST_LOUD_NS = 86_400 * 1_000_000_000  # a loss of windows degrades /health for a day


def collect(agent: Agent) -> list[Sample]:
    """Every metric's current samples, read from SQLite and the running parts."""
    conn = agent.store.conn()
    pending, oldest = outbox.pending(conn)
    now = agent.clock.wall_ns()
    counters = agent.store.counters()
    ingest = agent.ingest.stats()
    samples: list[Sample] = [
        ("shopkeeper_outbox_pending", {}, pending),
        ("shopkeeper_outbox_oldest_pending_age_seconds", {}, max(0, now - oldest) / 1e9 if oldest else 0),
        ("shopkeeper_outbox_held_back", {}, sum(r.held_back for r in outbox.rejections(conn))),
        ("shopkeeper_raw_events", {}, conn.execute("SELECT count(*) FROM events").fetchone()[0]),
        ("shopkeeper_db_used_bytes", {}, agent.store.used_bytes()),
        ("shopkeeper_disk_bound_reached", {}, int(agent.store.get_state("disk_bound_reached", "0") or 0)),
        ("shopkeeper_events_accepted_total", {}, ingest["accepted"]),
        ("shopkeeper_duplicate_baskets_total", {}, ingest["duplicate_baskets"]),
        ("shopkeeper_mqtt_connected", {}, int(agent.publisher.connected)),
        ("shopkeeper_mqtt_connections_total", {}, int(agent.store.get_state("mqtt_connections", "0") or 0)),
        ("shopkeeper_clock_synced", {}, int(agent.clock.synced())),
        ("shopkeeper_windows_lost_total", {}, counters.get(LOST_COUNTER, 0)),
        ("shopkeeper_jit_resident", {}, int(kernel_state(agent)["jit_loaded_here"])),
        ("shopkeeper_kernel_worker_starts_total", {}, kernel_state(agent)["worker_starts"]),
        ("shopkeeper_kernel_worker_failures_total", {}, kernel_state(agent)["worker_failures"]),
    ]
    for reason in ("age", "size"):
        samples.append(("shopkeeper_dropped_total", {"reason": reason}, counters.get(f"dropped_raw_{reason}", 0)))
    # The sink's own counts: every driver reports through it, whatever its health() keeps.
    for key, n in sorted(ingest["bad_frames"].items()):
        driver, _, reason = key.partition(":")  # driver names never contain ":" (config_reader.NAME_RE)
        samples.append(("shopkeeper_bad_frames_reported_total", {"driver": driver, "reason": reason}, n))
    for key, n in sorted(ingest["refused"].items()):
        driver, _, reason = key.partition(":")
        samples.append(("shopkeeper_readings_refused_total", {"driver": driver, "reason": reason[:60]}, n))
    for driver, n in sorted(ingest["problems"].items()):
        samples.append(("shopkeeper_driver_problems_total", {"driver": driver}, n))
    for name, value in sorted(counters.items()):
        if name.startswith(outbox.REJECTED_COUNTER):
            reason = name.removeprefix(outbox.REJECTED_COUNTER)
            samples.append(("shopkeeper_outbox_rejected_total", {"reason": reason}, value))
        if name.startswith(LICENSING_REFUSED):
            samples.append(
                ("shopkeeper_licensing_queries_refused_total", {"reason": name[len(LICENSING_REFUSED) :]}, value)
            )
    for name, health in agent.supervisor.health().items():
        labels = {"driver": name}
        samples += [
            ("shopkeeper_driver_connected", labels, int(bool(health.get("connected")))),
            ("shopkeeper_driver_reconnects_total", labels, health.get("reconnects", 0)),
            ("shopkeeper_driver_bad_frames_total", labels, health.get("bad_frames", 0)),
            ("shopkeeper_driver_restarts_total", labels, health.get("restarts", 0)),
        ]
    for stream, windows in releases.windows_per_stream(conn):
        samples.append(("shopkeeper_windows_released_total", {"stream": stream}, windows))
    for unit, epsilons in releases.last_window_spends(conn).items():
        spent = sum((Fraction(e) for e in epsilons if e), Fraction(0))
        samples.append(("shopkeeper_epsilon_last_window", {"unit": unit.replace(" ", "_")}, float(spent)))
    samples.append(("shopkeeper_epsilon_budget_per_window", {}, float(agent.config.budget.epsilon)))
    samples.append(("shopkeeper_forecast_fit_failures_total", {}, counters.get("forecast_fit_failures", 0)))
    return samples


def render_prometheus(samples: list[Sample]) -> str:
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in samples:
        if name not in seen:
            kind, text = HELP[name]
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            seen.add(name)
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return "\n".join(lines) + "\n"


def health_report(agent: Agent) -> dict[str, Any]:
    """ok, or degraded with the reasons an operator should look at.

    What the running parts know comes first, so a full or damaged disk (where even reading the
    database can fail) still yields every other reason, plus the database's own.
    """
    reasons = []
    if not agent.publisher.connected:
        reasons.append("not connected to the coop broker")
    if agent.home_assistant is not None and not agent.home_assistant.connected:
        reasons.append(f"not connected to the shop's Home Assistant broker {agent.home_assistant.where}")
    if not agent.clock.synced():
        reasons.append("clock not synchronised: windows are held")
    if getattr(agent, "release_error", None):
        reasons.append(f"window release failing (retried every tick): {agent.release_error}")
    store_error = agent.ingest.stats()["store_error"]
    if store_error:
        reasons.append(f"readings are not being stored: {store_error}")
    for name, health in agent.supervisor.health().items():
        if not health.get("running", True):
            reasons.append(f"driver {name} stopped")
        elif not health.get("connected", True):
            reasons.append(f"driver {name} not connected")
        elif health.get("degraded"):  # a driver's own reason, e.g. a webhook's upstream refusing its token
            reasons.append(f"driver {name}: {health['degraded']}")
    refused: list[outbox.Rejection] = []
    watermark: dict[str, Any] | None = None
    try:
        # Inside the try: on a full or damaged disk even these reads fail, and every other reason must still show.
        watermark = agent.watermark.describe() if getattr(agent, "watermark", None) is not None else None
        if watermark is not None and watermark["state"] in ("waiting", "unreadable"):
            reasons.append(f"coop watermark {watermark['detail']}")
        lost = agent.store.counters().get(LOST_COUNTER, 0)
        if watermark is not None:
            watermark["lost_windows"] = lost
        newest_loss = agent.store.conn().execute("SELECT max(recorded_wall_ns) FROM lost_windows").fetchone()[0]
        # Loud for a day after it happened (an operator should look), then kept in `watermark` and the ledger:
        # a past loss must not keep /health failing for ever.
        if lost and newest_loss is not None and time.time_ns() - int(newest_loss) < LOST_LOUD_NS:
            reasons.append(
                f"{lost} window(s) at or before the coop's watermark were lost with the database and the release"
                " journal and skipped, never drawn again (see `shopkeeper ledger`)"
            )
        if agent.store.get_state("disk_bound_reached", "0") == "1":
            reasons.append("storage bound reached")
        forecast_error = agent.store.get_state("forecast_error")
        if forecast_error:
            reasons.append(f"forecast not refreshed: {forecast_error}")
        refused = outbox.rejections(agent.store.conn())
    except sqlite3.Error as exc:
        reasons.append(f"the database cannot be read: {exc}")
    now_ns = time.time_ns()  # the outbox records refusals in real time
    try:
        last = agent.store.get_state("licensing_last_refusal")
    except sqlite3.Error:
        last = None
    if last is not None:
        refusal = json.loads(last)
        # Shown for an hour of the agent's clock after the newest one: a forged or replayed query is an event.
        if agent.clock.wall_ns() - int(refusal["wall_ns"]) < LICENSING_SHOWN_NS:
            reasons.append(f"refused a licensing query ({refusal['reason']}): {refusal['detail']}")
    for r in refused:
        reasons.append(
            f"broker refuses {r.topic}: {r.reason} (PUBACK reason code 0x{r.code:02x}); {r.held_back} summaries"
            f" held back for {max(0, now_ns - r.since_wall_ns) // 1_000_000_000} s, retrying with backoff"
        )
    return {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "drivers": agent.supervisor.health(),
        "outbox_refused": [dataclasses.asdict(r) for r in refused],
        **({"watermark": watermark} if watermark is not None else {}),
    }


def kernel_state(agent: Agent) -> dict[str, Any]:
    """Whether this (resident) process holds the JIT, and the kernel worker's record; numba belongs in the worker."""
    kernels = getattr(getattr(agent, "releaser", None), "kernels", None)
    return {
        "jit_loaded_here": any(m in sys.modules for m in ("numba", "llvmlite")),
        "worker_pid": getattr(kernels, "pid", None),
        "worker_starts": getattr(kernels, "starts", 0),
        "worker_failures": getattr(kernels, "failures", 0),
    }


class HealthServer:
    """Serves /health and /metrics on a loopback address in a background thread."""

    def __init__(self, agent: Agent, host: str, port: int) -> None:
        self.agent = agent
        handler = _handler_for(lambda: agent)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler_for(get_agent: Callable[[], Agent]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            agent = get_agent()
            try:
                if self.path == "/metrics":
                    body, kind, code = render_prometheus(collect(agent)).encode(), "text/plain; version=0.0.4", 200
                elif self.path == "/health":
                    report = health_report(agent)
                    body, kind = json.dumps(report, sort_keys=True).encode(), "application/json"
                    code = 200 if report["status"] == "ok" else 503
                else:
                    body, kind, code = b"not found: try /health or /metrics\n", "text/plain", 404
            except sqlite3.Error as exc:  # a full or damaged disk is a health answer, not a crash
                report = {"status": "degraded", "reasons": [f"the database cannot be read: {exc}"]}
                body, kind, code = json.dumps(report).encode(), "application/json", 503
            except Exception as exc:  # a metrics bug must never take the agent down
                log.exception("health endpoint failed")
                body, kind, code = f"error: {exc}\n".encode(), "text/plain", 500
            finally:
                agent.store.release_thread_connection()  # one thread per request: close its connection
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health http: " + format, *args)

    return Handler
