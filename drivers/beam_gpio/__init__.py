"""Two-beam IR break counter on Raspberry Pi GPIO (gpiozero, optional dependency)."""
