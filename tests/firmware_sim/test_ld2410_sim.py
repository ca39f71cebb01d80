"""The LD2410 simulator answers byte-exact ACKs, stays silent outside config mode and records truth."""

from __future__ import annotations

import os
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.ld2410 import LD2410Simulator, encode_report, main

SPEC_BASIC = bytes.fromhex("f4f3f2f1 0d00 02aa 02 5100 00 0000 3b 0000 5500 f8f7f6f5")


class Host:
    """The host end of the pty, raw."""

    def __init__(self, link: Path) -> None:
        self.fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def send(self, hex_bytes: str) -> None:
        os.write(self.fd, bytes.fromhex(hex_bytes))

    def wait_for(self, expected: bytes, timeout: float = 3.0) -> None:
        os.set_blocking(self.fd, False)
        deadline = time.monotonic() + timeout
        while expected not in self.buf:
            assert time.monotonic() < deadline, f"never received {expected.hex(' ')}"
            try:
                self.buf += os.read(self.fd, 4096)
            except BlockingIOError:
                time.sleep(0.01)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[LD2410Simulator]:
    simulator = LD2410Simulator(tmp_path / "radar", [(0.0, 2)], report_hz=20).start()
    yield simulator
    simulator.stop()


def test_basic_report_encoder_matches_the_published_layout() -> None:
    frame = encode_report(2)
    assert frame[:8] == SPEC_BASIC[:8] and frame[-6:] == SPEC_BASIC[-6:] and len(frame) == len(SPEC_BASIC)
    assert len(encode_report(3, engineering=True)) == 45


def test_handshake_acks_are_byte_exact(sim: LD2410Simulator) -> None:
    host = Host(sim.device.link_path)
    try:
        host.send("fd fc fb fa 04 00 ff 00 01 00 04 03 02 01")
        host.wait_for(bytes.fromhex("fd fc fb fa 08 00 ff 01 00 00 01 00 40 00 04 03 02 01"))
        host.send("fd fc fb fa 02 00 a0 00 04 03 02 01")
        host.wait_for(bytes.fromhex("fd fc fb fa 0c 00 a0 01 00 00 00 00 02 01 16 24 06 22 04 03 02 01"))
        host.send("fd fc fb fa 02 00 62 00 04 03 02 01")
        host.wait_for(bytes.fromhex("fd fc fb fa 04 00 62 01 00 00 04 03 02 01"))
        host.send("fd fc fb fa 02 00 fe 00 04 03 02 01")
        host.wait_for(bytes.fromhex("fd fc fb fa 04 00 fe 01 00 00 04 03 02 01"))
        host.wait_for(bytes.fromhex("f4 f3 f2 f1 23 00 01 aa 02"))  # engineering reports from now on
    finally:
        host.close()


def test_commands_outside_config_mode_get_no_reply(sim: LD2410Simulator) -> None:
    host = Host(sim.device.link_path)
    try:
        host.send("fd fc fb fa 02 00 62 00 04 03 02 01")
        host.wait_for(encode_report(2) * 3)
        assert b"\xfd\xfc\xfb\xfa" not in host.buf and not sim.engineering
        assert sim.commands == [0x0062]
    finally:
        host.close()


def test_cli_writes_the_presence_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    assert (
        main(["--link", str(tmp_path / "r"), "--timeline", "0:0,0.3:1,0.6:0", "--seconds", "1", "--truth", str(truth)])
        == 0
    )
    import json

    transitions = json.loads(truth.read_text())["transitions"]
    assert [t["present"] for t in transitions] == [False, True, False]
