"""Regenerate the LD2410 golden cases: `python tests/drivers/ld2410/golden/regenerate.py`.

Expected output comes from protocols.md (the published traces, decoded there by hand) or from the
values the simulator encoded, never from the driver's parser. Each case folder holds input.bin and
expected.jsonl: one line per frame ({"report": {...}} or {"ack": {...}}), then one {"stats": {...}} line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[3]))

from firmware_sim.ld2410 import encode_ack, encode_report  # noqa: E402

SPEC_BASIC = bytes.fromhex("f4f3f2f1 0d00 02aa 02 5100 00 0000 3b 0000 5500 f8f7f6f5")
SPEC_ENGINEERING = bytes.fromhex(
    "f4f3f2f1 2300 01aa 03 1e00 3c 0000 39 0000 0808 3c2205030304030605 000039101306060804 6001 5500 f8f7f6f5"
)
SPEC_ACKS = [
    ("fdfcfbfa 0800 ff01 0000 01004000 04030201", 0xFF, "01004000"),
    ("fdfcfbfa 0400 fe01 0000 04030201", 0xFE, ""),
    ("fdfcfbfa 0c00 a001 0000 0000020116240622 04030201", 0xA0, "0000020116240622"),
    (
        "fdfcfbfa 1c00 6101 0000 aa080808 141414141414141414 191919191919191919 0500 04030201",
        0x61,
        "aa080808141414141414141414191919191919191919" + "0500",
    ),
    ("fdfcfbfa 0400 6201 0000 04030201", 0x62, ""),
    ("fdfcfbfa 0a00 a501 0000 8f272eb80f65 04030201", 0xA5, "8f272eb80f65"),
    ("fdfcfbfa 0600 ab01 0000 0100 04030201", 0xAB, "0100"),
    ("fdfcfbfa 0800 ae01 0000 00800000 04030201", 0xAE, "00800000"),
]
BASIC_KEYS = ("engineering", "target_state", "moving_distance_cm", "moving_energy", "still_distance_cm")


def report(
    engineering: bool,
    target: int,
    move: tuple[int, int],
    still: tuple[int, int],
    detect: int,
    gates: tuple[list[int], list[int]] | None = None,
    light: int | None = None,
    out_pin: int | None = None,
) -> dict[str, object]:
    value: dict[str, object] = {
        "engineering": engineering,
        "target_state": target,
        "moving_distance_cm": move[0],
        "moving_energy": move[1],
        "still_distance_cm": still[0],
        "still_energy": still[1],
        "detect_distance_cm": detect,
    }
    if gates is not None:
        value.update(
            max_moving_gate=8,
            max_still_gate=8,
            moving_gates=gates[0],
            still_gates=gates[1],
            light=light,
            out_pin=out_pin,
        )
    return {"report": value}


def sim_report(target: int, engineering: bool = False) -> tuple[bytes, dict[str, object]]:
    """The simulator's frame and the values it put in (see firmware_sim.ld2410.encode_report)."""
    m, s = target & 1, (target >> 1) & 1
    gates = ([30 * m] * 9, [25 * s] * 9) if engineering else None
    expected = report(
        engineering,
        target,
        (81 * m, 60 * m),
        (120 * s, 59 * s),
        150 if target else 0,
        gates,
        0x60 if engineering else None,
        1 if engineering else None,
    )
    return encode_report(target, engineering=engineering), expected


def write(case: str, parts: list[bytes | tuple[bytes, dict[str, object]]], stats: dict[str, int]) -> None:
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
    write(
        "spec_report_traces",
        [
            (SPEC_BASIC, report(False, 2, (81, 0), (0, 59), 0)),
            (
                SPEC_ENGINEERING,
                report(
                    True,
                    3,
                    (30, 60),
                    (0, 57),
                    0,
                    ([60, 34, 5, 3, 3, 4, 3, 6, 5], [0, 0, 57, 16, 19, 6, 6, 8, 4]),
                    0x60,
                    1,
                ),
            ),
        ],
        {"reports": 2, "acks": 0, "bad_frames": 0},
    )
    write(
        "spec_ack_traces",
        [(bytes.fromhex(raw), {"ack": {"cmd": cmd, "status": 0, "data": data}}) for raw, cmd, data in SPEC_ACKS],
        {"reports": 0, "acks": len(SPEC_ACKS), "bad_frames": 0},
    )
    write(
        "report_stream_with_acks",
        [
            sim_report(0),
            sim_report(1),
            (encode_ack(0xFF, 0, b"\x01\x00\x40\x00"), {"ack": {"cmd": 0xFF, "status": 0, "data": "01004000"}}),
            (encode_ack(0x62, 0), {"ack": {"cmd": 0x62, "status": 0, "data": ""}}),
            sim_report(3, engineering=True),
            sim_report(2, engineering=True),
            (encode_ack(0x60, 1), {"ack": {"cmd": 0x60, "status": 1, "data": ""}}),
        ],
        {"reports": 4, "acks": 3, "bad_frames": 0},
    )
    good = sim_report(1)
    write(
        "garbage_between_frames",
        [
            b"\x00\xff\x13",
            sim_report(0),
            b"noise!",
            good,
            b"\xf4\xf3",
            sim_report(2),
        ],
        {"reports": 3, "acks": 0, "bad_frames": 3},
    )
    cut = encode_report(2)
    wrong_footer = cut[:-1] + b"\x00"
    write(
        "truncated_and_bad_footer",
        [
            sim_report(1),
            cut[:12],
            sim_report(2),
            wrong_footer,
            sim_report(0),
            b"\xf4\xf3\xf2\xf1\xff\x7f",
            sim_report(3),
        ],
        {"reports": 4, "acks": 0, "bad_frames": 3},
    )


if __name__ == "__main__":
    main()
