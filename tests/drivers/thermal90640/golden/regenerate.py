"""Regenerate the golden cases from the simulator's encoder.

Run `python tests/drivers/thermal90640/golden/regenerate.py`.

Expected output comes from the values the simulator encoded, never from the driver's parser. Each
case folder holds input.bin and expected.jsonl: one line per frame ({"ta_c100", "pixels"}, pixels
row by row), then one {"stats": {...}} line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[3]))

from firmware_sim.thermal90640 import (  # noqa: E402
    Walker,
    emissivity_reply,
    encode_frame,
    render_frames,
    scenario,
)

Part = bytes | tuple[bytes, dict[str, object]]


def frame(pixels: np.ndarray, ta_c100: int = 2650) -> tuple[bytes, dict[str, object]]:
    return encode_frame(pixels, ta_c100), {"ta_c100": ta_c100, "pixels": [int(p) for p in pixels.ravel()]}


def write(case: str, parts: list[Part], stats: dict[str, object]) -> None:
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


def stats(frames: int, replies: int = 0, emissivity: float | None = None, **bad: int) -> dict[str, object]:
    return {
        "frames": frames,
        "bad_frames": sum(bad.values()),
        "bad_reasons": bad,
        "replies": replies,
        "emissivity": emissivity,
    }


def main() -> None:
    scene = scenario("single_walkers", seed=5)
    pixels = render_frames(scene)[10:40:6]  # five frames with a person walking through
    clean = [frame(p, 2600 + i) for i, p in enumerate(pixels)]
    write("clean_frames", list(clean), stats(5))

    write(
        "garbage_between_frames",
        [b"\x00\x01\x02junk", clean[0], b"\xa5\x35\x02\xdc\x13", clean[1], b"\x5a", clean[2]],
        stats(3, garbage=3),
    )

    corrupt = bytearray(clean[1][0])
    corrupt[600] ^= 0x40
    write("checksum_failure", [clean[0], bytes(corrupt), clean[2], clean[3]], stats(3, checksum=1))

    write("truncated_frame", [clean[0], clean[1][0][:700], clean[2], clean[3][0][:5], clean[4]], stats(3, truncated=2))

    # 5A 5A 5F 13 = emissivity 0.95; 5A 5A 02 B6 = emissivity 0.02, whose first three bytes look like a header;
    # a lone 5A 5A right before a header is garbage.
    trap: list[Part] = [
        emissivity_reply(95), clean[0], emissivity_reply(2), clean[1], b"\x5a\x5a", clean[2],
        emissivity_reply(2) + emissivity_reply(95), clean[3],
    ]  # fmt: skip
    write("emissivity_reply_trap", trap, stats(4, replies=4, emissivity=0.95, garbage=1))

    tricky = np.full((24, 32), 2200, dtype=np.int16)
    tricky[3, 4:8] = [0x5A5A, 0x0602, 0x5A5A, 0x0602]  # the header's words inside pixel data
    tricky[20, 30] = -1234  # negative temperatures are signed
    fake_header = b"\x5a\x5a\x02\x06" + bytes(range(40))
    write("header_pattern_in_pixels", [frame(tricky), fake_header, frame(tricky, -500)], stats(2, truncated=1))

    person = render_frames(
        type(scene)("one", 3, 8.0, 1.0, (Walker(0.0, 16.0, 11.5, 11.5, 1.0, turn_y=11.5, dwell_s=5.0),))
    )[0]
    write("one_person_standing", [frame(person, 0x0E8D)], stats(1))


if __name__ == "__main__":
    main()
