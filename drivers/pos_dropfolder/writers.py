"""Which files another process holds open for writing, from Linux's /proc (empty where /proc says nothing).

A copy that stalls (a slow share, a paused script) keeps its size and time for longer than any stable_s,
yet is not finished. While its writer still has it open for writing, it is not taken. /proc shows only this
machine's processes, and only those the agent may inspect (its own user's, or all when run as root): a
writer on another machine (a network share) is invisible, which is why the driver also re-checks a file
after reading it and why require_marker (or write-then-rename) is the safe choice for such writers.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

PROC = Path("/proc")


def _writable(pid: str, fd: str) -> bool:
    try:
        info = (PROC / pid / "fdinfo" / fd).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return False
    for line in info.splitlines():
        if line.startswith("flags:"):
            flags = int(line.split()[1], 8)
            return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    return False


def open_for_writing(paths: Collection[Path]) -> set[Path]:
    """The given files that some process on this machine has open for writing (as far as /proc shows)."""
    if not paths:
        return set()
    targets = {os.path.realpath(p): p for p in paths}
    found: set[Path] = set()
    try:
        pids = [p for p in os.listdir(PROC) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(PROC / pid / "fd")
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                target = os.readlink(PROC / pid / "fd" / fd)
            except OSError:
                continue
            if target in targets and _writable(pid, fd):
                found.add(targets[target])
    return found
