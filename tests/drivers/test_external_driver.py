"""A driver from a separately installed package is found through its `shopkeeper.drivers` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXTERNAL = Path(__file__).parent / "external_pkg"
ROOT = Path(__file__).parents[2]

PROBE = """
import json
from agent.driver_api import installed_drivers, kit
from agent.driver_cli import list_drivers
drivers = installed_drivers()
cls = drivers["example_echo"]
driver = cls.from_options("echo", {"zones": ["till"]})
kit.check_sample_matches_options(cls)
kit.check_imports_current_api(cls)
sink = kit.RecordingSink()
driver.start(sink)
sink.wait_for(lambda: len(sink.readings) == 1, 10, "the echo")
driver.stop()
print(json.dumps({"kinds": sorted(drivers), "kind": cls.kind, "module": cls.__module__,
                  "listed": "example_echo" in list_drivers(), "emitted": repr(sink.readings)}))
"""


def pip_install_target(target: Path) -> None:
    """pip install --target; without build isolation when setuptools can build offline, else with it."""
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXTERNAL)]
    errors = []
    for extra in (["--no-build-isolation"], []):
        result = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=240)
        if result.returncode == 0:
            return
        errors.append(result.stderr[-400:])
    raise AssertionError(
        f"cannot build the example package (setuptools and wheel come with the test extra): {errors[-1]}"
    )


def test_an_installed_external_package_registers_its_driver_kind(tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip_install_target(target)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["kind"] == "example_echo" and found["module"] == "example_echo_driver"
    assert {"example_echo", "terabee", "ld2410"} <= set(found["kinds"]) and found["listed"]
    assert found["emitted"] == "[PresenceChange(zone='till', present=True)]"  # built on BackgroundDriver


def test_without_the_package_the_kind_is_absent() -> None:
    from agent.driver_api import installed_drivers

    assert "example_echo" not in installed_drivers()
