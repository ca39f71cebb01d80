"""The `[home_assistant]` section: an optional LOCAL broker where Home Assistant finds the shop's exact figures.

Off by default. The broker named here is the shop's own (usually the Mosquitto its Home Assistant uses),
never the coop's: the section is refused when it names the coop connection's broker, and when its topics
would sit under the coop's topic root (`coop/`), so a bridge that forwards coop topics cannot carry them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config.load import MqttSettings
    from agent.config.reader import TableReader

TOPIC_PART = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")  # no wildcards, no empty levels
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclasses.dataclass(frozen=True)
class HomeAssistantSettings:
    """Where the exact local figures go, and under which topics."""

    host: str
    port: int
    username: str
    password: str  # inline or "env:VARIABLE", read when the client connects
    client_id: str
    discovery_prefix: str  # Home Assistant's own setting; "homeassistant" unless the owner changed it
    state_prefix: str  # state topics: <state_prefix>/<object_id>
    currency: str  # the unit shown next to sales (e.g. "EUR"); "" shows none


def read_home_assistant(section: TableReader, store: str, coop: MqttSettings | None) -> HomeAssistantSettings | None:
    """Parse `[home_assistant]`; None unless `enabled = true`."""
    enabled = section.get("enabled", bool, False)
    host = section.get("host", str, "127.0.0.1")
    port = section.int_in("port", 1883, 1, 65535)
    username = section.get("username", str, "")
    password = section.get("password", str, "")
    client_id = section.get("client_id", str, f"shopkeeper-{store}-home-assistant")
    discovery_prefix = section.get("discovery_prefix", str, "homeassistant")
    state_prefix = section.get("state_prefix", str, f"shopkeeper/{store}")
    currency = section.get("currency", str, "")
    section.reject_unknown()
    if not enabled:
        return None
    for key, value in (("discovery_prefix", discovery_prefix), ("state_prefix", state_prefix)):
        if not TOPIC_PART.fullmatch(value):
            raise section.fail(key, f"{value!r} is not a topic prefix", 'use letters, digits, "_", "-" and "/"')
        if value == "coop" or value.startswith("coop/"):
            raise section.fail(key, "lies under the coop's topic root", 'use e.g. "shopkeeper/<store>"')
    if coop is not None and port == coop.port and (host == coop.host or {host, coop.host} <= set(LOOPBACK)):
        raise section.fail(
            "host",
            f"{host}:{port} is the coop's broker ([mqtt]); exact figures must never go there",
            "name the shop's own broker (the one Home Assistant uses), or turn this section off",
        )
    if password and not username:
        raise section.fail("password", "is set without a username", "set home_assistant.username too")
    return HomeAssistantSettings(
        host, port, username, password, client_id, discovery_prefix, state_prefix, currency.upper()
    )
