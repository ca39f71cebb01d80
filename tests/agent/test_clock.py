"""The clock's sync check accepts exactly the sources the configuration allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.clock import SyncCheck
from agent.config.load import SYNC_SOURCES


@pytest.mark.parametrize("source", SYNC_SOURCES)
def test_every_configurable_sync_source_gives_an_answer(source: str) -> None:
    assert isinstance(SyncCheck(source)(), bool)


def test_timesyncd_follows_its_flag_file(tmp_path: Path) -> None:
    check = SyncCheck("timesyncd", flag_file=tmp_path / "synchronized")
    assert not check()
    (tmp_path / "synchronized").touch()
    assert check()


def test_a_source_the_configuration_does_not_allow_is_refused(tmp_path: Path) -> None:
    # `file:<path>` was once accepted here but never by the configuration; it is gone, not hidden.
    (tmp_path / "flag").touch()
    with pytest.raises(ValueError, match="unknown clock sync source"):
        SyncCheck(f"file:{tmp_path / 'flag'}")()
