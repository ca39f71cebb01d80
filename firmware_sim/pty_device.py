"""A serial device on a real pseudo-terminal, reachable through a stable symlink.

The symlink plays the part of `/dev/serial/by-id/...`: `unplug()` closes the master (the host's
next read fails exactly as on a USB unplug) and removes the link; `replug()` makes a new pty and
points the link at it, so the host must notice, wait for the path and reopen.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from pathlib import Path


class PtyDevice:
    """The device end of a pty; the host opens `link_path` (the slave) like a serial port."""

    def __init__(self, link_path: str | os.PathLike[str]) -> None:
        self.link_path = Path(link_path)
        self.dropped_bytes = 0  # written while unplugged or while nobody read and the buffer was full
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self._open()

    def _open(self) -> None:
        master, slave = os.openpty()
        # Raw mode: no CR/LF translation, no echo, every byte value passes through unchanged.
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)  # a device with nobody listening drops bytes, it does not stall
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(f".{self.link_path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_name)
        os.replace(tmp, self.link_path)  # atomic: the host never sees a half-made link

    @property
    def plugged(self) -> bool:
        """True while the pty exists and the link points at it."""
        return self._master is not None

    def write(self, data: bytes) -> int:
        """Send bytes to the host; returns how many were accepted (the rest are dropped)."""
        with self._lock:
            if self._master is None:
                self.dropped_bytes += len(data)
                return 0
            try:
                written = os.write(self._master, data)
            except (BlockingIOError, OSError):
                written = 0
            self.dropped_bytes += len(data) - written
            return written

    def read_available(self) -> bytes:
        """What the host has sent since the last call (never blocks)."""
        chunks = []
        with self._lock:
            if self._master is None:
                return b""
            while True:
                try:
                    chunk = os.read(self._master, 4096)
                except (BlockingIOError, OSError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def unplug(self) -> None:
        """Close the pty (the host's reads fail) and remove the link."""
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()

    def replug(self) -> None:
        """A new pty behind the same link, as after plugging the USB adapter back in."""
        self.unplug()
        with self._lock:
            self._open()

    def close(self) -> None:
        """Unplug for good."""
        self.unplug()

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
