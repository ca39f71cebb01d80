"""The old homes of the driver API still import for one release, warn, and hand out the same objects."""

from __future__ import annotations

import importlib
import sys

import pytest

import agent.driver_api.kit
import agent.driver_api.serial
import agent.driver_api.webhook

OLD_TO_NEW = [
    ("agent.driver_kit", agent.driver_api.kit, ("Harness", "RecordingSink", "check_start_stop", "ALL_CHECKS")),
    ("agent.serial_driver", agent.driver_api.serial, ("SerialDriver", "PORT_ERRORS")),
    ("drivers.webhook_http", agent.driver_api.webhook, ("WebhookDriver", "BadPayload", "common_options")),
]


@pytest.mark.parametrize(("old", "new", "names"), OLD_TO_NEW, ids=[o for o, _, _ in OLD_TO_NEW])
def test_an_old_path_warns_and_re_exports_the_new_objects(
    old: str, new: object, names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, old, raising=False)  # the warning is given on import
    with pytest.warns(DeprecationWarning, match=new.__name__):  # type: ignore[attr-defined]
        module = importlib.import_module(old)
    assert all(getattr(module, name) is getattr(new, name) for name in names)


def test_the_old_common_options_helper_still_validates_with_the_same_keys() -> None:
    from agent.driver_api import DriverOptionError
    from agent.driver_api.webhook import common_options

    assert common_options({"port": 0, "secret": "x"}, 8089, "/hook")["path"] == "/hook"
    with pytest.raises(DriverOptionError) as caught:
        common_options({"port": 70000}, 8089, "/hook")
    assert caught.value.key == "port"
