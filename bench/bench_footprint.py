"""The agent's footprint: resident memory (steady and peak during a release), start time, release time.

Usage: .venv/bin/python bench/bench_footprint.py [--seconds 64] [--config demo|thermal|secagg]

The numba cache is warmed first (one kernel worker session runs every release kernel), so no figure
includes a compile. The demo configuration's agent then runs on an accelerated clock (x240: an hour
window closes every 15 s, so each release starts its own kernel worker, as on a real clock) with the
live simulator; every 10 ms the resident process's RSS and its
kernel worker's high-water mark are sampled. Figures, each with a same-run baseline:
- agent.rss_mb: resident RSS, the largest sample of the last third of the run (after several releases);
  baselines: a bare Python importing numpy, and the resident imports plus the numba kernels loaded
  (what the resident process held before the kernel worker);
- agent.rss_peak_mb: the largest resident RSS + worker high-water mark seen during a release;
- agent.start_s: process start to /health answering; baseline: `python -c "import numpy"` to exit;
- agent.release_s: median over the run of the agent's own "released window ... in N s" (the release
  tick starting the window to its outbox rows committed, the kernel worker's start included);
  baseline: the same release in this process with the kernels in process (numba already loaded).
`--config thermal` puts the back door under a GY-MCU90640 (its simulator on a pty, 4 frames a second in real
time, people walking) and `--config secagg` adds a [secagg] section (identity key, pinned roster; no hub,
so no round runs): the figures are then `agent.thermal.*` / `agent.secagg.*`, with the same-run baseline
`rss_jit_counter_mb` / `rss_jit_share_mb`: the resident imports plus what that configuration loaded before
issue 20 (the numba thermal counter fed a frame; the discrete Gaussian warmed for a round's share).
Prints ONE flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.clock import NS_PER_S, AcceleratedClock
from agent.config import load_config
from agent.demo import DAY_START, simulator_command, write_demo_config
from agent.demo.local_broker import LocalBroker
from agent.kernels.worker_process import InProcessKernels, Kernels, KernelWorker
from agent.pipeline.release import WindowReleaser
from agent.store import Store

CONFIGS = ("demo", "thermal", "secagg")
# What each configuration held in the resident process before issue 20 (the same-run baseline).
JIT_PROBES = {
    "thermal": "import drivers.thermal90640.driver\nfrom agent.kernels.thermal import ThermalCounter\n"
    "ThermalCounter(rate_hz=4.0).feed(np.zeros((24, 32), dtype=np.int16))\n",
    "secagg": "import agent.coop.round_participant\nfrom agent.privacy.sampler import discrete_gaussian\n"
    "discrete_gaussian(1, 1, 1)\n",
}
FACTOR = 240.0  # an hour window closes every 15 s: above KEEP_WORKER_BELOW_S, so a worker per release
RELEASED = re.compile(r"released window \S+ \(.*\) in (\d+\.\d+) s")


def status_mb(pid: int, key: str) -> float:
    """VmRSS or VmHWM of a process in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []


class Sampler(threading.Thread):
    """Every 10 ms: (monotonic s, resident RSS, resident RSS + every child's high-water mark)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples = pid, []  # type: ignore[var-annotated]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            resident = status_mb(self.pid, "VmRSS")
            workers = sum(status_mb(c, "VmHWM") for c in children(self.pid))
            self.samples.append((time.monotonic(), resident, resident + workers, workers > 0))


def warm_numba_cache() -> None:
    worker = KernelWorker()
    with worker.session():
        z = np.zeros(4, dtype=np.int64)
        worker.count_footfall(z, z, z, z, 1, 2)
        worker.discrete_laplace(2, 1, 4)
        worker.discrete_gaussian(8, 1, 4)


def health_answers(log: Path) -> bool:
    match = re.search(r"health and metrics on (http://\S+)/health", log.read_text(errors="replace"))
    if not match:
        return False
    try:
        with urllib.request.urlopen(match.group(1) + "/health", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 503 "degraded" is an answer: the agent is up
    except OSError:
        return False


def metric(log: Path, name: str) -> float:
    """One unlabelled sample of the agent's /metrics."""
    match = re.search(r"health and metrics on (http://\S+)/health", log.read_text(errors="replace"))
    assert match is not None
    with urllib.request.urlopen(match.group(1) + "/metrics", timeout=5) as response:
        found = re.search(rf"^{name} (\S+)$", response.read().decode(), re.M)
    return float(found.group(1)) if found else float("nan")


def configure(workdir: Path, config: Path, links: dict[str, Path], kind: str) -> list[str] | None:
    """Turn the demo configuration into `kind`; the thermal simulator's command line when it needs one."""
    if kind == "secagg":
        from agent.coop import identity
        from agent.coop.secagg.messages import Member, Roster

        key = identity.load_or_create(workdir / "data" / "secagg-identity.key")
        roster = Roster("riverside", (Member("demo-store", key.public_bytes),))
        config.write_text(config.read_text() + f'\n[secagg]\nroster_digest = "{roster.digest().hex()}"\n')
    if kind != "thermal":
        return None
    link = workdir / "dev" / "thermal-back"
    text = config.read_text()
    terabee = f'kind = "terabee"\nport = "{links.pop("back")}"\ndoor = "back"\n'
    config.write_text(text.replace(terabee, f'kind = "thermal90640"\nport = "{link}"\ndoor = "back"\n'))
    return [sys.executable, "-m", "firmware_sim", "thermal90640", "--link", str(link), "--scenario", "mixed_busy",
            "--fps", "4", "--repeat", "10"]  # fmt: skip


def bench_agent(workdir: Path, seconds: float, kind: str = "demo") -> dict[str, Any]:
    with LocalBroker(workdir / "broker") as broker:
        links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
        (workdir / "dev").mkdir(parents=True, exist_ok=True)
        config = write_demo_config(workdir, broker.port, links)
        thermal_command = configure(workdir, config, links, kind)
        noon = int(DAY_START.timestamp()) * NS_PER_S + 12 * 3600 * NS_PER_S
        clock = AcceleratedClock.starting_now(noon, FACTOR)
        env = {**os.environ, **clock.env()}
        sim = subprocess.Popen(
            simulator_command(links, DAY_START, 24, 3, workdir / "truth.json", FACTOR),
            env=env,
            stdout=subprocess.DEVNULL,
        )
        thermal = None if thermal_command is None else subprocess.Popen(thermal_command, stdout=subprocess.DEVNULL)
        log = workdir / "agent.log"
        with log.open("wb") as out:
            t0 = time.perf_counter()
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", str(config)], env=env, stdout=out, stderr=out
            )
        sampler = Sampler(agent.pid)
        sampler.start()
        start_s = float("nan")
        while time.perf_counter() - t0 < 30:
            if health_answers(log):
                start_s = time.perf_counter() - t0
                break
            time.sleep(0.01)
        time.sleep(seconds)
        sampler.stop.set()
        sampler.join()
        worker_starts = metric(log, "shopkeeper_kernel_worker_starts_total")
        jit_resident = metric(log, "shopkeeper_jit_resident")
        thermal_frames = driver_frames(log, "back_door") if thermal is not None else 0
        agent.terminate()
        agent.wait(30)
        for proc in (sim, thermal):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    samples = sampler.samples
    last_third = [s for s in samples if s[0] >= samples[0][0] + 2 * (samples[-1][0] - samples[0][0]) / 3]
    releases = [float(x) for x in RELEASED.findall(log.read_text(errors="replace"))]
    if len(releases) < 3:
        raise RuntimeError(f"only {len(releases)} releases in {seconds} s; see {log}")
    return {
        "agent.rss_mb": round(max(s[1] for s in last_third), 1),
        "agent.rss_peak_mb": round(max(s[2] for s in samples), 1),
        "agent.worker_seen_samples_share": round(sum(s[3] for s in samples) / len(samples), 3),
        "agent.start_s": round(start_s, 2),
        "agent.release_s": round(statistics.median(releases), 3),
        "agent.releases_measured": len(releases),
        "agent.kernel_worker_starts": int(worker_starts),
        "agent.jit_resident": int(jit_resident),
        **({"agent.thermal_frames_counted": thermal_frames} if thermal is not None else {}),
    }


def driver_frames(log: Path, driver: str) -> int:
    """Frames the driver has taken, from the agent's /health."""
    match = re.search(r"health and metrics on (http://\S+)/health", log.read_text(errors="replace"))
    assert match is not None
    try:
        with urllib.request.urlopen(match.group(1) + "/health", timeout=5) as response:
            health = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while degraded is still an answer
        health = json.loads(exc.read())
    return int(health["drivers"][driver].get("frames", 0))


def release_seconds(kernels: Kernels, workdir: Path, windows: int = 5) -> float:
    """Median release of a window holding 500 events, through `kernels`, on the demo configuration."""
    workdir.mkdir(parents=True)
    config = load_config(write_demo_config(workdir, 1, {"front": workdir / "f", "back": workdir / "b"}))
    store = Store(config.db_path)
    t0 = int(DAY_START.timestamp()) * NS_PER_S
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'bench', ?, 1, 0)",
            [(t0 + i * 7 * NS_PER_S, ("front", "back")[i % 2]) for i in range(windows * 500)],
        )

    class Clock:
        def wall_ns(self) -> int:
            return t0 + 10 * 24 * 3600 * NS_PER_S

        def synced(self) -> bool:
            return True

    releaser = WindowReleaser(config, store, Clock(), kernels=kernels)  # type: ignore[arg-type]
    times = []
    for w in range(windows):
        with kernels.session():  # as a tick does: the worker (if any) starts inside the timed release
            began = time.perf_counter()
            releaser.release_window(t0 + w * 3600 * NS_PER_S)
            times.append(time.perf_counter() - began)
    store.close()
    return statistics.median(times)


def probe_rss(code: str) -> float:
    """RSS of a Python process that ran `code` and printed ready."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    rss = status_mb(proc.pid, "VmRSS")
    proc.kill()
    proc.wait()
    return rss


def config_baselines(kind: str) -> dict[str, Any]:
    """Bare numpy, and the resident imports with what `kind` loaded in process before issue 20."""
    jit = "import sys, time, numpy as np, agent.ops.runtime\n" + JIT_PROBES[kind] + "print('ready', flush=True)\n"
    return {
        "agent.python_numpy_rss_mb": round(probe_rss("import numpy; print('ready', flush=True)"), 1),
        "agent.rss_jit_counter_mb" if kind == "thermal" else "agent.rss_jit_share_mb": round(
            probe_rss(jit + "time.sleep(30)\n"), 1
        ),
    }


def baselines(workdir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)
    numpy_start = time.perf_counter() - t0
    probe = (
        "import sys, time, numpy as np, agent.ops.runtime\n"
        "from agent.kernels.footfall import count_footfall\n"
        "from agent.privacy.sampler import discrete_laplace, discrete_gaussian\n"
        "z = np.zeros(4, dtype=np.int64); count_footfall(z, z, z, z, 1, 2)\n"
        "discrete_laplace(2, 1, 4); discrete_gaussian(8, 1, 4)\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    rss = {}
    for name, code in (("numpy", "import numpy, time; print('ready', flush=True); time.sleep(30)"), ("jit", probe)):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        rss[name] = status_mb(proc.pid, "VmRSS")
        proc.kill()
        proc.wait()
    in_process = InProcessKernels()
    release_in_process = release_seconds(in_process, workdir / "in-process")
    return {
        "agent.python_numpy_rss_mb": round(rss["numpy"], 1),
        "agent.rss_with_jit_resident_mb": round(rss["jit"], 1),
        "agent.python_numpy_start_s": round(numpy_start, 2),
        "agent.release_in_process_s": round(release_in_process, 3),
        "agent.release_worker_bench_s": round(release_seconds(KernelWorker(), workdir / "worker"), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=64.0)
    parser.add_argument("--config", choices=CONFIGS, default="demo")
    args = parser.parse_args()
    warm_numba_cache()
    if args.config != "demo":
        with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
            figures = bench_agent(Path(tmp) / "agent", args.seconds, args.config)
        figures.update(config_baselines(args.config))
        base = figures["agent.rss_jit_counter_mb" if args.config == "thermal" else "agent.rss_jit_share_mb"]
        figures["agent.rss_ratio_vs_python_numpy"] = round(
            figures["agent.rss_mb"] / figures["agent.python_numpy_rss_mb"], 2
        )
        figures["agent.rss_ratio_vs_jit_in_process"] = round(figures["agent.rss_mb"] / base, 2)
        prefix = f"agent.{args.config}."
        print(json.dumps({prefix + k.removeprefix("agent."): v for k, v in sorted(figures.items())}, sort_keys=True))
        return
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        figures = bench_agent(Path(tmp) / "agent", args.seconds)
        figures.update(baselines(Path(tmp)))
    figures["agent.rss_ratio_vs_python_numpy"] = round(
        figures["agent.rss_mb"] / figures["agent.python_numpy_rss_mb"], 2
    )
    figures["agent.rss_ratio_vs_jit_resident"] = round(
        figures["agent.rss_mb"] / figures["agent.rss_with_jit_resident_mb"], 2
    )
    figures["agent.release_ratio_vs_in_process"] = round(
        figures["agent.release_s"] / figures["agent.release_in_process_s"], 1
    )
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
