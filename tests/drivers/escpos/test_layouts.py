"""200 generated receipts in each shipped layout (firmware_sim.escpos_layouts, fixed seeds) are read exactly."""

from __future__ import annotations

import pytest

from agent.driver_api import Basket, BasketLine
from drivers.escpos.layouts import LAYOUTS, layout_patterns
from drivers.escpos.protocol import EscPosParser
from drivers.escpos.receipt import ReceiptPatterns, receipt_to_basket
from firmware_sim import escpos_layouts
from firmware_sim.escpos import SimBasket


def expected(sim: SimBasket) -> Basket:
    sign = -1 if sim.kind == "refund" else 1
    lines = tuple(BasketLine(ln.name, ln.quantity, ln.unit_cents, sign * ln.total_cents) for ln in sim.lines)
    return Basket(sim.receipt_no, lines, sign * sim.net_cents, sim.kind, sim.payment)


def read_all(data: bytes, layout: str, chunk: int = 4096) -> list[Basket | None]:
    patterns = layout_patterns(layout).compile()
    parser = EscPosParser()
    receipts = []
    for start in range(0, len(data), chunk):
        receipts += parser.feed(data[start : start + chunk])
    receipts += parser.flush()
    found = [receipt_to_basket(r, patterns).basket for r in receipts]
    return [b if b is None else Basket(b.source_id, b.lines, b.total_cents, b.kind, b.payment) for b in found]


@pytest.mark.parametrize("layout", escpos_layouts.LAYOUTS)
@pytest.mark.parametrize("word", ["preset", "auto"])
def test_two_hundred_receipts_per_layout_are_read_exactly(layout: str, word: str) -> None:
    receipts = escpos_layouts.generate(seed=7 + escpos_layouts.LAYOUTS.index(layout), layout=layout, count=200)
    got = read_all(b"".join(data for _, data in receipts), layout if word == "preset" else "auto", chunk=97)
    assert got == [expected(sim) for sim, _ in receipts]


def test_the_generated_corpus_has_refunds_voids_cash_logos_barcodes_and_code_pages() -> None:
    receipts = [r for layout in escpos_layouts.LAYOUTS for r in escpos_layouts.generate(3, layout, 200)]
    kinds = {sim.kind for sim, _ in receipts}
    data = b"".join(d for _, d in receipts)
    assert kinds == {"sale", "refund", "void"} and {sim.payment for sim, _ in receipts} == {"cash", "card"}
    assert b"\x1dv0" in data and b"\x1dk\x04" in data and b"\x1dkI" in data and b"\x1d(k" in data
    assert {bytes([0x1B, 0x74, n]) in data for n in (0, 2, 16, 19)} == {True}
    assert len(receipts) == 800


def test_a_two_line_receipt_is_not_empty_and_adds_up() -> None:
    data = (
        b"\x1b@Receipt # 5\nFlat white\n  1 @ 6.40        6.40\nScone\n  2 @ 3.10        6.20\nTOTAL  12.60\n\x1dV\x00"
    )
    (basket,) = read_all(data, "auto")
    assert basket is not None and [ln.line_total_cents for ln in basket.lines] == [640, 620]
    assert basket.total_cents == 1260


def test_a_two_line_match_that_does_not_add_up_is_not_an_item() -> None:
    data = b"\x1b@Receipt # 6\nCashier Bob\n  2 @ 1.00        5.00\nTea   1.50\nTOTAL  1.50\n\x1dV\x00"
    (basket,) = read_all(data, "auto")
    assert basket is not None and [ln.name for ln in basket.lines] == ["Tea"]


def test_every_layout_word_compiles_and_unknown_words_are_refused() -> None:
    for layout in LAYOUTS:
        layout_patterns(layout).compile()
    with pytest.raises(ValueError, match="layout"):
        layout_patterns("fancy")


@pytest.mark.parametrize(
    "items",
    [r"^(?P<name>\S.*?)?\s+(?P<total>{amount})$", r"^(?:(?P<name>\S+)|-)\s+(?P<total>{amount})$",
     r"^(?P<name>\S.*?)\s+(?P<total>{amount})*$", r"^(?P<name>\S.*?)\s+(?:(?P<total>{amount})|free)$"],
)  # fmt: skip
def test_a_pattern_whose_needed_group_can_be_left_out_is_refused(items: str) -> None:
    with pytest.raises(ValueError, match=r"items\[0\].*can be left out"):
        ReceiptPatterns(items=(items,)).compile()


def test_an_optional_qty_group_is_allowed_and_read_when_present() -> None:
    patterns = ReceiptPatterns(items=(r"^(?:(?P<qty>\d+) )?(?P<name>\S.*?)\s{2,}(?P<total>{amount})$",)).compile()
    parser = EscPosParser()
    (receipt,) = parser.feed(b"\x1b@2 Tea  3.00\nMilk  1.00\nTOTAL  4.00\n\x1dV\x00") + parser.flush()
    basket = receipt_to_basket(receipt, patterns).basket
    assert basket is not None and [(ln.name, ln.quantity) for ln in basket.lines] == [("Tea", 2), ("Milk", 1)]
