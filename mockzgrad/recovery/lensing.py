"""Source-plane recovery of a lensed galaxy, with the observer's lens model.

What lensed-galaxy surveys do (Wang et al. 2022, S4, Sect. 3.3: "each
pixel ... is ray-traced back" with the cluster model's deflection fields
and a 2D Gaussian is fitted in the source plane; Wang et al. 2017, S3,
Sect. 4.2: geometry from a 2D elliptical Gaussian fit in the source plane,
radius maps mapped back to the image plane, analysis on image-plane data):

1. every spaxel centre theta is ray-traced to beta = theta - alpha(theta)
   with the observer's lens model (:class:`~mockzgrad.products.lens.ObserverLens`,
   the LENS file; never the true lens);
2. centre, axis ratio and PA come from a 2D elliptical Gaussian fitted to
   the reference-line surface brightness at those source-plane positions
   (:func:`fit_source_geometry`; surface brightness is conserved by
   lensing, so the image-plane values are the source's);
3. every spaxel's radius is the source-plane elliptical radius of its
   ray-traced centre (:func:`source_radius_map`); bins stay image-plane
   spaxels, annuli are drawn on that radius map;
4. azimuthal sectors take each spaxel's azimuth at its ray-traced centre,
   from the source-plane major axis
   (:func:`mockzgrad.recovery.binning.azimuthal_sectors` with
   ``source_xy``); a sector is still a set of image-plane spaxels.

Not modelled: the PSF acts in the image plane, so the source-plane fit is
not corrected for it (the fitted axis ratio is that of the PSF-smeared,
ray-traced image).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DataError, RecoveryError
from .geometry import Geometry, elliptical_radius, inclination_from_axis_ratio

__all__ = ["source_coords", "fit_source_geometry", "source_radius_map", "check_lens_use"]


def check_lens_use(recipe, lens) -> None:
    """A lensed recipe needs a lens model and an unlensed one refuses it (one-line ConfigError)."""
    use = recipe.lensing is not None and recipe.lensing.use
    name = recipe.recipe.name
    if use and lens is None:
        raise ConfigError(f"recipe {name!r} has [lensing] use = true: give the observer's lens model "
                          "(recover(..., lens=...), --lens LENS.fits)")
    if lens is not None and not use:
        raise ConfigError(f"a lens model was given but recipe {name!r} is not lensed ([lensing] use = true); "
                          "use a lensed recipe (e.g. wang2022_lensed) or drop the lens")


def source_coords(lens, shape, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane offsets (arcsec, east, north) of every spaxel centre of a ``shape`` map.

    Parameters
    ----------
    lens : mockzgrad.products.lens.ObserverLens
        The observer's lens model on the data grid.
    shape : (int, int)
        (ny, nx) of the data.
    pixel_scale : float
        Spaxel size of the data, arcsec.

    Raises
    ------
    DataError
        The lens model's grid is not the data's.
    """
    lens.check_matches(shape, pixel_scale)
    return lens.ray_shoot()


def _moments(x, y, f):
    """Centre, major/minor sigma and PA (deg east of north) from flux-weighted second moments."""
    w = np.clip(f, 0.0, None)
    w = w / w.sum()
    xc, yc = float((w * x).sum()), float((w * y).sum())
    cxx = float((w * (x - xc) ** 2).sum())
    cyy = float((w * (y - yc) ** 2).sum())
    cxy = float((w * (x - xc) * (y - yc)).sum())
    vals, vecs = np.linalg.eigh([[cxx, cxy], [cxy, cyy]])
    major = vecs[:, 1]  # (east, north)
    pa = math.degrees(math.atan2(major[0], major[1])) % 180.0
    return xc, yc, math.sqrt(max(vals[1], 1e-12)), math.sqrt(max(vals[0], 1e-12)), pa


def _gauss(p, x, y):
    amp, xc, yc, sa, sb, pa = p
    t = math.radians(pa)
    dx, dy = x - xc, y - yc
    u = dx * math.sin(t) + dy * math.cos(t)
    v = -dx * math.cos(t) + dy * math.sin(t)
    return amp * np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))


def fit_source_geometry(flux_map, err_map, bx, by, *, q0: float = 0.0, mask=None) -> Geometry:
    """Centre, axis ratio and PA of a 2D elliptical Gaussian fitted in the source plane.

    The model ``A exp(-(u^2 / sigma_a^2 + v^2 / sigma_b^2) / 2)`` (u along
    the major axis at PA, v along the minor axis) is evaluated at each
    spaxel's ray-traced centre ``(bx, by)`` and fitted to the flux per
    spaxel (surface brightness, conserved by lensing) by weighted least
    squares, starting from the flux-weighted moments.

    Parameters
    ----------
    flux_map, err_map : array_like, shape (ny, nx)
        Reference-line flux and 1-sigma error per spaxel.
    bx, by : array_like, shape (ny, nx)
        Source-plane offsets of the spaxel centres, arcsec (east, north).
    q0 : float
        Intrinsic disk axis ratio for the inclination; [0, 1).
    mask : array_like of bool or None
        True = spaxel used (besides finite flux and positive error).

    Returns
    -------
    Geometry
        Source-plane centre (arcsec, east / north), axis ratio and PA,
        ``source = "fit"``.
    """
    from scipy.optimize import least_squares

    f, e = np.asarray(flux_map, float), np.asarray(err_map, float)
    good = np.isfinite(f) & np.isfinite(e) & (e > 0) & np.isfinite(bx) & np.isfinite(by)
    if mask is not None:
        good &= np.asarray(mask, dtype=bool)
    if good.sum() < 7:
        raise DataError(f"fit_source_geometry: {int(good.sum())} usable spaxels; at least 7 needed")
    x, y, fv, ev = np.asarray(bx)[good], np.asarray(by)[good], f[good], e[good]
    xc, yc, sa, sb, pa = _moments(x, y, fv)
    p0 = [float(fv.max()), xc, yc, sa, max(sb, 0.2 * sa), pa]
    res = least_squares(lambda p: (fv - _gauss(p, x, y)) / ev, p0, x_scale="jac", method="lm")
    if not res.success:
        raise RecoveryError(f"fit_source_geometry: the source-plane Gaussian fit failed ({res.message})")
    _, xc, yc, sa, sb, pa = (float(v) for v in res.x)
    sa, sb = abs(sa), abs(sb)
    if sb > sa:
        sa, sb, pa = sb, sa, pa + 90.0
    q = sb / sa
    return Geometry(x_offset=xc, y_offset=yc, axis_ratio=q, pa=pa % 180.0,
                    inclination=inclination_from_axis_ratio(q, q0), q0=q0, source="fit",
                    sigma_major=sa, sigma_minor=sb)


def source_radius_map(bx, by, geometry: Geometry) -> np.ndarray:
    """Source-plane elliptical radius (arcsec) of every spaxel's ray-traced centre (the ``radius_map`` of binning)."""
    return elliptical_radius(bx, by, geometry)
