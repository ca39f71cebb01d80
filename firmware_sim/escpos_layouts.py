"""More receipt layouts for the ESC/POS simulator: the shapes common POS software prints, seeded, with truth.

Written from the command set (protocols.md 4.1) like firmware_sim/escpos.py, whose Printer and catalogue
it reuses; it never imports the driver. Four layouts, as printed by common POS software on 80 mm printers:
- "single_line": name and line total on one line, "  2 @ $1.20" under it when the quantity is not 1 (US).
- "two_line": the name alone, then "  2 @ 1.20        2.40" (quantity, unit price, total) on the next line.
- "qty_prefix": "2 x Croissant        1,20     2,40" with the quantity first (German and Dutch tills).
- "right_aligned": "Croissant     2 x 1,20     2,40 A", the quantity column beside a right-aligned total.
Each receipt may carry a raster logo, a CODE39, CODE128 or QR code, a cash-drawer kick, a refund or void
marker, and is printed in one of the code pages the layout's market uses.

    receipts = generate(seed=7, layout="two_line", count=200)   # [(SimBasket, bytes)]
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from firmware_sim.escpos import (
    BOLD_OFF,
    BOLD_ON,
    CATALOGUE,
    CENTER,
    CUT_FEED,
    DOUBLE,
    DRAWER_KICK,
    ESC,
    LEFT,
    NORMAL,
    Printer,
    SimBasket,
    SimLine,
    columns,
    money,
)

LAYOUTS = ("single_line", "two_line", "qty_prefix", "right_aligned")
CODE_PAGES = {
    "single_line": ("cp437", "cp1252"),
    "two_line": ("cp437", "cp850", "cp1252"),
    "qty_prefix": ("cp850", "cp858", "cp1252"),
    "right_aligned": ("cp858", "cp1252"),
}
START_S = 1_794_816_000  # 2026-11-16T00:00:00Z


def _amount(cents: int, layout: str) -> str:
    if layout == "single_line":
        return money(cents, ".", "$")
    if layout == "two_line":
        return money(cents, ".")
    return money(cents, ",", trailing_minus=layout == "qty_prefix")


def _items(p: Printer, basket: SimBasket, layout: str) -> None:
    sign = -1 if basket.kind == "refund" else 1
    for ln in basket.lines:
        total, unit = _amount(sign * ln.total_cents, layout), _amount(ln.unit_cents, layout)
        if layout == "single_line":
            p.line(columns(ln.name, total))
            if ln.quantity != 1:
                p.line(f"  {ln.quantity} @ {unit}")
        elif layout == "two_line":
            p.line(ln.name).line(columns(f"  {ln.quantity} @ {unit}", total))
        elif layout == "qty_prefix":
            p.line(columns(f"{ln.quantity} x {ln.name}", f"{unit}  {total:>8}"))
        else:
            middle = f"{ln.quantity} x {unit}" if ln.quantity != 1 else ""
            p.line(columns(f"{ln.name:<22}{middle}", f"{total} A"))


def encode(basket: SimBasket, layout: str, code_page: str, extras: dict[str, bool]) -> bytes:
    """The ESC/POS bytes of one receipt in the given layout."""
    sign = -1 if basket.kind == "refund" else 1
    total = sign * basket.net_cents
    p = Printer(code_page, b"\r\n" if extras["crlf"] else b"\n").raw(CENTER)
    if extras["logo"]:
        p.logo(8, 24)
    p.raw(DOUBLE).line("Corner Café").raw(NORMAL).line("12 Market Square").raw(LEFT)
    when = dt.datetime.fromtimestamp(basket.t_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
    p.line(f"Receipt # {basket.receipt_no}").line(when).line("-" * 42)
    if basket.kind != "sale":
        p.raw(BOLD_ON).line("*** REFUND ***" if basket.kind == "refund" else "*** VOID ***").raw(BOLD_OFF)
    _items(p, basket, layout)
    p.line("-" * 42).raw(BOLD_ON + DOUBLE).line(columns("TOTAL", _amount(total, layout), 21)).raw(NORMAL + BOLD_OFF)
    if basket.payment == "cash":
        given = max(total, 0) + 500 - max(total, 0) % 500
        p.line(columns("CASH", _amount(given if total > 0 else total, layout)))
        if total > 0:
            p.line(columns("CHANGE", _amount(given - total, layout)))
    else:
        p.line(columns("CARD", _amount(total, layout)))
    p.line(columns("incl. VAT 7%", _amount(total * 7 // 107, layout)))
    p.raw(CENTER)
    if extras["qr"]:
        p.qr(f"https://shop.example/r/{basket.receipt_no}")
    elif extras["code39"]:
        p.barcode_code39(basket.receipt_no).line()
    else:
        p.barcode_code128(basket.receipt_no).line()
    p.line("Thank you!")
    if basket.payment == "cash" and not extras["kick_after_cut"]:
        p.raw(DRAWER_KICK)
    p.raw(ESC + b"d\x02" + CUT_FEED)
    if basket.payment == "cash" and extras["kick_after_cut"]:
        p.raw(DRAWER_KICK)
    return bytes(p.out)


def generate(seed: int, layout: str, count: int = 200) -> list[tuple[SimBasket, bytes]]:
    """`count` seeded receipts in one layout, each with the basket it must read back as."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    rng = np.random.default_rng(seed)
    out = []
    for number in range(count):
        picks = rng.choice(len(CATALOGUE), size=int(rng.integers(1, 7)), replace=False)
        lines = tuple(
            SimLine(
                CATALOGUE[i].name, CATALOGUE[i].category, int(rng.choice([1, 1, 2, 3, 12])), CATALOGUE[i].price_cents
            )
            for i in picks
        )
        draw = rng.random()
        kind = "refund" if draw < 0.1 else "void" if draw < 0.15 else "sale"
        payment = "cash" if rng.random() < 0.4 else "card"
        basket = SimBasket(
            f"{seed % 100:02d}{number:05d}", (START_S + 60 * number) * 10**9, lines, kind, payment, layout
        )
        extras = {key: bool(rng.random() < 0.5) for key in ("logo", "qr", "code39", "crlf", "kick_after_cut")}
        code_page = CODE_PAGES[layout][int(rng.integers(len(CODE_PAGES[layout])))]
        out.append((basket, encode(basket, layout, code_page, extras)))
    return out
