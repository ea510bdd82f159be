"""The shipped grism examples name every line their exposures cover (issue 16).

The extraction fits one map per line group some exposure covers (``grism_extract._covered_groups``);
a line the mock lacks is then extracted as a map of ~0 with small errors, which a recipe with
``fit_a_v`` reads as a measured Balmer ratio (Hgamma/Hbeta = 0 pulls A_V; G141 lost ~0.05 dex/kpc
of gradient that way, tests/test_grism_g141.py). So each example's ``lines.lines`` must hold the main
line of every covered group.
"""

from pathlib import Path

import pytest

from mockzgrad.config import load_config
from mockzgrad.observation.grism.forward import exposure_models
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.grism_extract import line_groups

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GRISM_EXAMPLES = ["niriss_z3.toml", "g141_z1p5.toml", "g102_g141_overlap.toml"]


def _covered(cfg):
    models = [m for _, _, m in exposure_models(cfg, 16)]
    z = cfg.galaxy.redshift
    return {g.shares[0][0] for g in line_groups(0.05)
            if any(m.covers(LINES[g.shares[0][0]].wavelength * (1 + z)) for m in models)}


@pytest.mark.parametrize("name", GRISM_EXAMPLES)
def test_grism_example_names_every_covered_line(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.instrument.kind == "grism"
    covered = _covered(cfg)
    assert covered, name
    missing = sorted(covered - set(cfg.lines.lines))
    assert not missing, f"{name}: covered but not in lines.lines: {missing}"


def test_the_check_sees_a_dropped_line():
    """The check can fail: the overlap example without Hgamma (G102 covers it at z = 1.12)."""
    cfg = load_config(EXAMPLES / "g102_g141_overlap.toml")
    assert "Hg" in _covered(cfg)
