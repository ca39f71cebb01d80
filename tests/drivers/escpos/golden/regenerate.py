"""Rebuild the simulator-made golden cases: input.bin from firmware_sim.escpos's encoder, expected.jsonl from
what the simulator was told to print (never from the parser). Hand-written cases (names starting with
"spec_") are left alone.

    .venv/bin/python tests/drivers/escpos/golden/regenerate.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from firmware_sim.escpos import CATALOGUE, SimBasket, SimLine, encode_receipt, expected_total_cents
from firmware_sim.traffic import parse_utc

HERE = Path(__file__).parent
T0 = parse_utc("2026-11-16T09:30:00Z")
P = {p.name: p for p in CATALOGUE}


def line(name: str, quantity: int = 1) -> SimLine:
    return SimLine(name, P[name].category, quantity, P[name].price_cents)


def expected(basket: SimBasket) -> dict[str, object]:
    """The Basket the driver must emit, as asdict() gives it (currency is the driver option, unset here)."""
    sign = -1 if basket.kind == "refund" else 1
    when = {
        "baeckerei": "%d.%m.%Y %H:%M",
        "boulangerie": "%d/%m/%Y %H:%M",
        "corner_store": "%Y-%m-%d %H:%M:%S",
    }[basket.layout]
    import datetime as dt

    return {
        "source_id": basket.receipt_no,
        "lines": [
            {"name": ln.name, "quantity": ln.quantity, "unit_price_cents": ln.unit_cents,
             "line_total_cents": sign * ln.total_cents, "sku": "", "pos_category": ""}
            for ln in basket.lines
        ],
        "total_cents": expected_total_cents(basket),
        "kind": basket.kind,
        "payment": basket.payment,
        "currency": "",
        "flagged": "",
        "pos_time": dt.datetime.fromtimestamp(basket.t_ns / 1e9, tz=dt.UTC).strftime(when),
    }  # fmt: skip


def cases() -> dict[str, list[SimBasket]]:
    """Case name -> the receipts printed back to back in that case."""
    out: dict[str, list[SimBasket]] = {}
    n = 0
    for layout in ("baeckerei", "boulangerie", "corner_store"):
        specs = {
            "single_item_card": ([line("Croissant")], "sale", "card"),
            "accented_names_cash": ([line("Brötchen", 3), line("Crème brûlée"), line("Käse Gouda")], "sale", "cash"),
            "many_items_quantities": (
                [line("Baguette", 2), line("Milch 1L"), line("Spülmittel", 2), line("Café crème", 3), line("Bananen")],
                "sale", "card",
            ),
            "refund": ([line("Pain au chocolat", 2), line("Küchenrolle")], "refund", "cash"),
            "void": ([line("Äpfel 1kg"), line("Jus d'orange", 2)], "void", "card"),
        }  # fmt: skip
        for case, (lines, kind, payment) in specs.items():
            n += 1
            out[f"{layout}_{case}"] = [
                SimBasket(str(4700 + n), T0 + n * 60_000_000_000, tuple(lines), kind, payment, layout)
            ]
    day = [
        SimBasket(str(5000 + i), T0 + i * 97_000_000_000, (line(p.name, 1 + i % 3), line("Croissant")), "sale",
                  "cash" if i % 2 else "card", ("baeckerei", "boulangerie", "corner_store")[i % 3])
        for i, p in enumerate(CATALOGUE[1:7])
    ]  # fmt: skip
    out["mixed_layouts_back_to_back"] = day
    return out


def main() -> None:
    for name, baskets in cases().items():
        folder = HERE / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / "input.bin").write_bytes(b"".join(encode_receipt(b) for b in baskets))
        text = "".join(json.dumps(expected(b), ensure_ascii=False) + "\n" for b in baskets)
        (folder / "expected.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
