"""Elliptical PSFs (issue 18): the geometry fit deconvolves the PSF as a 2-D
kernel, and ``x_resolution`` follows one convention (2 r_eff / the PSF FWHM
along the galaxy's major axis; ``x_resolution_geomean`` beside it).

Expectations are independent of the code under test: analytic Gaussians
(a Gaussian galaxy convolved with a Gaussian PSF is the Gaussian of the
summed covariance matrices), the true geometry of noise-free mocks with a
Gaussian light profile (Sersic n = 0.5), the FWHM measured numerically on a
finely sampled PSF kernel, and astropy's distances.
"""

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM
from scipy.ndimage import map_coordinates
from scipy.optimize import brentq

from mockzgrad.config import MockConfig, load_recipe, psf_fwhm_for_x, x_resolution
from mockzgrad.config.resolution import elliptical_fwhms_for_x, fwhm_along, r_eff_arcsec, x_resolution_geomean
from mockzgrad.errors import ConfigError, MockzgradWarning, RecoveryError
from mockzgrad.observation import observe
from mockzgrad.observation.ifu import build_cube
from mockzgrad.observation.psf import FWHM_PER_SIGMA, EllipticalGaussianPSF, GaussianPSF, ImagePSF, psf_from_header
from mockzgrad.physics.lines import LINES
from mockzgrad.recovery import psf_matching
from mockzgrad.recovery.geometry import fit_geometry, line_map, sky_offsets
from mockzgrad.recovery.pipeline import recover
from mockzgrad.suites.suite import suite_from_dict

#: The MSA-3D-like PSF of the issue: 0.20" x 0.08" (Ju et al., MSA-3D, Sect. 2.1).
F_MAJ, F_MIN = 0.20, 0.08
OIII_OBS = LINES["OIII_5008"].wavelength * 6.0  # redshift 5
COSMO = FlatLambdaCDM(H0=70 * u.km / u.s / u.Mpc, Om0=0.3, Tcmb0=0 * u.K)


def _r_eff_arcsec(r_eff_kpc, redshift=5.0):
    return r_eff_kpc / (COSMO.kpc_proper_per_arcmin(redshift).to_value(u.kpc / u.arcmin) / 60.0)


def _gaussian_cov_map(n, pix, cov, n_sub=8):
    """Unit-amplitude Gaussian of covariance ``cov`` (arcsec^2, x east / y north), pixel-averaged."""
    x1, y1 = sky_offsets(n, n, pix)
    u_ = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    inv = np.linalg.inv(cov)
    out = np.zeros((n, n))
    for du in u_:
        for dv in u_:
            xx = x1[None, :] + du * pix
            yy = y1[:, None] + dv * pix
            out += np.exp(-0.5 * (inv[0, 0] * xx**2 + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy**2))
    return out / n_sub**2


def _cov(sig_a, sig_b, pa_deg):
    """Covariance of a Gaussian with sigmas along / across PA ``pa_deg`` (east of north), x east / y north."""
    t = math.radians(pa_deg)
    u_, v = np.array([math.sin(t), math.cos(t)]), np.array([-math.cos(t), math.sin(t)])
    return sig_a**2 * np.outer(u_, u_) + sig_b**2 * np.outer(v, v)


def _dpa(a, b):
    return abs((a - b + 90.0) % 180.0 - 90.0)


# ---------------------------------------------------------------------------
# geometry fit: analytic Gaussians (exact answer)
# ---------------------------------------------------------------------------

GAL_PA = 30.0
PSF_ORIENTATIONS = {"along": GAL_PA, "across": GAL_PA + 90.0, "oblique": GAL_PA + 45.0}


class TestDeconvolutionExact:
    # galaxy sigmas 0.135" x 0.0675" (q = 0.5), PSF 0.20" x 0.08" FWHM: the
    # PSF's major sigma (0.085") exceeds the galaxy's minor one
    SA, SB = 0.135, 0.0675

    @pytest.mark.parametrize("where", sorted(PSF_ORIENTATIONS))
    def test_axis_ratio_and_pa_recovered(self, where):
        psf = EllipticalGaussianPSF(F_MAJ, F_MIN, PSF_ORIENTATIONS[where])
        c_psf = psf_matching.psf_covariance(psf, 0.04)
        img = _gaussian_cov_map(61, 0.04, _cov(self.SA, self.SB, GAL_PA) + c_psf)
        g = fit_geometry(img, np.full(img.shape, 1e-3), 0.04, psf_covariance=c_psf)
        # the image is averaged over 8x8 points per pixel, the model over 3x3
        # Gauss-Legendre points: for widths >= 1.9 pixels both are exact to
        # ~1e-5 in sigma^2 (the tolerance of the circular test in
        # tests/test_recovery_geometry.py), i.e. ~1e-4 in q and ~0.01 deg in PA
        assert g.axis_ratio == pytest.approx(self.SB / self.SA, abs=2e-4)
        assert _dpa(g.pa, GAL_PA) < 0.02
        assert g.sigma_major == pytest.approx(self.SA, rel=1e-3)
        assert g.sigma_minor == pytest.approx(self.SB, rel=2e-3)

    def test_errors_match_scatter(self):
        # first-order errors of q and PA through the deconvolution (numerical
        # Jacobian) against the scatter of 60 noise realisations; 60 draws
        # estimate a standard deviation to ~9 %, the tolerance of the circular
        # test in tests/test_recovery_geometry.py (35 %) is kept
        rng = np.random.default_rng(18)
        c_psf = psf_matching.psf_covariance(EllipticalGaussianPSF(F_MAJ, F_MIN, GAL_PA + 45.0), 0.04)
        truth = _gaussian_cov_map(31, 0.04, _cov(self.SA, self.SB, GAL_PA) + c_psf)
        sigma = 0.02
        fits = [fit_geometry(truth + rng.normal(0.0, sigma, truth.shape), np.full(truth.shape, sigma), 0.04,
                             psf_covariance=c_psf) for _ in range(60)]
        for name in ("axis_ratio", "pa"):
            values = np.array([getattr(g, name) for g in fits])
            errors = np.array([getattr(g, name + "_err") for g in fits])
            assert np.median(errors) == pytest.approx(values.std(ddof=1), rel=0.35), name

    def test_circle_of_the_major_fwhm_is_wrong(self):
        # what the fit did before issue 18: the PSF as a circle of its major FWHM
        # PSF along the galaxy: the image's minor sigma (0.076") is below the PSF's major one (0.085")
        c_psf = psf_matching.psf_covariance(EllipticalGaussianPSF(F_MAJ, F_MIN, GAL_PA), 0.04)
        img = _gaussian_cov_map(61, 0.04, _cov(self.SA, self.SB, GAL_PA) + c_psf)
        with pytest.raises(RecoveryError, match="not larger than the PSF sigma"):
            fit_geometry(img, np.full(img.shape, 1e-3), 0.04, psf_fwhm=F_MAJ)

    def test_psf_covariance_matches_kernel_moments(self):
        # second moments of the finely sampled kernel, x east = -column
        psf = EllipticalGaussianPSF(F_MAJ, F_MIN, 70.0)
        pix = 0.004
        k = psf.kernel(pix, sampling="center")
        h = k.shape[0] // 2
        x = -(np.arange(k.shape[1]) - h) * pix
        y = (np.arange(k.shape[0]) - h) * pix
        xx, yy = np.meshgrid(x, y)
        m = np.array([[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]])
        # the kernel is cut at 99.9 % of the flux: its moments are ~1 % low
        np.testing.assert_allclose(psf_matching.psf_covariance(psf, 0.04), m, rtol=0.02,
                                   atol=0.02 * np.abs(m).max())

    def test_image_psf_covariance_is_the_gaussian_one(self):
        # an elliptical Gaussian stored as an image: the Gaussian fit to its kernel
        pix = 0.01
        ell = EllipticalGaussianPSF(F_MAJ, F_MIN, 120.0)
        img = ImagePSF(ell.kernel(pix), pix)
        c_img = psf_matching.psf_covariance(img, 0.04)
        c_ana = psf_matching.psf_covariance(ell, 0.04)
        # each pixel response at 0.01" adds (0.01")^2 / 12 to the variance per
        # axis: the pixel-integrated input kernel, the image taken as constant
        # within its pixels, and the linear resampling to 0.04" pixels (< 4 in all)
        np.testing.assert_allclose(c_img, c_ana, atol=4 * pix**2 / 12)
        assert c_img[0, 1] == pytest.approx(c_ana[0, 1], rel=1e-3)  # the orientation is kept

    def test_unresolved_direction_names_the_values(self):
        c_psf = _cov(F_MAJ / FWHM_PER_SIGMA, F_MIN / FWHM_PER_SIGMA, 0.0)
        img = _gaussian_cov_map(41, 0.04, c_psf + _cov(0.1, 0.001, 0.0))
        with pytest.raises(RecoveryError, match=r"minus the PSF .* leaves variances"):
            fit_geometry(img, np.full(img.shape, 1e-3), 0.04, psf_covariance=c_psf + _cov(0.0, 0.01, 0.0))

    def test_bad_covariance_refused(self):
        img = _gaussian_cov_map(21, 0.04, _cov(0.1, 0.05, 0.0))
        with pytest.raises(ConfigError, match="psf_covariance"):
            fit_geometry(img, np.full(img.shape, 1e-3), 0.04, psf_covariance=[[1e-3, 2e-3], [2e-3, 1e-3]])
        with pytest.raises(ConfigError, match="at most one"):
            fit_geometry(img, np.full(img.shape, 1e-3), 0.04, psf_fwhm=0.1, psf_covariance=np.eye(2) * 1e-3)


# ---------------------------------------------------------------------------
# geometry fit: noise-free mocks with a Gaussian light profile
# ---------------------------------------------------------------------------

def _mock(psf_pa, *, kind="elliptical_gaussian", fwhm=F_MAJ, fwhm_minor=F_MIN, pixel=0.04, **extra):
    """Noise-free [OIII] mock of a Gaussian-light (Sersic n = 0.5) thin disk, r_eff = 1 kpc at z = 5, i = 60 deg."""
    psf = {"instrument.psf.kind": kind, "instrument.psf.fwhm": fwhm}
    if kind == "elliptical_gaussian":
        psf.update({"instrument.psf.fwhm_minor": fwhm_minor, "instrument.psf.pa": psf_pa})
    cfg = MockConfig().replace(**{
        "lines.lines": ["OIII_5008"], "lines.generating_set": [], "galaxy.metallicity.z0": 8.0,
        "galaxy.sersic_n": 0.5, "galaxy.r_eff": 1.0, "galaxy.inclination": 60.0, "galaxy.pa": GAL_PA,
        "instrument.pixel_scale": pixel, "noise.enabled": False, "seed": 3, **psf, **extra})
    return cfg, build_cube(cfg)


def _fit_mock(cube):
    flux, _ = line_map(cube, OIII_OBS, half_width_kms=1000.0)
    err = np.full(flux.shape, 1e-3 * np.nanmax(flux))
    psf = psf_from_header(cube.psf)
    return fit_geometry(flux, err, cube.pixel_scale, **psf_matching.geometry_psf(psf, cube.pixel_scale))


class TestDeconvolutionMock:
    """Sersic n = 0.5 is a Gaussian; a thin disk at i = 60 deg has q = 0.5 and the PA of the model.

    Tolerance: the forward model's own discretisation (scene rendering,
    PSF kernel at pixel centres; PSF sigma >= 0.85 pixel here, so sampling
    aliasing is ~exp(-2 pi^2 0.85^2) ~ 1e-6) biases the fitted q by
    0.001-0.0025 at the default oversampling, the same with a circular
    PSF through the unchanged scalar path (measured in the ``bias``
    fixture for circular PSFs of FWHM F_MIN and F_MAJ); the elliptical
    deconvolution may add at most 1e-3 to the larger of the two.
    """

    @pytest.fixture(scope="class")
    @staticmethod
    def bias():
        """|q - q_true| through the unchanged circular path, PSF FWHM = F_MIN and F_MAJ."""
        q_true = math.cos(math.radians(60.0))
        return max(abs(_fit_mock(_mock(0.0, kind="gaussian", fwhm=f)[1]).axis_ratio - q_true) for f in (F_MIN, F_MAJ))

    @pytest.mark.parametrize("where", sorted(PSF_ORIENTATIONS))
    def test_true_geometry_recovered(self, where, bias):
        cfg, cube = _mock(PSF_ORIENTATIONS[where])
        q_true = math.cos(math.radians(cfg.galaxy.inclination))
        g = _fit_mock(cube)
        assert bias < 0.004  # the forward model's own bias (measured 0.0014-0.0024)
        assert abs(g.axis_ratio - q_true) < bias + 1e-3
        assert _dpa(g.pa, GAL_PA) < 0.1

    def test_image_psf_like_the_analytic_one(self, tmp_path, bias):
        # the elliptical PSF given as an image (how slit-stepped cubes describe theirs)
        from astropy.io import fits

        pix = 0.01
        img = EllipticalGaussianPSF(F_MAJ, F_MIN, GAL_PA + 45.0).kernel(pix, sampling="center")
        hdu = fits.PrimaryHDU(img)
        hdu.header["PIXSCALE"] = (pix, "arcsec")
        hdu.writeto(tmp_path / "psf.fits")
        cfg, cube = _mock(0.0, kind="image", fwhm=F_MAJ, **{"instrument.psf.file": str(tmp_path / "psf.fits")})
        g = _fit_mock(cube)
        # the image adds < 4 (0.01")^2 / 12 per axis to the PSF variance (see
        # TestDeconvolutionExact), ~1e-3 of the galaxy's minor variance
        assert abs(g.axis_ratio - 0.5) < bias + 2e-3
        assert _dpa(g.pa, GAL_PA) < 0.1


class TestMSALikeSetup:
    """The setup of the issue: PSF 0.20" x 0.08" on 0.08" pixels, compact disks, S/N 30.

    Before issue 18 these failed with 'fitted minor-axis sigma ... not larger
    than the PSF sigma ... (psf_fwhm = 0.2)'.
    """

    @pytest.mark.parametrize("psf_pa,incl", [(0.0, 20.0), (90.0, 20.0), (0.0, 60.0), (90.0, 60.0)])
    def test_failing_cases_recover(self, psf_pa, incl):
        cfg = MockConfig().replace(**{
            "galaxy.r_eff": 0.7, "galaxy.inclination": incl, "galaxy.pa": 0.0, "instrument.pixel_scale": 0.08,
            "instrument.psf.kind": "elliptical_gaussian", "instrument.psf.fwhm": F_MAJ,
            "instrument.psf.fwhm_minor": F_MIN, "instrument.psf.pa": psf_pa, "noise.snr": 30.0, "seed": 5})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MockzgradWarning)
            cube = observe(cfg)
            result = recover(cube, load_recipe("lee2026"))
        assert result.status == "ok", result.reason
        # the raw image of this compact disk is dominated by the PSF; the
        # deconvolved axis ratio still lands near cos i (noise and the
        # Sersic n = 1 profile, not Gaussian, leave ~0.15)
        assert result.geometry["axis_ratio"] == pytest.approx(math.cos(math.radians(incl)), abs=0.2)


    def test_small_msa_like_suite(self):
        # 8 mocks of an MSA-like suite at the failing parameters (compact disks
        # at 0.08" pixels, PSF 0.20" x 0.08" at two PAs), through the suite's job
        from mockzgrad.suites.job import run_mock

        spec = suite_from_dict({
            "suite": {"name": "msa_like", "seed": 18, "n_mocks": 8},
            "fixed": {"galaxy": {"r_eff": 0.7, "pa": 0.0}, "noise": {"snr": 30.0},
                      "instrument": {"pixel_scale": 0.08,
                                     "psf": {"kind": "elliptical_gaussian", "fwhm": F_MAJ, "fwhm_minor": F_MIN}}},
            "grid": {"instrument.psf.pa": [0.0, 90.0], "galaxy.inclination": [20.0, 60.0],
                     "galaxy.metallicity.grad_z": [-0.1, 0.1]},
        })
        for ms in spec.mocks():
            row = run_mock(ms)
            assert row["x_resolution_geomean"] == pytest.approx(x_resolution_geomean(ms.mock_config()), rel=1e-12)
            assert "grad_z_measured" in row and math.isfinite(row["grad_z_measured"]), row


# ---------------------------------------------------------------------------
# x_resolution convention
# ---------------------------------------------------------------------------

def _measured_fwhm_along(psf, pa_deg, pix=0.002):
    """FWHM of the finely sampled kernel's profile along PA ``pa_deg`` (east of north), by interpolation."""
    k = psf.kernel(pix, sampling="center")
    h = k.shape[0] // 2
    t = math.radians(pa_deg)
    dcol, drow = -math.sin(t), math.cos(t)  # east = -column

    def prof(s):  # s in arcsec from the centre
        return map_coordinates(k, [[h + drow * s / pix], [h + dcol * s / pix]], order=3)[0] / k[h, h] - 0.5

    return 2.0 * brentq(prof, 0.0, h * pix * 0.9, xtol=1e-10)


class TestXResolution:
    def test_circular_exact(self):
        cfg = MockConfig()
        assert x_resolution(cfg) == 2.0 * r_eff_arcsec(cfg) / cfg.instrument.psf.fwhm
        assert x_resolution(cfg) == pytest.approx(2.0 * _r_eff_arcsec(cfg.galaxy.r_eff) / cfg.instrument.psf.fwhm,
                                                  rel=1e-9)
        assert x_resolution_geomean(cfg) == x_resolution(cfg)

    @pytest.mark.parametrize("psf_pa,gal_pa", [(30.0, 30.0), (120.0, 30.0), (75.0, 30.0), (-20.0, 100.0)])
    def test_elliptical_against_measured_profile(self, psf_pa, gal_pa):
        cfg = MockConfig().replace(**{"galaxy.pa": gal_pa, "instrument.psf.kind": "elliptical_gaussian",
                                      "instrument.psf.fwhm": F_MAJ, "instrument.psf.fwhm_minor": F_MIN,
                                      "instrument.psf.pa": psf_pa})
        measured = _measured_fwhm_along(EllipticalGaussianPSF(F_MAJ, F_MIN, psf_pa), gal_pa)
        r_eff = _r_eff_arcsec(cfg.galaxy.r_eff)
        # cubic interpolation of a 0.002"-sampled profile: ~1e-5 relative
        assert x_resolution(cfg) == pytest.approx(2.0 * r_eff / measured, rel=1e-4)
        assert x_resolution_geomean(cfg) == pytest.approx(2.0 * r_eff / math.sqrt(F_MAJ * F_MIN), rel=1e-9)
        # the recovery's FWHM along the galaxy (annuli width) is the same number
        psf = EllipticalGaussianPSF(F_MAJ, F_MIN, psf_pa)
        assert psf_matching.fwhm_along(psf, gal_pa, 0.04) == pytest.approx(measured, rel=1e-4)

    def test_along_and_across(self):
        assert fwhm_along(F_MAJ, F_MIN, 0.0) == pytest.approx(F_MAJ, rel=1e-15)
        assert fwhm_along(F_MAJ, F_MIN, 90.0) == pytest.approx(F_MIN, rel=1e-12)
        assert fwhm_along(F_MAJ, F_MIN, 180.0) == pytest.approx(F_MAJ, rel=1e-12)

    @pytest.mark.parametrize("d", [0.0, 37.0, 90.0])
    def test_inverse_keeps_shape(self, d):
        r = 0.3
        fa, fb = elliptical_fwhms_for_x(r, 2.5, F_MIN / F_MAJ, d)
        assert fb / fa == pytest.approx(F_MIN / F_MAJ, rel=1e-12)
        assert 2.0 * r / fwhm_along(fa, fb, d) == pytest.approx(2.5, rel=1e-12)

    def test_psf_fwhm_for_x_round_trip(self):
        cfg = MockConfig().replace(**{"galaxy.pa": 10.0, "instrument.psf.kind": "elliptical_gaussian",
                                      "instrument.psf.fwhm": F_MAJ, "instrument.psf.fwhm_minor": F_MIN,
                                      "instrument.psf.pa": 60.0})
        fa = psf_fwhm_for_x(cfg, 3.0)
        again = cfg.replace(**{"instrument.psf.fwhm": fa, "instrument.psf.fwhm_minor": fa * F_MIN / F_MAJ})
        assert x_resolution(again) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.filterwarnings("ignore::mockzgrad.errors.FieldOfViewWarning")
class TestTruthAndSuite:
    def test_truth_records_both(self):
        cfg, cube = _mock(120.0, pixel=0.08)
        t = cube.truth
        assert t["x_resolution"] == x_resolution(cfg)
        assert t["x_resolution_geomean"] == x_resolution_geomean(cfg)
        assert t["psf_fwhm_along"] == pytest.approx(F_MIN, rel=1e-12)  # across the galaxy: the minor FWHM
        assert (t["psf_fwhm"], t["psf_fwhm_minor"], t["psf_pa"]) == (F_MAJ, F_MIN, 120.0)

    def test_circular_truth_unchanged(self):
        _, cube = _mock(0.0, kind="gaussian", fwhm=0.2, pixel=0.08)
        assert not {"x_resolution_geomean", "psf_fwhm_minor", "psf_fwhm_along"} & set(cube.truth)

    def test_suite_scales_both_fwhms(self):
        spec = suite_from_dict({
            "suite": {"name": "msa", "seed": 4, "n_mocks": 3},
            "fixed": {"galaxy": {"pa": 20.0},
                      "instrument": {"psf": {"kind": "elliptical_gaussian", "fwhm": F_MAJ, "fwhm_minor": F_MIN,
                                             "pa": 65.0}}},
            "grid": {"x_resolution": [1.0, 2.0, 4.0]},
        })
        for ms in spec.mocks():
            cfg = ms.mock_config()
            assert cfg.instrument.psf.fwhm_minor / cfg.instrument.psf.fwhm == pytest.approx(F_MIN / F_MAJ, rel=1e-12)
            assert cfg.instrument.psf.pa == 65.0
            assert x_resolution(cfg) == pytest.approx(ms.params["x_resolution"], rel=1e-12)
            assert ms.params["instrument.psf.fwhm_minor"] == cfg.instrument.psf.fwhm_minor

    def test_suite_needs_the_psf_shape(self):
        with pytest.raises(ConfigError, match="fwhm_minor"):
            suite_from_dict({
                "suite": {"name": "e", "seed": 2, "n_mocks": 1},
                "fixed": {"instrument": {"psf": {"kind": "elliptical_gaussian", "fwhm_minor": 0.1}}},
                "grid": {"x_resolution": [1.0]},
            })

    def test_circular_gaussian_psf_unchanged_in_fit(self):
        # a circular PSF takes the scalar path: same numbers as psf_fwhm
        c = GaussianPSF(0.2)
        assert psf_matching.geometry_psf(c, 0.05) == {"psf_fwhm": 0.2}
