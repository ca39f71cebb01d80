"""The kernel worker: a short-lived child process that runs the numba kernels for the resident agent.

`python -m agent.kernels.worker` reads requests from stdin and answers on its own copy of stdout
(agent.kernels.frames). The resident agent starts it for a release (or for a secure-aggregation round,
until the round's noise share is drawn: agent/coop/round_kernels.py) and stops it after, so numba and
llvmlite (most of the agent's memory) are loaded only while they work.
Noise drawn here comes from this process's `os.urandom` (BitSource), exactly as in-process.

A request is (op, args); the answer is ("ok", result) or ("error", exception class name, message).
The worker exits at end of input, i.e. when the agent closes the pipe or dies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from agent.kernels.frames import PipeClosed, read_frame, write_frame


def _ops() -> dict[str, Callable[..., Any]]:
    # Each kernel module is imported on first use: a request loads only the kernels it runs.

    def count_footfall(*args: Any) -> Any:
        from agent.kernels.footfall import count_footfall

        return count_footfall(*args)

    def discrete_laplace(num: int, den: int, count: int) -> Any:
        from agent.privacy.sampler import discrete_laplace

        return discrete_laplace(num, den, count)  # bits=None: this process's os.urandom

    def discrete_gaussian(num: int, den: int, count: int) -> Any:
        from agent.privacy.sampler import discrete_gaussian

        return discrete_gaussian(num, den, count)  # a seeded bit source is never sent over

    return {
        "ping": os.getpid,
        "count_footfall": count_footfall,
        "discrete_laplace": discrete_laplace,
        "discrete_gaussian": discrete_gaussian,
    }


def serve() -> int:
    """Answer requests until the agent closes the pipe; returns the exit code."""
    # Answers go to a private copy of stdout; fd 1 then points at stderr, so a stray print (numba
    # warnings, a library's banner) lands in the agent's log instead of corrupting the protocol.
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    ops = _ops()
    while True:
        try:
            op, args = read_frame(requests)
        except PipeClosed:
            return 0
        try:
            result = ops[op](*args)
        except Exception as exc:  # answered, not fatal: the agent decides (PrivacyError stays one)
            write_frame(answers, ("error", type(exc).__name__, str(exc)))
            continue
        write_frame(answers, ("ok", result))


if __name__ == "__main__":
    sys.exit(serve())
