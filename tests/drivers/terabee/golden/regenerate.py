"""Regenerate the golden cases from the simulator encoder.

Run `python tests/drivers/terabee/golden/regenerate.py`.

Expected output comes from the values the simulator encoded, never from the driver's parser. Each
case folder holds input.bin and expected.jsonl: one line per count frame
({"sensor_id", "people", "count_in", "count_out"}), then one {"stats": {...}} line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[3]))

from firmware_sim.terabee import encode_count_frame, encode_distance_frame  # noqa: E402


def frame(count_in: int, count_out: int, sensor_id: int | None = None) -> tuple[bytes, dict[str, int | None]]:
    people = count_in - count_out
    return (
        encode_count_frame(count_in, count_out, people, sensor_id),
        {
            "sensor_id": sensor_id,
            "people": people,
            "count_in": count_in % 65536,
            "count_out": count_out % 65536,
        },
    )


def write(case: str, parts: list[bytes | tuple[bytes, dict[str, int | None]]], stats: dict[str, int]) -> None:
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
    short = [frame(i, j) for i, j in [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2), (3, 3)]]
    write("short_frames", list(short), {"count_frames": 6, "distance_frames": 0, "bad_frames": 0})
    long = [frame(i, j, 0x5E000001) for i, j in [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2)]]
    write("long_frames_with_sensor_id", list(long), {"count_frames": 5, "distance_frames": 0, "bad_frames": 0})
    mixed: list[bytes | tuple[bytes, dict[str, int | None]]] = [
        encode_distance_frame(1200, 1300),
        frame(1, 0),
        encode_distance_frame(900, 1650),
        encode_distance_frame(0x4444, 0x5043),
        frame(1, 1),
        encode_distance_frame(1000, 1000),
    ]
    write("distance_frames_interleaved", mixed, {"count_frames": 2, "distance_frames": 4, "bad_frames": 0})
    noisy: list[bytes | tuple[bytes, dict[str, int | None]]] = [
        b"\x00\xff\x13",
        frame(5, 2),
        b"garbage!",
        frame(6, 2),
        b"\x01\x02\x03\x04\x05",
        frame(6, 3),
    ]
    write("garbage_between_frames", noisy, {"count_frames": 3, "distance_frames": 0, "bad_frames": 3})
    good = frame(10, 4)
    bad_crc = good[0][:-1] + bytes([good[0][-1] ^ 0x5A])
    broken: list[bytes | tuple[bytes, dict[str, int | None]]] = [
        frame(9, 4),
        bad_crc,
        good[0][:6],
        frame(10, 5),
        frame(11, 5),
    ]
    write("bad_crc_and_truncated", broken, {"count_frames": 3, "distance_frames": 0, "bad_frames": 2})
    wrap = [frame(65534, 0), frame(65535, 0), frame(65536, 0), frame(65537, 1)]
    write("u16_wrap", list(wrap), {"count_frames": 4, "distance_frames": 0, "bad_frames": 0})


if __name__ == "__main__":
    main()
