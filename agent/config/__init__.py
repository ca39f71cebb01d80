"""The agent's configuration: one TOML file, validated before anything starts.

`load_config` reads and checks it (`load.py`, on the typed reader in `reader.py`); the POS taxonomy and
category rules live in `pos.py`.
"""

from agent.config.load import AgentConfig, MqttSettings, load_config

__all__ = ["AgentConfig", "MqttSettings", "load_config"]
