"""The resident agent's handle on the kernel worker (agent.kernels.worker): start, ask, stop.

The resident process never imports numba: it asks a child process to count and to draw noise, and
keeps that child only for a release (a `session`). A child that
dies or hangs is a KernelWorkerError (logged by the caller, counted, retried at the next tick),
never an answer: a release without its noise does not happen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.errors import KernelWorkerError, PrivacyError
from agent.kernels.frames import PipeClosed, PipeTimeout, read_frame, write_frame

log = logging.getLogger(__name__)
Int64Array = npt.NDArray[np.int64]

# Cold numba cache on a Pi Zero compiles every kernel: minutes, not seconds. A warm one answers in ms.
REQUEST_TIMEOUT_S = 600.0


class Kernels(Protocol):
    """What the release needs from the numba kernels, wherever they run."""

    keep_alive: bool  # True: a worker is kept between sessions (the next release is only seconds away)

    def count_footfall(
        self, window_idx: Int64Array, door_idx: Int64Array, entries: Int64Array, exits: Int64Array, nw: int, nd: int
    ) -> Int64Array: ...

    def discrete_laplace(self, num: int, den: int, count: int) -> Int64Array: ...

    def discrete_gaussian(self, num: int, den: int, count: int) -> Int64Array: ...

    def session(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...


class KernelWorker:
    """One child process at a time, started on first use; stopped when the last session or stream ends."""

    def __init__(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._holders = 0  # open sessions; the child is stopped when this drops to 0 (unless keep_alive)
        self.keep_alive = False
        self.starts = 0  # children started (for /metrics and the footprint benchmark)
        self.failures = 0
        self.last_start_s = 0.0

    # -- lifetime ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keep one child for every request inside; it stops when the outermost holder ends."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders = max(0, self._holders - 1)
            if self._holders == 0 and not self.keep_alive:
                self.close()

    def close(self) -> None:
        """Stop the child now, whatever keep_alive says (end of input, then a kill if it lingers)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc
            # Died between requests: nothing was lost (each request stands alone), but it is not normal.
            self.failures += 1
            log.error(
                "kernel worker (pid %d) died between requests (exit code %s); starting a new one",
                self._proc.pid,
                self._proc.returncode,
            )
            self._kill(self._proc)
        t0 = time.monotonic()
        # -m from the same interpreter and install; stderr is the agent's, so the child's errors are logged.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "agent.kernels.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.starts += 1
        self.last_start_s = time.monotonic() - t0
        return self._proc

    # -- requests ------------------------------------------------------------------------------------
    def call(self, op: str, *args: Any) -> Any:
        """Ask the child; its PrivacyError stays a PrivacyError, anything else is a KernelWorkerError."""
        with self._lock:
            proc = self._started()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                write_frame(proc.stdin, (op, args))
                answer = read_frame(proc.stdout, self.timeout_s)
            except (PipeClosed, PipeTimeout, BrokenPipeError, OSError) as exc:
                self.failures += 1
                self._kill(proc)
                code = proc.returncode
                raise KernelWorkerError(
                    f"kernel worker (pid {proc.pid}) failed during {op}: {exc} (exit code {code}); "
                    "nothing was released, the window is retried at the next tick"
                ) from exc
            if self._holders == 0 and not self.keep_alive:  # a request outside any session
                self.close()
        status, *rest = answer
        if status == "ok":
            return rest[0]
        kind, message = rest
        if kind == "PrivacyError":
            raise PrivacyError(message)
        self.failures += 1
        raise KernelWorkerError(f"kernel worker could not run {op}: {kind}: {message}")

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        with contextlib.suppress(OSError):
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            proc.stdout.close()
        if self._proc is proc:
            self._proc = None

    # -- the kernels -------------------------------------------------------------------------------
    def count_footfall(
        self, window_idx: Int64Array, door_idx: Int64Array, entries: Int64Array, exits: Int64Array, nw: int, nd: int
    ) -> Int64Array:
        return np.asarray(self.call("count_footfall", window_idx, door_idx, entries, exits, nw, nd), dtype=np.int64)

    def discrete_laplace(self, num: int, den: int, count: int) -> Int64Array:
        return np.asarray(self.call("discrete_laplace", num, den, count), dtype=np.int64)

    def discrete_gaussian(self, num: int, den: int, count: int) -> Int64Array:
        return np.asarray(self.call("discrete_gaussian", num, den, count), dtype=np.int64)


class InProcessKernels:
    """The kernels in this process, with a given bit source: tests, benchmarks and tools, never the agent."""

    def __init__(self, bits: Any = None) -> None:
        self.bits = bits
        self.keep_alive = False  # nothing to keep: the kernels are already here

    def count_footfall(
        self, window_idx: Int64Array, door_idx: Int64Array, entries: Int64Array, exits: Int64Array, nw: int, nd: int
    ) -> Int64Array:
        from agent.kernels.footfall import count_footfall  # numba: loaded only where asked for

        return count_footfall(window_idx, door_idx, entries, exits, nw, nd)

    def discrete_laplace(self, num: int, den: int, count: int) -> Int64Array:
        from agent.privacy.sampler import discrete_laplace

        return discrete_laplace(num, den, count, self.bits)

    def discrete_gaussian(self, num: int, den: int, count: int) -> Int64Array:
        from agent.privacy.sampler import discrete_gaussian

        return discrete_gaussian(num, den, count, self.bits)

    def session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        return None
