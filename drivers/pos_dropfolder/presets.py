"""The export shapes of Square, Shopify and Clover, selected with one word (`preset = "square_items"`).

Each preset maps our fields onto the vendor's column names as the vendor's export writes them, says which
columns must be in the header, and how the vendor writes sale, refund and void, and payment. Header rows
and their sources are in the fixtures under tests/drivers/pos_dropfolder/fixtures/ (each names its source).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

Column = str | tuple[str, ...]  # a tuple is several columns joined with a space (Square's Date + Time)


@dataclasses.dataclass(frozen=True)
class Preset:
    """One vendor export shape."""

    name: str
    title: str
    columns: Mapping[str, Column]
    required: tuple[str, ...]
    kinds: Mapping[str, str] = dataclasses.field(default_factory=dict)  # lowercased value -> sale/refund/void
    fully_refunded: tuple[str, ...] = ()  # kind values meaning "sold, then refunded in full"
    payments: Mapping[str, str] = dataclasses.field(default_factory=dict)  # lowercased value -> cash/card/other
    payment_amounts: tuple[tuple[str, str], ...] = ()  # (payment, column): the first nonzero names the payment
    itemised: bool = True  # False: one row is a whole transaction, read as one unitemised line


SQUARE_ITEMS = Preset(
    name="square_items",
    title="Square Items detail export",
    columns={
        "receipt_id": "Transaction ID",
        "time": ("Date", "Time"),
        "sku": "SKU",
        "name": "Item",
        "category": "Category",
        "quantity": "Qty",
        "line_total": "Gross Sales",
        "discount": "Discounts",
        "kind": "Event Type",
    },
    required=("Transaction ID", "Item", "Qty", "Gross Sales"),
    kinds={"payment": "sale", "refund": "refund"},
)
SQUARE_TRANSACTIONS = Preset(
    name="square_transactions",
    title="Square Transactions export",
    columns={
        "receipt_id": "Transaction ID",
        "time": ("Date", "Time"),
        "name": "Description",
        "line_total": "Gross Sales",
        "discount": "Discounts",
        "kind": "Event Type",
    },
    required=("Transaction ID", "Gross Sales", "Description"),
    kinds={"payment": "sale", "refund": "refund"},
    payment_amounts=(("cash", "Cash"), ("card", "Card"), ("other", "Square Gift Card"), ("other", "Other Tender")),
    itemised=False,
)
SHOPIFY_ORDERS = Preset(
    name="shopify_orders",
    title="Shopify orders export",
    columns={
        "receipt_id": "Name",
        "time": "Created at",
        "sku": "Lineitem sku",
        "name": "Lineitem name",
        "quantity": "Lineitem quantity",
        "unit_price": "Lineitem price",
        "discount": "Lineitem discount",
        "kind": "Financial Status",
        "payment": "Payment Method",
        "currency": "Currency",
        "refunded_amount": "Refunded Amount",
    },
    required=("Name", "Lineitem quantity", "Lineitem name", "Lineitem price"),
    kinds={
        "paid": "sale",
        "partially_paid": "sale",
        "partially_refunded": "sale",
        "refunded": "sale",
        "voided": "void",
        "pending": "sale",
        "authorized": "sale",
    },
    fully_refunded=("refunded",),
    payments={"cash": "cash", "shopify payments": "card", "credit card": "card", "card": "card"},
)
CLOVER_LINE_ITEMS = Preset(
    name="clover_line_items",
    title="Clover line items export",
    columns={
        "receipt_id": "Order ID",
        "time": "Line Item Date",
        "sku": "Item SKU",
        "name": "Item Name",
        "quantity": "Quantity",
        "unit_price": "Item Price",
        "discount": "Discounts",
        "kind": "Order Payment State",
        "currency": "Currency",
    },
    required=("Order ID", "Item Name", "Item Price"),
    kinds={"paid": "sale", "partially_paid": "sale", "partially_refunded": "sale", "refunded": "sale"},
    fully_refunded=("refunded",),
)
CLOVER_ORDERS = Preset(
    name="clover_orders",
    title="Clover orders export",
    columns={
        "receipt_id": "Order ID",
        "time": "Order Date",
        "name": "Note",
        "line_total": "Order Total",
        "kind": "Order Payment State",
        "payment": "Tender",
        "currency": "Currency",
        "refunded_amount": "Refunds Total",
    },
    required=("Order ID", "Order Total"),
    kinds={"paid": "sale", "partially_paid": "sale", "partially_refunded": "sale", "refunded": "sale"},
    payments={"cash": "cash", "credit card": "card", "debit card": "card"},
    itemised=False,
)
PRESETS: dict[str, Preset] = {
    p.name: p for p in (SQUARE_ITEMS, SQUARE_TRANSACTIONS, SHOPIFY_ORDERS, CLOVER_LINE_ITEMS, CLOVER_ORDERS)
}


def matching_presets(header: list[str]) -> list[str]:
    """Presets whose required columns are all in this header (to tell the owner which word to set)."""
    present = set(header)
    return [p.name for p in PRESETS.values() if set(p.required) <= present]
