"""Tests of mockzgrad.observation.lsf: widths, flux conservation, grids, layouts.

Second moments are measured from channel-centre velocities. For a delta
(all flux in one channel) the response of the matrix is a Gaussian of sigma
integrated over the output channels (variance delta_v^2/12 from that
integration) after the flux was spread over the input channel (another
delta_v^2/12 for ``channel_profile="uniform"``, none for ``"centre"``).
"""

import numpy as np
import pytest
from scipy.special import erf

from mockzgrad.errors import ConfigError, DataError
from mockzgrad.physics.lines import C_KMS
from mockzgrad.observation.lsf import convolve_spectral, redistribution_matrix, sigma_kms_from_resolution

SIGMA = 125.0  # km/s, DESIGN.md default LSF


def log_grid(n=240, dv=106.0, start=20000.0):
    """Edges with constant velocity width dv (km/s)."""
    return start * np.exp(dv / C_KMS * np.arange(n + 1))


def linear_grid(n=300, dlam=8.0, start=20000.0):
    return start + dlam * np.arange(n + 1)


def moments(flux, edges):
    """Flux-weighted mean and variance of velocity c ln(lambda / lambda_ref), km/s."""
    centre = np.sqrt(edges[:-1] * edges[1:])
    v = C_KMS * np.log(centre / centre[len(centre) // 2])
    f = flux.sum()
    mean = (flux * v).sum() / f
    return mean, (flux * (v - mean) ** 2).sum() / f


def gaussian_line(edges, v0, sigma):
    """Channel-integrated Gaussian line of unit flux, centred at velocity v0 (km/s) on the grid."""
    centre = np.sqrt(edges[:-1] * edges[1:])
    lam0 = centre[len(centre) // 2] * np.exp(v0 / C_KMS)
    s = lam0 * sigma / C_KMS
    return 0.5 * np.diff(erf((edges - lam0) / (np.sqrt(2) * s)))


def local_dv(edges, j):
    return C_KMS * np.log(edges[j + 1] / edges[j])


def test_sigma_from_resolution():
    assert sigma_kms_from_resolution(2700) == pytest.approx(C_KMS / (2700 * 2.35482), rel=1e-5)
    np.testing.assert_allclose(sigma_kms_from_resolution([1000, 3000]),
                               C_KMS / np.array([1000, 3000]) / 2.354820045)
    for bad in (0, -5, np.nan, True):
        with pytest.raises(ConfigError, match="resolution"):
            sigma_kms_from_resolution(bad)


@pytest.mark.parametrize("grid", [log_grid, linear_grid])
@pytest.mark.parametrize("profile, n_boxes", [("centre", 1), ("uniform", 2)])
def test_delta_becomes_channel_integrated_gaussian(grid, profile, n_boxes):
    edges = grid()
    n = edges.size - 1
    j = n // 2
    spec = np.zeros(n)
    spec[j] = 1.0
    out = convolve_spectral(spec, edges, SIGMA, channel_profile=profile)
    _, var = moments(out, edges)
    dv = local_dv(edges, j)
    assert np.sqrt(var) == pytest.approx(np.sqrt(SIGMA**2 + n_boxes * dv**2 / 12), rel=1e-3)
    if profile == "centre":  # exactly the Gaussian at the channel centre, integrated over channels
        lam = 0.5 * (edges[j] + edges[j + 1])
        expected = 0.5 * np.diff(erf((edges - lam) / (np.sqrt(2) * lam * SIGMA / C_KMS)))
        np.testing.assert_allclose(out, expected, atol=1e-15)


@pytest.mark.parametrize("grid", [log_grid, linear_grid])
def test_interior_flux_conserved(grid):
    edges = grid()
    n = edges.size - 1
    rng = np.random.default_rng(5)
    spec = np.zeros((3, n))
    spec[:, 30:n - 30] = rng.uniform(0, 1, size=(3, n - 60))  # > 8 sigma from the ends
    out = convolve_spectral(spec, edges, SIGMA)
    np.testing.assert_allclose(out.sum(axis=-1), spec.sum(axis=-1), rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=-1), spec.sum(axis=-1), rtol=1e-12)  # in fact to rounding
    matrix = redistribution_matrix(edges, SIGMA)
    np.testing.assert_allclose(matrix[:, 30:n - 30].sum(axis=0), 1.0, atol=1e-12)


def test_flux_beyond_the_grid_is_lost():
    edges = log_grid()
    spec = np.zeros(edges.size - 1)
    spec[0] = 1.0
    out = convolve_spectral(spec, edges, SIGMA)
    assert 0.45 < out.sum() < 0.75


def test_gaussian_widths_add_in_quadrature_fine_grid():
    # channels much narrower than the line: width -> sqrt(s0^2 + s^2)
    edges = log_grid(n=1200, dv=5.0)
    s0 = 80.0
    line = gaussian_line(edges, 0.0, s0)
    out = convolve_spectral(line, edges, SIGMA)
    _, var = moments(out, edges)
    assert np.sqrt(var - 5.0**2 / 12) == pytest.approx(np.hypot(s0, SIGMA), rel=1e-3)


@pytest.mark.parametrize("profile, n_boxes", [("centre", 1), ("uniform", 2)])
def test_variance_added_on_coarse_flagship_grid(profile, n_boxes):
    # DESIGN.md flagship: 106 km/s channels, LSF 125 km/s, sigma0 = 80 km/s.
    dv = 106.0
    edges = log_grid(dv=dv)
    line = gaussian_line(edges, 30.0, 80.0)
    out = convolve_spectral(line, edges, SIGMA, channel_profile=profile)
    (m_in, v_in), (m_out, v_out) = moments(line, edges), moments(out, edges)
    assert v_in == pytest.approx(80.0**2 + dv**2 / 12, rel=1e-4)  # Sheppard
    assert v_out - v_in == pytest.approx(SIGMA**2 + n_boxes * dv**2 / 12, rel=1e-3)
    assert m_out == pytest.approx(m_in, abs=0.5)  # no shift (km/s)


def test_cube_and_spectra_layouts_agree():
    edges = linear_grid(n=120)
    rng = np.random.default_rng(2)
    cube = rng.uniform(size=(120, 3, 4))
    out_cube = convolve_spectral(cube, edges, SIGMA)
    out_spec = convolve_spectral(np.moveaxis(cube, 0, -1), edges, SIGMA)
    np.testing.assert_allclose(out_cube, np.moveaxis(out_spec, -1, 0), rtol=1e-13)
    np.testing.assert_allclose(convolve_spectral(cube, edges, SIGMA, axis=0), out_cube, rtol=0)
    with pytest.raises(ConfigError, match="channels"):
        convolve_spectral(cube, edges, SIGMA, axis=1)


@pytest.mark.parametrize("n, sigma", [(400, SIGMA), (12, 600.0)])  # sparse path, dense path
def test_fast_path_matches_dense_matrix(n, sigma):
    edges = linear_grid(n=n)
    spec = np.random.default_rng(9).normal(size=(5, n))
    matrix = redistribution_matrix(edges, sigma)
    np.testing.assert_allclose(convolve_spectral(spec, edges, sigma), spec @ matrix.T, atol=1e-14)
    assert (redistribution_matrix(edges, sigma, as_sparse=True).toarray() == matrix).all()


def test_decreasing_edges():
    edges = linear_grid(n=80)
    spec = np.random.default_rng(1).uniform(size=80)
    forward = convolve_spectral(spec, edges, SIGMA)
    backward = convolve_spectral(spec[::-1], edges[::-1], SIGMA)
    np.testing.assert_allclose(backward[::-1], forward, rtol=1e-13)


def test_zero_sigma_is_identity():
    edges = linear_grid(n=50)
    spec = np.random.default_rng(4).uniform(size=(2, 50))
    np.testing.assert_array_equal(convolve_spectral(spec, edges, 0.0), spec)


def test_sigma_per_channel():
    edges = log_grid(n=200, dv=50.0)
    sigma = np.where(np.arange(200) < 100, 100.0, 200.0)
    matrix = redistribution_matrix(edges, sigma, channel_profile="centre")
    for j, s in ((60, 100.0), (150, 200.0)):
        _, var = moments(matrix[:, j], edges)
        assert np.sqrt(var) == pytest.approx(np.hypot(s, 50.0 / np.sqrt(12)), rel=1e-3)
    np.testing.assert_array_equal(redistribution_matrix(edges, np.full(200, 80.0)),
                                  redistribution_matrix(edges, 80.0))


def test_flagship_cube_is_fast():
    import time

    edges = log_grid(n=1000)
    cube = np.random.default_rng(0).uniform(size=(1000, 40, 40))
    start = time.perf_counter()
    convolve_spectral(cube, edges, SIGMA)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("edges, sigma, match", [
    ([1.0, 3.0, 2.0, 4.0], 100.0, "strictly"),
    ([[1.0, 2.0]], 100.0, "shape"),
    ([0.0, 1.0, 2.0, 3.0], 100.0, "> 0"),
    ([1.0, 2.0, 3.0, 4.0], -1.0, "sigma_kms"),
    ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0], "one per channel"),
])
def test_invalid_inputs(edges, sigma, match):
    with pytest.raises(ConfigError, match=match):
        redistribution_matrix(edges, sigma)


def test_invalid_cube():
    edges = linear_grid(n=10)
    with pytest.raises(ConfigError, match="wave_edges"):
        convolve_spectral(np.zeros(11), edges, SIGMA)
    with pytest.raises(DataError, match="NaN"):
        convolve_spectral(np.full(10, np.nan), edges, SIGMA)
    with pytest.raises(ConfigError, match="channel_profile"):
        convolve_spectral(np.zeros(10), edges, SIGMA, channel_profile="box")
