"""Dependencies in the right place: a shop's box installs only what the agent uses; the hub, GPIO and
test tooling are extras, and a missing extra is named in one line, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# The design card's packages: the agent's runtime, each with real work to do on the box.
CARD = {"paho-mqtt", "pyserial", "numpy", "numba", "sqlite-utils", "apscheduler"}
# Named outright as well as read from the extras, so moving one back into `dependencies` (and out of
# its extra) still fails here.
NEVER_ON_THE_BOX = {"psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary", "jsonschema", "pytest", "gpiozero"}
# Import names the agent's own packages must never need (the hub's, GPIO's and the tests' tooling).
EXTRA_MODULES = ("jsonschema", "psycopg", "psycopg2", "gpiozero", "pytest", "hypothesis", "scipy", "opendp")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return normalise(match.group(0))


def extra_names(*extras: str) -> set[str]:
    """The packages the extras name; an extra that pulls in another (`shopkeeper[pos]`) adds that one's."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    names: set[str] = set()
    for extra in extras:
        for requirement in optional[extra]:
            name = requirement_name(requirement)
            if name == "shopkeeper":
                inner = requirement.split("[", 1)[1].rstrip("]").split(",")
                names |= extra_names(*(e.strip() for e in inner))
            else:
                names.add(name)
    return names


def resolve(tmp_path: Path, extras: str = "") -> set[str]:
    """What `pip install .[extras]` into a fresh venv would install, resolved without installing anything."""
    source = tmp_path / "src"
    source.mkdir()
    # Metadata needs only these two files; a copy keeps pip's egg-info out of the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    report = tmp_path / "report.json"
    target = f"{source}[{extras}]" if extras else str(source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            target,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {normalise(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


def blocking_site(tmp_path: Path, modules: tuple[str, ...]) -> dict[str, str]:
    """An environment in which importing `modules` fails as if they were not installed."""
    site = tmp_path / "block"
    site.mkdir()
    # sitecustomize runs before any program code, so the real console scripts see the blocked imports.
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(f"""
            import sys
            for name in {modules!r}:
                sys.modules[name] = None  # `import name` now raises ImportError
        """)
    )
    return {**os.environ, "PYTHONPATH": str(site)}


def test_the_agent_alone_installs_no_hub_gpio_or_test_packages(tmp_path: Path) -> None:
    installed = resolve(tmp_path)
    unwanted = (NEVER_ON_THE_BOX | extra_names("hub", "gpio", "test", "bench")) - CARD
    assert installed & unwanted == set(), sorted(installed & unwanted)
    assert installed >= CARD, sorted(CARD - installed)


def test_the_hub_extra_adds_the_postgresql_driver_and_the_schema_validator(tmp_path: Path) -> None:
    installed = resolve(tmp_path, "hub")
    assert {"psycopg", "psycopg-binary", "jsonschema"} <= installed
    assert installed & (extra_names("gpio", "test", "bench") | {"pytest"}) == set()


def test_runtime_dependencies_are_only_the_cards_packages() -> None:
    # A new runtime dependency is a cost on every Pi: adding one should be a decision made here.
    assert {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]} == CARD


def test_test_tooling_is_not_in_an_installed_package() -> None:
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(p.startswith("devtools") for p in packages)
    for moved in ("hub/loadgen.py", "hub/local_postgres.py"):
        assert not (REPO / moved).exists(), f"{moved} is test tooling: it lives in devtools/"
    # NumPy twins of the numba kernels are benchmark baselines and test references, not runtime code. The one
    # exception, agent/kernels/thermal_numpy.py, is the counter the thermal driver runs (issue 20: no JIT in
    # the resident agent); its functions are not named *_numpy, and it is checked bit for bit against numba.
    twins = [str(p) for p in (REPO / "agent").rglob("*.py") if re.search(r"^def \w+_numpy\(", p.read_text(), re.M)]
    assert twins == [], twins


@pytest.mark.parametrize("blocked", [("jsonschema", "psycopg"), ("psycopg",), ("jsonschema",)])
@pytest.mark.parametrize("command", [["shopkeeper", "hub"], ["shopkeeper-hub"]])
def test_hub_without_its_extra_names_the_extra_and_exits_2(
    tmp_path: Path, blocked: tuple[str, ...], command: list[str]
) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:], "run", str(REPO / "hub" / "sample-hub.toml")],
        env=blocking_site(tmp_path, blocked),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert "pip install 'shopkeeper[hub]'" in lines[0] and all(name in lines[0] for name in blocked)


def test_hub_with_its_extra_gets_past_the_check(tmp_path: Path) -> None:
    # This venv has the hub extra (make setup): the same command reaches the configuration check.
    result = subprocess.run(
        [str(BIN / "shopkeeper-hub"), "check-config", str(REPO / "hub" / "sample-hub.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_agent_packages_import_without_any_extra(tmp_path: Path) -> None:
    # Every module of the agent, the drivers and the simulators, imported with the extras' modules
    # missing: a top-level `import jsonschema` (or gpiozero, or pytest) in the runtime fails here.
    probe = textwrap.dedent("""
        import importlib, pkgutil, sys
        names = []
        for package in ("agent", "drivers", "firmware_sim"):
            module = importlib.import_module(package)
            found = pkgutil.walk_packages(module.__path__, package + ".")
            names += [m.name for m in found if not m.name.endswith(".__main__")]  # those run a program
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=blocking_site(tmp_path, EXTRA_MODULES),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 30  # it really walked the packages
