"""ESC/POS receipt printer simulator: a POS printing a seeded day of receipts on a pty, with ground truth.

Written from the published command set (protocols.md 4.1: python-escpos `constants.py`, escpos-tools
`Printout.php`, escpos-printer-db code pages). It deliberately does not import the driver's
protocol module: a shared encoder and decoder would hide a misread spec on both sides.

Library API (no pty needed):
    baskets = generate_baskets(seed, start_ns, end_ns, layout="baeckerei")
    data = encode_receipt(baskets[0])            # byte-exact ESC/POS for one receipt
    truth = ground_truth(baskets, start_ns, end_ns)
Command line:
    python -m firmware_sim.escpos --link /tmp/sim/printer --seed 7 --start 2026-11-16T00:00:00Z \
        --hours 24 --factor 1440 --truth truth.json [--layout baeckerei|boulangerie|corner_store|mixed]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.clock import AcceleratedClock
from firmware_sim.pty_device import PtyDevice
from firmware_sim.traffic import HOUR_NS, HOUR_SHAPE, NS_PER_S, hour_iso, parse_utc

CATEGORIES = ("bakery", "dairy", "produce", "drinks", "household", "other")
LAYOUTS = ("baeckerei", "boulangerie", "corner_store")
ESC, GS, DLE = b"\x1b", b"\x1d", b"\x10"
INIT, CUT_FEED = ESC + b"@", GS + b"V" + bytes([66, 3])  # GS V 66 n: feed n lines, then cut
BOLD_ON, BOLD_OFF = ESC + b"E\x01", ESC + b"E\x00"
DOUBLE, NORMAL = ESC + b"!" + bytes([0x38]), ESC + b"!" + bytes([0x00])  # emphasised, double height and width
CENTER, LEFT = ESC + b"a\x01", ESC + b"a\x00"
DRAWER_KICK = ESC + b"p" + bytes([0, 25, 250])  # ESC p m t1 t2: pin 2, 50 ms on, 500 ms off
CODE_TABLE = {"cp437": 0, "cp850": 2, "cp1252": 16, "cp858": 19}  # ESC t n


@dataclasses.dataclass(frozen=True)
class Product:
    """One catalogue entry: every name encodes in CP437, CP850, CP858 and CP1252."""

    name: str
    category: str
    price_cents: int


CATALOGUE: tuple[Product, ...] = (
    Product("Brötchen", "bakery", 45),
    Product("Croissant", "bakery", 120),
    Product("Crème brûlée", "bakery", 450),
    Product("Baguette", "bakery", 110),
    Product("Pain au chocolat", "bakery", 140),
    Product("Roggenbrot 750g", "bakery", 395),
    Product("Milch 1L", "dairy", 119),
    Product("Käse Gouda", "dairy", 289),
    Product("Joghurt nature", "dairy", 79),
    Product("Beurre doux", "dairy", 259),
    Product("Äpfel 1kg", "produce", 249),
    Product("Bananen", "produce", 189),
    Product("Tomaten", "produce", 299),
    Product("Café crème", "drinks", 280),
    Product("Jus d'orange", "drinks", 230),
    Product("Mineralwasser", "drinks", 69),
    Product("Spülmittel", "household", 149),
    Product("Küchenrolle", "household", 329),
    Product("Zeitung", "other", 250),
    Product("Geschenkkarte", "other", 1000),
)


@dataclasses.dataclass(frozen=True)
class SimLine:
    """One printed line item: integer cents, whole units."""

    name: str
    category: str
    quantity: int
    unit_cents: int

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_cents


@dataclasses.dataclass(frozen=True)
class SimBasket:
    """One receipt the simulated POS prints: what the driver must read back."""

    receipt_no: str
    t_ns: int
    lines: tuple[SimLine, ...]
    kind: str = "sale"  # "sale", "refund" or "void"
    payment: str = "card"  # "cash" (the drawer is kicked) or "card"
    layout: str = "baeckerei"

    @property
    def net_cents(self) -> int:
        """Sum of the line totals (before any tax the layout adds)."""
        return sum(line.total_cents for line in self.lines)

    def as_json(self) -> dict[str, Any]:
        """The basket as written into the truth file (refund line totals negative)."""
        sign = -1 if self.kind == "refund" else 1
        return {
            "receipt_no": self.receipt_no,
            "time": dt.datetime.fromtimestamp(self.t_ns / NS_PER_S, tz=dt.UTC).isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "payment": self.payment,
            "layout": self.layout,
            "lines": [
                {
                    "name": ln.name,
                    "category": ln.category,
                    "quantity": ln.quantity,
                    "unit_price_cents": ln.unit_cents,
                    "line_total_cents": sign * ln.total_cents,
                }
                for ln in self.lines
            ],
        }


# -- text formatting ---------------------------------------------------------------------------------
def money(cents: int, point: str = ".", symbol: str = "", trailing_minus: bool = False) -> str:
    """2.40 / 2,40 / $2.40 / -2,40 / 2,40- (the minus where the layout prints it)."""
    text = f"{abs(cents) // 100}{point}{abs(cents) % 100:02d}"
    if cents < 0:
        return f"{symbol}{text}-" if trailing_minus else f"-{symbol}{text}"
    return f"{symbol}{text}"


def columns(left: str, right: str, width: int = 42) -> str:
    """Left text and a right-aligned amount on one 42-column line, at least two spaces apart."""
    return f"{left}{' ' * max(2, width - len(left) - len(right))}{right}"


class Printer:
    """Builds the bytes of one receipt: text in the current code page plus commands."""

    def __init__(self, code_page: str, newline: bytes = b"\n") -> None:
        self.code_page, self.newline = code_page, newline
        self.out = bytearray(INIT + ESC + b"t" + bytes([CODE_TABLE[code_page]]))

    def raw(self, data: bytes) -> Printer:
        self.out += data
        return self

    def line(self, text: str = "") -> Printer:
        self.out += text.encode(self.code_page) + self.newline
        return self

    def logo(self, width_bytes: int = 8, height: int = 24) -> Printer:
        """A raster logo: GS v 0 m xL xH yL yH, then width_bytes * height bytes (a checker pattern)."""
        body = bytes((0xAA if (row // 4) % 2 else 0x55) for row in range(height) for _ in range(width_bytes))
        self.out += GS + b"v0\x00" + bytes([width_bytes, 0, height, 0]) + body
        return self

    def barcode_code39(self, data: str) -> Printer:
        """GS k m=4 (CODE39), NUL-terminated, with HRI below (GS H 2) and height 60 dots (GS h)."""
        self.out += GS + b"H\x02" + GS + b"h\x3c" + GS + b"k\x04" + data.encode("ascii") + b"\x00"
        return self

    def barcode_code128(self, data: str) -> Printer:
        """GS k m=73 (CODE128), length-prefixed, code set B."""
        payload = b"{B" + data.encode("ascii")
        self.out += GS + b"w\x02" + GS + b"k" + bytes([73, len(payload)]) + payload
        return self

    def qr(self, data: str) -> Printer:
        """GS ( k: model 2, module size 6, error level M, store data, print."""
        stored = data.encode("ascii")
        for block in (b"\x31\x41\x32\x00", b"\x31\x43\x06", b"\x31\x45\x31", b"\x31\x50\x30" + stored, b"\x31\x51\x30"):
            self.out += GS + b"(k" + len(block).to_bytes(2, "little") + block
        return self


def _when(basket: SimBasket, fmt: str) -> str:
    return dt.datetime.fromtimestamp(basket.t_ns / NS_PER_S, tz=dt.UTC).strftime(fmt)


def _baeckerei(basket: SimBasket, cash_given: int) -> bytes:
    """German bakery: CP858, CRLF, name + total then "  2 x 1,20", SUMME, trailing minus, CODE128."""
    sign = -1 if basket.kind == "refund" else 1
    p = Printer("cp858", b"\r\n").raw(CENTER + DOUBLE).line("Bäckerei Sonnenschein").raw(NORMAL)
    p.line("Hauptstraße 12, 10115 Berlin").raw(LEFT).line(f"Bon-Nr: {basket.receipt_no}   Kasse 1")
    p.line(_when(basket, "%d.%m.%Y %H:%M")).line("-" * 42)
    if basket.kind != "sale":
        p.raw(BOLD_ON).line("*** RETOURE ***" if basket.kind == "refund" else "*** STORNO ***").raw(BOLD_OFF)
    for ln in basket.lines:
        p.line(columns(ln.name, money(sign * ln.total_cents, ",", trailing_minus=True) + " A"))
        if ln.quantity > 1:
            p.line(f"  {ln.quantity} x {money(ln.unit_cents, ',')}")
    total = sign * basket.net_cents
    p.line("-" * 42).raw(BOLD_ON + GS + b"!\x11").line(columns("SUMME EUR", money(total, ",", trailing_minus=True), 21))
    p.raw(GS + b"!\x00" + BOLD_OFF)
    if basket.payment == "cash":
        p.line(columns("BAR", money(cash_given, ","))).line(columns("Rückgeld", money(cash_given - total, ",")))
    else:
        p.line(columns("EC-Karte", money(total, ",", trailing_minus=True)))
    p.line(columns("MwSt 7% A netto", money(sign * basket.net_cents * 100 // 107, ",", trailing_minus=True)))
    p.raw(CENTER).barcode_code128(basket.receipt_no).line().line("Vielen Dank für Ihren Einkauf!")
    if basket.payment == "cash":
        p.raw(DRAWER_KICK)  # this POS opens the drawer before the cut
    return bytes(p.raw(ESC + b"d\x03" + CUT_FEED).out)


def _boulangerie(basket: SimBasket, cash_given: int) -> bytes:
    """French bakery: CP1252, logo, qty-first "2 x Crème brûlée 4,50 9,00", QR code, kick after the cut."""
    sign = -1 if basket.kind == "refund" else 1
    p = Printer("cp1252").raw(CENTER).logo().raw(DOUBLE).line("BOULANGERIE DU PONT").raw(NORMAL)
    p.line("3 rue de la Gare, 69002 Lyon").raw(LEFT).line(f"Ticket: {basket.receipt_no}")
    p.line(_when(basket, "%d/%m/%Y %H:%M")).line("=" * 42)
    if basket.kind != "sale":
        p.line("*** REMBOURSEMENT ***" if basket.kind == "refund" else "*** ANNULÉ ***")
    for ln in basket.lines:
        amount = money(sign * ln.total_cents, ",")
        if ln.quantity > 1:
            p.line(columns(f"{ln.quantity} x {ln.name} {money(ln.unit_cents, ',')}", amount))
        else:
            p.line(columns(ln.name, amount))
    total = sign * basket.net_cents
    p.line("=" * 42).raw(DOUBLE).line(columns("TOTAL EUR", money(total, ","), 21)).raw(NORMAL)
    if basket.payment == "cash":
        p.line(columns("ESPECES", money(cash_given, ","))).line(columns("Rendu", money(cash_given - total, ",")))
    else:
        p.line(columns("CB", money(total, ",")))
    p.raw(CENTER).qr(f"https://boulangerie.example/t/{basket.receipt_no}").line("Merci de votre visite !")
    p.raw(ESC + b"d\x02" + CUT_FEED)
    if basket.payment == "cash":
        p.raw(DRAWER_KICK)  # this POS opens the drawer after the cut
    return bytes(p.out)


def _corner_store(basket: SimBasket, cash_given: int) -> bytes:
    """US corner store: CP437, logo, tabs, "  2 @ $1.20" under the item, tax on household, CODE39."""
    sign = -1 if basket.kind == "refund" else 1
    tax = sign * (sum(ln.total_cents for ln in basket.lines if ln.category == "household") * 8 // 100)
    subtotal = sign * basket.net_cents
    p = Printer("cp437").raw(CENTER).logo(6, 16).raw(BOLD_ON).line("CORNER STORE #12").raw(BOLD_OFF)
    p.line("100 Main St, Springfield").raw(LEFT).line(f"RECEIPT # {basket.receipt_no}")
    p.line(_when(basket, "%Y-%m-%d %H:%M:%S")).line("-" * 42)
    if basket.kind != "sale":
        p.raw(DOUBLE).line("REFUND" if basket.kind == "refund" else "VOID").raw(NORMAL)
    for ln in basket.lines:
        p.raw(ln.name.encode("cp437") + b"\t\t" + money(sign * ln.total_cents, symbol="$").encode() + b"\n")
        if ln.quantity > 1:
            p.line(f"  {ln.quantity} @ {money(ln.unit_cents, symbol='$')}")
    p.line(columns("SUBTOTAL", money(subtotal, symbol="$"))).line(columns("TAX 8.000%", money(tax, symbol="$")))
    p.raw(BOLD_ON + DOUBLE).line(columns("TOTAL", money(subtotal + tax, symbol="$"), 21)).raw(NORMAL + BOLD_OFF)
    if basket.payment == "cash":
        p.line(columns("CASH", money(cash_given, symbol="$")))
        p.line(columns("CHANGE", money(cash_given - subtotal - tax, symbol="$"))).raw(DRAWER_KICK)
    else:
        p.line(columns("VISA ****1234", money(subtotal + tax, symbol="$")))
    p.raw(CENTER).barcode_code39(basket.receipt_no).line().line("Thank you for shopping with us")
    return bytes(p.raw(CUT_FEED).out)


LAYOUT_ENCODERS: dict[str, Callable[[SimBasket, int], bytes]] = {
    "baeckerei": _baeckerei,
    "boulangerie": _boulangerie,
    "corner_store": _corner_store,
}


def cash_given(basket: SimBasket) -> int:
    """What the customer handed over: at least the total (tax is at most 8 %), in whole 5.00 notes.

    A refund or void pays out exactly the (negative) amount, so no change is printed."""
    if basket.kind != "sale":
        return expected_total_cents(basket)
    total = basket.net_cents + 2000
    return total - total % 500


def encode_receipt(basket: SimBasket) -> bytes:
    """The byte-exact ESC/POS stream the POS sends for one receipt."""
    return LAYOUT_ENCODERS[basket.layout](basket, cash_given(basket))


def expected_total_cents(basket: SimBasket) -> int:
    """The TOTAL the receipt prints (tax added by the corner_store layout), signed."""
    sign = -1 if basket.kind == "refund" else 1
    tax = sum(ln.total_cents for ln in basket.lines if ln.category == "household") * 8 // 100
    return sign * (basket.net_cents + (tax if basket.layout == "corner_store" else 0))


# -- the day's baskets and the truth -----------------------------------------------------------------
def generate_baskets(
    seed: int,
    start_ns: int,
    end_ns: int,
    *,
    layout: str = "baeckerei",
    baskets_per_peak_hour: float = 20.0,
    refund_rate: float = 0.03,
    void_rate: float = 0.02,
    cash_rate: float = 0.4,
    guard_s: float = 120.0,
) -> list[SimBasket]:
    """Seeded baskets in [start, end), shaped by hour of day, none within guard_s of an hour boundary."""
    if layout != "mixed" and layout not in LAYOUT_ENCODERS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)} or mixed")
    rng = np.random.default_rng(seed)
    guard = int(guard_s * NS_PER_S)
    baskets: list[SimBasket] = []
    number = 1000 + seed % 1000 * 10
    for hour_start in range(start_ns - start_ns % HOUR_NS, end_ns, HOUR_NS):
        hour = dt.datetime.fromtimestamp(hour_start // NS_PER_S, tz=dt.UTC).hour
        for offset in sorted(
            rng.uniform(guard, HOUR_NS - guard, size=rng.poisson(baskets_per_peak_hour * HOUR_SHAPE[hour]))
        ):
            t_ns = hour_start + int(offset)
            picks = rng.choice(len(CATALOGUE), size=int(rng.integers(1, 6)), replace=False)
            lines = tuple(
                SimLine(
                    CATALOGUE[i].name, CATALOGUE[i].category, int(rng.choice([1, 1, 1, 2, 3])), CATALOGUE[i].price_cents
                )
                for i in picks
            )
            draw = rng.random()
            kind = "refund" if draw < refund_rate else "void" if draw < refund_rate + void_rate else "sale"
            payment = "cash" if rng.random() < cash_rate else "card"
            chosen = LAYOUTS[int(rng.integers(len(LAYOUTS)))] if layout == "mixed" else layout
            number += 1
            if start_ns <= t_ns < end_ns:
                baskets.append(SimBasket(str(number), t_ns, lines, kind, payment, chosen))
    return baskets


def ground_truth(baskets: Iterable[SimBasket], start_ns: int, end_ns: int) -> dict[str, Any]:
    """Per UTC hour and category: sale baskets containing the category and their revenue (line totals)."""
    hours = [hour_iso(h) for h in range(start_ns - start_ns % HOUR_NS, end_ns, HOUR_NS)]
    zero = {"baskets": 0, "revenue_cents": 0, "refund_baskets": 0, "refund_cents": 0}
    per_hour = {h: {c: dict(zero) for c in CATEGORIES} for h in hours}
    totals = {h: {"sales": 0, "refunds": 0, "voids": 0, "revenue_cents": 0, "cash_sales": 0} for h in hours}
    listed = list(baskets)
    for basket in listed:
        hour = hour_iso(basket.t_ns)
        totals[hour]["sales" if basket.kind == "sale" else basket.kind + "s"] += 1
        if basket.kind == "void":
            continue
        revenue: dict[str, int] = {}
        for ln in basket.lines:
            revenue[ln.category] = revenue.get(ln.category, 0) + ln.total_cents
        for category, cents in revenue.items():
            cell = per_hour[hour][category]
            if basket.kind == "sale":
                cell["baskets"] += 1
                cell["revenue_cents"] += cents
            else:
                cell["refund_baskets"] += 1
                cell["refund_cents"] -= cents
        if basket.kind == "sale":
            totals[hour]["revenue_cents"] += basket.net_cents
            totals[hour]["cash_sales"] += basket.payment == "cash"
    return {
        "categories": list(CATEGORIES),
        "catalogue": {p.name: p.category for p in CATALOGUE},
        "hours": per_hour,
        "totals": totals,
        "baskets": [b.as_json() for b in listed],
    }


# -- the printer on a pty ----------------------------------------------------------------------------
class EscPosSimulator:
    """Plays a POS printing `baskets` on one pty at their simulated times."""

    def __init__(self, link: str | os.PathLike[str], baskets: Sequence[SimBasket], clock: AcceleratedClock) -> None:
        self.device = PtyDevice(link)
        self.baskets, self.clock = list(baskets), clock
        self.sent = 0
        self._stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EscPosSimulator:
        """Start printing in a background thread."""
        self._thread = threading.Thread(target=self._serve, name="escpos-sim", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        for basket in self.baskets:
            while (wait_s := (self.clock.real_ns_at(basket.t_ns) - time.time_ns()) / 1e9) > 0:
                if self._stop.wait(min(wait_s, 0.05)):
                    return
            self.write(encode_receipt(basket))
            self.sent += 1

    def write(self, data: bytes, timeout_s: float = 1.0) -> int:
        """Send bytes at the pace the host reads them (a printer's RTS/CTS); dropped while unplugged.

        When nobody has read for `timeout_s` the rest is dropped, and later writes do not wait again
        until the host reads: a tap with no agent behind it must not stall the simulated day."""
        done, deadline = 0, time.monotonic() + (0 if self._stalled else timeout_s)
        while done < len(data) and self.device.plugged:
            written = self.device.write(data[done : done + 1024])
            done += written
            if written:
                self._stalled = False
            elif time.monotonic() >= deadline:
                self._stalled = True
                break
            elif self._stop.wait(0.002):
                break
        return done

    def inject_garbage(self, data: bytes = b"\x1b\xff\x1d\xfe\x07\x01junk\x00") -> None:
        """Bytes that are no command the printer knows (line noise, a wrong baud rate)."""
        self.write(data)

    def done(self) -> bool:
        """True once every basket has been printed."""
        return self.sent >= len(self.baskets)

    def unplug(self) -> None:
        """Pull the cable: receipts printed meanwhile are lost to the tap."""
        self.device.unplug()

    def replug(self) -> None:
        """Plug it back in: a new pty behind the same link."""
        self.device.replug()

    def stop(self) -> None:
        """Stop printing and unplug."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.device.close()


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser."""
    parser = argparse.ArgumentParser(prog="firmware_sim.escpos", description=__doc__.splitlines()[0])
    parser.add_argument("--link", type=Path, required=True, help="symlink path to create for the printer's pty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", required=True, metavar="ISO_UTC", help="e.g. 2026-11-16T00:00:00Z")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--factor", type=float, default=1440.0, help="simulated seconds per real second")
    parser.add_argument("--truth", type=Path, required=True, help="where to write the ground-truth JSON")
    parser.add_argument("--layout", default="baeckerei", choices=(*LAYOUTS, "mixed"))
    parser.add_argument("--rate", type=float, default=20.0, help="baskets in a peak hour")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve the interval on the pty, then write the truth file; returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        start_ns = parse_utc(args.start)
    except ValueError as exc:
        print(f"firmware_sim.escpos: --start {args.start!r}: {exc}", file=sys.stderr)
        return 2
    end_ns = start_ns + int(args.hours * HOUR_NS)
    clock = AcceleratedClock.from_env() or AcceleratedClock.starting_now(start_ns, args.factor)
    baskets = generate_baskets(args.seed, start_ns, end_ns, layout=args.layout, baskets_per_peak_hour=args.rate)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim = EscPosSimulator(args.link, baskets, clock).start()
    print(json.dumps({"ready": True, "link": str(args.link), "baskets": len(baskets)}), flush=True)
    try:
        while not stop.is_set() and not (sim.done() and time.time_ns() >= clock.real_ns_at(end_ns)):
            stop.wait(0.1)
    except KeyboardInterrupt:
        return 130
    finally:
        sim.stop()
    truth = {
        "device": "escpos",
        "seed": args.seed,
        "start": args.start,
        "hours": args.hours,
        "layout": args.layout,
        "factor": clock.factor,
        "completed": not stop.is_set(),
        **ground_truth(baskets, start_ns, end_ns),
    }
    args.truth.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.truth.with_name(args.truth.name + ".tmp")
    tmp.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, args.truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
