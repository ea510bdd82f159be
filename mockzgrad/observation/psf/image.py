"""A PSF given as an image (e.g. from WebbPSF/STPSF), read from FITS."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...errors import DataError
from ...validate import positive
from .base import PSF, _get, _half_width_from_radius

__all__ = ["ImagePSF"]


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
            return positive(f"{path}: {key}", header[key], "arcsec")
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
        object.__setattr__(self, "pixel_scale", positive("ImagePSF.pixel_scale", self.pixel_scale, "arcsec"))
        self._check_scaling()

    @classmethod
    def _from_header(cls, header, scaling, image):
        if image is not None:
            return cls(image, _get(header, "PSF_PIXS"), source=header.get("PSF_FILE"), **scaling)
        if "PSF_FILE" not in header:
            raise DataError("PSF header: PSF_KIND = 'image' without PSF_FILE; pass image=")
        return cls.from_fits(header["PSF_FILE"], pixel_scale=header.get("PSF_PIXS"), **scaling)

    @classmethod
    def _from_config(cls, cfg, scaling):
        return cls.from_fits(cfg.file, **scaling)

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

