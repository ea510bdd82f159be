"""Cube builder: flux conservation, kinematics, line ratios, noise, determinism, FITS.

Every expectation is computed independently of the builder: analytic totals
by radial quadrature, V(R) sin i from the rotation curve, ratios from the
calibration files.
"""

import hashlib
import math
import warnings

import numpy as np
import pytest

from mockzgrad.physics import calibrations
from mockzgrad.observation import lsf
from mockzgrad.config import MockConfig
from mockzgrad.observation.ifu import build_cube, model_cube
from mockzgrad.products.cube import read_cube
from mockzgrad.errors import DataError
from mockzgrad.physics.lines import C_KMS

FLAGSHIP = MockConfig().replace(seed=3)


def _line_sums(cube, scene, names):
    """Flux per line, channels assigned to the nearest line; blends summed."""
    centres = scene.grid.centres
    nearest = np.argmin(np.abs(centres[:, None] - scene.line_waves[None, :]), axis=1)
    spec = cube.sum(axis=(1, 2))
    return {name: float(spec[nearest == j].sum()) for j, name in enumerate(names)}


@pytest.fixture(scope="module")
def flagship():
    cube = build_cube(FLAGSHIP)
    before, scene = model_cube(FLAGSHIP, apply_psf=False)
    return cube, before, scene


class TestFluxConservation:
    def test_each_line_before_and_after_psf(self, flagship):
        cube, before, scene = flagship
        names = FLAGSHIP.lines.lines
        totals = cube.truth["line_totals"]
        for label, arr in (("before PSF", before), ("after PSF", cube.noise_free)):
            sums = _line_sums(arr, scene, names)
            # the [OII] doublet is blended (224 km/s apart): compare its sum
            oii = sums.pop("OII_3727") + sums.pop("OII_3730")
            assert oii == pytest.approx(totals["OII_3727"] + totals["OII_3730"], rel=5e-3), label
            for name, value in sums.items():
                assert value == pytest.approx(totals[name], rel=5e-3), (label, name)

    def test_analytic_total_of_reference_line_is_its_config_flux(self, flagship):
        cube, _, _ = flagship
        assert cube.truth["line_totals"]["OIII_5008"] == pytest.approx(FLAGSHIP.lines.reference_flux, rel=1e-6)

    def test_largest_psf_keeps_flux_inside_auto_field(self):
        cfg = FLAGSHIP.replace(**{"instrument.psf.fwhm": 1.0})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cube = build_cube(cfg)
        total = sum(cube.truth["line_totals"].values())
        assert cube.noise_free.sum() / total >= 0.995

    def test_given_small_field_warns(self):
        from mockzgrad.errors import FieldOfViewWarning

        cfg = FLAGSHIP.replace(**{"instrument.psf.fwhm": 1.0, "instrument.fov": 1.5})
        with pytest.warns(FieldOfViewWarning, match="fov"):
            build_cube(cfg)

    def test_analytic_lsf_equals_numerical_convolution(self):
        """sigma0 (+) LSF in quadrature in the renderer equals rendering with
        sigma0 alone and convolving with the LSF numerically."""
        base = FLAGSHIP.replace(**{"instrument.spectral.full_grid": True, "instrument.spectral.window": 2000.0})
        with_lsf, scene = model_cube(base, apply_psf=False)
        no_lsf, _ = model_cube(base.replace(**{"instrument.lsf_sigma": 0.0}), apply_psf=False)
        edges = np.append(scene.grid.edges_lo, scene.grid.edges_hi[-1])
        conv = lsf.convolve_spectral(no_lsf, edges, 125.0, channel_profile="centre")
        spec_a, spec_b = with_lsf.sum(axis=(1, 2)), conv.sum(axis=(1, 2))
        assert spec_b.sum() == pytest.approx(spec_a.sum(), rel=1e-4)
        # channel_profile="centre" places each channel's flux at its centre:
        # a second-order error of (width^2/12) on top of the exact profile
        assert np.max(np.abs(spec_a - spec_b)) < 0.03 * spec_a.max()


class TestKinematics:
    @pytest.fixture(scope="class")
    @classmethod
    def single_line(cls):
        cfg = MockConfig().replace(**{
            "lines.lines": ["OIII_5008"], "lines.generating_set": [],
            "galaxy.metallicity.z0": 8.0, "galaxy.inclination": 60.0, "galaxy.pa": 0.0,
            "instrument.psf.fwhm": 0.02, "instrument.spectral.channel_width": 20.0,
            "noise.enabled": False, "instrument.fov": 4.05,
        })
        cube, scene = model_cube(cfg)
        return cfg, cube, scene

    @staticmethod
    def _moments(cube, scene):
        v = (scene.grid.centres / scene.line_waves[0] - 1.0) * C_KMS
        f = cube.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m1 = np.tensordot(v, cube, axes=1) / f
            m2 = np.sqrt(np.tensordot(v**2, cube, axes=1) / f - m1**2)
        return f, m1, m2

    def test_velocity_field_antisymmetric_about_minor_axis(self, single_line):
        _, cube, scene = single_line
        f, m1, _ = self._moments(cube, scene)
        bright = f > 1e-3 * f.max()
        # PA = 0: major axis along rows; the minor axis is the middle row
        flipped = m1[::-1, :]
        both = bright & bright[::-1, :]
        # 1e-4 of the peak: the PSF FFT runs in float32 (rounding ~1e-7 of the
        # peak flux, ~1e-3 km/s in faint spaxels); a geometric error (PA sign,
        # an off-centre field) breaks the symmetry by km/s
        assert np.nanmax(np.abs(m1[both] + flipped[both])) < 1e-4 * np.nanmax(np.abs(m1[both]))

    def test_face_on_disk_has_no_line_of_sight_velocity(self):
        cfg = MockConfig().replace(**{"lines.lines": ["OIII_5008"], "lines.generating_set": [],
                                      "galaxy.metallicity.z0": 8.0, "galaxy.inclination": 0.0})
        cube, scene = model_cube(cfg)
        f, m1, _ = self._moments(cube, scene)
        assert np.nanmax(np.abs(m1[f > 1e-3 * f.max()])) < 0.5

    def test_moments_on_major_axis_match_rotation_and_dispersion(self, single_line):
        cfg, cube, scene = single_line
        f, m1, m2 = self._moments(cube, scene)
        n = scene.n
        ps = cfg.instrument.pixel_scale
        assert n % 2 == 1, "an odd field puts a column on the major axis"
        col = n // 2
        rows = np.arange(n)
        y = (rows - 0.5 * (n - 1)) * ps
        model = scene.model
        pick = (np.abs(y) > 1.5 * model.r_eff_arcsec) & (np.abs(y) < 2.5 * model.r_eff_arcsec)
        r_kpc = np.abs(y[pick]) * model.kpc_per_arcsec
        expect = model.vrot(r_kpc) * math.sin(math.radians(60.0)) * np.sign(y[pick])
        assert np.allclose(m1[pick, col], expect, rtol=0.02)
        sigma_expect = math.hypot(80.0, 125.0)
        chan = 20.0  # km/s: the channel-integrated profile adds width^2 / 12
        assert np.allclose(m2[pick, col], math.sqrt(sigma_expect**2 + chan**2 / 12), rtol=0.03)


class TestLineRatios:
    def test_ratio_maps_equal_calibrations_at_true_z(self):
        """Each spaxel's ratio equals the calibration averaged over the spaxel's
        light, computed here independently by fine sampling (10 x 10 per spaxel;
        the builder uses 6 x 6)."""
        cfg = MockConfig().replace(**{"instrument.psf.fwhm": 0.005, "instrument.pixel_scale": 0.02,
                                      "instrument.oversample": 6, "noise.enabled": False,
                                      "galaxy.metallicity.grad_z": -0.1})
        cube, scene = model_cube(cfg)
        names = cfg.lines.lines
        nearest = np.argmin(np.abs(scene.grid.centres[:, None] - scene.line_waves[None, :]), axis=1)
        maps = {name: cube[nearest == j].sum(axis=0) for j, name in enumerate(names)}
        bright = maps["OIII_5008"] > 0.01 * maps["OIII_5008"].max()
        n, ps, k = scene.n, cfg.instrument.pixel_scale, 10
        sub = ((np.arange(n * k) + 0.5) / k - 0.5 - 0.5 * (n - 1)) * ps
        xx, yy = np.meshgrid(-sub, sub)
        model = scene.model
        r_kpc, _ = model.disk_coords(xx, yy)
        z = np.clip(model.metallicity(r_kpc), 7.4, 8.6)  # common range of S25 R3, O32, Ne3O2
        light = model.surface_brightness(r_kpc)
        cal = {key: 10 ** calibrations.get_diagnostic(key).log_ratio(z, policy="ignore")
               for key in ("S25_R3", "S25_O32", "S25_Ne3O2")}

        def block(a):
            return a.reshape(n, k, n, k).sum(axis=(1, 3))

        # [OIII] 5008 follows the light; Hb = [OIII]/R3, [OII] = [OIII]/O32, [NeIII] = [OII] Ne3O2
        oiii = block(light)
        hb = block(light / cal["S25_R3"])
        oii = block(light / cal["S25_O32"])
        ne3 = block(light / cal["S25_O32"] * cal["S25_Ne3O2"])
        m_oii = maps["OII_3727"] + maps["OII_3730"]
        checks = {
            "R3": (np.log10(maps["OIII_5008"] / maps["Hb"]), np.log10(oiii / hb)),
            "O32": (np.log10(maps["OIII_5008"] / m_oii), np.log10(oiii / oii)),
            "Ne3O2": (np.log10(maps["NeIII_3870"] / m_oii), np.log10(ne3 / oii)),
        }
        for name, (measured, expect) in checks.items():
            assert np.max(np.abs(measured[bright] - expect[bright])) < 1e-3, name


class TestNoise:
    def test_target_snr_reached_and_variance_matches(self, flagship):
        cube, _, _ = flagship
        resid = cube.data - cube.noise_free
        sigma_measured = resid.std()
        assert sigma_measured == pytest.approx(math.sqrt(cube.variance[0, 0, 0]), rel=0.01)
        # S/N from the measured noise, in the peak channel, inside the r_eff ellipse
        chan = int(np.argmin(np.abs(cube.wavelengths - cube.truth["snr_channel_wave"])))
        from mockzgrad.observation.noise import ellipse_mask

        x, y = cube.offsets()
        xx, yy = np.meshgrid(x, y)
        t = cube.truth
        mask = ellipse_mask(xx, yy, a_arcsec=t["r_eff_arcsec"], axis_ratio=t["axis_ratio"], pa=t["pa"])
        snr = cube.noise_free[chan][mask].mean() / sigma_measured
        assert snr == pytest.approx(FLAGSHIP.noise.snr, rel=0.02)

    def test_same_seed_same_bytes_other_seed_differs(self, tmp_path):
        a = build_cube(FLAGSHIP)
        b = build_cube(FLAGSHIP)
        c = build_cube(FLAGSHIP.replace(seed=4))
        assert a.data.tobytes() == b.data.tobytes()
        assert a.data.tobytes() != c.data.tobytes()
        a.write(tmp_path / "a.fits")
        b.write(tmp_path / "b.fits")
        digest = [hashlib.sha256((tmp_path / f"{k}.fits").read_bytes()).hexdigest() for k in "ab"]
        assert digest[0] == digest[1]


def test_oversampling_converged():
    cfg = FLAGSHIP.replace(**{"noise.enabled": False})
    a, _ = model_cube(cfg.replace(**{"instrument.oversample": 4}))
    b, _ = model_cube(cfg.replace(**{"instrument.oversample": 8}))
    assert np.max(np.abs(a - b)) < 0.005 * a.max()


def test_numpy_twin_builds_the_same_cube():
    cfg = FLAGSHIP.replace(**{"instrument.oversample": 2})
    a, _ = model_cube(cfg)
    b, _ = model_cube(cfg, use_numba=False)
    assert np.max(np.abs(a - b)) <= 1e-6 * a.max()


class TestFits:
    def test_round_trip_and_header(self, flagship, tmp_path):
        cube, _, _ = flagship
        path = tmp_path / "cube.fits"
        cube.write(path)
        again = read_cube(path)
        assert again.data.shape == cube.data.shape
        # the file holds float32 flux density (issue 22); reading multiplies back by the channel width
        assert np.allclose(again.data, cube.data, rtol=2e-7 * 4, atol=0)
        assert np.allclose(again.edges_lo, cube.edges_lo)
        assert again.truth["grad_z"] == cube.truth["grad_z"]
        assert again.psf["PSF_FWHM"] == pytest.approx(FLAGSHIP.instrument.psf.fwhm)
        from astropy.io import fits

        with fits.open(path) as h:
            assert h["DATA"].header["BUNIT"] == "10**-20 erg.s**-1.cm**-2.Angstrom**-1"  # ESO cubes' unit
            assert h[0].header["GRAD_Z"] == cube.truth["grad_z"]
            assert h[0].header["X_RESOLUTION"] == pytest.approx(cube.truth["x_resolution"])

    def test_opens_with_spectral_cube(self, flagship, tmp_path):
        spectral_cube = pytest.importorskip("spectral_cube")
        cube, _, _ = flagship
        path = tmp_path / "cube.fits"
        cube.write(path)
        sc = spectral_cube.SpectralCube.read(path, hdu="DATA")
        waves = sc.spectral_axis.to_value("Angstrom")
        # every stored channel centre lies on the regular WCS grid
        for w in cube.wavelengths[:: max(1, cube.shape[0] // 10)]:
            assert np.min(np.abs(waves / w - 1.0)) * C_KMS < 1.0
        assert sc.shape[1:] == cube.shape[1:]

    def test_refuses_to_overwrite(self, flagship, tmp_path):
        cube, _, _ = flagship
        path = tmp_path / "cube.fits"
        cube.write(path)
        with pytest.raises(DataError, match="exists"):
            cube.write(path)

    def test_corrupt_and_foreign_files(self, tmp_path):
        from astropy.io import fits

        junk = tmp_path / "junk.fits"
        junk.write_bytes(b"not a fits file at all" * 10)
        with pytest.raises(DataError, match="not a readable FITS"):
            read_cube(junk)
        novar = tmp_path / "novar.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 4, 4)), name="DATA")]).writeto(novar)
        with pytest.raises(DataError, match="no VAR extension"):
            read_cube(novar)
        nowcs = tmp_path / "nowcs.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 4, 4)), name="DATA"),
                      fits.ImageHDU(np.ones((3, 4, 4)), name="VAR")]).writeto(nowcs)
        with pytest.raises(DataError, match="spectral"):
            read_cube(nowcs)
        with pytest.raises(DataError, match="does not exist"):
            read_cube(tmp_path / "missing.fits")


class TestSpectralPreset:
    def test_nirspec_g235m_linear_grid_holds_the_flagship_lines(self):
        cfg = FLAGSHIP.replace(**{"instrument.spectral.preset": "nirspec_g235m", "noise.enabled": False})
        assert cfg.instrument.spectral.grid == "linear"
        cube, scene = model_cube(cfg)
        widths = scene.grid.edges_hi - scene.grid.edges_lo
        assert np.allclose(widths, cfg.instrument.spectral.dispersion)
        # the preset states R ~ 1000 at Nyquist sampling: dispersion = lambda_c / (2 R)
        assert cfg.instrument.spectral.dispersion == pytest.approx(0.5 * (16600 + 30700) / 2 / 1000, rel=0.01)
        totals = build_cube(cfg).truth["line_totals"]
        assert cube.sum() == pytest.approx(sum(totals.values()), rel=5e-3)

    def test_lines_outside_the_band_are_named(self):
        from mockzgrad.errors import ConfigError

        cfg = FLAGSHIP.replace(**{"instrument.spectral.preset": "nirspec_g395m"})
        with pytest.raises(ConfigError, match="OII_3727, OII_3730, NeIII_3870 .* outside"):
            model_cube(cfg)

    def test_conflicting_explicit_values_and_unknown_preset(self):
        from mockzgrad.errors import ConfigError

        with pytest.raises(ConfigError, match="dispersion = 5.0 conflicts with"):
            FLAGSHIP.replace(**{"instrument.spectral.preset": "nirspec_g235m",
                                "instrument.spectral.dispersion": 5.0})
        with pytest.raises(ConfigError, match="preset = 'nirspec_g999h'; allowed"):
            FLAGSHIP.replace(**{"instrument.spectral.preset": "nirspec_g999h"})


def test_channel_edges_from_the_wcs_of_a_foreign_cube(tmp_path):
    """A cube without the CHANNELS table (not written by mockzgrad) gets its
    channel edges from the spectral WCS, for WAVE-LOG and linear WAVE axes."""
    from astropy.io import fits

    for changes in ({}, {"instrument.spectral.preset": "nirspec_g235m"}):
        cube = build_cube(FLAGSHIP.replace(**changes))
        path = tmp_path / "full.fits"
        cube.write(path, overwrite=True)
        with fits.open(path) as h:
            keep = [x for x in h if x.name not in ("CHANNELS", "TRUTH", "CONFIG")]
            fits.HDUList([x.copy() for x in keep]).writeto(tmp_path / "foreign.fits", overwrite=True)
        again = read_cube(tmp_path / "foreign.fits")
        assert again.data.shape == cube.data.shape
        assert np.allclose(again.edges_lo, cube.edges_lo, rtol=1e-9)
        assert np.allclose(again.edges_hi, cube.edges_hi, rtol=1e-9)


@pytest.mark.parametrize("fwhm", [0.1, 0.2547])
def test_outer_oversampling_converged(fwhm):
    """One sample per spaxel beyond 2 r_eff (flat rotation, smooth light)
    changes the cube by < 0.5 % of its peak against full oversampling."""
    cfg = FLAGSHIP.replace(**{"noise.enabled": False, "instrument.psf.fwhm": fwhm})
    adaptive, _ = model_cube(cfg)
    full, _ = model_cube(cfg.replace(**{"instrument.oversample_outer": cfg.instrument.oversample}))
    fine, _ = model_cube(cfg.replace(**{"instrument.oversample": 6, "instrument.oversample_outer": 6}))
    assert np.max(np.abs(adaptive - full)) < 0.005 * full.max()
    assert np.max(np.abs(adaptive - fine)) < 0.005 * fine.max()
    assert adaptive.sum() == pytest.approx(full.sum(), rel=1e-3)
