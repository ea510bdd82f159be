"""Galaxy model: light, rotation, geometry and Z(r), tested by physics invariants.

Every expectation is computed here independently of :mod:`mockzgrad.source.galaxy`:
Sersic integrals with scipy's incomplete gamma function and quadrature, the
thin exponential disk's rotation curve from the Bessel-integral potential
(Binney & Tremaine 2008, eq. 2.164) by numerical integration, G and the
angular scale from astropy.
"""

import math
import warnings

import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from scipy import integrate, special

from mockzgrad.config import CosmologyConfig, MockConfig
from mockzgrad.errors import CalibrationRangeWarning, ConfigError
from mockzgrad.source.galaxy import choose_z0, exponential_disk_vcirc, resolve_galaxy, sersic_bn

#: G in kpc (km/s)^2 / Msun, converted here from astropy (CODATA 2018).
G_KPC = const.G.to_value(u.kpc * u.km**2 / u.s**2 / u.Msun)


def _model(**changes):
    """Resolved galaxy of the flagship configuration with dotted-path changes."""
    cfg = MockConfig().replace(**changes)
    return resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)


def _disk_scale_length(r_eff):
    """Rd of an exponential disk: r_eff encloses half the light, i.e.
    1 - (1 + x) e^-x = 1/2 at x = r_eff / Rd, solved here by root finding."""
    from scipy.optimize import brentq

    x = brentq(lambda x: 1.0 - (1.0 + x) * math.exp(-x) - 0.5, 0.5, 5.0, xtol=1e-14)
    return r_eff / x


# ---------------------------------------------------------------------- light
class TestSersic:
    @pytest.mark.parametrize("n", [0.5, 1.0, 2.0, 4.0, 6.0])
    def test_half_light_at_r_eff(self, n):
        # enclosed fraction of a Sersic profile inside x = b (r/re)^(1/n) is
        # P(2n, x) (Graham & Driver 2005, eq. 2)
        assert special.gammainc(2.0 * n, sersic_bn(n)) == pytest.approx(0.5, abs=1e-12)

    def test_exponential_bn_matches_closed_form(self):
        # n = 1: 1 - (1 + b) e^-b = 1/2 solved independently
        r_eff = 1.0
        assert sersic_bn(1.0) == pytest.approx(r_eff / _disk_scale_length(r_eff), rel=1e-12)

    @pytest.mark.parametrize("n", [1.0, 2.0, 4.0])
    @pytest.mark.parametrize("q", [1.0, 0.5])
    def test_surface_brightness_integrates_to_one_radially(self, n, q):
        """Integral of I over the elliptical disk: the area between elliptical
        radii r and r + dr (arcsec) is 2 pi q r dr."""
        m = _model(**{"galaxy.sersic_n": n, "galaxy.inclination": math.degrees(math.acos(q))})
        assert m.axis_ratio == pytest.approx(q, rel=1e-12)
        re = m.r_eff_arcsec

        def integrand(r_arcsec):
            return m.surface_brightness(r_arcsec * m.kpc_per_arcsec) * 2.0 * math.pi * q * r_arcsec

        total = 0.0
        edges = [0.0] + [re * 2.0**k for k in range(-6, 12)] + [np.inf]
        for a, b in zip(edges[:-1], edges[1:]):
            total += integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-11, limit=200)[0]
        assert total == pytest.approx(1.0, rel=1e-7)

    @pytest.mark.parametrize("n", [1.0, 2.0])
    @pytest.mark.parametrize("q", [1.0, 0.5])
    def test_surface_brightness_integrates_to_one_on_sky_grid(self, n, q):
        """Sum of I(disk_coords(x, y)) x pixel area over a fine sky grid:
        checks the normalisation together with the deprojection."""
        m = _model(**{"galaxy.sersic_n": n, "galaxy.inclination": math.degrees(math.acos(q)),
                      "galaxy.pa": 30.0})
        re = m.r_eff_arcsec
        half = 40.0 * re if n == 2.0 else 20.0 * re  # light outside < 1e-5 of the total
        k = 2000
        step = 2.0 * half / k
        s = (np.arange(k) + 0.5) * step - half
        xx, yy = np.meshgrid(s, s)
        r_kpc, _ = m.disk_coords(xx, yy)
        total = float(m.surface_brightness(r_kpc).sum()) * step**2
        assert total == pytest.approx(1.0, rel=2e-3)

    @pytest.mark.parametrize("n", [1.0, 4.0])
    def test_light_radius_inverts_enclosed_fraction(self, n):
        m = _model(**{"galaxy.sersic_n": n})
        assert m.light_radius(0.5) == pytest.approx(m.r_eff, rel=1e-10)
        for f in (0.1, 0.9, 0.999):
            x = sersic_bn(n) * (m.light_radius(f) / m.r_eff) ** (1.0 / n)
            assert special.gammainc(2.0 * n, x) == pytest.approx(f, rel=1e-10)


# ------------------------------------------------------------------- rotation
def _vcirc_bessel_integral(r_kpc, log_mbary, r_eff):
    """V^2 = R dPhi/dR of a razor-thin exponential disk, with

        Phi(R) = -2 pi G Sigma0 Rd^2 int_0^inf J0(kR) (1 + (k Rd)^2)^(-3/2) dk

    (Binney & Tremaine 2008, eq. 2.164), so that

        V^2(R) = 2 pi G Sigma0 Rd^2 R int_0^inf k J1(kR) (1 + (k Rd)^2)^(-3/2) dk.

    The oscillating integral is summed between consecutive zeros of J1(kR)
    (an alternating series of terms falling as k^-2.5); the mean of the last
    two partial sums removes the leading truncation error.
    """
    rd = _disk_scale_length(r_eff)
    sigma0 = 10.0**log_mbary / (2.0 * math.pi * rd**2)
    out = []
    for r in np.atleast_1d(r_kpc):
        zeros = np.concatenate([[0.0], special.jn_zeros(1, 4000) / r])

        def f(k):
            return k * special.j1(k * r) / (1.0 + (k * rd) ** 2) ** 1.5

        parts = [integrate.quad(f, a, b, epsabs=0, epsrel=1e-12)[0] for a, b in zip(zeros[:-1], zeros[1:])]
        partial = np.cumsum(parts)
        integral = 0.5 * (partial[-1] + partial[-2])
        out.append(math.sqrt(2.0 * math.pi * G_KPC * sigma0 * rd**2 * r * integral))
    return np.array(out)


class TestExponentialDisk:
    log_m, r_eff = 10.5, 2.0

    def test_gravitational_constant_is_astropy_g(self):
        from mockzgrad.source.galaxy import G_KPC_KMS2_MSUN

        assert G_KPC_KMS2_MSUN == pytest.approx(G_KPC, rel=1e-9)

    def test_keplerian_limit(self):
        """V^2 -> G M / R far outside the disk. The in-plane multipole
        expansion of a thin disk (P_l(0)^2 azimuthal averages, <r^2> = 6 Rd^2,
        <r^4> = 120 Rd^4 for an exponential) gives
        V^2 R / G M = 1 + (9/2) (Rd/R)^2 + (675/8) (Rd/R)^4 + ...,
        so V^2 is within 1 % of G M / R only beyond ~21 Rd (1.2 % high at 20 Rd)."""
        rd = _disk_scale_length(self.r_eff)
        mass = 10.0**self.log_m
        for x in (20.0, 30.0, 50.0):
            r = x * rd
            ratio = exponential_disk_vcirc(r, self.log_m, self.r_eff) ** 2 * r / (G_KPC * mass)
            expansion = 1.0 + 4.5 / x**2 + 675.0 / 8.0 / x**4
            assert ratio == pytest.approx(expansion, rel=2e-4), x
            if x >= 30.0:
                assert ratio == pytest.approx(1.0, rel=0.01), x

    def test_peak_radius(self):
        """The rotation curve of a thin exponential disk peaks at R = 2.15 Rd
        (Freeman 1970; Binney & Tremaine 2008, Sect. 2.6.1b, Fig. 2.17)."""
        rd = _disk_scale_length(self.r_eff)
        r = np.linspace(0.5 * rd, 5.0 * rd, 200001)
        v = exponential_disk_vcirc(r, self.log_m, self.r_eff)
        assert 2.14 <= r[np.argmax(v)] / rd <= 2.2

    def test_matches_numerical_bessel_integral(self):
        rd = _disk_scale_length(self.r_eff)
        radii = np.array([0.1, 0.5, 1.0, 2.15, 4.0, 8.0]) * rd
        expect = _vcirc_bessel_integral(radii, self.log_m, self.r_eff)
        got = exponential_disk_vcirc(radii, self.log_m, self.r_eff)
        # the quadrature above is good to ~1e-10; 0.5 % was the requirement
        np.testing.assert_allclose(got, expect, rtol=1e-6)

    def test_scales_as_sqrt_mass(self):
        r = np.array([0.5, 2.0, 6.0])
        v1 = exponential_disk_vcirc(r, 10.0, self.r_eff)
        v2 = exponential_disk_vcirc(r, 11.0, self.r_eff)
        np.testing.assert_allclose(v2 / v1, math.sqrt(10.0), rtol=1e-12)

    def test_zero_at_centre(self):
        assert exponential_disk_vcirc(0.0, self.log_m, self.r_eff) == 0.0


class TestVrotInterpolation:
    """The model tabulates V(r) when r has > 4096 elements; the direct Bessel
    evaluation is the slow, obvious twin."""

    @staticmethod
    def _radii(r_max):
        # dense near the centre, where V ~ R sqrt(ln(Rd / R)) bends most, and
        # out to the corners of a padded flagship field (~30 kpc)
        rng = np.random.default_rng(7)
        return np.concatenate([np.geomspace(1e-5, 1.0, 500), rng.uniform(0.0, r_max, 5000)])

    @pytest.mark.parametrize("r_max", [8.0, 30.0])
    def test_fast_path_within_a_hundredth_of_a_channel(self, r_max):
        # physically relevant bound: 1 km/s, 1 % of the 106 km/s flagship channel
        m = _model()
        r = self._radii(r_max)
        assert r.size > 4096
        fast = m.vrot(r)
        direct = exponential_disk_vcirc(r, m.log_mbary, m.r_eff)
        assert np.max(np.abs(fast - direct)) < 1.0

    def test_fast_path_equals_direct_within_documented_relative_tolerance(self):
        m = _model()
        r = self._radii(8.0)
        fast = m.vrot(r)
        direct = exponential_disk_vcirc(r, m.log_mbary, m.r_eff)
        # galaxy.py documents < 2e-6 relative for log-spaced nodes
        np.testing.assert_allclose(fast, direct, rtol=2e-6, atol=0)

    def test_small_arrays_use_the_direct_formula(self):
        m = _model()
        r = np.linspace(0.0, 8.0, 4096)
        np.testing.assert_array_equal(m.vrot(r), exponential_disk_vcirc(r, m.log_mbary, m.r_eff))


class TestArctan:
    def _m(self, v0=30.0, vc=220.0, rt=1.5):
        return _model(**{"galaxy.rotation.kind": "arctan", "galaxy.rotation.v0": v0,
                         "galaxy.rotation.vc": vc, "galaxy.rotation.rt": rt})

    def test_limits(self):
        m = self._m()
        assert m.vrot(0.0) == pytest.approx(30.0, abs=1e-12)
        # (2/pi) arctan(x) = 1 - 2/(pi x) + O(x^-3)
        x = 1e6
        assert m.vrot(x * 1.5) == pytest.approx(250.0 - 2.0 * 220.0 / (math.pi * x), rel=1e-12)

    def test_half_amplitude_at_turnover_radius(self):
        # arctan(1) = pi/4: V(rt) = v0 + vc / 2
        m = self._m()
        assert m.vrot(1.5) == pytest.approx(30.0 + 110.0, rel=1e-12)

    def test_monotonic(self):
        v = self._m().vrot(np.linspace(0.0, 50.0, 1001))
        assert np.all(np.diff(v) > 0)


class TestPressureSupport:
    """Burkert et al. (2010, ApJ 725, 2324, eq. 11): V_rot^2 = V_c^2 - 2 sigma0^2 R / Rd."""

    @pytest.mark.parametrize("size", [200, 5000])  # direct and tabulated paths
    @pytest.mark.parametrize("sigma0", [40.0, 80.0])
    def test_asymmetric_drift(self, size, sigma0):
        m = _model(**{"galaxy.rotation.pressure_support": True, "galaxy.sigma0": sigma0})
        r = np.linspace(0.05, 8.0, size)
        rd = _disk_scale_length(m.r_eff)
        vc = exponential_disk_vcirc(r, m.log_mbary, m.r_eff)
        expect_v2 = np.maximum(vc**2 - 2.0 * sigma0**2 * r / rd, 0.0)
        # compared in V^2: near V_rot = 0 the difference of squares magnifies
        # any (tabulation) error in V_c
        np.testing.assert_allclose(m.vrot(r) ** 2, expect_v2, rtol=0, atol=1e-5 * np.max(vc**2))

    def test_never_negative_and_zero_where_drift_wins(self):
        m = _model(**{"galaxy.rotation.pressure_support": True, "galaxy.sigma0": 400.0})
        r = np.linspace(0.0, 20.0, 301)
        v = m.vrot(r)
        assert np.all(np.isfinite(v)) and np.all(v >= 0.0)
        rd = _disk_scale_length(m.r_eff)
        vc = exponential_disk_vcirc(r, m.log_mbary, m.r_eff)
        assert np.all(v[vc**2 < 2.0 * 400.0**2 * r / rd] == 0.0)

    def test_zero_dispersion_gives_circular_velocity(self):
        m = _model(**{"galaxy.rotation.pressure_support": True, "galaxy.sigma0": 0.0})
        r = np.linspace(0.0, 8.0, 300)
        np.testing.assert_array_equal(m.vrot(r), exponential_disk_vcirc(r, m.log_mbary, m.r_eff))


# ------------------------------------------------------------------- geometry
class TestGeometry:
    def test_angular_scale_from_astropy(self):
        # DESIGN.md: flat LambdaCDM H0 = 70, Om = 0.3; ~6.28 kpc/arcsec at z = 5
        m = _model()
        cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
        expect = (cosmo.angular_diameter_distance(5.0) * (1.0 * u.arcsec).to_value(u.rad)).to_value(u.kpc)
        assert m.kpc_per_arcsec == pytest.approx(expect, rel=1e-3)
        assert m.kpc_per_arcsec == pytest.approx(6.28, abs=0.01)

    def test_face_on_has_no_line_of_sight_velocity(self):
        m = _model(**{"galaxy.inclination": 0.0, "galaxy.pa": 37.0})
        s = np.linspace(-2.0, 2.0, 81)
        xx, yy = np.meshgrid(s, s)
        r, cos_phi = m.disk_coords(xx, yy)
        assert np.all(m.vlos(r, cos_phi) == 0.0)

    @pytest.mark.parametrize("pa", [0.0, 37.0, -120.0])
    def test_pa_plus_180_flips_velocities(self, pa):
        a = _model(**{"galaxy.inclination": 55.0, "galaxy.pa": pa})
        b = _model(**{"galaxy.inclination": 55.0, "galaxy.pa": pa + 180.0})
        rng = np.random.default_rng(1)
        x, y = rng.uniform(-1.5, 1.5, (2, 500))
        ra, ca = a.disk_coords(x, y)
        rb, cb = b.disk_coords(x, y)
        np.testing.assert_allclose(rb, ra, rtol=1e-12)
        np.testing.assert_allclose(b.vlos(rb, cb), -a.vlos(ra, ca), rtol=1e-9, atol=1e-9)

    @pytest.mark.parametrize("pa", [0.0, 37.0, 90.0])
    def test_radius_on_major_and_minor_axes(self, pa):
        m = _model(**{"galaxy.inclination": 60.0, "galaxy.pa": pa})
        d = np.array([0.1, 0.4, 1.3])  # arcsec from the centre
        p = math.radians(pa)
        # major axis towards PA (east of north): (east, north) = (sin pa, cos pa)
        r, cos_phi = m.disk_coords(d * math.sin(p), d * math.cos(p))
        np.testing.assert_allclose(r, d * m.kpc_per_arcsec, rtol=1e-12)
        np.testing.assert_allclose(cos_phi, 1.0, rtol=1e-12)  # receding half
        # minor axis: perpendicular on the sky, foreshortened by q = cos 60 deg
        r, cos_phi = m.disk_coords(d * math.cos(p), -d * math.sin(p))
        np.testing.assert_allclose(r, d / 0.5 * m.kpc_per_arcsec, rtol=1e-12)
        np.testing.assert_allclose(cos_phi, 0.0, atol=1e-12)

    def test_receding_half_is_positive(self):
        m = _model(**{"galaxy.inclination": 45.0, "galaxy.pa": 0.0})
        r, c = m.disk_coords(0.0, 0.3)  # north = receding major axis at PA 0
        assert m.vlos(r, c) > 0
        np.testing.assert_allclose(m.vlos(r, c), m.vrot(r) * math.sin(math.radians(45.0)), rtol=1e-12)

    def test_centre_offset(self):
        m = _model(**{"galaxy.x_offset": 0.2, "galaxy.y_offset": -0.1, "galaxy.inclination": 50.0})
        r, _ = m.disk_coords(0.2, -0.1)
        assert r == 0.0

    @pytest.mark.parametrize("incl,q0", [(0.0, 0.2), (60.0, 0.0), (60.0, 0.2), (90.0, 0.2)])
    def test_thick_disk_axis_ratio(self, incl, q0):
        m = _model(**{"galaxy.inclination": incl, "galaxy.q0": q0})
        i = math.radians(incl)
        assert m.axis_ratio == pytest.approx(math.sqrt(math.cos(i) ** 2 + q0**2 * math.sin(i) ** 2), rel=1e-12)


# ---------------------------------------------------------------- metallicity
class TestMetallicity:
    def test_linear_profile(self):
        m = _model(**{"galaxy.metallicity.z0": 8.2, "galaxy.metallicity.grad_z": -0.05})
        r = np.array([0.0, 1.0, 3.5])
        np.testing.assert_allclose(m.metallicity(r), 8.2 - 0.05 * r, rtol=1e-14)

    def test_broken_linear_continuity_and_slopes(self):
        m = _model(**{"galaxy.metallicity.profile": "broken_linear", "galaxy.metallicity.z0": 8.2,
                      "galaxy.metallicity.grad_z": -0.1, "galaxy.metallicity.r_break": 2.5,
                      "galaxy.metallicity.grad_z_outer": 0.04})
        eps = 1e-9
        left, right = m.metallicity(2.5 - eps), m.metallicity(2.5 + eps)
        assert abs(right - left) < 1e-8
        assert m.metallicity(2.5) == pytest.approx(8.2 - 0.25, abs=1e-14)
        assert (m.metallicity(2.0) - m.metallicity(1.0)) == pytest.approx(-0.1, abs=1e-12)
        assert (m.metallicity(5.0) - m.metallicity(4.0)) == pytest.approx(0.04, abs=1e-12)
        assert m.metallicity(0.0) == pytest.approx(8.2, abs=1e-14)

    def test_choose_z0_centres_span_in_common_range(self):
        ranges = [(7.3, 8.6), (7.4, 8.3), (7.3, 8.6)]
        for grad in (-0.1, 0.05, 0.0):
            z0, fits = choose_z0(grad, 6.0, ranges)
            ends = (z0, z0 + grad * 6.0)
            assert 0.5 * (min(ends) + max(ends)) == pytest.approx(0.5 * (7.4 + 8.3), abs=1e-12)
            assert fits
            assert min(ends) >= 7.4 - 1e-12 and max(ends) <= 8.3 + 1e-12

    def test_choose_z0_says_when_span_does_not_fit(self):
        z0, fits = choose_z0(-0.2, 6.0, [(7.3, 8.6), (7.4, 8.3)])  # span 1.2 dex > 0.9 dex
        assert not fits
        assert z0 - 0.6 == pytest.approx(7.85, abs=1e-12)  # still centred

    def test_choose_z0_disjoint_ranges(self):
        with pytest.raises(ConfigError, match="do not overlap"):
            choose_z0(-0.1, 6.0, [(7.0, 7.5), (7.8, 8.6)])

    def test_auto_z0_keeps_light_carrying_radii_in_range(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = _model(**{"galaxy.metallicity.grad_z": 0.1})
        assert m.z0_auto
        lo, hi = m.z_valid_range
        z = m.metallicity(np.linspace(0.0, 3.0 * m.r_eff, 100))
        assert z.min() >= lo - 1e-12 and z.max() <= hi + 1e-12

    def test_explicit_z0_entirely_outside_raises(self):
        with pytest.raises(ConfigError, match="entirely outside"):
            _model(**{"galaxy.metallicity.z0": 9.5, "galaxy.metallicity.grad_z": 0.0})

    # -0.25 dex/kpc over 3 r_eff = 6 kpc spans 1.5 dex, wider than the 1.2 dex common range
    # [7.4, 8.6] of S25 R3, O32 and Ne3O2 (-0.2 spans exactly 1.2 dex since Ne3O2 reaches 8.6)
    def test_span_wider_than_common_range_warns_clipped(self):
        with pytest.warns(CalibrationRangeWarning, match="clipped"):
            _model(**{"galaxy.metallicity.grad_z": -0.25})

    def test_span_wider_than_common_range_raise_policy(self):
        with pytest.raises(ConfigError, match="outside_range"):
            _model(**{"galaxy.metallicity.grad_z": -0.25, "lines.outside_range": "raise"})

    def test_cosmology_changes_only_the_angular_scale(self):
        cfg = MockConfig()
        a = resolve_galaxy(cfg.galaxy, cfg.lines, CosmologyConfig(h0=70.0, om0=0.3))
        b = resolve_galaxy(cfg.galaxy, cfg.lines, CosmologyConfig(h0=35.0, om0=0.3))
        # d_A scales as 1/H0
        assert b.kpc_per_arcsec == pytest.approx(2.0 * a.kpc_per_arcsec, rel=1e-10)
        assert b.r_eff == a.r_eff and b.z0 == a.z0
