"""Start a private PostgreSQL on a loopback port (for the hub's tests and benchmark).

Uses Debian's server binaries (package `postgresql`, /usr/lib/postgresql/<version>/bin). PostgreSQL
refuses to run as root, so when started by root the data directory is handed to the `postgres`
user and the server runs as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hub.errors import HubError


def postgres_bin_dir() -> Path | None:
    """The newest installed server's bin directory, or None when PostgreSQL is not installed."""
    root = Path("/usr/lib/postgresql")
    versions = (
        sorted(
            (p for p in root.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name), reverse=True
        )
        if root.is_dir()
        else []
    )
    return versions[0] if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1:<port>, trusting local connections."""

    def __init__(self, workdir: Path | None = None, port: int | None = None, durable: bool = False) -> None:
        bindir = postgres_bin_dir()
        if bindir is None:
            raise HubError("PostgreSQL is not installed; run `apt-get install postgresql` (Debian)")
        self.bindir = bindir
        self._tmp = None if workdir else tempfile.mkdtemp(prefix="hub-pg-")
        self.workdir = Path(workdir or self._tmp or ".")
        self.port = port or _free_port()
        self.durable = durable  # False: fsync off, for tests; True: PostgreSQL's defaults, for the benchmark
        self.data = self.workdir / "data"
        self.sockets = self.workdir / "sock"
        self.log = self.workdir / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> LocalPostgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self.workdir.chmod(0o755)
            shutil.chown(self.workdir, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        out = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-sync",
        )
        if out.returncode != 0:
            raise HubError(f"initdb failed: {out.stderr.strip()[-300:]}")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sockets}"
            " -c max_connections=50"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        out = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if out.returncode != 0:
            raise HubError(f"pg_ctl start failed: {out.stderr.strip()[-300:]}; see {self.log}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise HubError(f"PostgreSQL did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
