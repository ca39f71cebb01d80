"""The fleet playbook parses, and its agent.toml template renders configs the agent accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "deploy" / "ansible"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_NOCOLOR": "1"}


def test_playbook_passes_syntax_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(ANSIBLE / "inventory.example.ini"),
            "--syntax-check",
            str(ANSIBLE / "playbook.yml"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("host", ["shop-0042", "shop-0043"])
def test_template_renders_a_config_that_validates(tmp_path: Path, host: str) -> None:
    out = tmp_path / "agent.toml"
    render = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            str(ANSIBLE / "inventory.example.ini"),
            host,
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={ANSIBLE / 'templates' / 'agent.toml.j2'} dest={out}",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert render.returncode == 0, render.stdout + render.stderr
    check = subprocess.run([str(BIN / "shopkeeper"), "check-config", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    store = host.replace("shop-", "store-")
    assert f"store {store}" in check.stdout


@pytest.mark.parametrize(
    ("drivers", "extras", "expected"),
    [
        ('[{"kind": "terabee"}]', None, ""),
        ('[{"kind": "terabee"}, {"kind": "beam_gpio"}]', None, "gpio"),
        ('[{"kind": "terabee"}]', "gpio,hub", "gpio,hub"),  # set by hand, it wins
    ],
)
def test_install_extras_follow_the_drivers(tmp_path: Path, drivers: str, extras: str | None, expected: str) -> None:
    import yaml  # ansible-core's own dependency

    play = yaml.safe_load((ANSIBLE / "playbook.yml").read_text())[1]
    expression = play["vars"]["shopkeeper_install_extras"]
    overrides = {"shopkeeper_drivers": yaml.safe_load(drivers)}
    if extras is not None:
        overrides["shopkeeper_extras"] = extras
    result = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-e",
            json.dumps({**overrides, "ansible_python_interpreter": sys.executable}),
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg=[{expression.strip()}]",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'"msg": "[{expected}]"' in result.stdout, result.stdout
