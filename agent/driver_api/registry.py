"""Installed drivers, found through the `shopkeeper.drivers` entry-point group (the agent imports no driver)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import metadata

from agent.driver_api.contract import Driver

ENTRY_POINT_GROUP = "shopkeeper.drivers"


class LazyDrivers(Mapping[str, type[Driver]]):
    """Installed drivers by kind; a driver's module is imported only when its kind is used."""

    def __init__(self) -> None:
        self._entries = {e.name: e for e in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        self._loaded: dict[str, type[Driver]] = {}

    def __getitem__(self, kind: str) -> type[Driver]:
        if kind not in self._loaded:
            self._loaded[kind] = self._entries[kind].load()
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def installed_drivers() -> Mapping[str, type[Driver]]:
    """Driver classes registered under the `shopkeeper.drivers` entry-point group, by kind."""
    return LazyDrivers()
