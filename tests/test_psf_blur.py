"""Separable PSF blur (kernels.blur) and moment-matched Gaussian taps; the IFU cube's effective PSF FWHM.

Checks against independent implementations (a direct 2-D convolution, the
numpy twin) and physics that must hold: a convolution adds the kernel's
second moment to an image's, so the image's effective PSF variance is the
header's sigma^2 at any PSF width.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d

from mockzgrad.config import MockConfig
from mockzgrad.errors import ConfigError
from mockzgrad.kernels.blur import blur_separable_nb, blur_separable_ref
from mockzgrad.observation.ifu import _separable_is_cheaper, model_cube, plan_ifu, psf_stage
from mockzgrad.observation.psf import FWHM_PER_SIGMA, GaussianPSF, blur_separable
from mockzgrad.source.scene import render_scene


def _moments(img):
    """Second central moments of an image along x (columns) and y (rows), pixels^2."""
    y, x = np.indices(img.shape)
    tot = img.sum()
    out = []
    for c in (x, y):
        mean = (img * c).sum() / tot
        out.append((img * (c - mean) ** 2).sum() / tot)
    return out


@pytest.mark.parametrize("h, pad, n", [(1, 1, 5), (3, 3, 8), (4, 6, 11), (5, 5, 13), (8, 9, 30)])
def test_blur_twins_agree_and_match_a_direct_2d_convolution(h, pad, n):
    rng = np.random.default_rng(23)
    n_ext = pad + n + h + 2
    cube = rng.uniform(size=(3, n_ext, n_ext))
    half = rng.uniform(size=h + 1)
    taps = np.concatenate([half[:0:-1], half])
    taps /= taps.sum()
    out_nb = blur_separable_nb(cube, taps, pad, n, np.empty((3, n, n)))
    out_ref = blur_separable_ref(cube, taps, pad, n, np.empty((3, n, n)))
    np.testing.assert_allclose(out_nb, out_ref, rtol=1e-13, atol=0)
    k2 = np.outer(taps, taps)
    for c in range(3):
        full = convolve2d(cube[c], k2, mode="same")  # zero outside; the kept field never sees it
        np.testing.assert_allclose(out_nb[c], full[pad:pad + n, pad:pad + n], rtol=1e-12)


@pytest.mark.parametrize("h, pad, n", [(2, 3, 7), (3, 3, 6), (4, 4, 9)])
def test_blur_of_zero_channels_and_of_light_at_the_edge_of_the_read_region(h, pad, n):
    """All-zero channels give 0; one lit pixel anywhere in the read region still reaches the field."""
    n_ext = pad + n + h + 2
    a, b = pad - h, pad + n + h - 1  # first and last pixel the blur of the kept field reads
    cube = np.zeros((5, n_ext, n_ext))
    cube[1, a, b] = 2.0              # corner of the read region
    cube[2, b, pad + n // 2] = 3.0   # last row read
    cube[3, b + 1, b + 1] = 7.0      # outside it: the kept field does not see it
    taps = np.exp(-0.5 * (np.arange(-h, h + 1) / (0.6 * h)) ** 2)
    taps /= taps.sum()
    out_nb = blur_separable_nb(cube, taps, pad, n, np.full((5, n, n), np.nan))
    out_ref = blur_separable_ref(cube, taps, pad, n, np.full((5, n, n), np.nan))
    np.testing.assert_allclose(out_nb, out_ref, rtol=1e-13, atol=0)
    k2 = np.outer(taps, taps)
    for c in range(5):
        full = convolve2d(cube[c], k2, mode="same")
        np.testing.assert_allclose(out_nb[c], full[pad:pad + n, pad:pad + n], rtol=1e-12, atol=0)
    assert not out_nb[[0, 3, 4]].any()
    assert out_nb[1, 0, n - 1] == pytest.approx(2.0 * taps[0] * taps[-1], rel=1e-12)
    assert out_nb[2].sum() > 0.0


def test_blur_refuses_a_kernel_wider_than_the_padding():
    cube = np.zeros((1, 12, 12))
    with pytest.raises(ConfigError, match="pad = 1"):
        blur_separable(cube, np.ones(5) / 5, 1, 8)
    with pytest.raises(ConfigError, match="symmetric"):
        blur_separable(cube, np.array([0.2, 0.3, 0.5]), 2, 8)


@pytest.mark.parametrize("fwhm_pix", [0.5, 1.0, 1.6, 5.1, 20.0])
def test_separable_taps_add_exactly_the_psf_variance(fwhm_pix):
    pix = 0.08
    psf = GaussianPSF(fwhm_pix * pix)
    taps = psf.separable_taps(pix)
    k = np.arange(taps.size) - taps.size // 2
    assert taps.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_array_equal(taps, taps[::-1])
    sigma_pix = psf.sigma / pix
    assert np.sum(k**2 * taps) == pytest.approx(sigma_pix**2, rel=1e-9)
    # convolving a pixel-integrated image adds that variance (second moments add)
    img = np.zeros((41, 41))
    img[20, 20] = 1.0
    img[18, 23] = 0.5
    m_in = _moments(img)
    m_out = _moments(convolve2d(img, np.outer(taps, taps), mode="full"))  # every pixel kept
    for a, b in zip(m_out, m_in):
        assert a - b == pytest.approx(sigma_pix**2, rel=1e-9)


def test_separable_taps_approach_the_sampled_gaussian_when_wide():
    # for sigma >> pixel (8.5 pixels here) both have variance ~sigma^2 and vanishing excess
    # kurtosis. The taps also make up the ~0.2 % of variance that the 99.9 % truncation removes
    # from the centre-sampled kernel (peak ~0.1-0.2 % lower), so they agree to a few 1e-3 of
    # the peak
    pix, psf = 0.05, GaussianPSF(1.0)
    taps = psf.separable_taps(pix)
    centre = psf.kernel(pix, sampling="center").sum(axis=0)
    assert np.max(np.abs(taps - centre)) < 3e-3 * taps.max()


@pytest.mark.parametrize("fwhm", [0.08, 0.12, 0.3])
def test_ifu_cube_effective_psf_fwhm_is_the_header_fwhm(fwhm):
    """A small disk observed with 0.08" spaxels and a large field: the PSF adds sigma^2 to the
    second moments of the line image, so the effective FWHM equals the header's (the old kernel,
    sampled at spaxel centres, gave an image ~21 % sharper at 0.08" FWHM)."""
    cfg = MockConfig().replace(**{
        "instrument.pixel_scale": 0.08, "instrument.psf.fwhm": fwhm, "instrument.fov": 4.0,
        "noise.enabled": False, "lines.lines": ["OIII_5008"], "lines.generating_set": [],
        "galaxy.metallicity.z0": 8.0, "galaxy.r_eff": 1.0, "galaxy.inclination": 50.0,
        "instrument.spectral.window": 800.0})
    after, _ = model_cube(cfg)
    before, _ = model_cube(cfg, apply_psf=False)
    # light beyond the 4" field: the disk's is below 1e-12 of the total, so moments are unbiased
    assert after.sum() == pytest.approx(before.sum(), rel=1e-10)
    sigma2 = [a - b for a, b in zip(_moments(after.sum(axis=0)), _moments(before.sum(axis=0)))]
    for s2 in sigma2:
        assert np.sqrt(s2) * FWHM_PER_SIGMA * 0.08 == pytest.approx(fwhm, rel=1e-6)


def test_cropped_separable_stage_equals_the_fft_stage():
    """The separable float64 path and the float32 FFT of the padded field with the same 2-D kernel."""
    cfg = MockConfig().replace(**{"noise.enabled": False, "instrument.psf.fwhm": 0.2})
    plan = plan_ifu(cfg)
    assert plan.taps is not None and _separable_is_cheaper(plan.taps[next(iter(plan.taps))].size // 2, plan.sampling)
    scene = render_scene(plan.model, cfg.lines, plan.sampling, rng=np.random.default_rng(0))
    sep = psf_stage(scene.cube, plan, crop=True)
    s = plan.sampling
    fft = psf_stage(scene.cube, plan)[:, s.pad:s.pad + s.n, s.pad:s.pad + s.n]
    np.testing.assert_allclose(sep, fft, rtol=0, atol=1e-6 * fft.max())
    twin = psf_stage(scene.cube, plan, crop=True, use_numba=False)
    np.testing.assert_allclose(sep, twin, rtol=1e-12, atol=1e-15 * fft.max())
