"""The PSF base class: wavelength scaling, kernels, enclosed flux, header round trip.

Conventions are stated in :mod:`mockzgrad.observation.psf`. Each model
(:mod:`.analytic`, :mod:`.image`) implements the ``_..._const`` methods for
the PSF at its reference wavelength, and ``_from_header`` /
``_from_config``; defining a model class with a ``kind`` registers it, so
:func:`psf_from_header` and :func:`psf_from_config` know every kind.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np
from scipy.optimize import brentq

from ...errors import ConfigError, DataError
from ...validate import finite, integer, number, positive

__all__ = [
    "PSF",
    "psf_from_header",
    "psf_from_config",
    "PSF_KINDS",
    "SAMPLINGS",
    "FWHM_PER_SIGMA",
    "KERNEL_ENCLOSED_FRACTION",
    "MAX_KERNEL_SIZE",
]

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Minimum fraction of the PSF flux a kernel holds before renormalisation.
KERNEL_ENCLOSED_FRACTION = 0.999

#: Largest kernel side, pixels; a larger one is refused (choose a coarser pixel).
MAX_KERNEL_SIZE = 4097
#: Kernel sampling modes of :meth:`PSF.kernel`.
SAMPLINGS = ("integrate", "center")

#: Values of the ``PSF_KIND`` header keyword.
PSF_KINDS = ("gaussian", "elliptical_gaussian", "moffat", "image")



# ---------------------------------------------------------------------------
# helpers shared by the models
# ---------------------------------------------------------------------------

def _check_fraction(fraction) -> float:
    return number("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)


def _check_oversample(oversample) -> int:
    return integer("oversample", oversample, 1)


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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _MODELS[cls.kind] = cls

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
                self, "ref_wavelength", positive(f"{name}.ref_wavelength", self.ref_wavelength, "Angstrom")
            )
            object.__setattr__(
                self, "scaling_exponent", finite(f"{name}.scaling_exponent", self.scaling_exponent)
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
        return float(self._scale_factors(finite("wavelength", wavelength, "Angstrom")))

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
        pix = positive("pixel_scale", pixel_scale, "arcsec") / _check_oversample(oversample)
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling = {sampling!r}; allowed: {', '.join(SAMPLINGS)}")
        return self.at_wavelength(wavelength)._kernel_const(pix, sampling)

    def half_width(self, pixel_scale: float, *, wavelength: float | None = None, oversample: int = 1) -> int:
        """Half-width h of :meth:`kernel` (which has side 2h+1), pixels; same parameters."""
        pix = positive("pixel_scale", pixel_scale, "arcsec") / _check_oversample(oversample)
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

    # -- implemented by each model ------------------------------------------------------
    @classmethod
    @abstractmethod
    def _from_header(cls, header: Mapping[str, Any], scaling: dict, image: np.ndarray | None) -> "PSF":
        """The model from its header keywords; ``scaling`` holds the wavelength-scaling arguments."""

    @classmethod
    @abstractmethod
    def _from_config(cls, cfg, scaling: dict) -> "PSF":
        """The model from a ``PSFConfig``; ``scaling`` holds the wavelength-scaling arguments."""

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
# construction from headers and configurations
# ---------------------------------------------------------------------------

#: PSF_KIND -> model class; each model registers itself when its class is defined.
_MODELS: dict[str, type[PSF]] = {}


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
    model = _MODELS.get(kind)
    if model is None:
        raise DataError(f"PSF header: PSF_KIND = {kind!r}; allowed: {', '.join(PSF_KINDS)}")
    return model._from_header(header, scaling, image)


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
    model = _MODELS.get(cfg.kind)
    if model is None:
        raise ConfigError(f"psf.kind = {cfg.kind!r}; allowed: {', '.join(PSF_KINDS)}")
    return model._from_config(cfg, scaling)

