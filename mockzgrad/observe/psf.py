"""Point-spread functions and the spatial convolution of cubes.

Conventions
-----------
* Arrays are indexed ``[y, x]`` and cubes ``[chan, y, x]`` (axes
  ``(n_chan, ny, nx)``); ``x`` is the column index, ``y`` the row index, and
  an image is meant to be displayed with ``origin="lower"`` (row 0 at the
  bottom).
* Sky orientation: north = +y and east = -x, as in a standard sky image with
  right ascension increasing to the left.
* Position angle ``pa`` (deg) is east of north: measured from the +y axis
  toward -x, i.e. counter-clockwise on the displayed image. A major axis at
  ``pa`` points along ``(dx, dy) = (-sin pa, cos pa)``; ``pa = 90`` puts it
  along the x axis.
* FWHM, radii and ``pixel_scale`` are in arcsec (``pixel_scale`` in arcsec
  per pixel); wavelengths are observed-frame, in Angstrom.

Every PSF may vary with wavelength as FWHM(lambda) = FWHM (lambda /
ref_wavelength) ** scaling_exponent (``scaling_exponent = 1`` for a
diffraction-limited PSF); with ``ref_wavelength = None`` it is constant.

Kernels (:meth:`PSF.kernel`) are odd-sized and centred, *pixel-integrated*
(the analytic surface brightness is integrated over each pixel: erf
differences for the circular Gaussian, Gauss-Legendre sub-sampling
otherwise), normalised to unit sum, and wide enough to hold at least
:data:`KERNEL_ENCLOSED_FRACTION` of the flux (the Moffat profile is truncated
at the radius enclosing that fraction and renormalised). A pixel-integrated
kernel applied to an image that already holds pixel-integrated flux applies
the pixel response twice (second moments grow by pixel_scale^2 / 12 more than
the PSF's); ``sampling="center"`` gives the PSF sampled at pixel centres
instead, which adds exactly the PSF's own second moment.

:func:`convolve_cube` convolves every channel of a cube with the PSF by FFT,
zero-padding so that nothing wraps around; flux that stays inside the field
is conserved to rounding.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
from scipy import fft as sfft
from scipy.optimize import brentq
from scipy.special import erf

from ..errors import ConfigError, DataError

__all__ = [
    "PSF",
    "GaussianPSF",
    "EllipticalGaussianPSF",
    "MoffatPSF",
    "ImagePSF",
    "PSF_KINDS",
    "SAMPLINGS",
    "FWHM_PER_SIGMA",
    "KERNEL_ENCLOSED_FRACTION",
    "MAX_KERNEL_SIZE",
    "FWHM_GROUP_TOLERANCE",
    "psf_from_header",
    "psf_from_config",
    "convolve_cube",
    "convolve_with_kernel",
    "pad_width",
]

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Minimum fraction of the PSF flux a kernel holds before renormalisation.
KERNEL_ENCLOSED_FRACTION = 0.999

#: Largest kernel side, pixels; a larger one is refused (choose a coarser pixel).
MAX_KERNEL_SIZE = 4097

#: Channels whose FWHM agree to this relative tolerance share one kernel.
FWHM_GROUP_TOLERANCE = 1e-3

#: Kernel sampling modes of :meth:`PSF.kernel`.
SAMPLINGS = ("integrate", "center")

#: Values of the ``PSF_KIND`` header keyword.
PSF_KINDS = ("gaussian", "elliptical_gaussian", "moffat", "image")

_SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------

def _number(field: str, value, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{field} = {value!r}: expected a number{' in ' + unit if unit else ''}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{field} = {value}{' ' + unit if unit else ''}; allowed: finite")
    return value


def _positive(field: str, value, unit: str = "") -> float:
    value = _number(field, value, unit)
    if value <= 0.0:
        raise ConfigError(f"{field} = {value}{' ' + unit if unit else ''}; allowed: > 0")
    return value


def _check_fraction(fraction) -> float:
    fraction = _number("fraction", fraction)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction = {fraction}; allowed: (0, 1)")
    return fraction


def _check_oversample(oversample) -> int:
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ConfigError(f"oversample = {oversample!r}; allowed: integer >= 1")
    return int(oversample)


def _half_width_from_radius(radius: float, pix: float, what: str) -> int:
    """Half-width h (pixels) of the smallest odd square kernel whose edge is beyond ``radius``."""
    h_float = radius / pix - 0.5
    if not math.isfinite(h_float) or 2 * h_float + 1 > MAX_KERNEL_SIZE:
        raise ConfigError(
            f"{what}: the kernel would be {radius / pix * 2:.3g} pixels wide "
            f"({KERNEL_ENCLOSED_FRACTION:.1%} of the flux within {radius:.4g} arcsec at "
            f"{pix:.4g} arcsec/pixel); allowed up to {MAX_KERNEL_SIZE} pixels"
        )
    return max(1, math.ceil(h_float - 1e-9))


def _pixel_integrate(profile, h: int, pix: float, n_sub: int) -> np.ndarray:
    """Integrate ``profile(x, y)`` (arcsec) over the pixels of a (2h+1)^2 grid.

    Gauss-Legendre sub-sampling with ``n_sub`` points per axis and pixel
    (``n_sub = 1`` is the pixel centre); returns the pixel means, which the
    caller normalises.
    """
    t, w = np.polynomial.legendre.leggauss(n_sub)
    w = 0.5 * w
    n = 2 * h + 1
    sub = ((np.arange(-h, h + 1) * pix)[:, None] + 0.5 * pix * t[None, :]).ravel()
    out = np.empty((n, n))
    rows = max(1, int(4_000_000 // (sub.size * n_sub)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        ys = sub[start * n_sub: stop * n_sub]
        vals = profile(sub[None, :], ys[:, None]).reshape(stop - start, n_sub, n, n_sub)
        out[start:stop] = np.einsum("anbm,n,m->ab", vals, w, w)
    return out


def _n_sub(pix: float, scale: float, sampling: str) -> int:
    """Sub-samples per axis: spacing resolving ``scale`` (arcsec); 1 (the centre) for "center"."""
    if sampling == "center":
        return 1
    return int(min(32, max(5, math.ceil(3.0 * pix / scale))))


def _finish(kernel: np.ndarray) -> np.ndarray:
    """Symmetrise a point-symmetric kernel exactly and normalise it to unit sum."""
    kernel = 0.5 * (kernel + kernel[::-1, ::-1])
    return kernel / kernel.sum()


# ---------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------

class PSF(ABC):
    """Behaviour shared by every PSF model (see the module notes for conventions).

    Subclasses are frozen dataclasses with fields ``ref_wavelength`` and
    ``scaling_exponent`` and implement the ``_..._const`` methods for the PSF
    at its reference wavelength.
    """

    kind: ClassVar[str] = ""
    ref_wavelength: float | None
    scaling_exponent: float | None

    # -- wavelength dependence ------------------------------------------------
    def _check_scaling(self) -> None:
        name = type(self).__name__
        if (self.ref_wavelength is None) != (self.scaling_exponent is None):
            raise ConfigError(
                f"{name}.ref_wavelength = {self.ref_wavelength!r} and {name}.scaling_exponent = "
                f"{self.scaling_exponent!r}: give both (FWHM scales as (lambda/ref)^exponent) or neither"
            )
        if self.ref_wavelength is not None:
            object.__setattr__(
                self, "ref_wavelength", _positive(f"{name}.ref_wavelength", self.ref_wavelength, "Angstrom")
            )
            object.__setattr__(
                self, "scaling_exponent", _number(f"{name}.scaling_exponent", self.scaling_exponent)
            )

    @property
    def varies(self) -> bool:
        """True when the FWHM varies with wavelength (``scaling_exponent`` set and non-zero)."""
        return self.ref_wavelength is not None and self.scaling_exponent != 0.0

    def _scale_factors(self, wavelength) -> np.ndarray:
        wave = np.asarray(wavelength, dtype=np.float64)
        if not np.all(np.isfinite(wave) & (wave > 0.0)):
            raise ConfigError(f"wavelength = {wavelength!r} Angstrom; allowed: finite and > 0")
        if not self.varies:
            return np.ones_like(wave)
        return (wave / self.ref_wavelength) ** self.scaling_exponent

    def scale_factor(self, wavelength: float | None = None) -> float:
        """FWHM(wavelength) / FWHM(ref_wavelength); 1 for a constant PSF or ``wavelength=None``.

        Parameters
        ----------
        wavelength : float or None
            Observed wavelength, Angstrom; > 0.
        """
        if wavelength is None:
            return 1.0
        return float(self._scale_factors(_number("wavelength", wavelength, "Angstrom")))

    def fwhm_at(self, wavelength=None):
        """FWHM at ``wavelength``, arcsec.

        Major-axis FWHM for the elliptical Gaussian; for an image, the
        equivalent FWHM 2 sqrt(A / pi) of the area A above half the peak.

        Parameters
        ----------
        wavelength : float, array_like or None
            Observed wavelength(s), Angstrom; > 0. None = the reference
            wavelength (i.e. the model's own FWHM).

        Returns
        -------
        float or numpy.ndarray
        """
        if wavelength is None:
            return self._fwhm_const()
        if np.ndim(wavelength) == 0:
            return self._fwhm_const() * self.scale_factor(wavelength)
        return self._fwhm_const() * self._scale_factors(wavelength)

    def at_wavelength(self, wavelength: float | None) -> "PSF":
        """The constant PSF this model has at ``wavelength`` (Angstrom); ``self`` for None."""
        if wavelength is None or not self.varies:
            return self
        return self._scaled(self.scale_factor(wavelength))

    # -- kernels -----------------------------------------------------------------
    def kernel(
        self,
        pixel_scale: float,
        *,
        wavelength: float | None = None,
        oversample: int = 1,
        sampling: str = "integrate",
    ) -> np.ndarray:
        """Centred, unit-sum kernel, pixel-integrated by default.

        Parameters
        ----------
        pixel_scale : float
            Pixel size, arcsec; > 0.
        wavelength : float or None
            Observed wavelength, Angstrom; None = the reference wavelength.
        oversample : int
            Sub-pixels per pixel along each axis; the kernel is sampled at
            ``pixel_scale / oversample``. >= 1.
        sampling : {"integrate", "center"}
            ``"integrate"``: the PSF integrated over each pixel (the flux a
            pixel receives from a point source at the centre of the central
            pixel). ``"center"``: the PSF surface brightness at pixel centres
            (bilinear interpolation for an image), for convolving an image
            that is already pixel-integrated, so that the pixel response is
            applied only once (second moments then add exactly).

        Returns
        -------
        numpy.ndarray
            Shape ``(2h+1, 2h+1)``, float64, sum 1, indexed ``[y, x]``, peak
            at ``[h, h]``.
        """
        pix = _positive("pixel_scale", pixel_scale, "arcsec") / _check_oversample(oversample)
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling = {sampling!r}; allowed: {', '.join(SAMPLINGS)}")
        return self.at_wavelength(wavelength)._kernel_const(pix, sampling)

    def half_width(self, pixel_scale: float, *, wavelength: float | None = None, oversample: int = 1) -> int:
        """Half-width h of :meth:`kernel` (which has side 2h+1), pixels; same parameters."""
        pix = _positive("pixel_scale", pixel_scale, "arcsec") / _check_oversample(oversample)
        return self.at_wavelength(wavelength)._half_width_const(pix)

    def _half_width_const(self, pix: float) -> int:
        radius = self._enclosed_radius_const(KERNEL_ENCLOSED_FRACTION)
        return _half_width_from_radius(radius, pix, repr(self))

    # -- enclosed flux -------------------------------------------------------------
    def enclosed_fraction(self, radius, *, wavelength: float | None = None):
        """Fraction of the flux inside a circle of ``radius`` arcsec centred on the PSF.

        Parameters
        ----------
        radius : float or array_like
            Radius, arcsec; >= 0.
        wavelength : float or None
            Observed wavelength, Angstrom; None = the reference wavelength.

        Returns
        -------
        float or numpy.ndarray
            For the Moffat profile this is the untruncated analytic value.
        """
        r = np.asarray(radius, dtype=np.float64)
        if not np.all(np.isfinite(r) & (r >= 0.0)):
            raise ConfigError(f"radius = {radius!r} arcsec; allowed: finite and >= 0")
        frac = self.at_wavelength(wavelength)._enclosed_fraction_const(r)
        return float(frac) if np.ndim(frac) == 0 else frac

    def enclosed_radius(self, fraction: float, *, wavelength: float | None = None) -> float:
        """Radius of the centred circle holding ``fraction`` of the flux, arcsec.

        Parameters
        ----------
        fraction : float
            Enclosed-flux fraction; in (0, 1).
        wavelength : float or None
            Observed wavelength, Angstrom; None = the reference wavelength.
        """
        fraction = _check_fraction(fraction)
        return float(self.at_wavelength(wavelength)._enclosed_radius_const(fraction))

    def _enclosed_radius_const(self, fraction: float) -> float:
        """Generic inversion of the enclosed fraction by bracketing and Brent's method."""
        hi = max(self._fwhm_const(), 1e-12)
        for _ in range(200):
            if self._enclosed_fraction_const(np.asarray(hi)) >= fraction:
                break
            hi *= 2.0
        else:
            raise ConfigError(f"fraction = {fraction}: never enclosed by {self!r}")
        return brentq(lambda r: self._enclosed_fraction_const(np.asarray(r)) - fraction, 0.0, hi,
                      xtol=1e-12 * hi, rtol=1e-12)

    # -- header round trip ------------------------------------------------------------
    def to_header(self) -> dict[str, Any]:
        """Keywords describing this PSF (<= 8 characters, FITS-ready).

        ``PSF_KIND`` (one of :data:`PSF_KINDS`), ``PSF_FWHM`` (arcsec, at the
        reference wavelength; major axis for the elliptical Gaussian,
        estimated for an image), ``PSF_FMIN`` and ``PSF_PA`` (elliptical,
        arcsec and deg east of north), ``PSF_BETA`` (Moffat), ``PSF_PIXS`` and
        ``PSF_FILE`` (image pixel scale in arcsec, source file), ``PSF_WREF``
        and ``PSF_WEXP`` (reference wavelength in Angstrom and scaling
        exponent, only when the PSF varies with wavelength).
        """
        header: dict[str, Any] = {"PSF_KIND": self.kind, "PSF_FWHM": float(self._fwhm_const())}
        header.update(self._header_items())
        if self.ref_wavelength is not None:
            header["PSF_WREF"] = float(self.ref_wavelength)
            header["PSF_WEXP"] = float(self.scaling_exponent)
        return header

    @classmethod
    def from_header(cls, header: Mapping[str, Any], *, image: np.ndarray | None = None) -> "PSF":
        """Rebuild a PSF from :meth:`to_header` keywords (a dict or a FITS header).

        Parameters
        ----------
        header : mapping
            Must hold ``PSF_KIND`` and the keywords of that kind.
        image : numpy.ndarray or None
            For ``PSF_KIND = 'image'``: the PSF image (pixel scale from
            ``PSF_PIXS``); without it the image is read from ``PSF_FILE``.
        """
        psf = psf_from_header(header, image=image)
        if cls is not PSF and not isinstance(psf, cls):
            raise DataError(f"PSF_KIND = {psf.kind!r} does not describe a {cls.__name__}")
        return psf

    # -- implemented by each model, for the PSF at its reference wavelength -----------
    @abstractmethod
    def _fwhm_const(self) -> float:
        """FWHM, arcsec."""

    @abstractmethod
    def _scaled(self, factor: float) -> "PSF":
        """Constant PSF with every length multiplied by ``factor``."""

    @abstractmethod
    def _kernel_const(self, pix: float, sampling: str) -> np.ndarray:
        """Kernel at pixel size ``pix`` (arcsec), pixel-integrated or centre-sampled."""

    @abstractmethod
    def _enclosed_fraction_const(self, r: np.ndarray) -> np.ndarray:
        """Flux fraction within radius ``r`` (arcsec)."""

    def _header_items(self) -> dict[str, Any]:
        return {}


def _constant(**fields) -> dict:
    return dict(fields, ref_wavelength=None, scaling_exponent=None)


# ---------------------------------------------------------------------------
# analytic models
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GaussianPSF(PSF):
    """Circular Gaussian PSF.

    Parameters
    ----------
    fwhm : float
        FWHM at ``ref_wavelength`` (or at every wavelength), arcsec; > 0.
    ref_wavelength : float or None, keyword-only
        Observed wavelength where ``fwhm`` holds, Angstrom; > 0.
    scaling_exponent : float or None, keyword-only
        FWHM proportional to (lambda / ref_wavelength) ** scaling_exponent.
    """

    kind: ClassVar[str] = "gaussian"
    fwhm: float
    _: KW_ONLY
    ref_wavelength: float | None = None
    scaling_exponent: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "fwhm", _positive("GaussianPSF.fwhm", self.fwhm, "arcsec"))
        self._check_scaling()

    @property
    def sigma(self) -> float:
        """Standard deviation at the reference wavelength, arcsec."""
        return self.fwhm / FWHM_PER_SIGMA

    def _fwhm_const(self) -> float:
        return self.fwhm

    def _scaled(self, factor):
        return replace(self, **_constant(fwhm=self.fwhm * factor))

    def _enclosed_fraction_const(self, r):
        return -np.expm1(-0.5 * (r / self.sigma) ** 2)

    def _enclosed_radius_const(self, fraction):
        return self.sigma * math.sqrt(-2.0 * math.log1p(-fraction))

    def _kernel_const(self, pix, sampling):
        h = self._half_width_const(pix)
        if sampling == "center":
            prof = np.exp(-0.5 * (np.arange(-h, h + 1) * pix / self.sigma) ** 2)
        else:
            edges = (np.arange(-h, h + 2) - 0.5) * pix / (_SQRT2 * self.sigma)
            prof = 0.5 * np.diff(erf(edges))
        return _finish(np.outer(prof, prof))


@dataclass(frozen=True)
class EllipticalGaussianPSF(PSF):
    """Elliptical Gaussian PSF.

    Parameters
    ----------
    fwhm_major : float
        Major-axis FWHM, arcsec; > 0.
    fwhm_minor : float
        Minor-axis FWHM, arcsec; in (0, fwhm_major].
    pa : float
        Position angle of the major axis, deg east of north (from +y toward
        -x); finite.
    ref_wavelength, scaling_exponent : float or None, keyword-only
        Wavelength scaling of both FWHMs (see :class:`GaussianPSF`).
    """

    kind: ClassVar[str] = "elliptical_gaussian"
    fwhm_major: float
    fwhm_minor: float
    pa: float = 0.0
    _: KW_ONLY
    ref_wavelength: float | None = None
    scaling_exponent: float | None = None

    def __post_init__(self):
        name = "EllipticalGaussianPSF"
        major = _positive(f"{name}.fwhm_major", self.fwhm_major, "arcsec")
        minor = _positive(f"{name}.fwhm_minor", self.fwhm_minor, "arcsec")
        if minor > major:
            raise ConfigError(
                f"{name}.fwhm_minor = {minor} arcsec; allowed: (0, fwhm_major = {major}] arcsec"
            )
        object.__setattr__(self, "fwhm_major", major)
        object.__setattr__(self, "fwhm_minor", minor)
        object.__setattr__(self, "pa", _number(f"{name}.pa", self.pa, "deg"))
        self._check_scaling()

    def _fwhm_const(self):
        return self.fwhm_major

    def _scaled(self, factor):
        return replace(self, **_constant(fwhm_major=self.fwhm_major * factor,
                                         fwhm_minor=self.fwhm_minor * factor))

    def _sigmas(self):
        return self.fwhm_major / FWHM_PER_SIGMA, self.fwhm_minor / FWHM_PER_SIGMA

    def _enclosed_fraction_const(self, r):
        # Polar integral of the bivariate normal: F(r) = 1/(2 pi sa sb) *
        # int_0^2pi (1 - exp(-r^2 q / 2)) / q dtheta, q = cos^2/sa^2 + sin^2/sb^2
        # (trapezoid rule on a periodic integrand: spectrally accurate).
        sa, sb = self._sigmas()
        theta = np.linspace(0.0, 2.0 * np.pi, 2048, endpoint=False)
        q = np.cos(theta) ** 2 / sa**2 + np.sin(theta) ** 2 / sb**2
        r = np.asarray(r, dtype=np.float64)
        terms = -np.expm1(-0.5 * r[..., None] ** 2 * q) / q
        return terms.mean(axis=-1) / (sa * sb)

    def _kernel_const(self, pix, sampling):
        h = self._half_width_const(pix)
        sa, sb = self._sigmas()
        s, c = math.sin(math.radians(self.pa)), math.cos(math.radians(self.pa))

        def profile(x, y):
            u = -x * s + y * c  # along the major axis
            v = x * c + y * s   # along the minor axis
            return np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))

        return _finish(_pixel_integrate(profile, h, pix, _n_sub(pix, sb, sampling)))

    def _header_items(self):
        return {"PSF_FMIN": self.fwhm_minor, "PSF_PA": self.pa}


@dataclass(frozen=True)
class MoffatPSF(PSF):
    """Circular Moffat PSF, I(r) proportional to (1 + (r/alpha)^2)^(-beta).

    alpha = FWHM / (2 sqrt(2^(1/beta) - 1)); the enclosed flux is
    1 - (1 + (r/alpha)^2)^(1-beta) (Moffat 1969, A&A 3, 455). Kernels are
    truncated at the radius enclosing :data:`KERNEL_ENCLOSED_FRACTION` and
    renormalised.

    Parameters
    ----------
    fwhm : float
        FWHM, arcsec; > 0.
    beta : float
        Power index; > 1 (finite total flux). Small values give very wide
        kernels (beta = 1.5 encloses 99.9% only within 1000 alpha).
    ref_wavelength, scaling_exponent : float or None, keyword-only
        Wavelength scaling of the FWHM (see :class:`GaussianPSF`).
    """

    kind: ClassVar[str] = "moffat"
    fwhm: float
    beta: float
    _: KW_ONLY
    ref_wavelength: float | None = None
    scaling_exponent: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "fwhm", _positive("MoffatPSF.fwhm", self.fwhm, "arcsec"))
        beta = _number("MoffatPSF.beta", self.beta)
        if beta <= 1.0:
            raise ConfigError(f"MoffatPSF.beta = {beta}; allowed: > 1 (finite flux)")
        object.__setattr__(self, "beta", beta)
        self._check_scaling()

    @property
    def alpha(self) -> float:
        """Core radius alpha at the reference wavelength, arcsec."""
        return self.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0))

    def _fwhm_const(self):
        return self.fwhm

    def _scaled(self, factor):
        return replace(self, **_constant(fwhm=self.fwhm * factor, beta=self.beta))

    def _enclosed_fraction_const(self, r):
        return -np.expm1((1.0 - self.beta) * np.log1p((r / self.alpha) ** 2))

    def _enclosed_radius_const(self, fraction):
        with np.errstate(over="ignore"):
            return self.alpha * math.sqrt(np.expm1(math.log1p(-fraction) / (1.0 - self.beta)))

    def _kernel_const(self, pix, sampling):
        h = self._half_width_const(pix)
        r_cut2 = self._enclosed_radius_const(KERNEL_ENCLOSED_FRACTION) ** 2
        alpha2, beta = self.alpha**2, self.beta

        def profile(x, y):
            r2 = x**2 + y**2
            return np.where(r2 <= r_cut2, (1.0 + r2 / alpha2) ** (-beta), 0.0)

        n_sub = _n_sub(pix, self.fwhm / FWHM_PER_SIGMA, sampling)
        return _finish(_pixel_integrate(profile, h, pix, n_sub))

    def _header_items(self):
        return {"PSF_BETA": self.beta}


# ---------------------------------------------------------------------------
# image PSF
# ---------------------------------------------------------------------------

def _linear_weights(t: np.ndarray, n: int) -> np.ndarray:
    """Matrix W with (W @ f)[k] = f linearly interpolated at t[k], f given at 0..n."""
    t = np.clip(t, 0.0, float(n))
    i0 = np.minimum(np.floor(t).astype(int), n - 1)
    frac = t - i0
    w = np.zeros((t.size, n + 1))
    rows = np.arange(t.size)
    w[rows, i0] = 1.0 - frac
    w[rows, i0 + 1] += frac
    return w


def _pixel_scale_from_header(header, path) -> float:
    for key in ("PIXSCALE", "PIXELSCL"):
        if key in header:
            return _positive(f"{path}: {key}", header[key], "arcsec")
    has_cd = any(f"CD{i}_{j}" in header for i in (1, 2) for j in (1, 2))
    if not (has_cd or ("CDELT1" in header and "CDELT2" in header)):
        raise DataError(
            f"{path}: no pixel scale in the header (looked for PIXSCALE, PIXELSCL, CD1_1.., "
            "CDELT1/CDELT2); pass pixel_scale= in arcsec"
        )
    if has_cd:
        m = np.array([[header.get(f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)], dtype=float)
    else:
        pc = np.array([[header.get(f"PC{i}_{j}", float(i == j)) for j in (1, 2)] for i in (1, 2)],
                      dtype=float)
        m = pc * np.array([header["CDELT1"], header["CDELT2"]], dtype=float)[:, None]
    scales = np.hypot(m[0], m[1])  # per pixel axis, in CUNIT
    units = [str(header.get(f"CUNIT{i}", "deg")).strip() or "deg" for i in (1, 2)]
    import astropy.units as u

    try:
        arcsec = [float((s * u.Unit(un)).to_value(u.arcsec)) for s, un in zip(scales, units)]
    except (ValueError, u.UnitsError):
        raise DataError(f"{path}: CUNIT1/2 = {units}: not angular units") from None
    if not all(math.isfinite(a) and a > 0 for a in arcsec):
        raise DataError(f"{path}: pixel scale from the WCS is {arcsec} arcsec; allowed: > 0")
    if abs(arcsec[0] - arcsec[1]) > 1e-3 * max(arcsec):
        raise DataError(f"{path}: pixels are not square ({arcsec[0]:.6g} x {arcsec[1]:.6g} arcsec)")
    return 0.5 * (arcsec[0] + arcsec[1])


@dataclass(frozen=True, eq=False)
class ImagePSF(PSF):
    """PSF given as an image (e.g. from WebbPSF/STPSF), oriented north-up, east-left.

    The PSF centre is the geometric centre of the array (the central pixel of
    an odd-sized image). The image is stored as float64 normalised to unit
    sum (read-only). Kernels at another pixel scale are made by exact,
    flux-conserving rebinning of the image taken as constant within each of
    its pixels.

    Parameters
    ----------
    image : array_like
        2D PSF image, indexed ``[y, x]``; finite with a positive sum.
    pixel_scale : float
        Pixel size of ``image`` at ``ref_wavelength``, arcsec; > 0.
    ref_wavelength, scaling_exponent : float or None, keyword-only
        Wavelength scaling: at lambda the image is stretched by
        (lambda / ref_wavelength) ** scaling_exponent.
    source : str or None, keyword-only
        File the image came from (recorded as ``PSF_FILE``).
    """

    kind: ClassVar[str] = "image"
    image: np.ndarray = field(repr=False)
    pixel_scale: float
    _: KW_ONLY
    ref_wavelength: float | None = None
    scaling_exponent: float | None = None
    source: str | None = None

    def __post_init__(self):
        image = np.array(self.image, dtype=np.float64)
        if image.ndim != 2 or min(image.shape) < 1:
            raise DataError(f"ImagePSF.image: shape {image.shape}; allowed: a 2D image")
        if not np.all(np.isfinite(image)):
            raise DataError("ImagePSF.image contains NaN or inf")
        total = image.sum()
        if not total > 0.0:
            raise DataError(f"ImagePSF.image sums to {total}; allowed: > 0")
        image /= total
        image.setflags(write=False)
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "pixel_scale", _positive("ImagePSF.pixel_scale", self.pixel_scale, "arcsec"))
        self._check_scaling()

    @classmethod
    def from_fits(
        cls,
        path,
        *,
        hdu: int | str | None = None,
        pixel_scale: float | None = None,
        ref_wavelength: float | None = None,
        scaling_exponent: float | None = None,
    ) -> "ImagePSF":
        """Read a PSF image from a FITS file.

        Parameters
        ----------
        path : str or path-like
            FITS file.
        hdu : int, str or None
            HDU to read; None = the first HDU holding a 2D image.
        pixel_scale : float or None
            Pixel size, arcsec; None = from the header: ``PIXSCALE`` or
            ``PIXELSCL`` (arcsec), else the CD matrix or CDELT (with PC) and
            CUNIT (deg if absent). Pixels must be square to 0.1%.
        ref_wavelength, scaling_exponent : float or None
            Wavelength scaling (see :class:`ImagePSF`).

        Raises
        ------
        DataError
            Unreadable file, no 2D image, or no pixel scale.
        """
        from astropy.io import fits

        path = str(Path(path))
        try:
            with fits.open(path) as hdul:
                if hdu is None:
                    chosen = next((h for h in hdul if h.data is not None and np.ndim(h.data) == 2), None)
                    if chosen is None:
                        raise DataError(f"{path}: no HDU holds a 2D image")
                else:
                    try:
                        chosen = hdul[hdu]
                    except (KeyError, IndexError):
                        raise DataError(f"{path}: no HDU {hdu!r}") from None
                    if chosen.data is None or np.ndim(chosen.data) != 2:
                        raise DataError(f"{path}: HDU {hdu!r} does not hold a 2D image")
                data = np.array(chosen.data, dtype=np.float64)
                header = chosen.header.copy()
        except OSError as exc:
            raise DataError(f"{path}: cannot read as FITS ({exc})") from None
        if pixel_scale is None:
            pixel_scale = _pixel_scale_from_header(header, path)
        return cls(data, pixel_scale, ref_wavelength=ref_wavelength,
                   scaling_exponent=scaling_exponent, source=path)

    def _fwhm_const(self):
        return self._fwhm_estimate

    @cached_property
    def _fwhm_estimate(self) -> float:
        """Equivalent FWHM 2 sqrt(A / pi), A = area above half the peak (bilinear sub-sampling).

        Exact for a circular profile; sqrt(major x minor) for an elliptical one.
        """
        from scipy.ndimage import map_coordinates

        ny, nx = self.image.shape
        m = int(max(1, min(8, math.sqrt(4e6 / (ny * nx)))))
        sy = (np.arange(ny * m) + 0.5) / m - 0.5
        sx = (np.arange(nx * m) + 0.5) / m - 0.5
        vals = map_coordinates(self.image, np.meshgrid(sy, sx, indexing="ij"), order=1, mode="nearest")
        area = np.count_nonzero(vals >= 0.5 * vals.max()) * (self.pixel_scale / m) ** 2
        return 2.0 * math.sqrt(area / math.pi)

    def _scaled(self, factor):
        return ImagePSF(self.image, self.pixel_scale * factor, source=self.source)

    def _half_width_const(self, pix):
        extent = 0.5 * max(self.image.shape) * self.pixel_scale
        return _half_width_from_radius(extent, pix, f"ImagePSF({self.image.shape}, {self.pixel_scale})")

    def _kernel_const(self, pix, sampling):
        h = self._half_width_const(pix)
        ny, nx = self.image.shape
        if sampling == "center":
            from scipy.ndimage import map_coordinates

            t = np.arange(-h, h + 1) * pix / self.pixel_scale  # image pixels from the centre
            coords = np.meshgrid(t + 0.5 * (ny - 1), t + 0.5 * (nx - 1), indexing="ij")
            kernel = map_coordinates(self.image, coords, order=1, mode="constant", cval=0.0)
            return kernel / kernel.sum()
        edges = (np.arange(-h, h + 2) - 0.5) * pix / self.pixel_scale  # in image pixels
        cum = np.zeros((ny + 1, nx + 1))
        cum[1:, 1:] = self.image.cumsum(axis=0).cumsum(axis=1)
        at_edges = _linear_weights(edges + 0.5 * ny, ny) @ cum @ _linear_weights(edges + 0.5 * nx, nx).T
        kernel = np.diff(np.diff(at_edges, axis=0), axis=1)
        return kernel / kernel.sum()

    @cached_property
    def _radial_cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted radii (arcsec) of 5x5 sub-pixels and the flux enclosed up to each."""
        ny, nx = self.image.shape
        m = 5
        yy = ((np.arange(ny * m) + 0.5) / m - 0.5 * ny) * self.pixel_scale
        xx = ((np.arange(nx * m) + 0.5) / m - 0.5 * nx) * self.pixel_scale
        rad = np.hypot(yy[:, None], xx[None, :]).ravel()
        flux = np.repeat(np.repeat(self.image, m, axis=0), m, axis=1).ravel() / m**2
        order = np.argsort(rad, kind="stable")
        return rad[order], np.cumsum(flux[order])

    def _enclosed_fraction_const(self, r):
        # Image taken as constant within each pixel, resolved into 5x5 sub-pixels:
        # accurate to about a fifth of a pixel in radius.
        rad, cum = self._radial_cumulative
        idx = np.searchsorted(rad, r, side="right")
        return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)

    def _header_items(self):
        items = {"PSF_PIXS": self.pixel_scale}
        if self.source is not None:
            items["PSF_FILE"] = self.source
        return items


# ---------------------------------------------------------------------------
# construction from headers and configurations
# ---------------------------------------------------------------------------

def _get(header: Mapping[str, Any], key: str):
    if key not in header:
        kind = header.get("PSF_KIND")
        raise DataError(f"PSF header: keyword {key} missing (needed for PSF_KIND = {kind!r})")
    return header[key]


def psf_from_header(header: Mapping[str, Any], *, image: np.ndarray | None = None) -> PSF:
    """Rebuild a PSF from the keywords written by :meth:`PSF.to_header`.

    Parameters
    ----------
    header : mapping
        ``dict`` or `astropy.io.fits.Header` with ``PSF_KIND`` and the
        keywords of that kind.
    image : numpy.ndarray or None
        The image of an ``image`` PSF; None = read ``PSF_FILE``.

    Raises
    ------
    DataError
        Unknown kind or missing keywords.
    """
    kind = _get(header, "PSF_KIND")
    scaling = {}
    if "PSF_WREF" in header or "PSF_WEXP" in header:
        scaling = {"ref_wavelength": _get(header, "PSF_WREF"), "scaling_exponent": _get(header, "PSF_WEXP")}
    if kind == "gaussian":
        return GaussianPSF(_get(header, "PSF_FWHM"), **scaling)
    if kind == "elliptical_gaussian":
        return EllipticalGaussianPSF(_get(header, "PSF_FWHM"), _get(header, "PSF_FMIN"),
                                     _get(header, "PSF_PA"), **scaling)
    if kind == "moffat":
        return MoffatPSF(_get(header, "PSF_FWHM"), _get(header, "PSF_BETA"), **scaling)
    if kind == "image":
        if image is not None:
            return ImagePSF(image, _get(header, "PSF_PIXS"), source=header.get("PSF_FILE"), **scaling)
        if "PSF_FILE" not in header:
            raise DataError("PSF header: PSF_KIND = 'image' without PSF_FILE; pass image=")
        return ImagePSF.from_fits(header["PSF_FILE"], pixel_scale=header.get("PSF_PIXS"), **scaling)
    raise DataError(f"PSF header: PSF_KIND = {kind!r}; allowed: {', '.join(PSF_KINDS)}")


def psf_from_config(cfg) -> PSF:
    """Build the PSF a configuration describes.

    Parameters
    ----------
    cfg : object
        Anything with the attributes of ``mockzgrad.config.PSFConfig``:
        ``kind``, ``fwhm`` (major axis for the elliptical Gaussian),
        ``fwhm_minor``, ``pa``, ``beta``, ``file``, ``ref_wavelength``,
        ``scaling_exponent``.
    """
    scaling = {"ref_wavelength": cfg.ref_wavelength, "scaling_exponent": cfg.scaling_exponent}
    if cfg.kind == "gaussian":
        return GaussianPSF(cfg.fwhm, **scaling)
    if cfg.kind == "elliptical_gaussian":
        return EllipticalGaussianPSF(cfg.fwhm, cfg.fwhm_minor, cfg.pa, **scaling)
    if cfg.kind == "moffat":
        return MoffatPSF(cfg.fwhm, cfg.beta, **scaling)
    if cfg.kind == "image":
        return ImagePSF.from_fits(cfg.file, **scaling)
    raise ConfigError(f"psf.kind = {cfg.kind!r}; allowed: {', '.join(PSF_KINDS)}")


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------

def _check_wavelengths(wavelengths, n_chan: int) -> np.ndarray:
    wave = np.asarray(wavelengths, dtype=np.float64)
    if wave.shape != (n_chan,):
        raise ConfigError(f"wavelengths: shape {wave.shape}; expected ({n_chan},), one per channel")
    if not np.all(np.isfinite(wave) & (wave > 0.0)):
        raise ConfigError("wavelengths: allowed finite and > 0 Angstrom")
    return wave


def _channel_groups(psf: PSF, wavelengths, n_chan: int) -> list[tuple[float | None, np.ndarray]]:
    """Channels sharing one kernel: FWHM equal within :data:`FWHM_GROUP_TOLERANCE`.

    Returns ``(wavelength, channel_indices)`` pairs; the wavelength is that of
    the channel whose FWHM is closest to the middle of the group's range (None
    for a constant PSF).
    """
    if wavelengths is not None:
        wavelengths = _check_wavelengths(wavelengths, n_chan)
    if not psf.varies:
        return [(None, np.arange(n_chan))]
    if wavelengths is None:
        raise ConfigError(
            f"wavelengths = None but the PSF varies with wavelength ({psf!r}); "
            "pass the observed wavelength of each channel, Angstrom"
        )
    fwhm = psf.fwhm_at(wavelengths)
    order = np.argsort(fwhm, kind="stable")
    sorted_fwhm = fwhm[order]
    groups = []
    start = 0
    while start < n_chan:
        stop = int(np.searchsorted(sorted_fwhm, sorted_fwhm[start] * (1.0 + FWHM_GROUP_TOLERANCE),
                                   side="right"))
        members = order[start:stop]
        mid = 0.5 * (sorted_fwhm[start] + sorted_fwhm[stop - 1])
        rep = members[np.argmin(np.abs(fwhm[members] - mid))]
        groups.append((float(wavelengths[rep]), np.sort(members)))
        start = stop
    return groups


def _wrap_kernel(kernel: np.ndarray, ly: int, lx: int) -> np.ndarray:
    """Place a centred kernel on an (ly, lx) periodic grid with its centre at [0, 0]."""
    h = kernel.shape[0] // 2
    offs = np.arange(-h, h + 1)
    out = np.zeros((ly, lx))
    np.add.at(out, ((offs % ly)[:, None], (offs % lx)[None, :]), kernel)
    return out


def pad_width(psf: PSF, pixel_scale: float, wavelengths=None) -> int:
    """Largest kernel half-width over ``wavelengths``, pixels.

    This is the zero-padding :func:`convolve_cube` adds on each axis, and the
    margin a renderer needs around the field to catch flux scattered in from
    outside.

    Parameters
    ----------
    psf : PSF
    pixel_scale : float
        Pixel size, arcsec; > 0.
    wavelengths : array_like or None
        Observed channel wavelengths, Angstrom; None = the reference
        wavelength only.
    """
    if wavelengths is None or not psf.varies:
        return psf.half_width(pixel_scale)
    wave = np.asarray(wavelengths, dtype=np.float64).ravel()
    if wave.size == 0 or not np.all(np.isfinite(wave) & (wave > 0.0)):
        raise ConfigError("wavelengths: allowed a non-empty array, finite and > 0 Angstrom")
    # FWHM is a power of lambda, hence largest at one end of the range.
    return max(psf.half_width(pixel_scale, wavelength=float(w)) for w in (wave.min(), wave.max()))


def _as_cube(cube) -> tuple[np.ndarray, bool]:
    data = np.asarray(cube, dtype=np.float64)
    squeeze = data.ndim == 2
    if squeeze:
        data = data[None]
    if data.ndim != 3 or min(data.shape) < 1:
        raise ConfigError(f"cube: shape {np.shape(cube)}; expected (n_chan, ny, nx)")
    if not np.all(np.isfinite(data)):
        raise DataError("cube contains NaN or inf; fill or mask them before convolving")
    return data, squeeze


def _fft_convolve(data: np.ndarray, kernels: list[np.ndarray], members: list[np.ndarray],
                  pad: bool, workers: int | None, single: bool = False) -> np.ndarray:
    """Convolve channels ``members[g]`` of ``data`` with ``kernels[g]``: one FFT of the cube."""
    _, ny, nx = data.shape
    h = max(k.shape[0] // 2 for k in kernels)
    if pad:  # zero margin >= h after the field: the circular wrap only ever meets zeros
        ly = sfft.next_fast_len(ny + h, real=True)
        lx = sfft.next_fast_len(nx + h, real=True)
    else:
        ly, lx = ny, nx
    dtype = np.float32 if single else np.float64
    spec = sfft.rfft2(data.astype(dtype, copy=False), s=(ly, lx), axes=(-2, -1), workers=workers)
    for kernel, chans in zip(kernels, members):
        kf = sfft.rfft2(_wrap_kernel(kernel, ly, lx).astype(dtype), workers=workers)
        if len(kernels) == 1:
            spec *= kf
        else:
            spec[chans] *= kf
    out = sfft.irfft2(spec, s=(ly, lx), axes=(-2, -1), workers=workers, overwrite_x=True)
    return np.ascontiguousarray(out[:, :ny, :nx], dtype=np.float64)


def _check_kernel(kernel) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 != 1:
        raise ConfigError(f"kernel: shape {k.shape}; expected a square, odd-sized 2D array")
    if not np.all(np.isfinite(k)):
        raise ConfigError("kernel contains NaN or inf")
    return k


def convolve_with_kernel(cube, kernel, *, pad: bool = True, workers: int | None = None,
                         single: bool = False) -> np.ndarray:
    """Convolve every channel of a cube with one given kernel (FFT, float64).

    Parameters
    ----------
    cube : array_like
        Cube with axes ``(n_chan, ny, nx)`` (a 2D image is one channel); finite.
    kernel : array_like
        Square, odd-sized kernel centred on its central pixel (e.g. from
        :meth:`PSF.kernel`); used as given (not renormalised).
    pad, workers
        As in :func:`convolve_cube`.
    single : bool
        Transform in float32 (about twice as fast; relative error ~1e-7 of
        the peak, far below any flux tolerance). The result is float64.

    Returns
    -------
    numpy.ndarray
        Convolved cube, same shape as ``cube``.
    """
    data, squeeze = _as_cube(cube)
    out = _fft_convolve(data, [_check_kernel(kernel)], [np.arange(data.shape[0])], pad, workers,
                        single=single)
    return out[0] if squeeze else out


def convolve_cube(
    cube,
    psf: PSF,
    pixel_scale: float,
    *,
    wavelengths=None,
    pad: bool = True,
    workers: int | None = None,
    sampling: str = "integrate",
) -> np.ndarray:
    """Convolve every channel of a cube with the PSF (FFT, float64).

    One real FFT of the whole (zero-padded) cube, one FFT per distinct kernel,
    one inverse FFT. Channels whose FWHM agree within
    :data:`FWHM_GROUP_TOLERANCE` share one kernel, computed at the wavelength
    of the group's middle FWHM.

    Parameters
    ----------
    cube : array_like
        Cube with axes ``(n_chan, ny, nx)`` (a 2D image is taken as one
        channel), flux per pixel; finite.
    psf : PSF
        The PSF model.
    pixel_scale : float
        Spatial pixel size of ``cube``, arcsec; > 0.
    wavelengths : array_like or None
        Observed wavelength of each channel, Angstrom, shape ``(n_chan,)``.
        Required when the PSF varies with wavelength; ignored otherwise.
    pad : bool
        True (default): zero-pad by the kernel half-width, so flux scattered
        beyond the field edge is lost instead of wrapping around; flux that
        stays inside the field is conserved to rounding. False: periodic
        boundaries (the field is treated as a torus).
    workers : int or None
        Threads for :mod:`scipy.fft` (None = 1; -1 = all cores).
    sampling : {"integrate", "center"}
        Kernel sampling, see :meth:`PSF.kernel`; use ``"center"`` for a cube
        whose pixels already hold pixel-integrated flux.

    Returns
    -------
    numpy.ndarray
        Convolved cube, float64, same shape as ``cube``.
    """
    if not isinstance(psf, PSF):
        raise ConfigError(f"psf = {psf!r}: expected a mockzgrad.observe.psf.PSF instance")
    data, squeeze = _as_cube(cube)
    groups = _channel_groups(psf, wavelengths, data.shape[0])
    kernels = [psf.kernel(pixel_scale, wavelength=w, sampling=sampling) for w, _ in groups]
    out = _fft_convolve(data, kernels, [chans for _, chans in groups], pad, workers)
    return out[0] if squeeze else out
