"""The Modbus counter simulator: CRC, our register map, exception replies, silence on bad frames."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.modbus_counter import ModbusCounterSimulator, crc16_modbus, frame, main, seeded_crossings


@pytest.mark.parametrize(
    ("body", "crc"),
    [("01 03 00 00 00 02", 0x0BC4), ("01 03 04 00 2A 00 27", 0xE19B), ("01 03 00 00 00 0A", 0xCDC5)],
)
def test_crc_reproduces_the_verified_examples(body: str, crc: int) -> None:
    assert crc16_modbus(bytes.fromhex(body)) == crc


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ModbusCounterSimulator]:
    simulator = ModbusCounterSimulator(tmp_path / "c", slave=1, boot_count=3)
    yield simulator
    simulator.stop()


def test_fc03_returns_the_register_map(sim: ModbusCounterSimulator) -> None:
    for _ in range(70000):
        sim.cross("entry")
    sim.cross("exit")
    reply = sim.answer(bytes.fromhex("01 03 00 00 00 09 85 CC"))
    assert reply[:3] == bytes([1, 3, 18]) and crc16_modbus(reply[:-2]) == struct.unpack("<H", reply[-2:])[0]
    assert struct.unpack(">9H", reply[3:-2]) == (1, 70000 - 65536, 0, 1, 1, 0x0103, 3, 0x5343, 0)


def test_fc04_reads_the_same_values(sim: ModbusCounterSimulator) -> None:
    assert sim.answer(frame(bytes.fromhex("01 04 00 07 00 01")))[3:5] == b"\x53\x43"


@pytest.mark.parametrize(
    ("request_body", "code"),
    [("01 03 00 08 00 02", 2), ("01 03 00 00 00 00", 3), ("01 03 00 00 00 7E", 3), ("01 06 00 00 00 01", 1)],
)
def test_bad_requests_get_exception_replies(sim: ModbusCounterSimulator, request_body: str, code: int) -> None:
    request = frame(bytes.fromhex(request_body))
    assert sim.answer(request) == frame(bytes([1, request[1] | 0x80, code]))


def test_bad_crc_and_other_slaves_get_no_reply(sim: ModbusCounterSimulator) -> None:
    assert sim.answer(bytes.fromhex("01 03 00 00 00 02 C4 0C")) == b""
    assert sim.answer(frame(bytes.fromhex("02 03 00 00 00 02"))) == b""


def test_seeded_crossings_are_reproducible() -> None:
    assert seeded_crossings(4, 100, 0.5) == seeded_crossings(4, 100, 0.5)
    assert seeded_crossings(4, 100, 0.5) != seeded_crossings(5, 100, 0.5)


def test_cli_writes_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "t.json"
    assert (
        main(["--link", str(tmp_path / "c"), "--seconds", "0.5", "--rate", "40", "--seed", "1", "--truth", str(truth)])
        == 0
    )
    data = json.loads(truth.read_text())
    assert data["entries"] + data["exits"] > 0 and data["device"] == "modbus_counter"
