"""The hand-written golden cases ("spec_*"): bytes typed from the command table in protocols.md 4.1,
not produced by the simulator, with the expected baskets worked out by hand.

    .venv/bin/python tests/drivers/escpos/golden/spec_cases.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent


def basket(source_id: str, lines: list[tuple[str, int, int, int]], total: int, **extra: str) -> dict[str, object]:
    return {
        "source_id": source_id,
        "lines": [
            {"name": n, "quantity": q, "unit_price_cents": u, "line_total_cents": t, "sku": "", "pos_category": ""}
            for n, q, u, t in lines
        ],
        "total_cents": total,
        "kind": extra.get("kind", "sale"),
        "payment": extra.get("payment", ""),
        "currency": "",
        "flagged": extra.get("flagged", ""),
        "pos_time": extra.get("pos_time", ""),
    }


CASES: dict[str, tuple[bytes, list[dict[str, object]]]] = {}

# 1. No ESC @, CRLF line ends, GS V 0 (one-argument cut), no receipt number: source_id is the text hash.
text1 = "KIOSK AM MARKT\nZeitung           2.50\nKaffee            1.80\nTOTAL             4.30"
CASES["spec_crlf_no_init_hash_id"] = (
    b"KIOSK AM MARKT\r\nZeitung           2.50\r\nKaffee            1.80\r\nTOTAL             4.30\r\n\x1dV\x00",
    [basket("sha256:" + hashlib.sha256(text1.encode()).hexdigest()[:24],
            [("Zeitung", 1, 250, 250), ("Kaffee", 1, 180, 180)], 430)],
)  # fmt: skip

# 2. Every skip-by-length command carries payload bytes that look like text and must not be read:
#    ESC * m=33 nL=2 (3*2 bytes), GS ( L pL=4, FS p 1 0, GS v 0 (2 x 2 bytes), GS k m=4 NUL-terminated,
#    GS k m=73 n=5, GS ( k QR store (cn 49, fn 80). ESC t 2 (CP850) for "Müsli", ESC t 17 (CP866) for "Хлеб".
CASES["spec_images_barcodes_qr_code_pages"] = (
    b"\x1b@"
    b"\x1b*\x21\x02\x00TOTAL\n"  # 24-dot bit image, 6 bytes: "TOTAL\n"
    b"\x1d(L\x04\x00\x30\x45\x0a\x0a"  # graphics, 4 bytes including two LFs
    b"\x1cp\x01\x00"  # NV logo 1
    b"\x1dv0\x00\x02\x00\x02\x00\n\n\n\n"  # raster 2 bytes x 2 rows, all LF
    b"Receipt No: 881\n"
    b"\x1bt\x02M\x81sli              3.20\n"
    b"\x1bt\x11\x95\xab\xa5\xa1               1.10\n"
    b"\x1bE\x01TOTAL   4.30\n\x1bE\x00"
    b"\x1dk\x04881\x00"
    b"\x1dk\x49\x05{B\n\n\n"
    b"\x1d(k\x06\x00\x31\x50\x30ab\n"
    b"\x1dVA\x00",
    [basket("881", [("Müsli", 1, 320, 320), ("Хлеб", 1, 110, 110)], 430)],
)

# 3. Items that do not add up to the total: emitted, flagged so the agent keeps it local.
CASES["spec_total_mismatch_flagged"] = (
    b"\x1b@Bon 3001\n2 x Apfel 0,50 1,00\nBirne      0,80\nSUMME      2,00\n\x1dV\x01",
    [basket("3001", [("Apfel", 2, 50, 100), ("Birne", 1, 80, 80)], 200, flagged="total_mismatch")],
)

# 4. ISO-8859-15 (ESC t 40, the euro sign is 0xA4), a quantity line *before* its item, a negative total
#    without a marker word (a refund), a drawer pulse by DLE DC4 1 0 1, and a receipt closed by ESC @.
CASES["spec_qty_first_euro_negative_total"] = (
    b"\x1b@\x1bt\x28Ticket 77-12\n2 @ \xa41,20\nCroissant      -\xa42,40\nTOTAL      -\xa42,40\n"
    b"\x10\x14\x01\x00\x01"
    b"\x1b@",
    [basket("77-12", [("Croissant", 2, 120, -240)], -240, kind="refund", payment="cash")],
)

# 5. A report without a total is not a basket (counted as bad "no_total"), and a cut receipt is released
#    by the text that follows it; the last receipt has no cut and ends with the input.
CASES["spec_report_then_receipts_without_cut"] = (
    b"\x1b@X-REPORT\nSales count: 12\n\x1dVB\x00"
    b"TRANSACTION 99\nTea    1.00\nTOTAL  1.00\nCASH   1.00\n\x1dV0"
    b"TRANSACTION 100\n\tMilk\t0.90\nTOTAL  0.90\nVISA   0.90\n",
    [basket("99", [("Tea", 1, 100, 100)], 100, payment="cash"),
     basket("100", [("Milk", 1, 90, 90)], 90, payment="card")],
)  # fmt: skip


def main() -> None:
    for name, (data, expected) in CASES.items():
        folder = HERE / name
        folder.mkdir(exist_ok=True)
        (folder / "input.bin").write_bytes(data)
        (folder / "expected.jsonl").write_text(
            "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in expected), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
