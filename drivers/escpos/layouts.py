"""Receipt layouts shipped as presets, selected by one word (`layout = "two_line"`); pure data.

"auto" (the default) tries every item shape below; a named layout reads only its own shape, which keeps
a header or footer line of an unusual receipt from being read as an item. `patterns.items` in the
configuration replaces a layout's item patterns; the other patterns (totals, refunds, receipt numbers)
are shared by all layouts (receipt.py).
"""

from __future__ import annotations

from drivers.escpos.receipt import DEFAULT_ITEMS, QTY_PREFIX, RIGHT_ALIGNED, TWO_LINE_ITEM, ReceiptPatterns

SINGLE_LINE = DEFAULT_ITEMS[2]

LAYOUTS: dict[str, tuple[str, ...]] = {
    "auto": ReceiptPatterns().items,
    "single_line": (SINGLE_LINE,),
    "two_line": (TWO_LINE_ITEM,),
    "qty_prefix": (QTY_PREFIX,),
    "right_aligned": (RIGHT_ALIGNED,),
}


def layout_patterns(layout: str, **overrides: object) -> ReceiptPatterns:
    """The layout's patterns with the shop's own on top; ValueError for an unknown layout word."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    values: dict[str, object] = {"items": LAYOUTS[layout], **overrides}
    return ReceiptPatterns(**values)  # type: ignore[arg-type]
