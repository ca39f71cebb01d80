"""HLK-LD2410 24 GHz mmWave presence radar driver (UART report and ACK frames)."""
