"""Secure aggregation with distributed noise (SecAgg / SecAgg+ over integer vectors mod 2**64).

The protocol core: messages, the shop's side (`shop.ShopRound`), the hub's side (`hub.HubRound`), the
noise plan and its accounting (`noise`), and an in-process runner (`loopback`) that carries every message
as bytes. Transport (MQTT) and storage come later; see docs/secure-aggregation.md.
Needs the `coop` extra (`pip install 'shopkeeper[coop]'`) for the `cryptography` package.
"""

from __future__ import annotations

try:
    import cryptography  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("secure aggregation needs the coop extra: pip install 'shopkeeper[coop]' (cryptography)") from exc
