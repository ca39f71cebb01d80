"""The [secagg] section: off when empty, on with a pinned roster digest, and every mistake one line naming
the key and the fix."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from agent.config import load_config
from agent.demo import write_demo_config
from agent.errors import ConfigError

DIGEST = "ab" * 32


def config_with(tmp_path: Path, section: str) -> Path:
    links = {d: tmp_path / "dev" / d for d in ("front", "back")}
    path = write_demo_config(tmp_path, 1883, links)
    path.write_text(path.read_text() + section)
    return path


def test_an_empty_section_is_off_and_a_digest_turns_it_on(tmp_path: Path) -> None:
    assert load_config(config_with(tmp_path, "\n[secagg]\n")).secagg is None
    on = load_config(config_with(tmp_path, f'\n[secagg]\nroster_digest = "{DIGEST}"\nmax_rho_per_round = "1/48"\n'))
    assert on.secagg is not None and on.secagg.roster_digest == bytes.fromhex(DIGEST)
    assert on.secagg.max_rho == Fraction(1, 48) and on.secagg.streams == ("footfall_store",)
    assert on.secagg.identity_key == on.data_dir / "secagg-identity.key"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('roster_digest = "abc"', "secagg.roster_digest"),
        (f'roster_digest = "{DIGEST}"\nstreams = ["sales_revenue"]', "secagg.streams"),  # no POS configured
        (f'roster_digest = "{DIGEST}"\nmax_rho_per_round = 0', "secagg.max_rho_per_round"),
        (f'roster_digest = "{DIGEST}"\nthreshold = 3', "secagg.threshold"),
        ("max_rho_per_round = 1", "secagg.roster_digest"),
    ],
)
def test_a_mistake_names_its_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(config_with(tmp_path, f"\n[secagg]\n{body}\n"))
    assert refused.value.key == key and refused.value.fix
