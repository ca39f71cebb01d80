"""The [licensing] policy and the lifetime budget in config: each mistake is one error naming key and fix."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from agent.errors import ConfigError
from tests.conftest import make_config
from tests.licensing_kit import licensing_section


def test_policy_and_lifetime_are_read(tmp_path: Path) -> None:
    config = make_config(tmp_path, extra=licensing_section(), lifetime='lifetime_epsilon_per_window = "5/2"')
    assert config.licensing is not None and config.licensing.kinds == ("footfall_hour_of_week",)
    assert config.licensing.approval == "auto" and config.licensing.max_epsilon_per_query == 1
    assert config.filter_budget.epsilon == Fraction(5, 2) and config.budget.epsilon == 1


def test_without_the_sections_the_filter_is_the_hourly_budget(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert config.licensing is None and config.filter_budget.epsilon == config.budget.epsilon == 1


@pytest.mark.parametrize(
    ("change", "lifetime", "key", "fix"),
    [
        (('coop_public_key = "', 'coop_public_key = "AAAA'), "", "licensing.coop_public_key", "keygen"),
        (('kinds = ["', 'kinds = ["footfall_by_minute", "'), "", "licensing.kinds", "footfall_hour_of_week"),
        (('approval = "auto"', 'approval = "sometimes"'), "", "licensing.approval", "manual"),
        (('approval = "auto"', 'approval = "auto"\nbudget = 3'), "", "licensing.budget", "spelling"),
        (("", ""), 'lifetime_epsilon_per_window = "1/2"', "privacy.lifetime_epsilon_per_window", "at least"),
    ],
)
def test_mistakes_name_the_key_and_the_fix(
    tmp_path: Path, change: tuple[str, str], lifetime: str, key: str, fix: str
) -> None:
    extra = licensing_section().replace(*change) if change[0] else licensing_section()
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, extra=extra, lifetime=lifetime)
    assert caught.value.key == key and fix in caught.value.fix
