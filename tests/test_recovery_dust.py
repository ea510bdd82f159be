"""Tests of the recovery's dust step (mockzgrad.recovery.dust).

Independent references: fluxes reddened with mockzgrad.physics.dust.redden at a
known A_V, de-reddening with mockzgrad.physics.dust.deredden, finite differences
and Monte Carlo for the propagated covariance.
"""

import math

import numpy as np
import pytest
from _metallicity_data import NAMES_BALMER, exact_fluxes, wavelengths

from mockzgrad.errors import ConfigError
from mockzgrad.physics.dust import a_v_from_balmer_decrement, deredden, redden
from mockzgrad.recovery.dust import balmer_decrement_correction
from mockzgrad.recovery.fluxes import BinFluxes


def test_balmer_decrement_recovers_a_v_and_intrinsic_fluxes():
    z = np.array([7.6, 7.9, 8.2, 7.8])
    a_v = np.array([0.3, 1.1, 2.4, 0.8])
    intrinsic = exact_fluxes(z, balmer=True)
    obs = redden(intrinsic, wavelengths(NAMES_BALMER)[None, :], a_v[:, None], law="calzetti2000")
    err = obs / 50.0
    err[3, 5] = obs[3, 5] / 3.0  # Ha at S/N 3 in the last bin
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, err)
    cor, av, src = balmer_decrement_correction(bins, law="calzetti2000", global_a_v=0.7)
    assert src == ("bin", "bin", "bin", "global")
    np.testing.assert_allclose(av[:3], a_v[:3], atol=1e-10)
    assert av[3] == 0.7
    np.testing.assert_allclose(cor.flux[:3], intrinsic[:3], rtol=1e-10)
    _, av_none, src_none = balmer_decrement_correction(bins, law="calzetti2000")
    assert src_none[3] == "none" and av_none[3] == 0.0
    hg, av_hg, src_hg = balmer_decrement_correction(bins, pair=("Hg", "Hb"), law="calzetti2000")
    assert src_hg == ("bin",) * 4
    np.testing.assert_allclose(av_hg, a_v, atol=1e-10)
    # below the intrinsic decrement (e.g. noise): global value, not a negative A_V
    low = BinFluxes.from_errors(("Hb", "Ha"), [[1.0, 2.7]], [[0.01, 0.01]])
    assert balmer_decrement_correction(low, global_a_v=0.5)[2] == ("global",)


def test_balmer_decrement_covariance_matches_monte_carlo():
    rng = np.random.default_rng(10)
    obs = redden(exact_fluxes([7.9], balmer=True), wavelengths(NAMES_BALMER)[None, :], 1.2)
    err = obs / 40.0
    cor, _, _ = balmer_decrement_correction(BinFluxes.from_errors(NAMES_BALMER, obs, err))
    draws = obs + err * rng.standard_normal((20000, obs.shape[1]))
    mc, _, src = balmer_decrement_correction(
        BinFluxes.from_errors(NAMES_BALMER, draws, np.broadcast_to(err, draws.shape)))
    assert set(src) == {"bin"}
    emp = np.cov(mc.flux.T)
    sd = np.sqrt(np.diag(emp))
    np.testing.assert_allclose(np.sqrt(np.diag(cor.cov[0])), sd, rtol=0.05)
    np.testing.assert_allclose(cor.cov[0] / np.outer(sd, sd), emp / np.outer(sd, sd), atol=0.05)
    fixed, _, _ = balmer_decrement_correction(BinFluxes.from_errors(NAMES_BALMER, obs, err),
                                              a_v_error=False)
    assert np.all(np.diag(fixed.cov[0]) <= np.diag(cor.cov[0]) * (1 + 1e-12))


@pytest.mark.parametrize("law", ["calzetti2000", "cardelli1989"])
def test_covariance_is_the_finite_difference_jacobian(law):
    """cov' = J cov J^T with J the derivative of the corrected fluxes (per-bin A_V included)."""
    obs = redden(exact_fluxes([7.7], balmer=True), wavelengths(NAMES_BALMER)[None, :], 0.9, law=law)[0]
    rng = np.random.default_rng(0)
    a = rng.normal(size=(obs.size, obs.size))
    cov = 1e-4 * (a @ a.T) * np.outer(obs, obs)  # full, correlated

    def corrected(f):
        return balmer_decrement_correction(BinFluxes(NAMES_BALMER, f, cov), law=law)[0].flux[0]

    jac = np.empty((obs.size, obs.size))
    for i in range(obs.size):
        h = 1e-6 * obs[i]
        up, dn = obs.copy(), obs.copy()
        up[i] += h
        dn[i] -= h
        jac[:, i] = (corrected(up) - corrected(dn)) / (2 * h)
    got = balmer_decrement_correction(BinFluxes(NAMES_BALMER, obs, cov), law=law)[0].cov[0]
    np.testing.assert_allclose(got, jac @ cov @ jac.T, rtol=1e-6, atol=1e-12 * np.abs(got).max())


def test_law_lines_deredden_every_line_with_the_decrement_a_v():
    """Battisti et al. (2022) is known only at Ha and Hb: A_V from it, lines with CCM89."""
    obs = redden(exact_fluxes([7.8, 8.1], balmer=True), wavelengths(NAMES_BALMER)[None, :],
                 np.array([[0.5], [1.5]]), law="cardelli1989")
    bins = BinFluxes.from_errors(NAMES_BALMER, obs, obs / 100.0)
    cor, a_v, src = balmer_decrement_correction(bins, law="battisti2022", law_lines="cardelli1989")
    assert src == ("bin", "bin")
    np.testing.assert_allclose(a_v, a_v_from_balmer_decrement(obs[:, 5] / obs[:, 1], law="battisti2022"),
                               rtol=1e-12)
    expected = deredden(obs, wavelengths(NAMES_BALMER)[None, :], a_v[:, None], law="cardelli1989")
    np.testing.assert_allclose(cor.flux, expected, rtol=1e-12)


def test_nan_covariance_stays_nan_and_is_not_spread():
    obs = exact_fluxes([7.9, 7.9], balmer=True)
    cov = np.stack([np.diag((obs[0] / 30) ** 2)] * 2)
    cov[1, 4, 4] = np.nan  # [NeIII] error unknown in the second bin
    cor, _, _ = balmer_decrement_correction(BinFluxes(NAMES_BALMER, obs, cov), global_a_v=0.4)
    assert np.isnan(cor.cov[1, 4, 4])
    assert np.all(np.isfinite(np.delete(np.delete(cor.cov[1], 4, 0), 4, 1)))
    assert np.all(np.isfinite(cor.cov[0]))


@pytest.mark.parametrize("kwargs, match", [
    ({"law": "smc"}, "law = 'smc'"),
    ({"law_lines": "smc"}, "law_lines = 'smc'"),
    ({"pair": ("Ha",)}, "pair"),
    ({"pair": ("OIII_5008", "Hb")}, "intrinsic"),
    ({"intrinsic": -2.0}, "intrinsic = -2.0"),
    ({"intrinsic": math.nan}, "intrinsic = nan"),
    ({"global_a_v": math.inf}, "global_a_v = inf"),
])
def test_config_errors_name_the_field(kwargs, match):
    bins = BinFluxes.from_errors(NAMES_BALMER, exact_fluxes([7.9], balmer=True), 0.01)
    with pytest.raises(ConfigError, match=match):
        balmer_decrement_correction(bins, **kwargs)
    with pytest.raises(ConfigError, match="BinFluxes"):
        balmer_decrement_correction({"Ha": 1.0})
