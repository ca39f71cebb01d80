"""Shopify webhooks (orders/create, refunds/create, HMAC-checked): one Basket per order or refund."""
