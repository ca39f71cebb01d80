"""[home_assistant]: off by default, never the coop's broker or topics, its password never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config
from agent.errors import ConfigProblems
from agent.owner.home_assistant import discovery, entities
from tests.agent.test_config import DRIVERS, GOOD


def load(tmp_path: Path, section: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD + "\n[home_assistant]\n" + section)
    return load_config(path, DRIVERS)


def test_off_unless_enabled(tmp_path: Path) -> None:
    assert load(tmp_path, "port = 1884\n").home_assistant is None


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("enabled = true\n", "home_assistant.host"),  # the coop's own 127.0.0.1:1883
        ('enabled = true\nhost = "localhost"\nport = 1883\n', "home_assistant.host"),
        ('enabled = true\nport = 1884\nstate_prefix = "coop/v1/riverside"\n', "home_assistant.state_prefix"),
        ('enabled = true\nport = 1884\ndiscovery_prefix = "home/#"\n', "home_assistant.discovery_prefix"),
    ],
)
def test_the_coops_broker_and_topics_are_refused(tmp_path: Path, section: str, key: str) -> None:
    with pytest.raises(ConfigProblems) as caught:
        load(tmp_path, section)
    assert [e.key for e in caught.value.errors] == [key]


def test_its_password_is_a_secret_in_every_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems) as caught:
        load(tmp_path, "enabled = true\nport = 1884\npassword = 55501234\n")
    assert "55501234" not in str(caught.value) and "home_assistant.password" in str(caught.value)


def test_discovery_names_every_entity_under_home_assistants_layout(tmp_path: Path) -> None:
    config = load(tmp_path, "enabled = true\nport = 1884\n")
    assert config.home_assistant is not None
    topics = discovery(config, config.home_assistant)
    assert len(topics) == len(entities(config, "")) == 7
    assert "homeassistant/sensor/store_0042/front_entries/config" in topics
