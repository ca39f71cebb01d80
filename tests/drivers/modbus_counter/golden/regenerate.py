"""Regenerate the Modbus counter golden cases: `python tests/drivers/modbus_counter/golden/regenerate.py`.

Expected output comes from protocols.md 3.3 (the verified reply) or from the register values the
simulator encoded, never from the driver's parser. input.bin is what slave 1 sent for FC03 requests;
expected.jsonl has one line per reply ({"registers": [...]} or {"exception": code}), then {"stats": {...}}.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[3]))

from firmware_sim.modbus_counter import frame  # noqa: E402

Part = bytes | tuple[bytes, dict[str, object]]


def registers(values: list[int]) -> tuple[bytes, dict[str, object]]:
    return frame(bytes([1, 3, 2 * len(values)]) + struct.pack(f">{len(values)}H", *values)), {"registers": values}


def counter(entries: int, exits: int, boot: int = 1) -> tuple[bytes, dict[str, object]]:
    return registers([entries >> 16, entries & 0xFFFF, exits >> 16, exits & 0xFFFF, 1, 0x0103, boot, 0x5343, 0])


def exception(code: int) -> tuple[bytes, dict[str, object]]:
    return frame(bytes([1, 0x83, code])), {"exception": code}


def write(case: str, parts: list[Part], stats: dict[str, int]) -> None:
    folder = HERE / case
    folder.mkdir(exist_ok=True)
    data, lines = b"", []
    for part in parts:
        if isinstance(part, tuple):
            data += part[0]
            lines.append(json.dumps(part[1], sort_keys=True))
        else:
            data += part
    (folder / "input.bin").write_bytes(data)
    (folder / "expected.jsonl").write_text("\n".join([*lines, json.dumps({"stats": stats}, sort_keys=True)]) + "\n")


def main() -> None:
    spec = bytes.fromhex("01 03 04 00 2A 00 27 9B E1")
    write("spec_reply_handwritten", [(spec, {"registers": [42, 39]})], {"frames": 1, "bad_frames": 0})
    write(
        "counter_replies",
        [counter(0, 0), counter(1, 0), counter(70000, 65536), counter(3, 2, boot=2)],
        {"frames": 4, "bad_frames": 0},
    )
    write(
        "exception_replies", [exception(2), counter(5, 4), exception(1), exception(4)], {"frames": 4, "bad_frames": 0}
    )
    good = counter(9, 9)[0]
    write(
        "garbage_and_bad_crc",
        [
            b"\x00\xfe\x13",
            counter(7, 7),
            good[:-1] + bytes([good[-1] ^ 0x55]),
            counter(8, 7),
            b"\x01noise",
            counter(8, 8),
        ],
        {"frames": 3, "bad_frames": 3},
    )
    write(
        "other_slave_is_ignored_as_garbage",
        [frame(bytes([2, 3, 2, 0, 9])), counter(1, 1)],
        {"frames": 1, "bad_frames": 1},
    )


if __name__ == "__main__":
    main()
