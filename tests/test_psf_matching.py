"""Tests of mockzgrad.recovery.psf_matching: every channel degraded to the PSF
of one wavelength.

Expectations are computed independently: second moments of Gaussians add
under convolution, flux is conserved, the discrete Gaussian's sum of squares
is known in closed form (modified Bessel functions), and a Monte-Carlo of
noise maps checks the propagated variance.
"""

import math
import warnings

import numpy as np
import pytest
from scipy.special import erf, ive

from mockzgrad.config import MockConfig
from mockzgrad.errors import ConfigError, RecoveryWarning
from mockzgrad.observation.ifu import build_cube
from mockzgrad.observation.psf import FWHM_PER_SIGMA, EllipticalGaussianPSF, GaussianPSF, MoffatPSF
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery.geometry import line_map
from mockzgrad.recovery.psf_matching import homogenise_psf, homogenise_variance


def _mock(psf_fwhm, **extra):
    cfg = MockConfig().replace(**{
        "lines.lines": ["OIII_5008"], "lines.generating_set": [], "galaxy.metallicity.z0": 8.0,
        "galaxy.inclination": 0.0, "galaxy.pa": 0.0, "galaxy.x_offset": 0.07, "galaxy.y_offset": -0.04,
        "instrument.psf.fwhm": psf_fwhm, "noise.enabled": False, "seed": 11, **extra,
    })
    return build_cube(cfg)


def _moments(img):
    """<x^2>, <y^2>, <xy> about the centroid (pixels^2) and the total."""
    y, x = np.indices(img.shape, dtype=float)
    f = img.sum()
    xc, yc = (img * x).sum() / f, (img * y).sum() / f
    dx, dy = x - xc, y - yc
    return np.array([(img * dx * dx).sum(), (img * dy * dy).sum(), (img * dx * dy).sum()]) / f, f


class TestHomogenisePSF:
    PIX = 0.1
    WAVES = np.linspace(20000.0, 30000.0, 6)

    def _cube(self, psf, n=71):
        """Point source at the centre seen through the channel's (Gaussian) PSF, pixel-integrated."""
        out = []
        edges = (np.arange(n + 1) - 0.5 - (n - 1) / 2) * self.PIX
        for k, w in enumerate(self.WAVES):
            s = psf.fwhm_at(w) / FWHM_PER_SIGMA
            prof = 0.5 * np.diff(erf(edges / (math.sqrt(2.0) * s)))
            out.append((1.0 + k) * np.outer(prof, prof))
        return np.array(out)

    def test_gaussian_psf_matched_and_flux_conserved(self):
        psf = GaussianPSF(0.2, ref_wavelength=20000.0, scaling_exponent=1.0)
        cube = self._cube(psf)
        out = homogenise_psf(cube, self.WAVES, psf, self.WAVES[-1], pixel_scale=self.PIX)
        target, _ = _moments(cube[-1])
        for k in range(len(self.WAVES)):
            m, f = _moments(out[k])
            assert f == pytest.approx(cube[k].sum(), rel=1e-10)
            # exact up to the exponentially small departure of an erf-integrated
            # Gaussian's discrete variance from sigma^2 + 1/12
            np.testing.assert_allclose(m, target, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(out[-1], cube[-1], atol=1e-12)  # the target channel is untouched

    def test_elliptical_psf_matched(self):
        psf = EllipticalGaussianPSF(0.3, 0.18, 35.0, ref_wavelength=20000.0, scaling_exponent=1.0)
        n = 71
        # channels: a point source convolved with the channel PSF (centre-sampled kernel of the PSF model)
        cube = np.zeros((len(self.WAVES), n, n))
        for k, w in enumerate(self.WAVES):
            ker = psf.kernel(self.PIX, wavelength=w, sampling="center")
            h = ker.shape[0] // 2
            cube[k, 35 - h:36 + h, 35 - h:36 + h] = ker
        out = homogenise_psf(cube, self.WAVES, psf.to_header(), self.WAVES[-1], pixel_scale=self.PIX)
        target, _ = _moments(out[-1])
        for k in range(len(self.WAVES)):
            m, f = _moments(out[k])
            assert f == pytest.approx(1.0, rel=1e-10)
            np.testing.assert_allclose(m, target, rtol=2e-3, atol=1e-4)

    def test_constant_psf_is_a_no_op(self):
        cube = self._cube(GaussianPSF(0.2))
        out = homogenise_psf(cube, self.WAVES, {"PSF_KIND": "gaussian", "PSF_FWHM": 0.2}, 25000.0,
                             pixel_scale=self.PIX)
        np.testing.assert_array_equal(out, cube)
        assert out is not cube

    def test_broader_channels_left_and_warned(self):
        psf = GaussianPSF(0.2, ref_wavelength=20000.0, scaling_exponent=1.0)
        cube = self._cube(psf)
        with pytest.warns(RecoveryWarning, match="broader"):
            out = homogenise_psf(cube, self.WAVES, psf, self.WAVES[2], pixel_scale=self.PIX)
        np.testing.assert_array_equal(out[3:], cube[3:])

    def test_moffat_warns_approximation(self):
        psf = MoffatPSF(0.2, 3.0, ref_wavelength=20000.0, scaling_exponent=1.0)
        with pytest.warns(RecoveryWarning, match="Gaussian of the same FWHM"):
            homogenise_psf(np.ones((6, 9, 9)), self.WAVES, psf, self.WAVES[-1], pixel_scale=self.PIX)

    def test_nan_pixels_stay_nan(self):
        psf = GaussianPSF(0.2, ref_wavelength=20000.0, scaling_exponent=1.0)
        cube = self._cube(psf, n=31)
        cube[0, 3, 4] = np.nan
        out = homogenise_psf(cube, self.WAVES, psf, self.WAVES[-1], pixel_scale=self.PIX)
        assert np.isnan(out[0, 3, 4]) and np.isfinite(out[0]).sum() == out[0].size - 1

    def test_variance_matches_monte_carlo(self):
        psf = GaussianPSF(0.2, ref_wavelength=20000.0, scaling_exponent=1.0)
        waves = self.WAVES[[0, 3]]
        rng = np.random.default_rng(3)
        var = np.full((2, 40, 40), 4.0)
        pred = homogenise_variance(var, waves, psf, 30000.0, pixel_scale=self.PIX)
        draws = np.array([homogenise_psf(rng.normal(0.0, 2.0, var.shape), waves, psf, 30000.0,
                                         pixel_scale=self.PIX) for _ in range(300)])
        emp = draws.var(axis=0)[:, 10:30, 10:30].mean(axis=(1, 2))
        np.testing.assert_allclose(emp, pred[:, 10:30, 10:30].mean(axis=(1, 2)), rtol=0.05)
        # analytic: the 1-D discrete Gaussian e^-t I_n(t) has sum of squares e^-2t I_0(2t)
        t = ((0.3 ** 2 - 0.2 ** 2) / FWHM_PER_SIGMA ** 2) / self.PIX ** 2
        assert pred[0, 20, 20] == pytest.approx(4.0 * ive(0, 2.0 * t) ** 2, rel=1e-10)

    def test_mock_cube_with_chromatic_psf(self):
        """Two lines seen through a diffraction-like PSF: after homogenisation both
        line maps have the same second moments."""
        cube = _mock(psf_fwhm=0.4, **{
            "galaxy.metallicity.grad_z": 0.0,  # every line then has the same light profile
            "galaxy.r_eff": 1.0,
            "lines.lines": ["OII_3727", "OII_3730", "Hb", "OIII_5008"],
            "lines.generating_set": ["S25_R3", "S25_O32"], "instrument.psf.ref_wavelength": 30050.0,
            "instrument.psf.scaling_exponent": 1.0})
        waves = cube.wavelengths
        o3 = LINES["OIII_5008"].wavelength * 6.0
        o2 = LINES["OII_3727"].wavelength * 6.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the red wing of [OIII] itself is no reason to warn
            out = homogenise_psf(cube.noise_free, waves, cube.psf, o3, pixel_scale=cube.pixel_scale)

        class Homog:
            data, variance, edges_lo, edges_hi = out, cube.variance, cube.edges_lo, cube.edges_hi

        m3, f3 = _moments(line_map(Homog, o3, half_width_kms=1500.0)[0])
        m2, f2 = _moments(line_map(Homog, o2, half_width_kms=1500.0)[0])
        m2_before, _ = _moments(line_map(cube, o2, half_width_kms=1500.0)[0])
        assert f2 == pytest.approx(line_map(cube, o2, half_width_kms=1500.0)[0].sum(), rel=1e-9)
        assert m2_before[0] < 0.85 * m3[0]  # the bluer line was sharper
        np.testing.assert_allclose(m2[:2], m3[:2], rtol=2e-3)

    def test_bad_inputs_name_the_field(self):
        psf = GaussianPSF(0.2, ref_wavelength=20000.0, scaling_exponent=1.0)
        cube = np.ones((6, 9, 9))
        with pytest.raises(ConfigError, match="pixel_scale"):
            homogenise_psf(cube, self.WAVES, psf, self.WAVES[-1], pixel_scale=0.0)
        with pytest.raises(ConfigError, match="target_wavelength"):
            homogenise_psf(cube, self.WAVES, psf, -1.0, pixel_scale=self.PIX)
        with pytest.raises(ConfigError, match="pixel_scale"):
            homogenise_variance(cube, self.WAVES, psf, self.WAVES[-1], pixel_scale=float("nan"))
