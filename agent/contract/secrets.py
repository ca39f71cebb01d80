"""Secrets written "env:VARIABLE" in a configuration, resolved where they are used (agent and hub alike)."""

from __future__ import annotations

import os


def resolve_secret(spec: str) -> str:
    """The secret itself: inline, or the named environment variable's value ("" when it is not set).

    Read where the secret is used (when a client connects, when a request is checked), never stored
    resolved in the configuration, so a printed or logged configuration can only show the variable's name.
    """
    return os.environ.get(spec[4:], "") if spec.startswith("env:") else spec
