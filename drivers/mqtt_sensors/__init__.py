"""Zigbee2MQTT and Tasmota door (contact) and motion (occupancy) sensors over the shop's local MQTT broker."""
