"""Galaxy geometry as an observer measures it: line map, centre, axis ratio, PA.

Conventions (the same as :mod:`mockzgrad.products.cube` and :mod:`mockzgrad.observation.psf`):

- Maps are indexed ``[y, x]`` (row, column) and cubes ``[chan, y, x]``, axes
  ``(n_chan, ny, nx)``, displayed with ``origin="lower"``.
- Sky offsets ``x`` (towards east) and ``y`` (towards north) in arcsec from
  the field centre, as :meth:`mockzgrad.products.cube.MockCube.offsets` gives them:
  ``x = -(column - (nx - 1) / 2) * pixel_scale`` (east is to the left) and
  ``y = (row - (ny - 1) / 2) * pixel_scale``.
- Position angle ``pa`` of the major axis, deg east of north, in [0, 180):
  the major axis points along ``(x, y) = (sin pa, cos pa)``.
- Disk coordinates: ``x_maj = dx sin(pa) + dy cos(pa)`` along the major axis
  and ``y_min = -dx cos(pa) + dy sin(pa)`` along the minor axis, with
  ``(dx, dy)`` the offsets from the centre. The elliptical radius is
  ``hypot(x_maj, y_min / q)`` with ``q`` the observed axis ratio b/a; for a
  thin disk (q0 = 0) ``q = cos i`` and this is the exact deprojected radius.
  For a thick disk of intrinsic axis ratio q0 (Hubble 1926)
  ``q^2 = cos^2 i + q0^2 sin^2 i``.

Recovery sees only data products: nothing here reads a mock's truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..errors import ConfigError, DataError, RecoveryError
from ..observation.psf import FWHM_PER_SIGMA
from ..physics.lines import C_KMS
from ..validate import finite, number, positive

__all__ = [
    "Geometry",
    "GEOMETRY_SOURCES",
    "line_map",
    "sky_offsets",
    "fit_geometry",
    "inclination_from_axis_ratio",
    "axis_ratio_from_inclination",
    "elliptical_radius",
    "deprojected_radius",
    "disk_azimuth",
]

#: Values of :attr:`Geometry.source`.
GEOMETRY_SOURCES = ("fit", "given")

_NAN = float("nan")


# ---------------------------------------------------------------------------
# geometry record
# ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Geometry:
    """Centre, axis ratio, position angle and inclination of a disk.

    Attributes
    ----------
    x_offset, y_offset : float
        Centre, arcsec east / north of the field centre.
    axis_ratio : float
        Observed axis ratio b/a, corrected for the PSF when fitted with a
        known PSF FWHM; (0, 1].
    pa : float
        Major-axis position angle, deg east of north; [0, 180).
    inclination : float
        Inclination from ``axis_ratio`` and ``q0``
        (:func:`inclination_from_axis_ratio`), deg; [0, 90]. 0 = face-on.
    q0 : float
        Intrinsic axis ratio (thickness) of the disk assumed for the
        inclination; [0, 1).
    source : {"fit", "given"}
        Fitted to a line map (:func:`fit_geometry`) or given by the user
        (:meth:`given`).
    x_offset_err, y_offset_err, axis_ratio_err, pa_err, inclination_err : float
        1-sigma errors in the units above (NaN when given, or when the fit
        cannot constrain the quantity, e.g. PA of a round image).
    sigma_major, sigma_minor : float
        Gaussian sigmas of the fitted ellipse along the major and minor axes,
        arcsec, with the PSF removed in quadrature when its FWHM was given
        (NaN when given).
    """

    x_offset: float
    y_offset: float
    axis_ratio: float
    pa: float
    inclination: float
    q0: float = 0.0
    source: str = "given"
    x_offset_err: float = _NAN
    y_offset_err: float = _NAN
    axis_ratio_err: float = _NAN
    pa_err: float = _NAN
    inclination_err: float = _NAN
    sigma_major: float = _NAN
    sigma_minor: float = _NAN

    def __post_init__(self):
        for name in ("x_offset", "y_offset"):
            finite(f"geometry.{name}", getattr(self, name), "arcsec")
        number("geometry.axis_ratio", self.axis_ratio, 0.0, 1.0, lo_open=True)
        pa = finite("geometry.pa", self.pa, "deg")
        if not 0.0 <= pa < 180.0:
            raise ConfigError(f"geometry.pa = {pa} deg; allowed [0, 180) deg (use Geometry.given to normalise)")
        number("geometry.inclination", self.inclination, 0.0, 90.0, unit="deg")
        number("geometry.q0", self.q0, 0.0, 1.0, hi_open=True)
        if self.source not in GEOMETRY_SOURCES:
            raise ConfigError(f"geometry.source = {self.source!r}; allowed: {', '.join(GEOMETRY_SOURCES)}")

    @classmethod
    def given(cls, *, pa: float, axis_ratio: float | None = None, inclination: float | None = None,
              x_offset: float = 0.0, y_offset: float = 0.0, q0: float = 0.0) -> "Geometry":
        """Geometry given by the user (``source = "given"``, errors NaN).

        Give exactly one of ``axis_ratio`` and ``inclination``; the other
        follows from ``q0``.

        Parameters
        ----------
        pa : float
            Major-axis position angle, deg east of north; any finite value,
            reduced modulo 180.
        axis_ratio : float or None
            Observed b/a; (0, 1].
        inclination : float or None
            Inclination, deg; [0, 90].
        x_offset, y_offset : float
            Centre, arcsec east / north of the field centre.
        q0 : float
            Intrinsic axis ratio of the disk; [0, 1).
        """
        if (axis_ratio is None) == (inclination is None):
            raise ConfigError(f"Geometry.given: axis_ratio = {axis_ratio!r}, inclination = {inclination!r}; "
                              "give exactly one of them")
        pa = finite("geometry.pa", pa, "deg") % 180.0
        if axis_ratio is not None:
            inclination = inclination_from_axis_ratio(axis_ratio, q0)
        else:
            axis_ratio = axis_ratio_from_inclination(inclination, q0)
        return cls(x_offset=float(x_offset), y_offset=float(y_offset), axis_ratio=float(axis_ratio),
                   pa=float(pa), inclination=float(inclination), q0=float(q0), source="given")

    def to_dict(self) -> dict:
        """JSON-serialisable values (NaN stays a float NaN)."""
        return {k: (v if isinstance(v, str) else float(v)) for k, v in self.__dict__.items()}


# ---------------------------------------------------------------------------
# inclination
# ---------------------------------------------------------------------------

def inclination_from_axis_ratio(q, q0: float = 0.0):
    """Inclination of a disk from its observed axis ratio (Hubble 1926).

    ``cos^2 i = (q^2 - q0^2) / (1 - q0^2)``, clipped to [0, 1], so that
    ``i`` lies in [0, 90] deg; an axis ratio below ``q0`` gives 90 deg.

    Parameters
    ----------
    q : float or array_like
        Observed axis ratio b/a; (0, 1].
    q0 : float
        Intrinsic axis ratio of the disk (0 = infinitely thin); [0, 1).

    Returns
    -------
    float or numpy.ndarray
        Inclination, deg; [0, 90]. 0 = face-on.

    Raises
    ------
    ConfigError
        ``q`` outside (0, 1] (or NaN), or ``q0`` outside [0, 1).
    """
    q0 = _check_q0(q0)
    qa = np.asarray(q, dtype=np.float64)
    if not np.all((qa > 0.0) & (qa <= 1.0)):
        raise ConfigError(f"axis_ratio = {q!r}; allowed (0, 1] (b/a of the ellipse)")
    cos2 = np.clip((qa * qa - q0 * q0) / (1.0 - q0 * q0), 0.0, 1.0)
    incl = np.degrees(np.arccos(np.sqrt(cos2)))
    return float(incl) if incl.ndim == 0 else incl


def axis_ratio_from_inclination(inclination, q0: float = 0.0):
    """Observed axis ratio of a disk: ``q = sqrt(cos^2 i + q0^2 sin^2 i)``.

    Parameters
    ----------
    inclination : float or array_like
        Inclination, deg; [0, 90].
    q0 : float
        Intrinsic axis ratio of the disk; [0, 1).

    Returns
    -------
    float or numpy.ndarray
        b/a; [q0, 1] (at least 1e-12 so that a thin edge-on disk stays a
        valid ``Geometry``).
    """
    q0 = _check_q0(q0)
    ia = np.asarray(inclination, dtype=np.float64)
    if not np.all((ia >= 0.0) & (ia <= 90.0)):
        raise ConfigError(f"inclination = {inclination!r} deg; allowed [0, 90] deg")
    t = np.radians(ia)
    q = np.maximum(np.sqrt(np.cos(t) ** 2 + (q0 * np.sin(t)) ** 2), 1e-12)
    return float(q) if q.ndim == 0 else q


def _check_q0(q0) -> float:
    return number("q0", q0, 0.0, 1.0, hi_open=True)


# ---------------------------------------------------------------------------
# radius and azimuth
# ---------------------------------------------------------------------------

def _disk_axes(x, y, geometry: Geometry):
    if not isinstance(geometry, Geometry):
        raise ConfigError(f"geometry = {geometry!r}: expected a mockzgrad.recovery.geometry.Geometry")
    t = math.radians(geometry.pa)
    dx = np.asarray(x, dtype=np.float64) - geometry.x_offset
    dy = np.asarray(y, dtype=np.float64) - geometry.y_offset
    x_maj = dx * math.sin(t) + dy * math.cos(t)
    y_min = -dx * math.cos(t) + dy * math.sin(t)
    return x_maj, y_min


def elliptical_radius(x, y, geometry: Geometry) -> np.ndarray:
    """Elliptical radius (semi-major axis of the ellipse through each point), arcsec.

    ``hypot(x_maj, y_min / q)`` with ``q = geometry.axis_ratio`` (see the
    module notes).

    Parameters
    ----------
    x, y : array_like
        Sky offsets, arcsec east / north of the field centre; broadcast
        against each other (pass ``x[None, :]``, ``y[:, None]`` for a map).
    geometry : Geometry
    """
    x_maj, y_min = _disk_axes(x, y, geometry)
    return np.hypot(x_maj, y_min / geometry.axis_ratio)


def deprojected_radius(x, y, geometry: Geometry, kpc_per_arcsec: float) -> np.ndarray:
    """Deprojected galactocentric radius, physical kpc.

    The elliptical radius (:func:`elliptical_radius`) times the angular
    scale; with ``q = cos i`` (thin disk) this is the exact radius in the
    disk plane. Implemented independently of :mod:`mockzgrad.source.galaxy` (which
    recovery may not import) with the same convention.

    Parameters
    ----------
    x, y : array_like
        Sky offsets, arcsec east / north of the field centre; broadcastable.
    geometry : Geometry
    kpc_per_arcsec : float
        Proper kpc per arcsec at the galaxy's redshift
        (:func:`mockzgrad.physics.cosmology.kpc_per_arcsec`); > 0.
    """
    scale = positive("kpc_per_arcsec", kpc_per_arcsec, "kpc/arcsec")
    return elliptical_radius(x, y, geometry) * scale


def disk_azimuth(x, y, geometry: Geometry, *, plane: str = "disk") -> np.ndarray:
    """Azimuth from the major axis, folded into [0, 90] deg.

    ``atan2(|y_min| / q, |x_maj|)`` in the disk plane (default) or
    ``atan2(|y_min|, |x_maj|)`` on the sky; folding maps the four quadrants
    onto one, so 0 = along the major axis and 90 = along the minor axis.
    The centre itself gets 0.

    Parameters
    ----------
    x, y : array_like
        Sky offsets, arcsec east / north of the field centre; broadcastable.
    geometry : Geometry
    plane : {"disk", "sky"}
        Deprojected azimuth (default) or the position angle on the sky
        relative to the major axis.
    """
    if plane not in ("disk", "sky"):
        raise ConfigError(f"plane = {plane!r}; allowed: 'disk', 'sky'")
    x_maj, y_min = _disk_axes(x, y, geometry)
    if plane == "disk":
        y_min = y_min / geometry.axis_ratio
    return np.degrees(np.arctan2(np.abs(y_min), np.abs(x_maj)))


# ---------------------------------------------------------------------------
# line map
# ---------------------------------------------------------------------------

def sky_offsets(ny: int, nx: int, pixel_scale: float):
    """Spaxel-centre offsets (x east, y north), arcsec, 1-D per column / row.

    The convention of :meth:`mockzgrad.products.cube.MockCube.offsets`:
    ``x = -(column - (nx - 1) / 2) * pixel_scale``,
    ``y = (row - (ny - 1) / 2) * pixel_scale``.

    Returns
    -------
    x : numpy.ndarray, shape (nx,)
    y : numpy.ndarray, shape (ny,)
    """
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    x = -(np.arange(nx) - 0.5 * (nx - 1)) * ps
    y = (np.arange(ny) - 0.5 * (ny - 1)) * ps
    return x, y


def line_map(cube, line_wave_obs: float, *, half_width_kms: float):
    """Line flux map: the sum of the channels around a line, with its error.

    A channel is used when its centre lies within ``+-half_width_kms`` of the
    line, ``|lambda_c / line_wave_obs - 1| c <= half_width_kms``. The map is
    not continuum-subtracted. Non-finite data or variance values are left
    out of the sums; a spaxel with none left is NaN.

    Parameters
    ----------
    cube : MockCube or object
        Anything with ``data`` and ``variance`` (axes ``(n_chan, ny, nx)``,
        flux per spaxel and channel and its variance) and ``edges_lo`` /
        ``edges_hi`` (channel edges, observed Angstrom).
    line_wave_obs : float
        Observed wavelength of the line, Angstrom; > 0.
    half_width_kms : float
        Half-width of the summed window, km/s; > 0.

    Returns
    -------
    flux : numpy.ndarray, shape (ny, nx)
        Line flux per spaxel, in the unit of ``cube.data`` times channels
        (erg/s/cm^2 for a MockCube).
    err : numpy.ndarray, shape (ny, nx)
        1-sigma error, sqrt of the summed variance, same unit.

    Raises
    ------
    DataError
        Shapes disagree, or no channel lies within the window.
    """
    data = np.asarray(cube.data, dtype=np.float64)
    var = np.asarray(cube.variance, dtype=np.float64)
    lo = np.asarray(cube.edges_lo, dtype=np.float64)
    hi = np.asarray(cube.edges_hi, dtype=np.float64)
    if data.ndim != 3 or var.shape != data.shape or lo.shape != (data.shape[0],) or hi.shape != lo.shape:
        raise DataError(f"cube: data {data.shape}, variance {var.shape}, edges {lo.shape}/{hi.shape}; "
                        "expected (n_chan, ny, nx) twice and (n_chan,) edges")
    lam = positive("line_wave_obs", line_wave_obs, "Angstrom")
    hw = positive("half_width_kms", half_width_kms, "km/s")
    centres = 0.5 * (lo + hi)
    sel = np.abs(centres / lam - 1.0) * C_KMS <= hw
    if not sel.any():
        raise DataError(f"no channel within +-{hw:g} km/s of {lam:.2f} Angstrom "
                        f"(cube covers {lo.min():.2f}-{hi.max():.2f} Angstrom)")
    d, v = data[sel], var[sel]
    ok = np.isfinite(d) & np.isfinite(v)
    flux = np.where(ok, d, 0.0).sum(axis=0)
    err = np.sqrt(np.where(ok, v, 0.0).sum(axis=0))
    none = ~ok.any(axis=0)
    flux[none] = np.nan
    err[none] = np.nan
    return flux, err


# ---------------------------------------------------------------------------
# 2D Gaussian fit
# ---------------------------------------------------------------------------

#: Gauss-Legendre points per axis used to integrate the model over a pixel.
_N_SUB = 3


def _moments(xx, yy, w):
    """Centroid and second moments of positive weights; returns x0, y0, sig_a, sig_b, theta."""
    wsum = w.sum()
    x0 = float((w * xx).sum() / wsum)
    y0 = float((w * yy).sum() / wsum)
    dx, dy = xx - x0, yy - y0
    mxx = float((w * dx * dx).sum() / wsum)
    myy = float((w * dy * dy).sum() / wsum)
    mxy = float((w * dx * dy).sum() / wsum)
    vals, vecs = np.linalg.eigh(np.array([[mxx, mxy], [mxy, myy]]))
    ux, uy = vecs[:, 1]  # major axis (largest eigenvalue)
    theta = math.atan2(ux, uy)  # east of north
    return x0, y0, math.sqrt(max(vals[1], 0.0)), math.sqrt(max(vals[0], 0.0)), theta


def fit_geometry(flux_map, err_map, pixel_scale: float, *, psf_fwhm: float | None = None,
                 q0: float = 0.0, mask=None) -> Geometry:
    """Centre, axis ratio and PA from a 2D elliptical Gaussian fit to a line map.

    The model ``A exp(-(x_maj^2 / sigma_a^2 + y_min^2 / sigma_b^2) / 2)``
    (see the module notes for ``x_maj``, ``y_min``), averaged over each
    pixel with 3x3 Gauss-Legendre points, is fitted by weighted least
    squares (:func:`scipy.optimize.least_squares`, residuals
    ``(flux - model) / err``) starting from the image moments of the pixels
    with positive flux and S/N >= 2 (all positive pixels if fewer than 5).

    PSF correction: when ``psf_fwhm`` is given, the PSF's
    ``sigma_psf^2 = (psf_fwhm / 2.3548)^2`` is subtracted from both fitted
    ``sigma^2`` (exact for a Gaussian source and a Gaussian PSF, an
    approximation otherwise), and ``axis_ratio`` is that of the corrected
    sigmas. Without ``psf_fwhm`` the axis ratio is that of the observed
    (PSF-smeared, hence rounder) image.

    Errors: the covariance ``(J^T J)^-1`` of the fit, multiplied by the
    reduced chi^2 when that exceeds 1, propagated to ``axis_ratio`` and
    ``inclination`` to first order.

    Parameters
    ----------
    flux_map : array_like, shape (ny, nx)
        Line flux per spaxel (e.g. from :func:`line_map`); NaN = unused.
    err_map : array_like, shape (ny, nx)
        1-sigma error of ``flux_map``; pixels with a non-finite or
        non-positive error are unused.
    pixel_scale : float
        Spaxel size, arcsec; > 0. Offsets follow :func:`sky_offsets`.
    psf_fwhm : float or None
        FWHM of the (circular Gaussian) PSF, arcsec; > 0. For an elliptical
        PSF pass the geometric mean of its FWHMs (approximate).
    q0 : float
        Intrinsic disk axis ratio for the inclination; [0, 1).
    mask : array_like of bool or None
        True = pixel used (in addition to the finiteness cuts).

    Returns
    -------
    Geometry
        ``source = "fit"``.

    Raises
    ------
    DataError
        Shapes disagree or fewer than 7 usable pixels.
    RecoveryError
        The fit fails, or the fitted image is not larger than the PSF along
        its minor axis (no PSF-corrected axis ratio).
    """
    f = np.asarray(flux_map, dtype=np.float64)
    e = np.asarray(err_map, dtype=np.float64)
    if f.ndim != 2 or e.shape != f.shape:
        raise DataError(f"flux_map {f.shape} and err_map {e.shape}: expected the same (ny, nx) shape")
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    sig_psf = 0.0
    if psf_fwhm is not None:
        sig_psf = positive("psf_fwhm", psf_fwhm, "arcsec") / FWHM_PER_SIGMA
    q0 = _check_q0(q0)
    good = _usable_pixels(f, e, mask)
    ny, nx = f.shape
    x1, y1 = sky_offsets(ny, nx, ps)
    xx, yy = np.meshgrid(x1, y1)
    xg, yg, fg, eg = xx[good], yy[good], f[good], e[good]
    span = ps * max(nx, ny)
    bounds = ([-np.inf, x1.min() - span, y1.min() - span, 1e-3 * ps, 1e-3 * ps, -np.inf],
              [np.inf, x1.max() + span, y1.max() + span, 10.0 * span, 10.0 * span, np.inf])
    params, cov = _fit_elliptical_gaussian(xg, yg, fg, eg, ps, _initial_guess(xg, yg, fg, eg, ps), bounds)
    return _geometry_from_fit(params, cov, sig_psf, psf_fwhm, q0)


def _usable_pixels(f, e, mask) -> np.ndarray:
    """Pixels with a finite flux, a positive error and ``mask`` True; at least 7 of them."""
    good = np.isfinite(f) & np.isfinite(e) & (e > 0.0)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != f.shape:
            raise DataError(f"mask {m.shape}: expected {f.shape}")
        good &= m
    if good.sum() < 7:
        raise DataError(f"fit_geometry: {int(good.sum())} usable pixels (finite flux, error > 0); at least 7 needed")
    return good


def _initial_guess(xg, yg, fg, eg, ps) -> np.ndarray:
    """Start ``(amp, x0, y0, sigma_a, sigma_b, theta)`` from the moments of the bright, positive pixels."""
    w = np.where((fg > 0) & (fg >= 2.0 * eg), fg, 0.0)
    if np.count_nonzero(w) < 5:
        w = np.clip(fg, 0.0, None)
    if not w.sum() > 0:
        raise RecoveryError("fit_geometry: the line map has no positive flux")
    x0, y0, sa, sb, theta = _moments(xg, yg, w)
    sa = max(sa, 0.5 * ps)  # a point source still spans a pixel
    sb = max(sb, 0.5 * ps)
    amp = max(float(np.max(fg[w > 0])), float(w.sum()) * ps * ps / (2.0 * math.pi * sa * sb))
    return np.array([amp, x0, y0, sa, sb, theta])


def _pixel_subgrid(xg, yg, ps):
    """Gauss-Legendre points inside each pixel and their weights (summing to 1).

    The sub-grid is symmetric about each centre, so the sign of x is irrelevant.
    """
    t, wt = np.polynomial.legendre.leggauss(_N_SUB)
    sub = 0.5 * ps * t
    sx = np.repeat(xg[:, None], _N_SUB * _N_SUB, axis=1) + np.tile(sub, _N_SUB)[None, :]
    sy = np.repeat(yg[:, None], _N_SUB * _N_SUB, axis=1) + np.repeat(sub, _N_SUB)[None, :]
    sw = (0.25 * np.outer(wt, wt)).ravel()
    return sx, sy, sw


def _gaussian_residuals(p, sx, sy, sw, fg, eg):
    """``(flux - model) / err`` of the pixel-averaged elliptical Gaussian ``p``."""
    a, xc, yc, s_a, s_b, th = p
    dx, dy = sx - xc, sy - yc
    st, ct = math.sin(th), math.cos(th)
    xm = dx * st + dy * ct
    ym = -dx * ct + dy * st
    return (fg - a * (np.exp(-0.5 * ((xm / s_a) ** 2 + (ym / s_b) ** 2)) @ sw)) / eg


def _fit_elliptical_gaussian(xg, yg, fg, eg, ps, p0, bounds):
    """Least-squares fit; returns the parameters (axis a the major one) and their covariance.

    The covariance is ``(J^T J)^-1`` times the reduced chi^2 when that exceeds 1.
    """
    sx, sy, sw = _pixel_subgrid(xg, yg, ps)
    try:
        sol = least_squares(_gaussian_residuals, p0, bounds=bounds, x_scale="jac", method="trf",
                            xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000, args=(sx, sy, sw, fg, eg))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise RecoveryError(f"fit_geometry: 2D Gaussian fit failed ({exc})") from None
    if not sol.success or not np.all(np.isfinite(sol.x)):
        raise RecoveryError(f"fit_geometry: 2D Gaussian fit did not converge ({sol.message})")
    amp, xc, yc, sa, sb, theta = sol.x
    jac = sol.jac.copy()
    if sb > sa:  # make axis a the major one
        sa, sb = sb, sa
        theta += 0.5 * math.pi
        jac[:, [3, 4]] = jac[:, [4, 3]]
    dof = max(fg.size - 6, 1)
    red = float(2.0 * sol.cost / dof)
    norm = np.linalg.norm(jac, axis=0)
    norm[norm == 0] = 1.0
    js = jac / norm  # equilibrate the columns (amplitude and lengths differ by many decades)
    cov = np.linalg.pinv(js.T @ js) / np.outer(norm, norm) * max(red, 1.0)
    return (amp, xc, yc, sa, sb, theta), cov


def _geometry_from_fit(params, cov, sig_psf, psf_fwhm, q0) -> Geometry:
    """PSF-corrected axis ratio, inclination and PA, with first-order errors."""
    _, xc, yc, sa, sb, theta = params
    perr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    va, vb = sa * sa - sig_psf**2, sb * sb - sig_psf**2
    if not vb > 0.0:
        raise RecoveryError(
            f"fit_geometry: the fitted minor-axis sigma {sb:.4g} arcsec is not larger than the PSF sigma "
            f"{sig_psf:.4g} arcsec (psf_fwhm = {psf_fwhm} arcsec): the source is unresolved and its axis "
            "ratio cannot be measured; give the geometry instead")
    q = math.sqrt(vb / va)
    # first-order errors of q = sqrt(vb / va)
    g = np.array([-q * sa / va, sb / (q * va)])
    c2 = cov[np.ix_([3, 4], [3, 4])]
    q_err = float(math.sqrt(max(g @ c2 @ g, 0.0)))
    q_use = min(q, 1.0)
    incl = inclination_from_axis_ratio(q_use, q0)
    cos_i = math.cos(math.radians(incl))
    sin_i = math.sin(math.radians(incl))
    if q_use > q0 and sin_i > 0 and cos_i > 0:
        di_dq = q_use / ((1.0 - q0 * q0) * cos_i * sin_i)
        incl_err = math.degrees(di_dq * q_err)
    else:
        incl_err = _NAN
    pa = math.degrees(theta) % 180.0
    if pa >= 180.0:  # rounding of a tiny negative angle
        pa = 0.0
    pa_err = math.degrees(perr[5]) if q < 1.0 else _NAN
    return Geometry(x_offset=float(xc), y_offset=float(yc), axis_ratio=q_use, pa=pa, inclination=incl,
                    q0=q0, source="fit", x_offset_err=float(perr[1]), y_offset_err=float(perr[2]),
                    axis_ratio_err=q_err, pa_err=float(pa_err), inclination_err=float(incl_err),
                    sigma_major=math.sqrt(va), sigma_minor=math.sqrt(vb))
