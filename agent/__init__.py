"""shopkeeper edge agent: local aggregation, exact DP release, MQTT publishing."""

__version__ = "0.1.0"
