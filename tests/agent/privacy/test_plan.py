"""Release plans: composition per unit, budgets, and the config error that names the streams."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.privacy.plan import UnitBudget, footfall_plans, plan_problems
from tests.conftest import BASE_CONFIG


def plans(door_eps: str = "1/2", store_eps: str = "1/2"):  # type: ignore[no-untyped-def]
    settings = {
        "footfall_door": {"tier": "t1", "mechanism": "discrete_laplace", "epsilon": Fraction(door_eps)},
        "footfall_store": {"tier": "t1", "mechanism": "discrete_laplace", "epsilon": Fraction(store_eps)},
    }
    return footfall_plans(["front", "back"], settings)


def test_streams_with_the_same_unit_compose_sequentially() -> None:
    assert plan_problems(plans(), UnitBudget(Fraction(1))) == []
    problems = plan_problems(plans("3/4"), UnitBudget(Fraction(1)))
    assert len(problems) == 1 and "footfall_door" in problems[0] and "footfall_store" in problems[0]
    assert "5/4" in problems[0]


def test_footfall_sensitivity_is_one_and_scale_follows() -> None:
    door, store = plans("1/4")
    assert door.l1_sensitivity == store.l1_sensitivity == 1
    assert door.noise_parameters() == (4, 1) and store.noise_parameters() == (2, 1)
    assert door.keys == ("front", "back") and store.keys == ("all",)


def test_gaussian_stream_needs_a_rho_budget_and_counts_laplace_as_eps_squared_over_two() -> None:
    settings = {
        "footfall_door": {"tier": "t1", "mechanism": "discrete_gaussian", "rho": Fraction(1, 8)},
        "footfall_store": {"tier": "t1", "mechanism": "discrete_laplace", "epsilon": Fraction(1, 2)},
    }
    mixed = footfall_plans(["front"], settings)
    assert "no rho budget" in plan_problems(mixed, UnitBudget(Fraction(1)))[0]
    assert plan_problems(mixed, UnitBudget(Fraction(1), rho=Fraction(1, 4))) == []  # 1/8 + (1/2)^2/2 = 1/4
    assert plan_problems(mixed, UnitBudget(Fraction(1), rho=Fraction(1, 5)))
    assert mixed[0].noise_parameters() == (4, 1)  # sigma^2 = 1 / (2 * 1/8)


def test_post_processing_only_touches_noisy_values() -> None:
    door = plans()[0]
    assert door.post_process(-3) == -3  # default: unbiased, no clamping
    clamped = type(door)(**{**door.__dict__, "clamp_negative": True, "suppress_below": 5})
    assert clamped.post_process(-3) is None and clamped.post_process(4) is None and clamped.post_process(7) == 7


def test_config_over_budget_names_the_streams(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(BASE_CONFIG.format(port=1883) + "\n[privacy.footfall_store]\nepsilon = 0.75\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, drivers={})
    message = str(info.value)
    assert "privacy.budget_epsilon_per_window" in message and "footfall_door" in message
    assert "footfall_store" in message and "fix:" in message


def test_disabled_store_stream_frees_its_budget(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    text = BASE_CONFIG.format(port=1883).replace("epsilon = 0.5", "epsilon = 1")
    path.write_text(text + "\n[privacy.footfall_store]\nenabled = false\n")
    config = load_config(path, drivers={})
    assert [p.name for p in config.streams] == ["footfall_door"]


def test_check_config_warns_above_a_sane_epsilon_per_window_and_says_what_it_means(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "agent.toml"
    path.write_text(
        BASE_CONFIG.format(port=1883).replace("epsilon = 0.5", "epsilon = 5")
        + "\n[privacy]\nbudget_epsilon_per_window = 10\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "door event costs epsilon 5.5 per window" in result.stderr
    assert "odds" in result.stderr and "docs/privacy.md" in result.stderr
    sane = tmp_path / "sane.toml"
    sane.write_text(BASE_CONFIG.format(port=1883))
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(sane)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "warning" not in result.stderr
