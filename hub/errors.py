"""The hub's small error hierarchy; a user-facing error is one line that says what to do."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class HubConfigError(HubError):
    """A configuration value is missing or wrong; the message names file, key and fix."""

    def __init__(self, path: str, key: str, problem: str, fix: str) -> None:
        self.path, self.key, self.problem, self.fix = path, key, problem, fix
        super().__init__(f"{path}: {key}: {problem}; fix: {fix}")


class StorageError(HubError):
    """The database cannot be opened or migrated."""
