"""GY-MCU90640 thermal array driver (MLX90640 32x24 over UART; people counted on the box)."""
