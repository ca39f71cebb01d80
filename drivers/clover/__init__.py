"""Clover webhooks and REST orders (with a poll as a safety net): one Basket per paid order and per refund."""
