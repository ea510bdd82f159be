"""Tests of mockzgrad.recovery.geometry: line map, 2D Gaussian fit, inclination,
deprojection and azimuth (PSF homogenisation: tests/test_psf_matching.py).

Expectations are computed independently: the true geometry of mock cubes
(tests may read the truth; recovery may not), analytic Gaussians whose
second moments add under convolution, and the galaxy model's own
deprojection for the shared convention.
"""

import math

import numpy as np
import pytest
from _seed import seeded

from mockzgrad.config import MockConfig
from mockzgrad.observation.ifu import build_cube
from mockzgrad.errors import ConfigError, DataError, RecoveryError
from mockzgrad.physics.lines import C_KMS, LINES
from mockzgrad.observation.psf import FWHM_PER_SIGMA
from mockzgrad.recovery.geometry import (
    Geometry,
    axis_ratio_from_inclination,
    deprojected_radius,
    disk_azimuth,
    elliptical_radius,
    fit_geometry,
    inclination_from_axis_ratio,
    line_map,
    sky_offsets,
)

OIII_OBS = LINES["OIII_5008"].wavelength * 6.0  # redshift 5


def _mock(inclination=50.0, pa=30.0, q0=0.0, psf_fwhm=0.08, noise=False, **extra):
    cfg = MockConfig().replace(**{
        "lines.lines": ["OIII_5008"], "lines.generating_set": [], "galaxy.metallicity.z0": 8.0,
        "galaxy.inclination": inclination, "galaxy.pa": pa, "galaxy.q0": q0,
        "galaxy.x_offset": 0.07, "galaxy.y_offset": -0.04,
        "instrument.psf.fwhm": psf_fwhm, "noise.enabled": noise, "seed": 11, **extra,
    })
    return build_cube(cfg)


def _gaussian_map(n, pix, *, x0, y0, sig_a, sig_b, pa, amp=1.0, n_sub=8):
    """Elliptical Gaussian averaged over each pixel (n_sub^2 points), offsets as MockCube."""
    x1, y1 = sky_offsets(n, n, pix)
    u = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    out = np.zeros((n, n))
    t = math.radians(pa)
    for du in u:
        for dv in u:
            xx = x1[None, :] + du * pix
            yy = y1[:, None] + dv * pix
            dx, dy = xx - x0, yy - y0
            xm = dx * math.sin(t) + dy * math.cos(t)
            ym = -dx * math.cos(t) + dy * math.sin(t)
            out += np.exp(-0.5 * ((xm / sig_a) ** 2 + (ym / sig_b) ** 2))
    return amp * out / n_sub**2


# ---------------------------------------------------------------------------
class TestLineMap:
    def test_sum_and_variance_against_loop(self):
        rng = np.random.default_rng(1)
        lo = 30000.0 + 10.0 * np.arange(40)
        hi = lo + 10.0

        class Cube:
            data = rng.normal(size=(40, 5, 6))
            variance = rng.uniform(0.5, 2.0, size=(40, 5, 6))
            edges_lo, edges_hi = lo, hi

        lam, hw = 30200.0, 600.0
        flux, err = line_map(Cube, lam, half_width_kms=hw)
        use = [k for k in range(40) if abs(0.5 * (lo[k] + hi[k]) / lam - 1.0) * C_KMS <= hw]
        assert 2 < len(use) < 40
        np.testing.assert_allclose(flux, sum(Cube.data[k] for k in use), rtol=1e-12)
        np.testing.assert_allclose(err, np.sqrt(sum(Cube.variance[k] for k in use)), rtol=1e-12)

    def test_nan_values_left_out(self):
        class Cube:
            data = np.ones((3, 2, 2))
            variance = np.ones((3, 2, 2))
            edges_lo = np.array([1000.0, 1001.0, 1002.0])
            edges_hi = np.array([1001.0, 1002.0, 1003.0])

        Cube.data[1, 0, 0] = np.nan
        Cube.data[:, 1, 1] = np.nan
        flux, err = line_map(Cube, 1001.5, half_width_kms=1000.0)
        assert flux[0, 0] == 2.0 and err[0, 0] == pytest.approx(math.sqrt(2.0))
        assert flux[0, 1] == 3.0
        assert np.isnan(flux[1, 1]) and np.isnan(err[1, 1])

    def test_line_outside_cube(self):
        cube = _mock()
        with pytest.raises(DataError, match="no channel"):
            line_map(cube, 10000.0, half_width_kms=500.0)

    def test_mock_line_map_holds_the_line_flux(self):
        cube = _mock()
        flux, _ = line_map(cube, OIII_OBS, half_width_kms=3000.0)
        assert flux.sum() == pytest.approx(cube.noise_free.sum(), rel=1e-12)


# ---------------------------------------------------------------------------
class TestFitOnMockCubes:
    """Noise-free mocks with a small PSF: the fit returns the true geometry."""

    @pytest.mark.parametrize("pa", [30.0, 120.0])
    def test_thin_disk(self, pa):
        cube = _mock(inclination=50.0, pa=pa, psf_fwhm=0.08)
        flux, err = line_map(cube, OIII_OBS, half_width_kms=1500.0)
        g = fit_geometry(flux, err, cube.pixel_scale, psf_fwhm=cube.psf["PSF_FWHM"])
        assert g.source == "fit"
        assert g.x_offset == pytest.approx(0.07, abs=0.005)
        assert g.y_offset == pytest.approx(-0.04, abs=0.005)
        assert abs((g.pa - pa + 90.0) % 180.0 - 90.0) < 2.0
        assert g.axis_ratio == pytest.approx(math.cos(math.radians(50.0)), abs=0.02)
        assert g.inclination == pytest.approx(50.0, abs=2.0)

    def test_thick_disk_inclination_uses_q0(self):
        cube = _mock(inclination=65.0, pa=160.0, q0=0.2, psf_fwhm=0.08)
        flux, err = line_map(cube, OIII_OBS, half_width_kms=1500.0)
        g = fit_geometry(flux, err, cube.pixel_scale, psf_fwhm=0.08, q0=0.2)
        assert g.axis_ratio == pytest.approx(cube.truth["axis_ratio"], abs=0.02)
        assert g.inclination == pytest.approx(65.0, abs=2.5)
        assert g.q0 == 0.2

    def test_psf_correction_brings_axis_ratio_back(self):
        cube = _mock(inclination=50.0, pa=30.0, psf_fwhm=0.2)
        flux, err = line_map(cube, OIII_OBS, half_width_kms=1500.0)
        raw = fit_geometry(flux, err, cube.pixel_scale)
        corr = fit_geometry(flux, err, cube.pixel_scale, psf_fwhm=0.2)
        q_true = math.cos(math.radians(50.0))
        assert raw.axis_ratio > corr.axis_ratio  # the PSF rounds the image
        assert abs(corr.axis_ratio - q_true) < abs(raw.axis_ratio - q_true)
        assert corr.sigma_minor ** 2 == pytest.approx(raw.sigma_minor ** 2 - (0.2 / FWHM_PER_SIGMA) ** 2,
                                                      rel=1e-6)


class TestFitOnGaussians:
    def test_exact_psf_quadrature_correction(self):
        # a Gaussian convolved with a Gaussian PSF is a Gaussian whose sigma^2 add
        sa, sb, sp = 0.3, 0.15, 0.1
        img = _gaussian_map(61, 0.05, x0=-0.11, y0=0.06, sig_a=math.hypot(sa, sp), sig_b=math.hypot(sb, sp),
                            pa=72.0)
        g = fit_geometry(img, np.full(img.shape, 1e-3), 0.05, psf_fwhm=sp * FWHM_PER_SIGMA)
        assert g.axis_ratio == pytest.approx(sb / sa, abs=2e-4)
        assert g.sigma_major == pytest.approx(sa, rel=1e-3)
        assert g.pa == pytest.approx(72.0, abs=0.02)
        assert (g.x_offset, g.y_offset) == pytest.approx((-0.11, 0.06), abs=1e-4)

    def test_pa_in_range_and_east_of_north(self):
        for pa in (0.0, 10.0, 95.0, 179.0):
            img = _gaussian_map(41, 0.05, x0=0.0, y0=0.0, sig_a=0.25, sig_b=0.1, pa=pa)
            g = fit_geometry(img, np.full(img.shape, 1e-3), 0.05)
            assert 0.0 <= g.pa < 180.0
            assert abs((g.pa - pa + 90.0) % 180.0 - 90.0) < 0.05
        # PA 90 = major axis east-west: along the rows
        img = _gaussian_map(41, 0.05, x0=0.0, y0=0.0, sig_a=0.25, sig_b=0.1, pa=90.0)
        assert img[20, :].sum() > img[:, 20].sum()

    def test_errors_match_scatter(self):
        rng = np.random.default_rng(seeded(5))
        truth = _gaussian_map(31, 0.05, x0=0.02, y0=-0.03, sig_a=0.2, sig_b=0.12, pa=40.0)
        sigma = 0.03
        n = 60
        fits = [fit_geometry(truth + rng.normal(0.0, sigma, truth.shape), np.full(truth.shape, sigma), 0.05)
                for _ in range(n)]
        for name in ("x_offset", "axis_ratio", "pa"):
            values = np.array([getattr(g, name) for g in fits])
            errors = np.array([getattr(g, name + "_err") for g in fits])
            # the standard deviation of n Gaussian values has relative standard error 1 / sqrt(2 (n - 1))
            # (0.092 for n = 60); the quoted errors must match it within 4.5 of those (0.41)
            tol = 4.5 / math.sqrt(2 * (n - 1))
            assert np.median(errors) == pytest.approx(values.std(ddof=1), rel=tol), name

    def test_unresolved_minor_axis_refused(self):
        img = _gaussian_map(41, 0.05, x0=0.0, y0=0.0, sig_a=0.3, sig_b=0.08, pa=10.0)
        with pytest.raises(RecoveryError, match="unresolved"):
            fit_geometry(img, np.full(img.shape, 1e-3), 0.05, psf_fwhm=0.3)

    def test_bad_inputs(self):
        img = np.ones((5, 5))
        with pytest.raises(DataError, match="shape"):
            fit_geometry(img, np.ones((4, 5)), 0.05)
        with pytest.raises(DataError, match="usable pixels"):
            fit_geometry(np.full((5, 5), np.nan), img, 0.05)
        with pytest.raises(ConfigError, match="psf_fwhm"):
            fit_geometry(img, img, 0.05, psf_fwhm=-1.0)
        with pytest.raises(RecoveryError, match="positive"):
            fit_geometry(-img, img, 0.05)


# ---------------------------------------------------------------------------
class TestInclination:
    @pytest.mark.parametrize("q0", [0.0, 0.1, 0.2, 0.35])
    def test_round_trip(self, q0):
        incl = np.linspace(0.0, 90.0, 19)
        q = axis_ratio_from_inclination(incl, q0)
        np.testing.assert_allclose(inclination_from_axis_ratio(q, q0), incl, atol=1e-6)

    def test_thin_disk_is_arccos(self):
        assert inclination_from_axis_ratio(0.5) == pytest.approx(60.0)
        assert inclination_from_axis_ratio(1.0) == 0.0

    def test_clipped_below_q0(self):
        assert inclination_from_axis_ratio(0.1, q0=0.2) == 90.0

    @pytest.mark.parametrize("q", [0.0, -0.3, 1.2, np.nan])
    def test_invalid_axis_ratio(self, q):
        with pytest.raises(ConfigError, match=r"axis_ratio .*allowed \(0, 1\]"):
            inclination_from_axis_ratio(q)

    def test_invalid_q0(self):
        with pytest.raises(ConfigError, match="q0"):
            inclination_from_axis_ratio(0.5, q0=1.0)


class TestGeometryRecord:
    def test_given_from_either_quantity(self):
        a = Geometry.given(pa=210.0, axis_ratio=0.5)
        b = Geometry.given(pa=30.0, inclination=60.0)
        assert a.pa == 30.0 and a.inclination == pytest.approx(60.0)
        assert b.axis_ratio == pytest.approx(0.5)
        assert a.source == b.source == "given" and math.isnan(a.pa_err)

    def test_given_needs_exactly_one(self):
        with pytest.raises(ConfigError, match="exactly one"):
            Geometry.given(pa=0.0)
        with pytest.raises(ConfigError, match="exactly one"):
            Geometry.given(pa=0.0, axis_ratio=0.5, inclination=60.0)

    def test_validation_and_frozen(self):
        with pytest.raises(ConfigError, match="pa"):
            Geometry(x_offset=0.0, y_offset=0.0, axis_ratio=0.5, pa=180.0, inclination=60.0)
        with pytest.raises(ConfigError, match="axis_ratio"):
            Geometry(x_offset=0.0, y_offset=0.0, axis_ratio=0.0, pa=0.0, inclination=90.0)
        g = Geometry.given(pa=10.0, axis_ratio=0.7)
        with pytest.raises(AttributeError):
            g.pa = 20.0


# ---------------------------------------------------------------------------
class TestDeprojection:
    def test_same_convention_as_the_galaxy_model(self):
        from mockzgrad.config import CosmologyConfig, GalaxyConfig, LinesConfig
        from mockzgrad.source.galaxy import resolve_galaxy

        gcfg = GalaxyConfig(inclination=55.0, pa=125.0, q0=0.15, x_offset=0.1, y_offset=-0.2)
        model = resolve_galaxy(gcfg, LinesConfig(), CosmologyConfig())
        geo = Geometry.given(pa=125.0, inclination=55.0, q0=0.15, x_offset=0.1, y_offset=-0.2)
        rng = np.random.default_rng(2)
        x, y = rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200)
        r_model, _ = model.disk_coords(x, y)
        np.testing.assert_allclose(deprojected_radius(x, y, geo, model.kpc_per_arcsec), r_model, rtol=1e-12)

    def test_major_and_minor_axes(self):
        geo = Geometry.given(pa=30.0, axis_ratio=0.5, x_offset=0.2, y_offset=0.1)
        t = math.radians(30.0)
        d = 0.4
        # along the major axis (sin pa, cos pa) and the minor axis (-cos pa, sin pa)
        assert elliptical_radius(0.2 + d * math.sin(t), 0.1 + d * math.cos(t), geo) == pytest.approx(d)
        assert elliptical_radius(0.2 - d * math.cos(t), 0.1 + d * math.sin(t), geo) == pytest.approx(d / 0.5)
        assert deprojected_radius(0.2 + d * math.sin(t), 0.1 + d * math.cos(t), geo, 6.0) == pytest.approx(6 * d)

    def test_azimuth_folding(self):
        geo = Geometry.given(pa=70.0, axis_ratio=0.6, x_offset=-0.1, y_offset=0.05)
        t = math.radians(70.0)

        def sky(phi_deg, radius=0.5):
            p = math.radians(phi_deg)
            xm, ym = radius * math.cos(p), radius * geo.axis_ratio * math.sin(p)  # disk plane -> projected
            return (geo.x_offset + xm * math.sin(t) - ym * math.cos(t),
                    geo.y_offset + xm * math.cos(t) + ym * math.sin(t))

        for phi in (0.0, 20.0, 45.0, 80.0, 90.0):
            for image in (phi, -phi, 180.0 - phi, 180.0 + phi, 360.0 - phi):
                assert disk_azimuth(*sky(image), geo) == pytest.approx(phi, abs=1e-9)
        vals = disk_azimuth(*np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21)), geo)
        assert vals.min() >= 0.0 and vals.max() <= 90.0
        assert disk_azimuth(geo.x_offset, geo.y_offset, geo) == 0.0
        # on the sky the minor-axis point is still at 90, an intermediate one differs
        assert disk_azimuth(*sky(90.0), geo, plane="sky") == pytest.approx(90.0)
        assert disk_azimuth(*sky(45.0), geo, plane="sky") < 45.0
