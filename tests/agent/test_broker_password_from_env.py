"""The coop broker's password may be written "env:VARIABLE" (docs/operations.md, Secrets): the publisher reads
the variable when it connects, against a real Mosquitto that requires a password (mosquitto_passwd file). It
used to hand paho the text "env:..." itself, which the broker refused: no summary ever left."""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

import pytest

from agent.demo.local_broker import LocalBroker
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from tests.conftest import ManualClock, make_config

USER, PASSWORD = "store-0042", "a long broker password"


def broker_with_password(tmp_path: Path) -> LocalBroker:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True, capture_output=True)
    passwd.chmod(0o600)
    extra = f"user {getpass.getuser()}\nallow_anonymous false\npassword_file {passwd}\n"
    broker = LocalBroker(tmp_path / "broker", extra_config=extra)
    # allow_anonymous false must win over the generated "allow_anonymous true": Mosquitto takes the last one.
    return broker


def delivered(store: Store) -> int:
    return int(store.conn().execute("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NOT NULL").fetchone()[0])


@pytest.mark.parametrize(("variable", "arrives"), [(PASSWORD, True), ("not the password", False)])
def test_an_env_password_is_read_when_the_publisher_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, arrives: bool
) -> None:
    monkeypatch.setenv("COOP_BROKER_PASSWORD", variable)
    with broker_with_password(tmp_path) as broker:
        base = make_config(tmp_path, broker.port)
        text = base.path.read_text().replace(
            f"port = {broker.port}\n",
            f'port = {broker.port}\nusername = "{USER}"\npassword = "env:COOP_BROKER_PASSWORD"\n',
        )
        base.path.write_text(text)
        from agent.config import load_config

        config = load_config(base.path, drivers={})
        assert config.mqtt.password == "env:COOP_BROKER_PASSWORD"  # the config holds the name, never the value
        clock = ManualClock()
        store = Store(config.db_path)
        releaser = WindowReleaser(config, store, clock)
        clock.advance(2 * 3600 + 121)
        assert releaser.tick() == 2
        publisher = Publisher(config, store, clock)
        publisher.start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and delivered(store) == 0:
                time.sleep(0.05)
            if not arrives:
                time.sleep(1.0)  # give a wrongly accepted connection time to deliver
        finally:
            publisher.stop()
        assert (delivered(store) > 0) is arrives
