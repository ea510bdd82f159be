"""Exposure solver of the planner (issue 19): the sigma law, its fit and its inversion."""

import math

import numpy as np
import pytest

from mockzgrad.corrections import plan_solve as PS
from mockzgrad.errors import ConfigError


def test_pure_noise_law_halves_sigma_per_factor_four():
    """floor = 0: sigma ~ t^-1/2, so 4x the exposure halves sigma and 2x lowers it by sqrt(2)."""
    t = np.array([1000.0, 4000.0])
    law = PS.fit_sigma_law(t, [0.2, 0.1])
    assert law.floor ** 2 == pytest.approx(0.0, abs=1e-14) and law.a == pytest.approx(0.2 ** 2 * 1000.0, rel=1e-9)
    assert law.sigma(2000.0) / law.sigma(1000.0) == pytest.approx(1 / math.sqrt(2), rel=1e-9)


@pytest.mark.parametrize("a, floor", [(40.0, 0.0), (40.0, 0.03), (5.0, 0.08)])
def test_fit_recovers_a_known_law(a, floor):
    t = np.geomspace(300.0, 3e5, 6)
    law = PS.fit_sigma_law(t, np.sqrt(a / t + floor ** 2))
    assert law.a == pytest.approx(a, rel=1e-8) and law.floor == pytest.approx(floor, abs=1e-8)
    assert law.n_points == 6


def test_solution_reaches_the_target_exactly_and_is_the_shortest():
    law = PS.SigmaLaw(a=40.0, floor=0.02, n_points=3)
    sol = PS.solve_exposure(law, 0.05, cap=1e7)
    assert sol.status == "ok"
    assert float(law.sigma(sol.exposure)) == pytest.approx(0.05, rel=1e-12)
    assert float(law.sigma(0.99 * sol.exposure)) > 0.05  # shorter does not reach it (sigma decreases with t)


def test_target_at_or_below_the_floor_is_the_calibration_floor_with_its_value():
    law = PS.SigmaLaw(a=40.0, floor=0.0412, n_points=3)
    sol = PS.solve_exposure(law, 0.04, cap=1e7)
    assert sol.status == "calibration floor" and math.isinf(sol.exposure) and "0.0412" in sol.reason


def test_beyond_the_cap_is_too_faint_naming_the_cap():
    sol = PS.solve_exposure(PS.SigmaLaw(a=40.0, floor=0.0, n_points=1), 0.01, cap=3600.0)
    assert sol.status == "too faint" and "3.6e+03" in sol.reason and math.isinf(sol.exposure)


@pytest.mark.parametrize("call, word", [
    (lambda: PS.solve_exposure(PS.SigmaLaw(1.0, 0.0, 1), 0.0, cap=1.0), "sigma_target"),
    (lambda: PS.solve_exposure(PS.SigmaLaw(1.0, 0.0, 1), 0.1, cap=-1.0), "exposure_cap"),
    (lambda: PS.fit_sigma_law([-5.0, 10.0], [0.1, 0.1]), "exposure"),
    (lambda: PS.fit_sigma_law([10.0], [math.nan]), "no exposure"),
])
def test_bad_input_is_one_line(call, word):
    with pytest.raises(ConfigError, match=word) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_is_decreasing():
    assert PS.is_decreasing([1, 4, 16], [0.2, 0.1, 0.05])
    assert not PS.is_decreasing([1, 4, 16], [0.2, 0.1, 0.12])
    assert PS.is_decreasing([16, 1, 4], [0.05, 0.2, 0.1])  # order of the exposures does not matter
