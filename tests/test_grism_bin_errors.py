"""Bin errors of extracted line maps include the pixels' covariances (issue 16: "drizzled noise is correlated").

The joint extraction's map pixels are correlated (the linear split along and across the trace, the
de-blending of Hbeta from [OIII]); summing per-pixel variances over a bin misstates the bin's error.
The extraction keeps each pixel's covariances with its neighbours (``LineMaps.covariance``) and the maps
front end sums them over the bin's pixel pairs (``maps_frontend.bin_variance``). Checked here against
the scatter of binned fluxes over noise realisations (exposures made with the dispersion operator, as
in test_grism_extract.py).
"""

import numpy as np
import pytest

from mockzgrad.products.grism import GrismExposure, GrismMock
from mockzgrad.recovery import grism_extract as gx
from mockzgrad.recovery.maps_frontend import bin_variance

from _seed import seeded
from test_grism_extract import PS, Z, _mock

K_REAL = 40


def _block_labels(valid, size):
    """Square bins of ``size`` x ``size`` pixels over the valid pixels (-1 elsewhere)."""
    ny, nx = valid.shape
    yy, xx = np.mgrid[:ny, :nx]
    lab = (yy // size) * (nx // size + 1) + xx // size
    _, lab = np.unique(np.where(valid, lab, -1), return_inverse=True)
    lab = lab.reshape(valid.shape) - (0 if valid.all() else 1)
    return np.where(valid, lab, -1), int(lab.max()) + 1


@pytest.fixture(scope="module")
def realisations():
    """Noise-free maps and K_REAL noisy extractions (sigma varying x1 to x3 across each frame)."""
    mock = _mock()
    free = gx.extract_line_maps(mock, Z, velocities="none", continuum=False, segmentation=0.05)
    rng = np.random.default_rng(seeded(1610))
    noisy = []
    for _ in range(K_REAL):
        exps = []
        for e in mock.exposures:
            sigma = 2e-3 * (1.0 + 2.0 * np.linspace(0, 1, e.sci.shape[1])[None, :] * np.ones(e.sci.shape))
            exps.append(GrismExposure(name=e.name, sci=e.sci + sigma * rng.normal(size=e.sci.shape), var=sigma**2,
                                      header=e.header, exptime=e.exptime))
        got = gx.extract_line_maps(GrismMock(exposures=exps, direct=mock.direct, pixel_scale=PS, psf=mock.psf), Z,
                                   velocities="none", continuum=False, segmentation=0.05)
        noisy.append(got)
    return free, noisy


def _mean_square_pulls(free, noisy, name, size, *, use_cov):
    """Per realisation, the mean over bins of ((binned - binned noise-free) / error)^2."""
    i = free.index(name)
    valid = np.isfinite(free.flux[i])
    labels, n_bins = _block_labels(valid, size)
    out = []
    for got in noisy:
        diff = np.bincount(labels[valid], weights=(got.flux[i] - free.flux[i])[valid], minlength=n_bins)
        if use_cov:
            var = bin_variance(got.covariance[i], got.cov_offsets, labels, valid, n_bins)
        else:
            var = np.bincount(labels[valid], weights=got.variance[i][valid], minlength=n_bins)
        out.append(np.mean(diff**2 / var))
    return np.array(out), n_bins


@pytest.mark.parametrize("name", ["Hb", "OIII_5008"])
@pytest.mark.parametrize("size", [2, 3, 5])
def test_binned_pulls_have_unit_width_with_the_covariances(realisations, name, size):
    """Mean square pull of binned fluxes = 1 within 4 Monte Carlo errors (std of the per-realisation
    mean square over sqrt(K); realisations are independent, bins within one are not)."""
    free, noisy = realisations
    t, n_bins = _mean_square_pulls(free, noisy, name, size, use_cov=True)
    assert n_bins >= 9
    assert abs(t.mean() - 1.0) < 4.0 * t.std(ddof=1) / np.sqrt(t.size), (t.mean(), t.std(ddof=1))


@pytest.mark.parametrize("name", ["Hb", "OIII_5008"])
def test_summed_pixel_variances_misstate_binned_errors(realisations, name):
    """The check above can fail: without the covariances the same pulls are off unity by > 4 MC errors."""
    free, noisy = realisations
    t, _ = _mean_square_pulls(free, noisy, name, 3, use_cov=False)
    assert abs(t.mean() - 1.0) > 4.0 * t.std(ddof=1) / np.sqrt(t.size), (t.mean(), t.std(ddof=1))


def test_bin_variance_is_the_sum_over_pixel_pairs():
    """A random covariance with no pairs beyond the stencil: bin variances = 1^T C_bin 1, computed directly."""
    rng = np.random.default_rng(5)
    ny, nx = 6, 7
    n = ny * nx
    yy, xx = np.divmod(np.arange(n), nx)
    near = (np.abs(yy[:, None] - yy[None]) <= 1) & (np.abs(xx[:, None] - xx[None]) <= 1)
    m = rng.normal(size=(n, n)) * near
    cov = (m @ m.T) * near  # symmetric; beyond the 3x3 stencil set to 0
    offsets = gx.cov_offsets(1)
    stencil = np.zeros((len(offsets), ny, nx))
    for k, (dy, dx) in enumerate(offsets):
        for p in range(n):
            qy, qx = yy[p] + dy, xx[p] + dx
            if 0 <= qy < ny and 0 <= qx < nx:
                stencil[k, yy[p], xx[p]] = cov[p, qy * nx + qx]
    labels = rng.integers(-1, 4, size=(ny, nx))
    valid = rng.random((ny, nx)) > 0.1
    got = bin_variance(stencil, offsets, labels, valid, 4)
    sel = valid.ravel()
    want = [cov[np.ix_(sel & (labels.ravel() == b), sel & (labels.ravel() == b))].sum() for b in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_stencil_is_the_solution_covariance(realisations):
    """The stencil's (0, 0) entry is the variance map; Cov(p, p + o) = Cov(p + o, p) (symmetry)."""
    _, noisy = realisations
    got = noisy[0]
    offsets = [tuple(o) for o in got.cov_offsets.tolist()]
    for i in range(len(got.names)):
        c = got.covariance[i]
        ok = np.isfinite(got.variance[i])
        np.testing.assert_allclose(c[offsets.index((0, 0))][ok], got.variance[i][ok], rtol=1e-12)
        k, kneg = offsets.index((1, 2)), offsets.index((-1, -2))
        np.testing.assert_allclose(c[k][:-1, :-2], c[kneg][1:, 2:], rtol=1e-9, atol=1e-12 * c.max())
