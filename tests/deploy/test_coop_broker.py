"""The coop broker as deploy/mosquitto/coop.conf and coop.acl configure it: TLS, client certificates
from deploy/pki/make-pki.sh, passwords, and per-tier ACLs, on a real Mosquitto on loopback ports."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_config
from agent.demo.local_broker import free_port, mosquitto_binary
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from tests.conftest import ManualClock

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COOP = "coop/v1/riverside"
PASSWORD = "correct horse battery staple"


@dataclass
class CoopBroker:
    cert_port: int
    password_port: int
    pki: Path
    log: Path


def make_pki(directory: Path) -> None:
    script = DEPLOY / "pki" / "make-pki.sh"
    for args in (["ca"], ["server", "coop.example.net"], ["client", "store-a", "store-b", "_hub"]):
        subprocess.run([str(script), str(directory), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def coop_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoopBroker]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing; deploy/bootstrap.sh installs it")
    root = tmp_path_factory.mktemp("coop-broker")
    make_pki(root / "pki")
    shutil.copy(DEPLOY / "mosquitto" / "coop.acl", root / "coop.acl")
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(root / "passwd"), "store-c", PASSWORD], check=True)
    cert_port, password_port = free_port(), free_port()
    # The shipped config, moved to loopback ports and this directory; nothing else changes.
    conf = (DEPLOY / "mosquitto" / "coop.conf").read_text()
    conf = conf.replace("/etc/mosquitto/shopkeeper/", f"{root}/")
    conf = conf.replace("\nlistener 8883\n", f"\nlistener {cert_port} 127.0.0.1\n")
    conf = conf.replace("\nlistener 8884\n", f"\nlistener {password_port} 127.0.0.1\n")
    conf = conf.replace("persistence true", "persistence false")
    log = root / "mosquitto.log"
    # Run as the test's user: the packaged broker drops to user mosquitto, which cannot read tmp_path.
    (root / "mosquitto.conf").write_text(f"user root\nlog_dest file {log}\nlog_type all\n{conf}")
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(root / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for port in (cert_port, password_port):
            deadline = time.monotonic() + 10
            while True:
                assert process.poll() is None, f"mosquitto exited: {process.stderr.read() if process.stderr else ''}"
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                assert time.monotonic() < deadline, f"mosquitto is not listening on {port}"
                time.sleep(0.05)
        yield CoopBroker(cert_port, password_port, root / "pki", log)
    finally:
        process.terminate()
        process.wait(10)


class Member:
    """A paho client logged in as one coop account, recording what it receives."""

    def __init__(
        self,
        broker: CoopBroker,
        name: str,
        *,
        certificate: bool = True,
        password: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.name = name
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connack = threading.Event()
        self._suback = threading.Event()
        self.connect_code: Any = None
        self.granted: list[Any] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{name}-{time.monotonic_ns()}"
        )
        pki = broker.pki
        if certificate:
            self.client.tls_set(str(pki / "ca.crt"), str(pki / f"{name}.crt"), str(pki / f"{name}.key"))
            port = broker.cert_port
        else:
            self.client.tls_set(str(pki / "ca.crt"))
            port = broker.password_port if password is not None else broker.cert_port
        if password is not None:
            self.client.username_pw_set(name, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        self.connect_code = reason_code
        self._connack.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self.granted = codes
        self._suback.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def wait_connected(self) -> Member:
        assert self._connack.wait(10), f"{self.name}: no CONNACK"
        assert not self.connect_code.is_failure, f"{self.name}: refused ({self.connect_code})"
        return self

    def subscribe(self, *filters: str) -> list[Any]:
        self._suback.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self._suback.wait(10), f"{self.name}: no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def payloads(self) -> set[bytes]:
        with self._lock:
            return {p for _t, p in self.received}

    def wait_for(self, payload: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while payload not in self.payloads():
            assert time.monotonic() < deadline, f"{self.name} did not receive {payload!r}"
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def members(coop_broker: CoopBroker) -> Iterator[dict[str, Member]]:
    made = {name: Member(coop_broker, name).wait_connected() for name in ("store-a", "store-b", "_hub")}
    yield made
    for member in made.values():
        member.close()


def test_a_store_cannot_publish_on_another_stores_topics_or_the_hubs(members: dict[str, Member]) -> None:
    hub, store_b = members["_hub"], members["store-b"]
    hub.subscribe(f"{COOP}/#")
    store_b.subscribe(f"{COOP}/store-b/#", f"{COOP}/_hub/#")
    store_a = members["store-a"]
    store_a.publish(f"{COOP}/store-b/t1/footfall/hourly", b"forged-by-a")
    store_a.publish(f"{COOP}/store-b/status", b"forged-status-by-a")
    store_a.publish(f"{COOP}/_hub/benchmarks", b"forged-benchmark-by-a")
    store_a.publish(f"{COOP}/store-a/t1/footfall/hourly", b"a-own")  # same connection, so it arrives last
    hub.wait_for(b"a-own")
    assert hub.payloads() == {b"a-own"}
    assert store_b.payloads() == set()


def test_tier2_and_status_reach_the_hub_but_not_another_store(members: dict[str, Member]) -> None:
    hub, store_a, store_b = members["_hub"], members["store-a"], members["store-b"]
    hub.subscribe(f"{COOP}/#")
    # Store A asks for everything; the broker may refuse the filters or filter each message, but
    # either way only tier 1 may reach it.
    store_a.subscribe(f"{COOP}/+/t2/#", f"{COOP}/store-b/status", f"{COOP}/+/t1/#")
    store_b.publish(f"{COOP}/store-b/t2/sales/hourly", b"b-t2")
    store_b.publish(f"{COOP}/store-b/status", b"b-status")
    store_b.publish(f"{COOP}/store-b/t1/footfall/hourly", b"b-t1")
    store_a.wait_for(b"b-t1")
    hub.wait_for(b"b-t1")
    assert store_a.payloads() == {b"b-t1"}
    assert hub.payloads() == {b"b-t2", b"b-status", b"b-t1"}


def test_hub_results_are_readable_by_every_store(members: dict[str, Member]) -> None:
    members["store-a"].subscribe(f"{COOP}/_hub/#")
    members["_hub"].publish(f"{COOP}/_hub/t1/benchmarks/footfall/2026-11-16T10:00:00Z", b"district-benchmark")
    members["store-a"].wait_for(b"district-benchmark")


def raw_connack(broker: CoopBroker, certificate: str | None) -> bytes:
    """The broker's first bytes after a TLS handshake and an MQTT 3.1.1 CONNECT (b"" if it hung up)."""
    context = ssl.create_default_context(cafile=str(broker.pki / "ca.crt"))
    if certificate:
        context.load_cert_chain(broker.pki / f"{certificate}.crt", broker.pki / f"{certificate}.key")
    connect = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03raw"
    with socket.create_connection(("127.0.0.1", broker.cert_port), timeout=10) as plain:
        try:
            with context.wrap_socket(plain, server_hostname="localhost") as tls:
                tls.sendall(connect)
                return tls.recv(4)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def test_a_client_without_a_certificate_is_refused(coop_broker: CoopBroker) -> None:
    assert raw_connack(coop_broker, "store-a") == b"\x20\x02\x00\x00"  # the same bytes with a certificate
    assert raw_connack(coop_broker, None) == b""


def test_a_wrong_password_is_refused_and_the_right_one_is_confined_to_its_store(
    coop_broker: CoopBroker, members: dict[str, Member]
) -> None:
    wrong = Member(coop_broker, "store-c", certificate=False, password="guess")
    try:
        assert wrong._connack.wait(10)
        assert wrong.connect_code.is_failure
    finally:
        wrong.close()
    hub = members["_hub"]
    hub.subscribe(f"{COOP}/#")
    store_c = Member(coop_broker, "store-c", certificate=False, password=PASSWORD).wait_connected()
    try:
        store_c.publish(f"{COOP}/store-a/t1/footfall/hourly", b"forged-by-c")
        store_c.publish(f"{COOP}/store-c/t1/footfall/hourly", b"c-own")
        hub.wait_for(b"c-own")
        assert b"forged-by-c" not in hub.payloads()
    finally:
        store_c.close()


def test_the_agents_publisher_delivers_over_tls_with_the_stores_certificate(
    tmp_path: Path, coop_broker: CoopBroker, members: dict[str, Member], clock: ManualClock
) -> None:
    pki = coop_broker.pki
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\ncoop = "riverside"\nstore = "store-a"\ndoors = ["front"]\ndata_dir = "data"\n'
        '[clock]\nsync_source = "always"\n'
        f'[mqtt]\nhost = "localhost"\nport = {coop_broker.cert_port}\ntls_ca_file = "{pki / "ca.crt"}"\n'
        f'tls_cert_file = "{pki / "store-a.crt"}"\ntls_key_file = "{pki / "store-a.key"}"\n'
    )
    config = load_config(path, drivers={})
    hub = members["_hub"]
    hub.subscribe(f"{COOP}/#")
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    publisher = Publisher(config, store)
    publisher.start()
    try:
        deadline = time.monotonic() + 20
        while publisher.pending() > 0:
            assert time.monotonic() < deadline, "the outbox did not drain over TLS"
            time.sleep(0.05)
    finally:
        publisher.stop()
        store.close()
    topics = [t for t, _p in hub.received]
    assert topics.count(f"{COOP}/store-a/t1/footfall/hourly") == 2
    assert f"{COOP}/store-a/status" in topics


@pytest.mark.parametrize("kind", ["alerts", "sales-position", "watermark"])
def test_a_store_reads_only_its_own_private_hub_topics(members: dict[str, Member], kind: str) -> None:
    hub, store_a, store_b = members["_hub"], members["store-a"], members["store-b"]
    store_a.subscribe(f"{COOP}/_hub/#")
    store_b.subscribe(f"{COOP}/_hub/#")
    hub.publish(f"{COOP}/_hub/t2/{kind}/store-b", f"{kind}-for-b".encode())
    hub.publish(f"{COOP}/_hub/t2/{kind}/store-a", f"{kind}-for-a".encode())
    hub.publish(f"{COOP}/_hub/t1/benchmarks/footfall/hourly", b"benchmark-for-all")
    for member, own in ((store_a, f"{kind}-for-a".encode()), (store_b, f"{kind}-for-b".encode())):
        member.wait_for(own)
        member.wait_for(b"benchmark-for-all")
    assert store_a.payloads() == {f"{kind}-for-a".encode(), b"benchmark-for-all"}
    assert store_b.payloads() == {f"{kind}-for-b".encode(), b"benchmark-for-all"}


def test_only_the_hub_writes_a_stores_watermark(members: dict[str, Member]) -> None:
    """A store that could write its own watermark could wind it back, and a fresh disk would then redraw."""
    hub, store_a = members["_hub"], members["store-a"]
    hub.subscribe(f"{COOP}/#")
    store_a.publish(f"{COOP}/_hub/t2/watermark/store-a", b"forged-watermark")
    store_a.publish(f"{COOP}/store-a/t1/footfall/hourly", b"a-after")  # same connection, so it arrives last
    hub.wait_for(b"a-after")
    assert b"forged-watermark" not in hub.payloads()


def test_a_store_cannot_write_topics_outside_the_contract_shapes(members: dict[str, Member]) -> None:
    hub, store_a = members["_hub"], members["store-a"]
    hub.subscribe(f"{COOP}/#")
    for junk in ("junk", "t1/a/b/c/d", "t3/footfall/hourly", "status/extra", "t1/footfall"):
        store_a.publish(f"{COOP}/store-a/{junk}", b"junk-" + junk.encode())
    store_a.publish(f"{COOP}/store-a/t1/footfall/hourly", b"a-own")  # same connection, so it arrives last
    hub.wait_for(b"a-own")
    assert [p for p in hub.payloads() if p.startswith(b"junk-")] == []


class ClientIdSquatter:
    """Connects as one store's certificate while asking for someone else's client id."""

    def __init__(self, broker: CoopBroker, name: str, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.tls_set(
            str(broker.pki / "ca.crt"), str(broker.pki / f"{name}.crt"), str(broker.pki / f"{name}.key")
        )
        self.connected = threading.Event()
        self.client.on_connect = lambda *_args: self.connected.set()
        self.client.connect("127.0.0.1", broker.cert_port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_store_cannot_take_over_the_hubs_or_another_stores_session(coop_broker: CoopBroker) -> None:
    """Client ids are the authenticated identity: reusing the hub's or store-b's id kicks nobody off."""
    disconnects: dict[str, list[Any]] = {"_hub": [], "store-b": []}
    documented_ids = {"_hub": "shopkeeper-hub-riverside-hub-1", "store-b": "shopkeeper-riverside-store-b"}
    victims = {}
    for name in disconnects:
        member = Member(coop_broker, name, client_id=documented_ids[name])
        member.client.on_disconnect = lambda _c, _u, _f, rc, _p, name=name: disconnects[name].append(rc)
        victims[name] = member.wait_connected()
    victims["_hub"].subscribe(f"{COOP}/#")
    squatters = [
        ClientIdSquatter(coop_broker, "store-a", client_id)
        for client_id in ("shopkeeper-hub-riverside-hub-1", "_hub", "store-b", "shopkeeper-riverside-store-b")
    ]
    try:
        for squatter in squatters:
            assert squatter.connected.wait(10)
        victims["store-b"].publish(f"{COOP}/store-b/t1/footfall/hourly", b"b-still-here")
        victims["_hub"].wait_for(b"b-still-here")
        assert disconnects == {"_hub": [], "store-b": []}
    finally:
        for squatter in squatters:
            squatter.close()
        for member in victims.values():
            member.close()


def test_only_the_hub_publishes_the_coop_forecast_model_and_every_store_reads_it(members: dict[str, Member]) -> None:
    from agent.contract import forecast_model_topic

    topic = forecast_model_topic("riverside")
    assert topic.startswith(f"{COOP}/_hub/t1/")
    store_a, store_b, hub = members["store-a"], members["store-b"], members["_hub"]
    store_b.subscribe(topic, f"{COOP}/store-a/t1/#")
    store_a.publish(topic, b"forged-model-by-a")  # refused by the ACL: a store cannot write under _hub/
    store_a.publish(f"{COOP}/store-a/t1/footfall/hourly", b"a-own")  # same connection, so it arrives last
    hub.publish(topic, b"the-hubs-model")
    store_b.wait_for(b"a-own")
    store_b.wait_for(b"the-hubs-model")
    assert store_b.payloads() == {b"a-own", b"the-hubs-model"}


def test_a_store_writes_only_its_own_round_messages(members: dict[str, Member]) -> None:
    hub, store_a, store_b = members["_hub"], members["store-a"], members["store-b"]
    hub.subscribe(f"{COOP}/#")
    store_b.subscribe(f"{COOP}/store-b/#")
    store_a.publish(f"{COOP}/store-b/secagg/r-1/input", b"forged-input-by-a")  # another store's round message
    store_a.publish(f"{COOP}/_hub/secagg/r-1/unmask", b"forged-unmask-by-a")  # the hub's
    store_a.publish(f"{COOP}/store-a/secagg/r-1/input/extra", b"a-off-shape")  # not a <round>/<step> shape
    store_a.publish(f"{COOP}/store-a/secagg/r-1/advert", b"a-advert")  # same connection, so it arrives last
    hub.wait_for(b"a-advert")
    assert {p for t, p in hub.received if "/secagg/" in t} == {b"a-advert"}  # retained status of others aside
    assert store_b.payloads() == set()


def test_a_store_reads_the_round_broadcasts_and_only_its_own_shares(members: dict[str, Member]) -> None:
    hub, store_a, store_b = members["_hub"], members["store-a"], members["store-b"]
    for member in (store_a, store_b):
        member.subscribe(f"{COOP}/_hub/#", f"{COOP}/+/secagg/#")
    store_b.publish(f"{COOP}/store-b/secagg/r-1/shares", b"b-shares-to-hub")  # reaches the hub only
    hub.publish(f"{COOP}/_hub/secagg/r-1/shares/store-a", b"shares-for-a")
    hub.publish(f"{COOP}/_hub/secagg/r-1/shares/store-b", b"shares-for-b")
    hub.publish(f"{COOP}/_hub/secagg/r-1/adverts", b"adverts-for-all")
    for member, own in ((store_a, b"shares-for-a"), (store_b, b"shares-for-b")):
        member.wait_for(own)
        member.wait_for(b"adverts-for-all")
    assert store_a.payloads() == {b"shares-for-a", b"adverts-for-all"}
    assert store_b.payloads() == {b"shares-for-b", b"adverts-for-all", b"b-shares-to-hub"}  # its own, read back
