"""What `shopkeeper drivers [KIND]` prints: the installed driver kinds, or one kind's sample configuration."""

from __future__ import annotations

import importlib
from importlib import metadata

from agent.driver_api import ENTRY_POINT_GROUP
from agent.errors import AgentError


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {e.name: e for e in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _description(entry: metadata.EntryPoint) -> str:
    """The first line of the driver package's docstring, or why the driver cannot be loaded."""
    try:
        driver = entry.load()
    except Exception as exc:  # a broken third-party driver must not break the listing
        return f"(cannot load: {type(exc).__name__}: {exc})"
    package = driver.__module__.rpartition(".")[0] or driver.__module__
    doc = (importlib.import_module(package).__doc__ or driver.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else "(no description)"


def list_drivers() -> str:
    """One line per installed driver kind: kind, description, module."""
    entries = _entry_points()
    if not entries:
        return f"no drivers installed (entry-point group {ENTRY_POINT_GROUP!r})\n"
    width = max(len(kind) for kind in entries)
    lines = [f"{kind:<{width}}  {_description(entries[kind])}  [{entries[kind].value}]" for kind in sorted(entries)]
    return "\n".join(lines) + "\n"


def sample_for(kind: str) -> str:
    """The driver's commented sample.toml, ready to paste into the agent's configuration."""
    entries = _entry_points()
    if kind not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise AgentError(
            f"no driver of kind {kind!r} is installed (installed: {known}); run `shopkeeper drivers` to list them"
        )
    return str(entries[kind].load().sample_config())
