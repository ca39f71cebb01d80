"""Zigbee2MQTT and Tasmota door (contact), motion (occupancy) and presence sensors over the shop's local MQTT broker."""
