"""ESC/POS receipt tap: reads the POS-to-printer serial stream and emits one Basket per printed receipt."""
