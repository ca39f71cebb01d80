"""The shop's public category taxonomy and the rules that map POS line items onto it.

The taxonomy is public and fixed in configuration; every category (and `other`) is released in every
window, zeros included. A line's category is decided on the box, from the shop's own rules, first match
wins: by SKU, by a pattern on the item name, or by the POS's own category; anything else is `other`.
"""

from __future__ import annotations

import dataclasses
import re

from agent.config.reader import NAME_RE, TableReader
from agent.driver_api import BasketLine
from agent.privacy.bounds import OTHER, BasketBounds


@dataclasses.dataclass(frozen=True)
class CategoryRule:
    category: str
    sku: str = ""
    name_pattern: re.Pattern[str] | None = None
    pos_category: str = ""

    def matches(self, line: BasketLine) -> bool:
        if self.sku:
            return line.sku == self.sku
        if self.name_pattern is not None:
            return self.name_pattern.search(line.name) is not None
        return line.pos_category.casefold() == self.pos_category.casefold()


@dataclasses.dataclass(frozen=True)
class PosSettings:
    taxonomy: tuple[str, ...]  # always ends with `other`
    rules: tuple[CategoryRule, ...]
    bounds: BasketBounds

    def categorize(self, line: BasketLine) -> str:
        """The public category this line counts under."""
        for rule in self.rules:
            if rule.matches(line):
                return rule.category
        if line.pos_category.casefold() in self.taxonomy:
            return line.pos_category.casefold()
        return OTHER


def read_pos(pos: TableReader) -> PosSettings | None:
    """The [pos] section: taxonomy, mapping rules and contribution bounds; None when absent."""
    if not pos.table:
        return None
    taxonomy = pos.get("taxonomy", list, fix='list the public categories, e.g. taxonomy = ["bakery", "dairy"]')
    if not taxonomy or not all(isinstance(c, str) and NAME_RE.match(c) for c in taxonomy):
        raise pos.fail("taxonomy", "must be a non-empty list of names", 'write e.g. taxonomy = ["bakery", "dairy"]')
    if len(set(taxonomy)) != len(taxonomy):
        raise pos.fail("taxonomy", "lists a category twice", "list each category once")
    categories = (*tuple(c for c in taxonomy if c != OTHER), OTHER)
    rules = []
    raw_rules = pos.get("category_rules", list, [])
    for i, raw in enumerate(raw_rules):
        rule = pos.child(raw if isinstance(raw, dict) else {}, f"pos.category_rules[{i}].")
        category = rule.get("category", str, fix='add category = "<one of pos.taxonomy>"')
        if category not in categories:
            raise rule.fail("category", f"{category!r} is not in pos.taxonomy", "use a category from the taxonomy")
        kinds = [k for k in ("sku", "name_pattern", "pos_category") if k in rule.table]
        if len(kinds) != 1:
            raise rule.fail(
                "sku", "a rule needs exactly one of sku, name_pattern, pos_category", "give each rule one matcher"
            )
        pattern = None
        if kinds[0] == "name_pattern":
            try:
                pattern = re.compile(rule.get("name_pattern", str), re.IGNORECASE)
            except re.error as exc:
                raise rule.fail(
                    "name_pattern", f"is not a valid regular expression ({exc})", "fix the pattern"
                ) from None
        rules.append(
            CategoryRule(
                category=category,
                sku=rule.get("sku", str, ""),
                name_pattern=pattern,
                pos_category=rule.get("pos_category", str, ""),
            )
        )
        rule.reject_unknown()
    bounds_table = pos.table_at("bounds")
    bounds = BasketBounds(
        max_categories=bounds_table.int_in("max_categories", 3, 1, len(categories)),
        max_items_per_category=bounds_table.int_in("max_items_per_category", 10, 1, 10_000),
        max_revenue_per_category_cents=bounds_table.int_in("max_revenue_per_category_cents", 10_000, 1, 10**9),
        max_revenue_per_basket_cents=bounds_table.int_in("max_revenue_per_basket_cents", 20_000, 1, 10**9),
    )
    bounds_table.reject_unknown()
    pos.reject_unknown()
    return PosSettings(taxonomy=categories, rules=tuple(rules), bounds=bounds)
