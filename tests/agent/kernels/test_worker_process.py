"""The kernel worker: a real child process that counts and draws noise; its death or a hang is loud."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.errors import KernelWorkerError, PrivacyError
from agent.kernels.footfall import count_footfall
from agent.kernels.worker_process import KernelWorker
from agent.pipeline.release import WindowReleaser
from agent.privacy.journal import JOURNAL_NAME
from agent.store import Store
from tests.conftest import T0_NS, ManualClock


def test_the_worker_counts_exactly_like_the_kernel_in_process() -> None:
    rng = np.random.default_rng(20)
    window_idx, door_idx = rng.integers(-1, 4, 500), rng.integers(-1, 3, 500)
    entries, exits = rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    worker = KernelWorker()
    with worker.session():
        remote = worker.count_footfall(window_idx, door_idx, entries, exits, 3, 2)
    np.testing.assert_array_equal(remote, count_footfall(window_idx, door_idx, entries, exits, 3, 2))


def test_noise_from_the_worker_is_integer_and_not_constant() -> None:
    worker = KernelWorker()
    with worker.session():
        noise = worker.discrete_laplace(20, 1, 64)
        gaussian = worker.discrete_gaussian(400, 1, 64)
    assert noise.dtype == np.int64 and noise.shape == (64,) and gaussian.shape == (64,)
    # 64 draws of scale 20 all equal has probability far below 1e-60.
    assert len(set(noise.tolist())) > 1 and len(set(gaussian.tolist())) > 1


def test_a_session_stops_the_worker_when_it_ends() -> None:
    worker = KernelWorker()
    with worker.session():
        pid = worker.call("ping")
        assert pid == worker.pid and pid != os.getpid()
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: not even a zombie is left


def test_a_privacy_refusal_in_the_worker_stays_a_privacy_error() -> None:
    worker = KernelWorker()
    with worker.session(), pytest.raises(PrivacyError, match="numerator"):
        worker.discrete_laplace(0, 1, 4)


def test_a_worker_killed_during_a_request_is_a_loud_error_and_the_next_request_gets_a_new_one() -> None:
    worker = KernelWorker()
    with worker.session():
        first = worker.call("ping")
        # Ten million draws keep the worker busy for seconds; it is killed a moment into them.
        killer = threading.Timer(0.3, os.kill, (first, signal.SIGKILL))
        killer.start()
        with pytest.raises(KernelWorkerError, match=f"pid {first}.*nothing was released"):
            worker.discrete_laplace(2, 1, 10_000_000)
        killer.join()
        second = worker.call("ping")
    assert second != first and worker.failures == 1 and worker.starts == 2


def test_a_worker_that_died_between_requests_is_counted_logged_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    worker = KernelWorker()
    with worker.session():
        first = worker.call("ping")
        os.kill(first, signal.SIGKILL)
        wait_until_gone(first)
        second = worker.call("ping")
    assert second != first and worker.failures == 1
    assert f"kernel worker (pid {first}) died between requests" in caplog.text


def wait_until_gone(pid: int) -> None:
    """Until the process is dead (a zombie counts: it runs no more)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs")


def test_a_hung_worker_is_killed_after_the_deadline() -> None:
    worker = KernelWorker(timeout_s=0.5)
    with worker.session():
        pid = worker.call("ping")
        os.kill(pid, signal.SIGSTOP)  # alive but silent
        with pytest.raises(KernelWorkerError, match="no answer within the deadline"):
            worker.call("ping")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class DyingWorker(KernelWorker):
    """Kills its own child just before the first noise draw: a worker dying in the middle of a release."""

    died = False

    def call(self, op: str, *args: object) -> object:
        if op == "discrete_laplace" and not self.died:
            self.died = True
            os.kill(self.call("ping"), signal.SIGKILL)  # type: ignore[arg-type]
        return super().call(op, *args)


def test_a_worker_dying_mid_release_releases_nothing_and_the_next_tick_releases_once(
    config: AgentConfig, clock: ManualClock, tmp_path: Path
) -> None:
    store = Store(config.db_path)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'test', 'front', 3, 1)",
            (T0_NS + 60 * NS_PER_S,),
        )
    releaser = WindowReleaser(config, store, clock, kernels=DyingWorker())
    clock.advance(3600 + 121)
    with pytest.raises(KernelWorkerError):
        releaser.tick()
    conn = store.conn()
    assert conn.execute("SELECT count(*) FROM release_ledger").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    journal = config.data_dir / JOURNAL_NAME
    assert not journal.exists() or journal.read_text().strip() == ""
    assert releaser.tick() == 1
    assert conn.execute("SELECT count(DISTINCT window_start_ns), count(*) FROM release_ledger").fetchone() == (1, 2)
