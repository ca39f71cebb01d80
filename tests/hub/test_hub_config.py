"""The hub's configuration: defaults, one-line errors with exit code 2, the sample validates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import main
from hub.config import load_hub_config

REPO = Path(__file__).resolve().parents[2]


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\ncoop = "riverside"\n')
    config = load_hub_config(path)
    assert config.k_min == 5 and config.dashboard == "127.0.0.1:8080"
    assert config.database == str(tmp_path / "hub.db")
    assert config.topic_filter == "coop/v1/riverside/#"
    assert config.mqtt.client_id == "shopkeeper-hub-riverside-hub-1"


def test_worker_group_makes_a_shared_subscription(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\ncoop = "riverside"\nworker_group = "hubs"\ndatabase = "postgresql://h@db/hub"\n')
    config = load_hub_config(path)
    assert config.topic_filter == "$share/hubs/coop/v1/riverside/#" and config.is_postgres


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[hub]\ncoop = "Bad Name"\n', "hub.coop"),
        ('[hub]\ncoop = "r"\nk_min = 1\n', "hub.k_min"),
        ('[hub]\ncoop = "r"\ndashboard = "8080"\n', "hub.dashboard"),
        ('[hub]\ncoop = "r"\n[mqtt]\nport = "1883"\n', "mqtt.port"),
        ('[hub]\ncoop = "r"\n[alerts]\nz = 0\n', "alerts.z"),
        ('[hub]\ncoop = "r"\nkmin = 5\n', "hub.kmin"),
        ("[hub]\n", "hub.coop"),
    ],
)
def test_bad_config_is_one_line_with_file_key_fix_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and f": {key}:" in err and "fix:" in err


def test_sample_config_validates(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hub", "sample-config"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "hub.toml").write_text(out)
    assert main(["check-config", str(tmp_path / "hub.toml")]) == 0


def test_a_password_written_as_a_number_is_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\ncoop = "r"\n[mqtt]\nusername = "hub"\npassword = 918273645\n')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mqtt.password" in err and "918273645" not in err
