"""The coop broker exactly as deploy/mosquitto/coop.conf and coop.acl configure it (TLS, client certificates
from deploy/pki/make-pki.sh, per-tier ACLs, client ids tied to the identity, size and memory limits), on a
loopback port, in the style of tests/deploy/test_coop_broker.py; and an MQTT v5 member that records the
broker's answer to every publish."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import free_port, mosquitto_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass
class CoopBroker:
    port: int
    pki: Path
    log: Path

    def tls(self, name: str) -> dict[str, str]:
        """The [mqtt] TLS keys of an agent or hub configuration for account `name`."""
        return {
            "host": "localhost",
            "tls_ca_file": str(self.pki / "ca.crt"),
            "tls_cert_file": str(self.pki / f"{name}.crt"),
            "tls_key_file": str(self.pki / f"{name}.key"),
        }


@contextlib.contextmanager
def coop_broker(root: Path, accounts: list[str]) -> Iterator[CoopBroker]:
    """The shipped config on a loopback port with certificates for `accounts`; only paths, port and
    persistence change."""
    assert shutil.which("openssl"), "openssl is missing; deploy/bootstrap.sh installs it"
    pki = root / "pki"
    script = DEPLOY / "pki" / "make-pki.sh"
    for args in (["ca"], ["server", "coop.example.net"], ["client", *accounts]):
        subprocess.run([str(script), str(pki), *args], check=True, capture_output=True)
    shutil.copy(DEPLOY / "mosquitto" / "coop.acl", root / "coop.acl")
    (root / "passwd").write_text("")
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "coop.conf").read_text()
    conf = conf.replace("/etc/mosquitto/shopkeeper/", f"{root}/")
    conf = conf.replace("\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n")
    conf = conf.replace("\nlistener 8884\n", f"\nlistener {free_port()} 127.0.0.1\n")
    conf = conf.replace("persistence true", "persistence false")
    log = root / "mosquitto.log"
    (root / "mosquitto.conf").write_text(f"user root\nlog_dest file {log}\nlog_type all\n{conf}")
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(root / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, f"mosquitto exited: {process.communicate()[1]!r}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert time.monotonic() < deadline, f"mosquitto is not listening on {port}"
            time.sleep(0.05)
        yield CoopBroker(port, pki, log)
    finally:
        process.terminate()
        process.wait(10)


class V5Member:
    """One coop account over TLS with MQTT v5, recording the reason code of every PUBACK and the DISCONNECT."""

    def __init__(self, broker: CoopBroker, name: str, client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(
            str(broker.pki / "ca.crt"), str(broker.pki / f"{name}.crt"), str(broker.pki / f"{name}.key")
        )
        self.client.max_inflight_messages_set(100)
        self.acks: dict[int, Any] = {}
        self.disconnected: list[Any] = []
        self._lock = threading.Lock()
        self._connack = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, _rc, _p: self._connack.set()
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnected.append(rc)
        self.client.connect("localhost", broker.port)
        self.client.loop_start()
        assert self._connack.wait(10), f"{name}: no CONNACK"

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason_code: Any, _p: Any) -> None:
        with self._lock:
            self.acks[mid] = reason_code

    def publish_all(self, items: list[tuple[str, bytes, bool]], timeout: float = 60) -> list[Any]:
        """Publish at QoS 1 (in flights of 100) and return each message's PUBACK reason code, in order."""
        mids = []
        for start in range(0, len(items), 100):
            infos = [self.client.publish(t, p, qos=1, retain=r) for t, p, r in items[start : start + 100]]
            for info in infos:
                info.wait_for_publish(timeout)
            mids += [info.mid for info in infos]
        with self._lock:
            return [self.acks.get(mid) for mid in mids]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
