"""Modbus RTU people counter driver (our register map v1, FC03 polling, CRC-16/MODBUS)."""
