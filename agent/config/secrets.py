"""Secrets written as "env:VARIABLE" in the configuration: which of them the environment does not set.

Drivers read such secrets when they use them (a webhook's signing key, an API token), so an unset
variable would otherwise show up only as every request refused. `check-config` makes it an error and the
running agent logs it once at start. Under systemd the variables come from the unit's EnvironmentFile,
`agent.env` next to the configuration (/etc/shopkeeper/agent.env), which `check-config` reads too.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ENV_FILE_NAME = "agent.env"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def _env_refs(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        if isinstance(value, str) and value.startswith("env:") and len(value) > 4:
            yield f"{prefix}{key}", value[4:]
        elif isinstance(value, Mapping):
            yield from _env_refs(value, f"{prefix}{key}.")


def unset_env_secrets(config_path: Path, environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(config key, variable) of every env: secret whose variable is unset or empty."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []  # load_config reports those
    env = {**read_env_file(config_path.parent / ENV_FILE_NAME), **(os.environ if environ is None else environ)}
    refs = [
        ref
        for section in ("drivers", "mqtt", "home_assistant")
        for ref in _env_refs(data.get(section, {}), f"{section}.")
    ]
    return [(key, var) for key, var in refs if not env.get(var)]
