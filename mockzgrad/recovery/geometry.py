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

from ..errors import ConfigError, DataError, RecoveryError
from ..observation.psf import FWHM_PER_SIGMA
from ..physics.lines import C_KMS
from ..validate import finite, number, positive
from . import gaussfit

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
        known PSF (its FWHM or 2x2 covariance); (0, 1].
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
        arcsec, with the PSF removed (in quadrature for a circular PSF, as
        a covariance matrix otherwise; see :func:`fit_geometry`) when it was
        given (NaN when given).
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
    k = np.flatnonzero(sel)
    if k[-1] - k[0] + 1 == k.size and data.flags.c_contiguous and var.flags.c_contiguous:
        # one run of channels: sum views of it; a non-finite value makes its spaxel's sum non-finite,
        # so finite sums mean nothing was left out (the same sums as below: same values, same layout)
        d, v = data[k[0]:k[-1] + 1], var[k[0]:k[-1] + 1]
        flux, var_sum = d.sum(axis=0), v.sum(axis=0)
        if np.isfinite(flux).all() and np.isfinite(var_sum).all():
            return flux, np.sqrt(var_sum)
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

def fit_geometry(flux_map, err_map, pixel_scale: float, *, psf_fwhm: float | None = None,
                 psf_covariance=None, q0: float = 0.0, mask=None) -> Geometry:
    """Centre, axis ratio and PA from a 2D elliptical Gaussian fit to a line map.

    The model ``A exp(-(x_maj^2 / sigma_a^2 + y_min^2 / sigma_b^2) / 2)``
    (see the module notes for ``x_maj``, ``y_min``), averaged over each
    pixel with 3x3 Gauss-Legendre points, is fitted by weighted least
    squares (:func:`mockzgrad.recovery.gaussfit.fit_map`, residuals
    ``(flux - model) / err``) starting from the image moments of the pixels
    with positive flux and S/N >= 2 (all positive pixels if fewer than 5).

    PSF correction (exact for a Gaussian source and a Gaussian PSF, an
    approximation otherwise): the fitted image is a Gaussian of covariance
    ``C_obs = C_galaxy + C_psf`` (2x2 matrices, each with its own position
    angle; second moments add under convolution).

    - Circular PSF (``psf_fwhm``, or an isotropic ``psf_covariance``
      ``s^2 I``): ``sigma_psf^2 = (psf_fwhm / 2.3548)^2`` (or ``s^2``) is
      subtracted from both fitted ``sigma^2``; the PA is the fitted one.
    - Any other PSF (``psf_covariance``, e.g. an elliptical Gaussian; see
      :func:`mockzgrad.recovery.psf_matching.psf_covariance`): ``C_psf`` is
      subtracted from ``C_obs`` and the axis ratio and PA are those of the
      eigen-decomposition of the remainder.

    Without either the axis ratio is that of the observed (PSF-smeared)
    image.

    Errors: the covariance ``(J^T J)^-1`` of the fit, multiplied by the
    reduced chi^2 when that exceeds 1, propagated to ``axis_ratio``, ``pa``
    and ``inclination`` to first order.

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
        FWHM of a circular Gaussian PSF, arcsec; > 0.
    psf_covariance : array_like, shape (2, 2), or None
        Covariance of the (Gaussian-equivalent) PSF, arcsec^2, axes x east,
        y north (``[[Cxx, Cxy], [Cxy, Cyy]]``); symmetric, positive
        semi-definite. Give at most one of ``psf_fwhm`` and
        ``psf_covariance``.
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
        The fit fails, or the fitted image minus the PSF is not positive
        definite (the source is not resolved along some direction; the
        message gives both covariances).
    """
    f = np.asarray(flux_map, dtype=np.float64)
    e = np.asarray(err_map, dtype=np.float64)
    if f.ndim != 2 or e.shape != f.shape:
        raise DataError(f"flux_map {f.shape} and err_map {e.shape}: expected the same (ny, nx) shape")
    ps = positive("pixel_scale", pixel_scale, "arcsec")
    psf = _psf_term(psf_fwhm, psf_covariance)
    q0 = _check_q0(q0)
    good = _usable_pixels(f, e, mask)
    ny, nx = f.shape
    x1, y1 = sky_offsets(ny, nx, ps)
    params, cov = gaussfit.fit_map(f, e, x1, y1, ps, good)
    if isinstance(psf, np.ndarray):
        return _geometry_deconvolved(params, cov, psf, q0)
    return _geometry_from_fit(params, cov, psf, psf_fwhm, q0)


def _psf_term(psf_fwhm, psf_covariance):
    """The PSF sigma (arcsec) when circular, else its 2x2 covariance (arcsec^2)."""
    if psf_covariance is None:
        return 0.0 if psf_fwhm is None else positive("psf_fwhm", psf_fwhm, "arcsec") / FWHM_PER_SIGMA
    if psf_fwhm is not None:
        raise ConfigError(f"psf_fwhm = {psf_fwhm!r} and psf_covariance given; give at most one of them")
    c = np.asarray(psf_covariance, dtype=np.float64)
    if c.shape != (2, 2) or not np.all(np.isfinite(c)) or c[0, 1] != c[1, 0]:
        raise ConfigError(f"psf_covariance = {psf_covariance!r}: expected a finite symmetric 2x2 matrix (arcsec^2)")
    if c[0, 0] < 0.0 or c[1, 1] < 0.0 or c[0, 0] * c[1, 1] < c[0, 1] ** 2:
        raise ConfigError(f"psf_covariance = {c.tolist()} arcsec^2: not positive semi-definite")
    if c[0, 1] == 0.0 and c[0, 0] == c[1, 1]:
        return math.sqrt(c[0, 0])  # circular: the scalar path
    return c


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



def _inclination_with_error(q, q_err, q0):
    """Inclination of ``min(q, 1)`` and its first-order error (NaN at the ends)."""
    q_use = min(q, 1.0)
    incl = inclination_from_axis_ratio(q_use, q0)
    cos_i = math.cos(math.radians(incl))
    sin_i = math.sin(math.radians(incl))
    if q_use > q0 and sin_i > 0 and cos_i > 0:
        di_dq = q_use / ((1.0 - q0 * q0) * cos_i * sin_i)
        return q_use, incl, math.degrees(di_dq * q_err)
    return q_use, incl, _NAN


def _pa_deg(theta: float) -> float:
    pa = math.degrees(theta) % 180.0
    return 0.0 if pa >= 180.0 else pa  # rounding of a tiny negative angle


def _geometry_from_fit(params, cov, sig_psf, psf_fwhm, q0) -> Geometry:
    """Axis ratio, inclination and PA with a circular PSF removed, with first-order errors."""
    _, xc, yc, sa, sb, theta = params
    perr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    va, vb = sa * sa - sig_psf**2, sb * sb - sig_psf**2
    if not vb > 0.0:
        raise RecoveryError(
            f"fit_geometry: the fitted minor-axis sigma {sb:.4g} arcsec is not larger than the PSF sigma "
            f"{sig_psf:.4g} arcsec (psf_fwhm = {_fwhm_text(psf_fwhm, sig_psf)} arcsec): the source is unresolved "
            "and its axis ratio cannot be measured; give the geometry instead")
    q = math.sqrt(vb / va)
    # first-order errors of q = sqrt(vb / va)
    g = np.array([-q * sa / va, sb / (q * va)])
    c2 = cov[np.ix_([3, 4], [3, 4])]
    q_err = float(math.sqrt(max(g @ c2 @ g, 0.0)))
    q_use, incl, incl_err = _inclination_with_error(q, q_err, q0)
    pa_err = math.degrees(perr[5]) if q < 1.0 else _NAN
    return Geometry(x_offset=float(xc), y_offset=float(yc), axis_ratio=q_use, pa=_pa_deg(theta), inclination=incl,
                    q0=q0, source="fit", x_offset_err=float(perr[1]), y_offset_err=float(perr[2]),
                    axis_ratio_err=q_err, pa_err=float(pa_err), inclination_err=float(incl_err),
                    sigma_major=math.sqrt(va), sigma_minor=math.sqrt(vb))


def _fwhm_text(psf_fwhm, sig_psf) -> str:
    return f"{psf_fwhm}" if psf_fwhm is not None else f"{sig_psf * FWHM_PER_SIGMA:.4g}"


def _deconvolved_axes(p, psf_cov):
    """``(q, theta, var_major, var_minor)`` of ``C_obs(sa, sb, theta) - psf_cov``."""
    va, vb, th = gaussfit.axes_from_covariance(gaussfit.covariance_from_axes(p[0], p[1], p[2]) - psf_cov)
    return math.sqrt(max(vb, 0.0) / va) if va > 0 else _NAN, th, va, vb


def _geometry_deconvolved(params, cov, psf_cov, q0) -> Geometry:
    """Axis ratio, inclination and PA of ``C_obs - C_psf`` (any PSF covariance), with first-order errors."""
    _, xc, yc, sa, sb, theta = params
    perr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    q, th, va, vb = _deconvolved_axes((sa, sb, theta), psf_cov)
    if not vb > 0.0:
        pv = np.linalg.eigvalsh(psf_cov)
        raise RecoveryError(
            f"fit_geometry: the fitted image (sigmas {sa:.4g} x {sb:.4g} arcsec, PA {_pa_deg(theta):.1f} deg) minus "
            f"the PSF (sigmas {math.sqrt(max(pv[1], 0)):.4g} x {math.sqrt(max(pv[0], 0)):.4g} arcsec, covariance "
            f"{np.round(psf_cov, 8).tolist()} arcsec^2) leaves variances {va:.4g}, {vb:.4g} arcsec^2, not both > 0: "
            "the source is unresolved along some direction and its axis ratio cannot be measured; give the "
            "geometry instead")
    # first-order errors by central differences in (sa, sb, theta)
    jac = np.zeros((2, 3))
    for k, step in enumerate((1e-6 * sa, 1e-6 * sa, 1e-6)):
        lo, hi = [sa, sb, theta], [sa, sb, theta]
        lo[k] -= step
        hi[k] += step
        (q_lo, t_lo, _, _), (q_hi, t_hi, _, _) = _deconvolved_axes(lo, psf_cov), _deconvolved_axes(hi, psf_cov)
        dt = (t_hi - t_lo + 0.5 * math.pi) % math.pi - 0.5 * math.pi  # across the wrap at pi
        jac[:, k] = [(q_hi - q_lo) / (2 * step), dt / (2 * step)]
    c3 = cov[np.ix_([3, 4, 5], [3, 4, 5])]
    err = np.sqrt(np.clip(np.diag(jac @ c3 @ jac.T), 0.0, None))
    q_use, incl, incl_err = _inclination_with_error(q, float(err[0]), q0)
    pa_err = math.degrees(err[1]) if q < 1.0 else _NAN
    return Geometry(x_offset=float(xc), y_offset=float(yc), axis_ratio=q_use, pa=_pa_deg(th), inclination=incl,
                    q0=q0, source="fit", x_offset_err=float(perr[1]), y_offset_err=float(perr[2]),
                    axis_ratio_err=float(err[0]), pa_err=float(pa_err), inclination_err=float(incl_err),
                    sigma_major=math.sqrt(va), sigma_minor=math.sqrt(vb))
