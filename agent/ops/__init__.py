"""Running the agent: wiring (runtime), driver supervision, health and metrics, systemd, status."""
