"""Public names of the contract: coops, stores, doors, zones, categories and driver instances.

One rule for every label that appears in a topic, a payload key or a config section, shared by the
agent, its drivers and the hub: lowercase letters, digits, '-' and '_', starting with a letter or
digit, at most 63 characters (so `_hub` can never be a store, and no name holds '/', '+', '#' or ':').
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
