"""Terabee Evo People Counter driver (UART, CRC-8 "PC" count frames)."""
