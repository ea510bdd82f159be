"""Cube invariants that every PSF kind must satisfy.

The invariants are written once in :class:`PSFKindInvariants`; each PSF kind
inherits them (STYLE.md, "Tests by physics invariant"):

- flux conservation: every line's flux in the noise-free cube equals the
  analytic total in the truth (radial quadrature, independent of any grid)
  within 0.5 % (DESIGN.md tolerance);
- centring: a centred galaxy convolved with a point-symmetric PSF has its
  [OIII] 5008 flux-weighted centroid at the field centre;
- resolution: a larger PSF spreads the [OIII] map more (its second moment
  about the centre grows; for a convolution second moments add).
"""

import math

import numpy as np
import pytest

from mockzgrad.config import MockConfig
from mockzgrad.observation.ifu import build_cube, model_cube
from mockzgrad.physics.lines import LINES
from mockzgrad.observation.psf import FWHM_PER_SIGMA, KERNEL_ENCLOSED_FRACTION

BASE = MockConfig().replace(**{"noise.enabled": False, "seed": 5})
REDSHIFT = BASE.galaxy.redshift


def _line_maps(data, wavelengths, names):
    """Map of each line: channels assigned to the nearest redshifted line."""
    line_waves = np.array([LINES[n].wavelength * (1.0 + REDSHIFT) for n in names])
    nearest = np.argmin(np.abs(wavelengths[:, None] - line_waves[None, :]), axis=1)
    return {name: data[nearest == j].sum(axis=0) for j, name in enumerate(names)}


def _centroid_and_second_moment(image, pixel_scale):
    """Flux-weighted centroid (pixels from the field centre) and the trace
    of the second-moment tensor about the field centre (arcsec^2)."""
    ny, nx = image.shape
    y = np.arange(ny) - 0.5 * (ny - 1)
    x = np.arange(nx) - 0.5 * (nx - 1)
    xx, yy = np.meshgrid(x, y)
    total = image.sum()
    cx, cy = (image * xx).sum() / total, (image * yy).sum() / total
    m2 = (image * (xx**2 + yy**2)).sum() / total * pixel_scale**2
    return (cx, cy), m2


def _gaussian_image_fits(path, fwhm, pixscale=0.01, half=100):
    """A circular Gaussian PSF image (2 half + 1 pixels square) with PIXSCALE."""
    from astropy.io import fits

    sigma = fwhm / FWHM_PER_SIGMA
    s = np.arange(-half, half + 1) * pixscale
    xx, yy = np.meshgrid(s, s)
    img = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    hdu = fits.PrimaryHDU(img)
    hdu.header["PIXSCALE"] = (pixscale, "arcsec")
    hdu.writeto(path)
    return str(path)


class PSFKindInvariants:
    """Invariants every PSF kind inherits; subclasses define :meth:`psf_settings`."""

    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        """``instrument.psf.*`` settings for a PSF ``scale`` times the base size."""
        raise NotImplementedError

    #: Trace of the PSF's second-moment tensor at scale 1, arcsec^2 (analytic).
    psf_m2: float

    @pytest.fixture(scope="class")
    @classmethod
    def cubes(cls, tmp_path_factory):
        out = {}
        for scale in (1.0, 2.0):
            cfg = BASE.replace(**{f"instrument.psf.{k}": v
                                  for k, v in cls.psf_settings(scale, tmp_path_factory).items()})
            out[scale] = (cfg, build_cube(cfg))
        shifted = out[1.0][0].replace(**{"galaxy.x_offset": 0.12, "galaxy.y_offset": -0.07})
        out["offset"] = (shifted, build_cube(shifted))
        return out

    @pytest.mark.parametrize("scale", [1.0, 2.0])
    def test_every_line_flux_conserved(self, cubes, scale):
        cfg, cube = cubes[scale]
        names = cfg.lines.lines
        totals = cube.truth["line_totals"]
        sums = {k: float(v.sum()) for k, v in _line_maps(cube.noise_free, cube.wavelengths, names).items()}
        # the [OII] doublet is blended (224 km/s apart): compare its sum
        oii = sums.pop("OII_3727") + sums.pop("OII_3730")
        assert oii == pytest.approx(totals["OII_3727"] + totals["OII_3730"], rel=5e-3)
        for name, value in sums.items():
            assert value == pytest.approx(totals[name], rel=5e-3), name

    def test_noise_disabled_data_is_the_model(self, cubes):
        _, cube = cubes[1.0]
        assert np.array_equal(cube.data, cube.noise_free)

    @pytest.mark.parametrize("scale", [1.0, 2.0])
    def test_centred_galaxy_gives_centred_image(self, cubes, scale):
        cfg, cube = cubes[scale]
        oiii = _line_maps(cube.noise_free, cube.wavelengths, cfg.lines.lines)["OIII_5008"]
        (cx, cy), _ = _centroid_and_second_moment(oiii, cfg.instrument.pixel_scale)
        assert abs(cx) < 0.1 and abs(cy) < 0.1

    def test_offset_galaxy_centroid_at_its_centre(self, cubes):
        """The PSF must not move the light: the centroid stays at the galaxy's
        centre (east = -column, north = +row)."""
        cfg, cube = cubes["offset"]
        oiii = _line_maps(cube.noise_free, cube.wavelengths, cfg.lines.lines)["OIII_5008"]
        ps = cfg.instrument.pixel_scale
        (cx, cy), _ = _centroid_and_second_moment(oiii, ps)
        assert cx == pytest.approx(-0.12 / ps, abs=0.1)
        assert cy == pytest.approx(-0.07 / ps, abs=0.1)

    def _oiii_m2(self, cubes, scale):
        cfg, cube = cubes[scale]
        oiii = _line_maps(cube.noise_free, cube.wavelengths, cfg.lines.lines)["OIII_5008"]
        return _centroid_and_second_moment(oiii, cfg.instrument.pixel_scale)[1]

    def test_larger_psf_larger_second_moment(self, cubes):
        assert self._oiii_m2(cubes, 2.0) > self._oiii_m2(cubes, 1.0)

    def test_second_moments_add(self, cubes):
        """Under convolution second moments add, so doubling the PSF size adds
        3 x its second moment; pixel sampling and the field's edge leave ~1 %."""
        grown = self._oiii_m2(cubes, 2.0) - self._oiii_m2(cubes, 1.0)
        assert grown == pytest.approx(3.0 * self.psf_m2, rel=0.02)

    def test_model_cube_matches_build_cube(self, cubes):
        cfg, cube = cubes[1.0]
        again, _ = model_cube(cfg)
        assert np.array_equal(again, cube.noise_free)
        # the spatially integrated cube is the same before and after the PSF
        before, _ = model_cube(cfg, apply_psf=False)
        assert again.sum() == pytest.approx(before.sum(), rel=5e-3)


class TestGaussian(PSFKindInvariants):
    psf_m2 = 2.0 * (0.255 / FWHM_PER_SIGMA) ** 2
    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        return {"kind": "gaussian", "fwhm": 0.255 * scale}


class TestEllipticalGaussian(PSFKindInvariants):
    psf_m2 = (0.3**2 + 0.2**2) / FWHM_PER_SIGMA**2
    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        return {"kind": "elliptical_gaussian", "fwhm": 0.3 * scale, "fwhm_minor": 0.2 * scale, "pa": 40.0}


def _truncated_moffat_m2(fwhm, beta, enclosed):
    """<r^2> of a Moffat profile (1 + r^2/alpha^2)^-beta, alpha = FWHM /
    (2 sqrt(2^(1/beta) - 1)) (Trujillo et al. 2001, eq. 7), cut at the radius
    enclosing ``enclosed`` of its flux (1 - (1 + u)^(1 - beta), u = r^2/alpha^2)
    as mockzgrad.observation.psf documents for its kernels. With t = r^2 / alpha^2:
    <r^2> = alpha^2 int_0^u t (1+t)^-beta dt / int_0^u (1+t)^-beta dt."""
    from scipy.integrate import quad

    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    u = (1.0 - enclosed) ** (1.0 / (1.0 - beta)) - 1.0
    num = quad(lambda t: t * (1.0 + t) ** -beta, 0.0, u, epsrel=1e-12)[0]
    den = quad(lambda t: (1.0 + t) ** -beta, 0.0, u, epsrel=1e-12)[0]
    return alpha**2 * num / den


class TestMoffat(PSFKindInvariants):
    # beta = 3: <r^2> is finite only because the wings are cut (at 99.9 %,
    # mockzgrad.observation.psf.KERNEL_ENCLOSED_FRACTION); uncut it would be alpha^2 / (beta - 2)
    psf_m2 = _truncated_moffat_m2(0.255, 3.0, KERNEL_ENCLOSED_FRACTION)
    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        return {"kind": "moffat", "fwhm": 0.255 * scale, "beta": 3.0}


class TestImage(PSFKindInvariants):
    psf_m2 = 2.0 * (0.255 / FWHM_PER_SIGMA) ** 2
    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        fwhm = 0.255 * scale
        path = _gaussian_image_fits(tmp_path_factory.mktemp("psf") / "psf.fits", fwhm)
        return {"kind": "image", "file": path, "fwhm": fwhm}

    def test_image_psf_equals_analytic_gaussian(self, cubes, tmp_path_factory):
        """A Gaussian given as an image makes the same cube as the analytic
        Gaussian PSF, to the image's sampling accuracy."""
        cfg, cube = cubes[1.0]
        ref = build_cube(BASE.replace(**{"instrument.psf.fwhm": 0.255}))
        assert ref.noise_free.shape == cube.noise_free.shape
        assert np.max(np.abs(ref.noise_free - cube.noise_free)) < 0.01 * ref.noise_free.max()


class TestWavelengthDependentGaussian(PSFKindInvariants):
    """FWHM = fwhm (lambda / lambda_ref), lambda_ref = observed [OIII] 5008 at z = 5."""

    REF = LINES["OIII_5008"].wavelength * (1.0 + REDSHIFT)
    psf_m2 = 2.0 * (0.255 / FWHM_PER_SIGMA) ** 2  # at the [OIII] 5008 wavelength

    @classmethod
    def psf_settings(cls, scale, tmp_path_factory):
        return {"kind": "gaussian", "fwhm": 0.255 * scale, "ref_wavelength": cls.REF,
                "scaling_exponent": 1.0}

    def test_bluer_lines_are_sharper(self, cubes):
        """[NeIII] 3870 at 0.77 lambda_ref has a 23 % smaller PSF than [OIII]
        5008: against a constant PSF of the [OIII] FWHM, its map's second
        moment is smaller by exactly the PSF's own change."""
        cfg, cube = cubes[1.0]
        const = build_cube(BASE.replace(**{"instrument.psf.fwhm": 0.255}))
        names = cfg.lines.lines
        m_var = _line_maps(cube.noise_free, cube.wavelengths, names)
        m_const = _line_maps(const.noise_free, const.wavelengths, names)
        ps = cfg.instrument.pixel_scale
        # [OIII] 5008: same PSF in both cubes
        a = _centroid_and_second_moment(m_var["OIII_5008"], ps)[1]
        b = _centroid_and_second_moment(m_const["OIII_5008"], ps)[1]
        assert a == pytest.approx(b, rel=1e-3)
        # [NeIII]: smaller PSF, smaller second moment by the PSF's own change
        # (second moments add under convolution: 2 sigma^2 for a circular Gaussian)
        lam = LINES["NeIII_3870"].wavelength * (1.0 + REDSHIFT)
        sigma_ref = 0.255 / FWHM_PER_SIGMA
        expect = 2.0 * sigma_ref**2 * (1.0 - (lam / self.REF) ** 2)
        a = _centroid_and_second_moment(m_var["NeIII_3870"], ps)[1]
        b = _centroid_and_second_moment(m_const["NeIII_3870"], ps)[1]
        assert b - a == pytest.approx(expect, rel=0.05)
