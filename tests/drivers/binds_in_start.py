"""A driver that does its I/O in start() and lets the OSError out: the defect the kit and the supervisor catch."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from agent.driver_api import DriverHealth, PresenceChange, Sink


class BindsInStart:
    """Listens on a TCP port, bound in start(); every accepted connection is one PresenceChange."""

    kind: ClassVar[str] = "binds_in_start"

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port
        self.starts = 0
        self._health = DriverHealth()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> BindsInStart:
        return cls(name, int(options["port"]))

    @classmethod
    def sample_config(cls) -> str:
        return '[drivers.x]\n  kind = "binds_in_start"\n  port = 8090\n'

    def doors(self) -> list[str]:
        return []

    def start(self, sink: Sink) -> None:
        self.starts += 1
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # OSError (address in use) escapes: the defect
        listener.listen()
        listener.settimeout(0.1)
        self._socket, self._health.connected = listener, True
        self._stopped.clear()
        self._thread = threading.Thread(target=self._accept, args=(sink, listener), daemon=True)
        self._thread.start()

    def _accept(self, sink: Sink, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()
            if not self._stopped.is_set():
                sink.emit(PresenceChange("till", True))

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._health.connected = False

    def alive(self) -> bool:
        return self._stopped.is_set() or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        return self._health.snapshot()


class Knock:
    """The 'device' for BindsInStart: a client that connects once per produce()."""

    def __init__(self, port: int) -> None:
        self.port = port

    def produce(self) -> None:
        with contextlib.suppress(OSError):  # not listening yet: the kit produces again
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()

    def close(self) -> None:
        pass
