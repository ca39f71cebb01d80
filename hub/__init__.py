"""The cooperative hub: subscribes to the shops' summaries, stores them once, benchmarks and warns."""

__version__ = "0.1.0"
