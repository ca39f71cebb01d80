"""The shop's public category taxonomy and the rules that map POS line items onto it.

The taxonomy is public and fixed in configuration; every category (and `other`) is released in every
window, zeros included. A line's category is decided on the box, from the shop's own rules, first match
wins: by SKU, by a pattern on the item name, or by the POS's own category; anything else is `other`.
"""

from __future__ import annotations

import dataclasses
import re

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
