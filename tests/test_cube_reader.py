"""read_cube on damaged or re-saved cubes: one-line errors, or the same product (issue 21)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from mockzgrad.config import load_config
from mockzgrad.errors import DataError, MockzgradWarning
from mockzgrad.observation import observe
from mockzgrad.products.cube import read_cube

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    """A small flagship-like cube whose spectral grid has NaN gap channels between the lines."""
    cfg = load_config(ROOT / "examples" / "flagship_z5.toml").replace(seed=11)
    path = tmp_path_factory.mktemp("cube") / "cube.fits"
    observe(cfg).write(path)
    with fits.open(path) as h:
        gaps = np.isnan(h["DATA"].data).all(axis=(1, 2))
    assert 0 < gaps.sum() < gaps.size  # the fixture must have gaps to test them
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with fits.open(src) as h:
        edit(h)
        h.writeto(dst, overwrite=True)
    return dst


def assert_same_product(a, b):
    assert a.data.shape == b.data.shape
    assert np.array_equal(a.data, b.data, equal_nan=True)
    assert np.array_equal(a.variance, b.variance, equal_nan=True)
    assert np.array_equal(a.edges_lo, b.edges_lo) and np.array_equal(a.edges_hi, b.edges_hi)


def _zero_gaps(h):
    for name in ("DATA", "VAR"):
        h[name].data = np.nan_to_num(h[name].data, nan=0.0)


class TestZeroFilledGaps:
    def test_with_channels_table_reads_as_the_original(self, cube_file, tmp_path):
        assert_same_product(read_cube(_rewrite(cube_file, tmp_path / "z.fits", _zero_gaps)), read_cube(cube_file))

    def test_without_channels_table_reads_as_the_original(self, cube_file, tmp_path):
        nan = _rewrite(cube_file, tmp_path / "n.fits", lambda h: h.pop("CHANNELS"))

        def edit(h):
            h.pop("CHANNELS")
            _zero_gaps(h)

        zero = _rewrite(cube_file, tmp_path / "z.fits", edit)
        assert_same_product(read_cube(zero), read_cube(nan))
        assert read_cube(nan).data.shape[0] == read_cube(cube_file).data.shape[0]

    def test_channels_that_do_not_fall_on_the_wcs_are_refused(self, cube_file, tmp_path):
        def edit(h):
            _zero_gaps(h)
            h["CHANNELS"].data["WAVE_LO"] += 0.3 * (h["CHANNELS"].data["WAVE_HI"] - h["CHANNELS"].data["WAVE_LO"])
            h["CHANNELS"].data["WAVE_HI"] += 0.3 * (h["CHANNELS"].data["WAVE_HI"] - h["CHANNELS"].data["WAVE_LO"])

        with pytest.raises(DataError, match="do not fall on the WCS channels") as err:
            read_cube(_rewrite(cube_file, tmp_path / "bad.fits", edit))
        assert "\n" not in str(err.value)


class TestDamaged:
    def test_all_zero_cube(self, cube_file, tmp_path):
        def edit(h):
            h["DATA"].data = np.zeros_like(h["DATA"].data)

        with pytest.raises(DataError, match="DATA is zero \\(or NaN\\) everywhere") as err:
            read_cube(_rewrite(cube_file, tmp_path / "zero.fits", edit))
        assert "\n" not in str(err.value)

    @pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
    def test_truncated_cube(self, cube_file, tmp_path, fraction):
        raw = cube_file.read_bytes()
        path = tmp_path / "cut.fits"
        path.write_bytes(raw[: int(len(raw) * fraction)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no astropy "may have been truncated" noise either
            with pytest.raises(DataError, match="cut.fits") as err:
                read_cube(path)
        assert "\n" not in str(err.value)

    @pytest.mark.parametrize("payload", [b"\xff\xfe not json", b"[1, 2]", b"{broken"])
    def test_truth_that_is_not_json_is_ignored_with_a_warning(self, cube_file, tmp_path, payload):
        def edit(h):
            h["TRUTH"].data = np.frombuffer(payload, dtype=np.uint8)

        path = _rewrite(cube_file, tmp_path / "t.fits", edit)
        with pytest.warns(MockzgradWarning, match="TRUTH extension is .*truth ignored"):
            cube = read_cube(path)
        assert cube.truth == {}
        assert_same_product(cube, read_cube(cube_file))
        assert read_cube(cube_file).truth  # the intact file has its truth


# --------------------------------------------------------------------------- units and size (issue 22)

LINE = "OIII_5008"


@pytest.fixture(scope="module")
def noise_free_mock():
    """The flagship mock without noise: every pixel is the model's flux, so moment 0 can be compared exactly."""
    cfg = load_config(ROOT / "examples" / "flagship_z5.toml").replace(seed=11, **{"noise.enabled": False})
    return observe(cfg, keep_noise_free=False)


@pytest.fixture(scope="module")
def noise_free_linear():
    """As :func:`noise_free_mock` on a linear-wavelength grid, as NIRSpec's (and MJy/sr cubes') are."""
    cfg = load_config(ROOT / "examples" / "flagship_z5.toml").replace(
        seed=11, **{"noise.enabled": False, "instrument.spectral.grid": "linear",
                    "instrument.spectral.dispersion": 10.0, "instrument.cube_unit": "MJy/sr"})
    return observe(cfg, keep_noise_free=False)


def _line_channels(mock, line):
    """Indices of the stored window around ``line`` (contiguous channels nearest to its observed wavelength)."""
    from mockzgrad.physics.lines import LINES

    lam = LINES[line].wavelength * (1.0 + mock.truth["redshift"])
    k = int(np.argmin(np.abs(mock.wavelengths - lam)))
    lo = k
    while lo > 0 and np.isclose(mock.edges_hi[lo - 1], mock.edges_lo[lo]):
        lo -= 1
    hi = k
    while hi + 1 < mock.edges_lo.size and np.isclose(mock.edges_lo[hi + 1], mock.edges_hi[hi]):
        hi += 1
    return lo, hi


@pytest.mark.parametrize("unit", ["flam", "MJy/sr"])
def test_moment0_in_spectral_cube_is_the_line_flux(noise_free_mock, noise_free_linear, tmp_path, unit):
    """spectral-cube's moment 0 over a line (integral of the flux density over wavelength, or of the surface
    brightness over frequency times the spaxel solid angle) summed over spaxels is the line's flux."""
    import astropy.units as u
    spectral_cube = pytest.importorskip("spectral_cube")

    mock = noise_free_mock if unit == "flam" else noise_free_linear
    assert mock.unit == unit
    path = tmp_path / "cube.fits"
    mock.write(path)
    lo, hi = _line_channels(mock, LINE)
    in_cube = float(mock.data[lo:hi + 1].sum())  # erg/s/cm2: the model's flux in the window
    sc = spectral_cube.SpectralCube.read(path, hdu="DATA")
    # a window strictly inside the stored channels: their centres +- a quarter channel
    slab = sc.spectral_slab(mock.wavelengths[lo] * u.AA, mock.wavelengths[hi] * u.AA)
    assert slab.shape[0] == hi - lo + 1
    erg = u.erg / u.s / u.cm**2
    if unit == "flam":
        assert sc.unit.is_equivalent(u.erg / u.s / u.cm**2 / u.AA)
        m0 = slab.moment0()
        flux = (np.nansum(m0.value) * m0.unit).to(erg)
    else:
        assert sc.unit == u.MJy / u.sr
        m0 = slab.with_spectral_unit(u.Hz).moment0()
        omega = ((mock.pixel_scale * u.arcsec) ** 2).to(u.sr)
        flux = abs(np.nansum(m0.value) * m0.unit * omega).to(erg)
    # moment 0 times the channel width against the model's flux: the unit conversion, to float32 precision
    # and the WCS's channel width (WAVE-LOG channels widen by < 0.1 % across a window)
    assert flux.value == pytest.approx(in_cube, rel=5e-3)
    # ... and the line's total flux (truth): what the window and the field of view hold of it
    assert flux.value == pytest.approx(mock.truth["line_totals"][LINE], rel=5e-3)


def test_mjy_sr_cube_reads_back_the_same_flux(noise_free_mock, tmp_path):
    import dataclasses

    a, b = tmp_path / "flam.fits", tmp_path / "mjysr.fits"
    noise_free_mock.write(a)
    dataclasses.replace(noise_free_mock, unit="MJy/sr").write(b)
    with fits.open(b) as h:
        assert h["DATA"].header["BUNIT"] == "MJy/sr" and h["DATA"].header["PIXAR_SR"] > 0
    ca, cb = read_cube(a), read_cube(b)
    scale = np.abs(noise_free_mock.data).max()
    for c in (ca, cb):
        assert np.allclose(c.data, noise_free_mock.data, rtol=1e-6, atol=1e-7 * scale)
        assert np.allclose(c.variance, noise_free_mock.variance, rtol=1e-6)


def test_nirspec_ifu_presets_write_mjy_sr():
    from mockzgrad.config import InstrumentConfig
    from mockzgrad.products.readers.units import CUBE_UNITS
    from mockzgrad.config.instrument import CUBE_UNITS as CONFIG_UNITS

    assert set(CONFIG_UNITS) == set(CUBE_UNITS)
    assert InstrumentConfig(preset="nirspec_ifu_g395m").cube_unit == "MJy/sr"
    assert InstrumentConfig(preset="kmos_seeing").cube_unit == "flam"


#: KMOS: 2048 spectral pixels per detector (KMOS User Manual, VLT-MAN-ESO-14650-4466), the most
#: channels a reconstructed KMOS cube holds in one band.
KMOS_SPECTRAL_PIXELS = 2048


def test_kmos_like_example_file_is_bounded(tmp_path):
    cfg = load_config(ROOT / "examples" / "kmos_z1p5.toml")
    mock = observe(cfg, keep_noise_free=False)
    path = tmp_path / "kmos.fits"
    mock.write(path)
    n_file = mock.file_channels()
    ny, nx = mock.data.shape[1:]
    with fits.open(path) as h:
        assert h["DATA"].data.shape == (n_file, ny, nx)
    assert mock.data.shape[0] <= n_file <= KMOS_SPECTRAL_PIXELS
    # DATA and VAR as float32 plus at most 1 MB of headers and tables
    size = path.stat().st_size
    assert size <= 2 * 4 * n_file * ny * nx + 1_000_000
    # compressed, the NaN gap channels cost almost nothing and the pixels are unchanged (lossless)
    packed = tmp_path / "kmos_packed.fits"
    mock.write(packed, compress=True)
    assert packed.stat().st_size <= 2 * 4 * mock.data.shape[0] * ny * nx + 1_000_000
    assert_same_product(read_cube(packed), read_cube(path))


@pytest.mark.slow
def test_lensed_example_file_is_bounded(tmp_path):
    """The lensed NIRISS-like example: the file holds the field of the lensed images and the lines' span,
    nothing more (no sub-pixel oversampling written out; NaN gap channels only between the lines)."""
    from mockzgrad.config import lens_from_config
    from mockzgrad.physics.lines import LINES

    cfg = load_config(ROOT / "examples" / "lensed_niriss_z3.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MockzgradWarning)  # the field crosses a critical curve (intended)
        mock = observe(cfg, keep_noise_free=False)
    n_data, ny, nx = mock.data.shape
    n_file = mock.file_channels()
    # spectral: the lines' span on the channel grid plus at most the stored windows (only gaps between lines)
    z = cfg.galaxy.redshift
    waves = [LINES[n].wavelength * (1.0 + z) for n in cfg.lines.lines]
    assert mock.grid.kind == "velocity"
    assert n_file <= np.log(max(waves) / min(waves)) / mock.grid.step + n_data
    # spatial: images of a source-plane disk of radius r_src lie within r_src + max|alpha| of the lens
    # centre (lens equation theta = beta + alpha); an isothermal lens's |alpha| depends only on the angle.
    # r_src: offset + 6 r_eff (an exponential disk holds > 99.9 % of its light there); PSF: 2 FWHM.
    lens = lens_from_config(cfg.lensing, z, cfg.cosmology.to_astropy())
    phi = np.linspace(0.0, 2.0 * np.pi, 3601)
    ax, ay = lens.alpha(np.cos(phi), np.sin(phi))
    cosmo = cfg.cosmology.to_astropy()
    kpc_per_arcsec = float(cosmo.kpc_proper_per_arcmin(z).value) / 60.0
    offset = np.hypot(cfg.lensing.source_offset_x, cfg.lensing.source_offset_y)
    r_src = offset + 6.0 * cfg.galaxy.r_eff / kpc_per_arcsec
    half = np.max(np.hypot(ax, ay)) + r_src + 2.0 * cfg.instrument.psf.fwhm
    assert nx == ny <= 2.0 * half / cfg.instrument.pixel_scale + 3
    path = tmp_path / "lensed.fits"
    mock.write(path)
    assert path.stat().st_size <= 2 * 4 * n_file * ny * nx + 1_000_000  # DATA and VAR float32 + headers
    packed = tmp_path / "lensed_packed.fits"
    mock.write(packed, compress=True)
    assert packed.stat().st_size <= 2 * 4 * n_data * ny * nx + 1_000_000
