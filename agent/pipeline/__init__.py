"""The data path, in the order data flows.

ingest (drivers' readings, one writer, batched commits) -> window_close (which window is due; events
re-based and fixed to a window) -> aggregate (true tables, local only) -> release (noise, ledger,
spends and outbox rows in ONE transaction) -> outbox (payloads, message ids) -> publish (MQTT, QoS 1,
delivered only on a successful PUBACK) -> retention (raw data dropped oldest first, once released).
"""
