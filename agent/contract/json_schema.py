"""Reading the payload JSON Schemas, shipped as package data in the folder `schemas/` beside this module.

Only the text and the parsed document: validating is the hub's job (it has a schema validator; the
agent on a shop's box does not need one).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from agent.contract.streams import STATUS_SCHEMA_FILE, schema_files


@cache
def schema_document(file_name: str) -> dict[str, Any]:
    """One shipped schema file, parsed; FileNotFoundError when the contract ships no such file."""
    text = resources.files("agent.contract").joinpath("schemas", file_name).read_text(encoding="utf-8")
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"schema {file_name} is not a JSON object")
    return document


def shipped_schema_files() -> list[str]:
    """Every schema file in the package, summaries and status alike."""
    folder = resources.files("agent.contract").joinpath("schemas")
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".json"))


def status_schema() -> dict[str, Any]:
    return schema_document(STATUS_SCHEMA_FILE)


def summary_schema(schema_id: str) -> dict[str, Any] | None:
    """The schema of a summary payload by its `schema` id, or None for an id no stream declares."""
    file_name = schema_files().get(schema_id)
    return None if file_name is None else schema_document(file_name)
