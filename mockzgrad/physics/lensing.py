"""Gravitational-lensing geometry: deflection, Jacobian, magnification, ray shooting.

Pure geometry, no galaxy: the forward model (:mod:`mockzgrad.source.scene`)
traces image-plane positions to the source plane with it, and the
observer's recovery (:mod:`mockzgrad.recovery.lensing`) may use it too.

Conventions
-----------
Positions are sky offsets ``(x, y)`` in arcsec, x east and y north of the
field centre (as :meth:`mockzgrad.source.galaxy.GalaxyModel.disk_coords`).
The lens equation is ``beta = theta - alpha(theta)`` and its Jacobian

    A = d beta / d theta = [[1 - kappa - gamma1, -gamma2], [-gamma2, 1 - kappa + gamma1]]

(standard lensing, e.g. Schneider, Ehlers & Falco 1992, ch. 5), with
``gamma1, gamma2`` in the (x, y) frame; ``mu = 1 / det A``. The eigenvalues
``1 - kappa -+ |gamma|`` give the tangential and radial stretch
``mu_t = 1 / (1 - kappa - |gamma|)`` and ``mu_r = 1 / (1 - kappa + |gamma|)``
(signed; ``mu = mu_t mu_r``); images are stretched by ``mu_t`` along the
direction at ``0.5 atan2(gamma2, gamma1)`` from +x. Angles given by the user
(``pa``, ``phi_ext``) are degrees east of north, as the galaxy's PA.

Lens kinds: :class:`ConstantLens` (uniform kappa and shear),
:class:`SIELens` (singular isothermal ellipsoid, closed form of Kormann,
Schneider & Bartelmann 1994, A&A 284, 285, in the form of Keeton 2001,
astro-ph/0102341, eqs. for the softened isothermal ellipsoid with core
s = 0), :class:`ExternalShear` added to it by :class:`CompositeLens`, and
:class:`DeflectionMapLens` (alpha_x, alpha_y maps as in the Hubble Frontier
Fields lens-model products, scaled by D_ls/D_s).
"""

from __future__ import annotations

import functools
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, FieldOfViewWarning, MockzgradWarning

__all__ = [
    "CriticalCurveWarning", "Lens", "ConstantLens", "SIELens", "ExternalShear", "CompositeLens",
    "DeflectionMapLens", "ScaledLens", "read_deflection_maps", "warn_critical", "check_field", "find_image",
    "find_images", "lensing_truth", "distance_ratio", "jacobian_fd", "stretch", "critical_pixels",
    "image_extent", "image_flux_radius", "FIELD_RULES", "main_image_mask", "lensed_flux_radius",
    "GridTrace", "trace_grid",
]

#: ``lensing.field``: which images the automatic field holds (:func:`lensed_flux_radius`).
FIELD_RULES = ("all_images", "main_image")

#: With ``field = "all_images"``, a field whose side exceeds this many times the main image's gets a hint.
_FIELD_HINT_RATIO = 3.0

#: Below this 1 - q the SIE is evaluated as the SIS (the closed form loses digits).
_Q_ROUND = 1e-9


class CriticalCurveWarning(MockzgradWarning):
    """The field crosses a critical curve (det A changes sign), or |mu| is too large for the sampling."""


def distance_ratio(z_lens: float, z_source: float, cosmology) -> float:
    """D_ls / D_s, the lensing efficiency of a source at ``z_source`` behind a lens at ``z_lens``.

    Parameters
    ----------
    z_lens, z_source : float
        Redshifts; 0 < z_lens < z_source.
    cosmology : astropy.cosmology.Cosmology

    Returns
    -------
    float
        Ratio of angular-diameter distances lens-source over observer-source, in (0, 1).
    """
    if not 0.0 < z_lens < z_source:
        raise ConfigError(f"lensing.z_lens = {z_lens} must lie in (0, {z_source}) (the source redshift)")
    try:  # astropy >= 7: angular_diameter_distance(z1, z2)
        d_ls = cosmology.angular_diameter_distance(z_lens, z_source)
    except TypeError:  # pragma: no cover - older astropy
        d_ls = cosmology.angular_diameter_distance_z1z2(z_lens, z_source)
    d_s = cosmology.angular_diameter_distance(z_source)
    return float((d_ls / d_s).decompose().value)


class Lens(ABC):
    """A lens: deflection ``alpha(x, y)`` (arcsec) and the quantities derived from it.

    Subclasses define :meth:`alpha` and, when they have one in closed form,
    :meth:`convergence_shear`; the default is finite differences of alpha.
    """

    @abstractmethod
    def alpha(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Deflection (alpha_x, alpha_y), arcsec, at sky offsets (x, y), arcsec."""

    def convergence_shear(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kappa, gamma1, gamma2) at (x, y); default: finite differences of :meth:`alpha`."""
        return jacobian_fd(self, x, y)

    def ray_shoot(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Source-plane position beta = theta - alpha(theta), arcsec."""
        ax, ay = self.alpha(x, y)
        return np.asarray(x, dtype=float) - ax, np.asarray(y, dtype=float) - ay

    def det_a(self, x, y) -> np.ndarray:
        """det A = (1 - kappa)^2 - gamma^2."""
        k, g1, g2 = self.convergence_shear(x, y)
        with np.errstate(invalid="ignore"):
            return (1.0 - k) ** 2 - g1 * g1 - g2 * g2

    def magnification(self, x, y) -> np.ndarray:
        """Signed magnification mu = 1 / det A (inf on a critical curve)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.det_a(x, y)

    def stretch(self, x, y) -> dict:
        """Tangential and radial stretch and their directions at (x, y) (:func:`stretch`)."""
        return stretch(*self.convergence_shear(x, y))


def stretch(kappa, gamma1, gamma2) -> dict:
    """Eigen-decomposition of the lensing Jacobian.

    Parameters
    ----------
    kappa, gamma1, gamma2 : array_like
        Convergence and shear (x, y frame).

    Returns
    -------
    dict
        ``mu_t = 1 / (1 - kappa - |gamma|)``, ``mu_r = 1 / (1 - kappa + |gamma|)``
        (signed), ``mu = mu_t mu_r``, ``pa_t`` the direction of the ``mu_t``
        stretch and ``pa_r`` that of ``mu_r``, deg east of north in [0, 180).
    """
    k = np.asarray(kappa, dtype=float)
    g = np.hypot(gamma1, gamma2)
    with np.errstate(divide="ignore"):
        mu_t = 1.0 / (1.0 - k - g)
        mu_r = 1.0 / (1.0 - k + g)
    angle = 0.5 * np.degrees(np.arctan2(gamma2, gamma1))  # from +x (east) towards +y (north)
    pa_t = np.mod(90.0 - angle, 180.0)
    return {"mu_t": mu_t, "mu_r": mu_r, "mu": mu_t * mu_r, "pa_t": pa_t, "pa_r": np.mod(pa_t + 90.0, 180.0)}


def jacobian_fd(lens: Lens, x, y, h: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kappa, gamma1, gamma2) from central differences of ``lens.alpha`` with step ``h`` arcsec."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    axp, ayp = lens.alpha(x + h, y)
    axm, aym = lens.alpha(x - h, y)
    bxp, byp = lens.alpha(x, y + h)
    bxm, bym = lens.alpha(x, y - h)
    dxx, dyx = (axp - axm) / (2 * h), (ayp - aym) / (2 * h)  # d alpha_x / dx, d alpha_y / dx
    dxy, dyy = (bxp - bxm) / (2 * h), (byp - bym) / (2 * h)
    return 0.5 * (dxx + dyy), 0.5 * (dxx - dyy), 0.5 * (dxy + dyx)


def _rotate_in(x, y, cx, cy, pa_deg):
    """Offsets from (cx, cy) in the frame of the major axis at ``pa_deg`` east of north: (u major, v minor)."""
    pa = math.radians(pa_deg)
    dx = np.asarray(x, dtype=float) - cx
    dy = np.asarray(y, dtype=float) - cy
    return dx * math.sin(pa) + dy * math.cos(pa), -dx * math.cos(pa) + dy * math.sin(pa)


def _rotate_out(au, av, pa_deg):
    pa = math.radians(pa_deg)
    return au * math.sin(pa) - av * math.cos(pa), au * math.cos(pa) + av * math.sin(pa)


@dataclass(frozen=True)
class ConstantLens(Lens):
    """Uniform convergence and shear about ``(centre_x, centre_y)``: alpha = [[k + g1, g2], [g2, k - g1]] dtheta."""

    kappa: float
    gamma1: float = 0.0
    gamma2: float = 0.0
    centre_x: float = 0.0
    centre_y: float = 0.0

    def alpha(self, x, y):
        dx = np.asarray(x, dtype=float) - self.centre_x
        dy = np.asarray(y, dtype=float) - self.centre_y
        k, g1, g2 = self.kappa, self.gamma1, self.gamma2
        return (k + g1) * dx + g2 * dy, g2 * dx + (k - g1) * dy

    def convergence_shear(self, x, y):
        shape = np.broadcast(np.asarray(x), np.asarray(y)).shape
        return (np.full(shape, float(self.kappa)), np.full(shape, float(self.gamma1)),
                np.full(shape, float(self.gamma2)))


@dataclass(frozen=True)
class ExternalShear(Lens):
    """External shear of strength ``gamma_ext`` stretching images along ``phi_ext`` (deg east of north)."""

    gamma_ext: float
    phi_ext: float = 0.0
    centre_x: float = 0.0
    centre_y: float = 0.0

    def _g(self):
        a = 2.0 * math.radians(90.0 - self.phi_ext)  # twice the angle from +x
        return self.gamma_ext * math.cos(a), self.gamma_ext * math.sin(a)

    def alpha(self, x, y):
        g1, g2 = self._g()
        return ConstantLens(0.0, g1, g2, self.centre_x, self.centre_y).alpha(x, y)

    def convergence_shear(self, x, y):
        g1, g2 = self._g()
        return ConstantLens(0.0, g1, g2).convergence_shear(x, y)


@dataclass(frozen=True)
class SIELens(Lens):
    """Singular isothermal ellipsoid (Kormann et al. 1994), Einstein radius in the intermediate-axis convention.

    kappa = theta_E / (2 sqrt(q u^2 + v^2 / q)), u along the major axis at
    ``pa`` (deg east of north), v along the minor axis; q = 1 is the SIS
    (alpha = theta_E theta / |theta|).

    Attributes
    ----------
    theta_e : float
        Einstein radius, arcsec; > 0.
    q : float
        Axis ratio of the iso-convergence ellipses; (0, 1].
    pa : float
        Major-axis position angle, deg east of north.
    centre_x, centre_y : float
        Lens centre, arcsec east / north of the field centre.
    """

    theta_e: float
    q: float = 1.0
    pa: float = 0.0
    centre_x: float = 0.0
    centre_y: float = 0.0

    def __post_init__(self):
        if not self.theta_e > 0.0:
            raise ConfigError(f"lensing.theta_e = {self.theta_e} arcsec; allowed > 0")
        if not 0.0 < self.q <= 1.0:
            raise ConfigError(f"lensing.q = {self.q}; allowed (0, 1]")

    def alpha(self, x, y):
        u, v = _rotate_in(x, y, self.centre_x, self.centre_y, self.pa)
        q, b = self.q, self.theta_e
        if 1.0 - q < _Q_ROUND:
            r = np.hypot(u, v)
            with np.errstate(invalid="ignore", divide="ignore"):
                au, av = np.where(r > 0, b * u / r, 0.0), np.where(r > 0, b * v / r, 0.0)
        else:
            e = math.sqrt(1.0 - q * q)
            psi = np.hypot(q * u, v)  # Keeton (2001) psi with s = 0
            with np.errstate(invalid="ignore", divide="ignore"):
                au = np.where(psi > 0, b * math.sqrt(q) / e * np.arctan(e * u / psi), 0.0)
                av = np.where(psi > 0, b * math.sqrt(q) / e * np.arctanh(e * v / psi), 0.0)
        return _rotate_out(au, av, self.pa)

    def convergence_shear(self, x, y):
        # isothermal: the potential is homogeneous of degree 1, so the Hessian is
        # 2 kappa t t^T (t the tangential unit vector) and gamma = -kappa e^{2 i phi}
        u, v = _rotate_in(x, y, self.centre_x, self.centre_y, self.pa)
        q = self.q
        with np.errstate(divide="ignore"):
            k = self.theta_e / (2.0 * np.sqrt(q * u * u + v * v / q))
        dx = np.asarray(x, dtype=float) - self.centre_x
        dy = np.asarray(y, dtype=float) - self.centre_y
        phi = np.arctan2(dy, dx)
        kf = np.where(np.isfinite(k), k, 0.0)  # at the centre: kappa infinite, shear direction undefined -> 0
        return k, -kf * np.cos(2 * phi), -kf * np.sin(2 * phi)


@dataclass(frozen=True)
class CompositeLens(Lens):
    """Sum of the deflections of several lenses (e.g. SIE + external shear)."""

    parts: tuple

    def alpha(self, x, y):
        ax = ay = 0.0
        for p in self.parts:
            px, py = p.alpha(x, y)
            ax, ay = ax + px, ay + py
        return ax, ay

    def convergence_shear(self, x, y):
        k = g1 = g2 = 0.0
        for p in self.parts:
            pk, p1, p2 = p.convergence_shear(x, y)
            k, g1, g2 = k + pk, g1 + p1, g2 + p2
        return k, g1, g2


@dataclass(frozen=True, eq=False)
class DeflectionMapLens(Lens):
    """Deflection maps on a regular grid, interpolated (cubic spline), scaled by ``scale``.

    kappa and gamma are the spline's exact derivatives at the map nodes
    (computed once), interpolated by cubic splines through them: three
    map samplings instead of the eight of finite differences of alpha.

    Attributes
    ----------
    alpha_x, alpha_y : ndarray, shape (ny, nx)
        Deflection per map pixel, arcsec (x east, y north), at D_ls/D_s of
        the maps' normalisation.
    x0, y0 : float
        Sky offset (arcsec east, north) of map pixel (0, 0).
    dx, dy : float
        Offset per map column (x) and per row (y), arcsec; nonzero (dx < 0
        for the usual RA axis).
    scale : float
        Factor applied to alpha: D_ls/D_s of the source over that of the
        maps' normalisation (1 when they agree), times any observer error.
    name : str
        Where the maps come from (provenance).
    """

    alpha_x: np.ndarray
    alpha_y: np.ndarray
    x0: float
    y0: float
    dx: float
    dy: float
    scale: float = 1.0
    name: str = ""
    _coeffs: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        from scipy import ndimage

        ax, ay = np.asarray(self.alpha_x, float), np.asarray(self.alpha_y, float)
        if ax.ndim != 2 or ax.shape != ay.shape:
            raise DataError(f"lensing deflection maps: alpha_x shape {ax.shape} and alpha_y shape {ay.shape} "
                            "differ (expected the same 2-D shape)")
        if not (np.all(np.isfinite(ax)) and np.all(np.isfinite(ay))):
            raise DataError(f"lensing deflection maps {self.name!r}: non-finite values")
        cx, cy = ndimage.spline_filter(ax, order=3), ndimage.spline_filter(ay, order=3)
        self._coeffs.extend([cx, cy, *(ndimage.spline_filter(j, order=3)
                                        for j in _jacobian_nodes(cx, cy, self.dx, self.dy))])

    def extent(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the map's pixel centres, arcsec."""
        ny, nx = np.shape(self.alpha_x)
        xs = sorted((self.x0, self.x0 + (nx - 1) * self.dx))
        ys = sorted((self.y0, self.y0 + (ny - 1) * self.dy))
        return xs[0], xs[1], ys[0], ys[1]

    def covers(self, x, y) -> bool:
        x0, x1, y0, y1 = self.extent()
        return bool(np.min(x) >= x0 and np.max(x) <= x1 and np.min(y) >= y0 and np.max(y) <= y1)

    def check_covers(self, x, y, what: str = "the field") -> None:
        """DataError naming both extents when (x, y) are not all inside the map."""
        if not self.covers(x, y):
            x0, x1, y0, y1 = self.extent()
            raise DataError(f"lensing deflection maps {self.name!r} cover x = [{x0:.3f}, {x1:.3f}], "
                            f"y = [{y0:.3f}, {y1:.3f}] arcsec but {what} spans x = [{np.min(x):.3f}, "
                            f"{np.max(x):.3f}], y = [{np.min(y):.3f}, {np.max(y):.3f}] arcsec")

    def _sample(self, x, y, maps, order: int) -> list:
        from scipy import ndimage

        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        x, y = np.broadcast_arrays(x, y)
        coords = np.stack([((y - self.y0) / self.dy).ravel(), ((x - self.x0) / self.dx).ravel()])
        return [self.scale * ndimage.map_coordinates(c, coords, order=order, mode="nearest",
                                                     prefilter=False).reshape(x.shape) for c in maps]

    def alpha(self, x, y):
        """Cubic B-spline interpolation of the maps (:func:`scipy.ndimage.map_coordinates`, order 3)."""
        return tuple(self._sample(x, y, self._coeffs[:2], 3))

    def convergence_shear(self, x, y):
        """(kappa, gamma1, gamma2): the exact derivatives of the cubic-spline deflection at the map's
        nodes, interpolated by cubic splines through them (:func:`_jacobian_nodes`)."""
        return tuple(self._sample(x, y, self._coeffs[2:], 3))


def _jacobian_nodes(cx, cy, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kappa, gamma1, gamma2) at the nodes of a map from the cubic B-spline coefficients of its deflection.

    At a node the spline's value is the coefficients weighted (1, 4, 1) / 6
    along each axis and its derivative along an axis is their central
    difference / 2 along it (the B-spline's slopes -+1/2 at -+1) with the
    (1, 4, 1) / 6 weights along the other; ``dx``, ``dy`` (arcsec per
    column, row) turn them into d / dx, d / dy.
    """
    from scipy.ndimage import correlate1d

    diff, node = np.array([-0.5, 0.0, 0.5]), np.array([1.0, 4.0, 1.0]) / 6.0

    def d(c, axis):  # derivative along axis (0: rows, 1: columns), per map pixel
        return correlate1d(correlate1d(c, diff, axis=axis, mode="nearest"), node, axis=1 - axis, mode="nearest")

    axx, axy = d(cx, 1) / dx, d(cx, 0) / dy  # d alpha_x / dx, d alpha_x / dy
    ayx, ayy = d(cy, 1) / dx, d(cy, 0) / dy
    return 0.5 * (axx + ayy), 0.5 * (axx - ayy), 0.5 * (axy + ayx)


def critical_pixels(lens: Lens, x, y, trace: GridTrace | None = None) -> int:
    """Number of positions (x, y) with det A <= 0 (inside a critical curve); ``trace``: the lens already
    evaluated there (:func:`trace_grid`; x, y unused)."""
    det = lens.det_a(x, y) if trace is None else trace.det_a()
    return int(np.count_nonzero(det <= 0.0))


@dataclass(frozen=True, eq=False)
class GridTrace:
    """A lens evaluated once on a grid of positions, for every stage that needs it there.

    Attributes
    ----------
    x, y : ndarray
        Sky offsets, arcsec (x east, y north), one shape.
    beta_x, beta_y : ndarray
        Source-plane positions beta = theta - alpha(theta), arcsec.
    kappa, gamma1, gamma2 : ndarray
        Convergence and shear there (x, y frame).

    Notes
    -----
    The arrays are read-only (shared by the stages). Crops and column
    reversals are views of the same values: a stage that used to evaluate
    the lens on a sub-grid (or on its mirror image) gets the numbers it
    would have computed, element by element.
    """

    x: np.ndarray
    y: np.ndarray
    beta_x: np.ndarray
    beta_y: np.ndarray
    kappa: np.ndarray
    gamma1: np.ndarray
    gamma2: np.ndarray

    def _arrays(self):
        return (self.x, self.y, self.beta_x, self.beta_y, self.kappa, self.gamma1, self.gamma2)

    def det_a(self) -> np.ndarray:
        """det A = (1 - kappa)^2 - gamma^2 (as :meth:`Lens.det_a`)."""
        with np.errstate(invalid="ignore"):
            return (1.0 - self.kappa) ** 2 - self.gamma1 * self.gamma1 - self.gamma2 * self.gamma2

    def crop(self, start: int, n: int) -> "GridTrace":
        """The square sub-grid ``[start:start + n, start:start + n]`` (views)."""
        sl = (slice(start, start + n), slice(start, start + n))
        return GridTrace(*(a[sl] for a in self._arrays()))

    def mirrored(self) -> "GridTrace":
        """Columns reversed (views): a grid with x east = -column becomes one with x = +column."""
        return GridTrace(*(a[:, ::-1] for a in self._arrays()))


def trace_grid(lens: Lens, x, y) -> GridTrace:
    """Evaluate ``lens`` once at sky offsets (x, y), arcsec: :meth:`Lens.ray_shoot` and
    :meth:`Lens.convergence_shear` (:class:`GridTrace`)."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    bx, by = lens.ray_shoot(x, y)
    k, g1, g2 = lens.convergence_shear(x, y)
    arrays = [np.array(x), np.array(y)] + [np.asarray(np.broadcast_to(a, x.shape), dtype=float)
                                           for a in (bx, by, k, g1, g2)]
    for a in arrays:
        a.setflags(write=False)
    return GridTrace(*arrays)


def image_extent(lens: Lens, inside, r_start: float, *, n: int = 256, max_doublings: int = 6) -> float:
    """Largest |theta| (arcsec) of the grid points whose source position is ``inside`` (0 when none).

    ``inside(beta_x, beta_y) -> bool array`` marks the source-plane
    positions carrying light. A square ``n x n`` grid of half-side ``r``
    is ray-shot; ``r`` starts at ``r_start`` (arcsec) and doubles while
    kept points touch the grid's edge.
    """
    r = float(r_start)
    for _ in range(max_doublings + 1):
        t = np.linspace(-r, r, n)
        xx, yy = np.meshgrid(t, t)
        keep = inside(*lens.ray_shoot(xx, yy))
        if not keep.any():
            return 0.0
        edge = keep[0].any() or keep[-1].any() or keep[:, 0].any() or keep[:, -1].any()
        if not edge:
            break
        r *= 2.0
    return float(np.hypot(xx[keep], yy[keep]).max())


def image_flux_radius(lens: Lens, sb, r_max: float, frac: float, *, n: int = 192) -> float:
    """Radius (arcsec) about the field centre holding ``frac`` of the lensed flux on a ray-shot grid.

    Lensing conserves surface brightness, so a grid cell at theta carries
    ``sb(beta) x its area``; the flux is summed over a square ``n x n`` grid
    of half-side ``r_max`` (which should hold all the lensed light, e.g.
    :func:`image_extent` of the light radius) and the radius enclosing
    ``frac`` of it is returned, plus half a cell diagonal (0 when no light).

    Parameters
    ----------
    lens : Lens
    sb : callable
        ``sb(beta_x, beta_y) -> array``: source surface brightness at
        source-plane offsets (arcsec), any unit.
    r_max : float
        Half-side of the grid, arcsec.
    frac : float
        Fraction of the grid's flux to enclose, in (0, 1].
    n : int
        Grid points per axis.
    """
    if not r_max > 0.0:
        return 0.0
    t = np.linspace(-r_max, r_max, n)
    xx, yy = np.meshgrid(t, t)
    return _flux_radius(xx, yy, np.asarray(sb(*lens.ray_shoot(xx, yy)), dtype=float), frac, t[1] - t[0])


def _flux_radius(xx, yy, w, frac: float, cell: float) -> float:
    """Radius about (0, 0) enclosing ``frac`` of the weights ``w`` at grid points (xx, yy), plus half a
    cell diagonal; 0 when the weights sum to 0."""
    w = w.ravel()
    r = np.hypot(xx, yy).ravel()
    order = np.argsort(r, kind="stable")
    c = np.cumsum(w[order])
    if not c[-1] > 0.0:
        return 0.0
    k = min(int(np.searchsorted(c, frac * c[-1])), r.size - 1)
    return float(r[order][k]) + cell / math.sqrt(2.0)


def main_image_mask(lit: np.ndarray, xx, yy) -> np.ndarray:
    """The main image on a grid: the 8-connected region of ``lit`` points holding the lit point nearest
    the field centre (0, 0); all False when nothing is lit.

    Parameters
    ----------
    lit : ndarray of bool, shape (ny, nx)
        Grid points whose source position carries light.
    xx, yy : ndarray, shape (ny, nx)
        Their sky offsets, arcsec.
    """
    from scipy import ndimage

    labels, n_regions = ndimage.label(lit, structure=np.ones((3, 3), dtype=bool))
    if n_regions == 0:
        return np.zeros(lit.shape, dtype=bool)
    d = np.where(lit, np.hypot(xx, yy), np.inf)
    return labels == labels.flat[int(np.argmin(d))]


def lensed_flux_radius(lens: Lens, inside, sb, r_start: float, frac: float, *, field: str = "all_images",
                       centre=(0.0, 0.0), n_extent: int = 128, n: int = 192) -> float:
    """Image-plane radius (arcsec) about the field centre holding ``frac`` of the lensed flux.

    ``"all_images"``: the grid of :func:`image_flux_radius` spans every
    lit point (:func:`image_extent`, doubling from ``r_start``), far
    counter-images included. ``"main_image"``: only the image nearest the
    field centre counts (:func:`main_image_mask` of the lit points,
    ``inside``): the flux radius is taken on a grid spanning that image,
    and a :class:`~mockzgrad.errors.FieldOfViewWarning` names the images of
    the source point ``centre`` left out (position, mu). With
    ``"all_images"`` a field whose radius exceeds 3 times the main image's
    gets a one-line hint naming ``lensing.field = "main_image"``.

    Parameters
    ----------
    lens : Lens
    inside : callable
        ``inside(beta_x, beta_y) -> bool array``: source-plane positions
        carrying light (e.g. within the 0.9999 light radius).
    sb : callable
        ``sb(beta_x, beta_y) -> array``: source surface brightness.
    r_start : float
        First half-side of the extent search, arcsec.
    frac : float
        Fraction of the lensed flux to enclose, in (0, 1].
    field : {"all_images", "main_image"}
    centre : (float, float)
        Source-plane centre of the galaxy (arcsec), for naming the images
        left out.
    n_extent, n : int
        Grid points per axis of the extent search and of the flux grid.

    Returns
    -------
    float
        Radius, arcsec (0 when no light).
    """
    if field not in FIELD_RULES:
        raise ConfigError(f"lensing.field = {field!r}; allowed {', '.join(map(repr, FIELD_RULES))}")
    r_max = image_extent(lens, inside, r_start, n=n_extent)
    if not r_max > 0.0:
        return 0.0
    t = np.linspace(-r_max, r_max, n)
    xx, yy = np.meshgrid(t, t)
    bx, by = lens.ray_shoot(xx, yy)
    w = np.asarray(sb(bx, by), dtype=float)
    r_all = _flux_radius(xx, yy, w, frac, t[1] - t[0])  # = image_flux_radius(lens, sb, r_max, frac, n=n)
    lit = inside(bx, by)
    main = main_image_mask(lit, xx, yy)
    if not np.any(lit & ~main):  # one image (or none): both rules agree
        return r_all
    if field == "all_images":  # the hint's main-image radius: on this grid (no second ray-shooting)
        r_img = _flux_radius(xx, yy, np.where(main, w, 0.0), frac, t[1] - t[0])
        if r_all > _FIELD_HINT_RATIO * r_img:
            warnings.warn(f"lensing.field = 'all_images': the automatic field reaches {r_all:.1f} arcsec from the "
                          f"centre to hold every image (the image nearest the centre needs {r_img:.1f} arcsec); "
                          "lensing.field = 'main_image' keeps that image only", FieldOfViewWarning, stacklevel=4)
        return r_all
    # the main image on a grid just spanning it (a cell of the coarse grid beyond its farthest lit point)
    coarse = (t, (bx, by))  # the images left out are found on the coarse grid, already traced
    r_main = float(np.max(np.maximum(np.abs(xx[main]), np.abs(yy[main])))) + (t[1] - t[0])
    if r_main < r_max:
        t = np.linspace(-r_main, r_main, n)
        xx, yy = np.meshgrid(t, t)
        bx, by = lens.ray_shoot(xx, yy)
        main = main_image_mask(inside(bx, by), xx, yy)
        w = np.where(main, np.asarray(sb(bx, by), dtype=float), 0.0)
    else:
        w = np.where(main, w, 0.0)
    r_img = _flux_radius(xx, yy, w, frac, t[1] - t[0])
    _warn_left_out(lens, centre, *coarse, r_img)
    return r_img


def _warn_left_out(lens: Lens, centre, offsets, traced, r_img: float) -> None:
    """FieldOfViewWarning naming the images of the source point ``centre`` beyond ``r_img`` of the field
    centre (found on the grid ``meshgrid(offsets, offsets)``, whose traced positions are ``traced``)."""
    out = [im for im in find_images(lens, float(centre[0]), float(centre[1]), offsets, traced=traced)
           if max(abs(im[0]), abs(im[1])) > r_img]
    if out:
        shown = "; ".join(f"({x:+.2f}, {y:+.2f}) arcsec, mu {mu:+.2f}" for x, y, mu in out)
        warnings.warn(f"lensing.field = 'main_image': {len(out)} image{'s' if len(out) > 1 else ''} of the "
                      f"source centre left out of the field: {shown}", FieldOfViewWarning, stacklevel=4)


def warn_critical(lens: Lens, x, y, where: str = "the field", trace: GridTrace | None = None) -> int:
    """Warn (CriticalCurveWarning) when det A <= 0 somewhere among (x, y); return that count (``trace``: the
    lens already evaluated there)."""
    n_crit = critical_pixels(lens, x, y, trace)
    if n_crit:
        warnings.warn(f"{where} crosses a critical curve: {n_crit} pixels with det A <= 0 "
                      "(multiple images)", CriticalCurveWarning, stacklevel=4)
    return n_crit


@dataclass(frozen=True)
class ScaledLens(Lens):
    """A lens whose deflection is ``factor`` times another's (an observer's lens-model error)."""

    base: Lens
    factor: float

    def alpha(self, x, y):
        ax, ay = self.base.alpha(x, y)
        return self.factor * ax, self.factor * ay

    def convergence_shear(self, x, y):
        k, g1, g2 = self.base.convergence_shear(x, y)
        return self.factor * k, self.factor * g1, self.factor * g2


def _map_axes(header, path) -> tuple[float, float, float, float]:
    """(x0, y0, dx, dy), arcsec, of a deflection map's linear WCS (CRVAL = the field centre)."""
    try:
        crpix1, crpix2 = float(header["CRPIX1"]), float(header["CRPIX2"])
        if "CD1_1" in header:
            cd = [[float(header.get("CD1_1", 0.0)), float(header.get("CD1_2", 0.0))],
                  [float(header.get("CD2_1", 0.0)), float(header.get("CD2_2", 0.0))]]
        else:
            cd = [[float(header["CDELT1"]), 0.0], [0.0, float(header["CDELT2"])]]
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: deflection map WCS incomplete ({exc}); need CRPIX1/2 and CDELT1/2 or CD") from None
    if cd[0][1] != 0.0 or cd[1][0] != 0.0:
        raise DataError(f"{path}: rotated WCS (CD1_2, CD2_1 nonzero) is not supported; resample to north up")
    dx, dy = cd[0][0] * 3600.0, cd[1][1] * 3600.0
    if dx == 0.0 or dy == 0.0:
        raise DataError(f"{path}: deflection map pixel size is zero")
    return (1.0 - crpix1) * dx, (1.0 - crpix2) * dy, dx, dy


def read_deflection_maps(path_x, path_y, *, unit: str = "arcsec", scale: float = 1.0) -> DeflectionMapLens:
    """Deflection maps from two FITS images (HFF lens-model style).

    Each map's first image HDU holds the deflection along the map's pixel
    axes (alpha_x along increasing column, alpha_y along increasing row),
    in arcsec or in map pixels (``unit``). The WCS is linear, north up;
    CRVAL is taken as the field centre (sky offset 0, 0), so CRPIX and
    CDELT1/2 (or a diagonal CD) place the map. Columns run east when
    CDELT1 > 0 and west (the usual RA axis) when CDELT1 < 0.

    Parameters
    ----------
    path_x, path_y : str or Path
    unit : {"arcsec", "pixels"}
    scale : float
        Factor applied to the deflections (D_ls/D_s of the source over
        that of the maps' normalisation).

    Raises
    ------
    DataError
        Unreadable file, shapes or WCS of the two maps differ, WCS missing.

    Notes
    -----
    The lens (with its spline coefficients) is cached by the two files'
    paths, sizes and modification times, ``unit`` and ``scale``: a suite
    reads and prefilters its maps once per process.
    """
    import os

    try:
        key = tuple((os.path.abspath(p), st.st_size, st.st_mtime_ns) for p, st in
                    ((p, os.stat(p)) for p in (path_x, path_y))) + (unit, float(scale))
    except OSError as exc:
        raise DataError(f"cannot read deflection map ({exc})") from None
    return _read_deflection_maps_cached(key, str(path_x), str(path_y))


@functools.lru_cache(maxsize=4)
def _read_deflection_maps_cached(key: tuple, path_x: str, path_y: str) -> DeflectionMapLens:
    """:func:`read_deflection_maps` of ``key = ((path, size, mtime) x 2, unit, scale)``."""
    from astropy.io import fits

    unit, scale = key[2], key[3]

    maps, axes = [], []
    for p in (path_x, path_y):
        try:
            with fits.open(p) as hdul:
                hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim == 2), None)
                if hdu is None:
                    raise DataError(f"{p}: no 2-D image in the file")
                maps.append(np.asarray(hdu.data, dtype=float))
                axes.append(_map_axes(hdu.header, p))
        except OSError as exc:
            raise DataError(f"{p}: cannot read deflection map ({exc})") from None
    if maps[0].shape != maps[1].shape:
        raise DataError(f"lensing deflection maps: alpha_x {path_x} has shape {maps[0].shape}, "
                        f"alpha_y {path_y} has {maps[1].shape}")
    if not np.allclose(axes[0], axes[1], rtol=1e-9, atol=1e-9):
        raise DataError(f"lensing deflection maps: WCS of {path_x} {axes[0]} and {path_y} {axes[1]} differ")
    x0, y0, dx, dy = axes[0]
    # deflection along the pixel axes -> east / north components
    fx, fy = (abs(dx), abs(dy)) if unit == "pixels" else (1.0, 1.0)
    ax = maps[0] * fx * math.copysign(1.0, dx)
    ay = maps[1] * fy * math.copysign(1.0, dy)
    lens = DeflectionMapLens(ax, ay, x0, y0, dx, dy, scale=scale, name=f"{path_x}, {path_y}")
    for a in (lens.alpha_x, lens.alpha_y, *lens._coeffs):  # shared by every caller of the cache
        a.setflags(write=False)
    return lens


def check_field(lens: Lens, offsets, trace: GridTrace | None = None) -> int:
    """Check a lens over a square field (offsets of its pixel centres, arcsec, per axis).

    Deflection maps must cover it (DataError naming both extents); a
    CriticalCurveWarning says how many pixels lie inside a critical curve.
    Returns that number. ``trace``: the lens already evaluated on that
    field (:func:`trace_grid`, any orientation).
    """
    t = np.asarray(offsets, dtype=float)
    xx, yy = np.meshgrid(t, t)
    if isinstance(lens, DeflectionMapLens):
        lens.check_covers(xx, yy)
    return warn_critical(lens, xx, yy, where=f"the field ({t.size} x {t.size} pixels)", trace=trace)


def _newton(lens: Lens, x: float, y: float, beta_x: float, beta_y: float, n_iter: int) -> tuple[float, float]:
    """Refine an image position of (beta_x, beta_y) by Newton steps on the lens equation."""
    for _ in range(n_iter):
        bx, by = (float(v) for v in lens.ray_shoot(np.array(x), np.array(y)))
        kap, g1, g2 = (float(v) for v in lens.convergence_shear(np.array(x), np.array(y)))
        a = np.array([[1 - kap - g1, -g2], [-g2, 1 - kap + g1]])
        try:
            step = np.linalg.solve(a, [beta_x - bx, beta_y - by])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        x, y = x + float(step[0]), y + float(step[1])
        if math.hypot(*step) < 1e-10:
            break
    return x, y


def find_images(lens: Lens, beta_x: float, beta_y: float, offsets, n_iter: int = 30, traced=None) -> list:
    """Every image of the source point (beta_x, beta_y) inside a square field.

    Grid points whose traced position is a local minimum of the distance to
    the source are refined by Newton steps; converged, distinct solutions
    inside the field are kept. ``traced``: (beta_x, beta_y) of the grid
    ``meshgrid(offsets, offsets)`` when already known.

    Returns
    -------
    list of (x, y, mu)
        Image positions (arcsec) and signed magnifications, most magnified first.
    """
    from scipy.ndimage import minimum_filter

    t = np.asarray(offsets, dtype=float)
    xx, yy = np.meshgrid(t, t)
    bx, by = lens.ray_shoot(xx, yy) if traced is None else traced
    d = np.hypot(bx - beta_x, by - beta_y)
    cand = np.flatnonzero((d == minimum_filter(d, size=3, mode="nearest")).ravel())
    step = float(np.max(np.abs(np.diff(t)))) if t.size > 1 else 1.0
    best = cand[np.argsort(d.flat[cand])][:20]
    xs, ys = _newton_many(lens, xx.flat[best], yy.flat[best], beta_x, beta_y, n_iter)
    rx, ry = lens.ray_shoot(xs, ys)
    ok = (np.hypot(rx - beta_x, ry - beta_y) < 1e-6) & (xs >= t.min() - step) & (xs <= t.max() + step) \
        & (ys >= t.min() - step) & (ys <= t.max() + step)
    mus = lens.magnification(xs, ys)
    out = []
    for x, y, mu in zip(xs[ok].tolist(), ys[ok].tolist(), mus[ok].tolist()):
        if all(math.hypot(x - a, y - b) > 0.5 * step for a, b, _ in out):
            out.append((x, y, float(mu)))
    return sorted(out, key=lambda im: -abs(im[2]))


def _newton_many(lens: Lens, x, y, beta_x: float, beta_y: float, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_newton` for many starting points at once: each stops when its step falls below 1e-10 arcsec
    or is not finite (a singular Jacobian)."""
    x, y = np.array(x, dtype=float), np.array(y, dtype=float)
    active = np.ones(x.shape, dtype=bool)
    for _ in range(n_iter):
        if not active.any():
            break
        xa, ya = x[active], y[active]
        bx, by = lens.ray_shoot(xa, ya)
        kap, g1, g2 = lens.convergence_shear(xa, ya)
        a, b, c = 1.0 - kap - g1, -g2, 1.0 - kap + g1  # A = [[a, b], [b, c]]
        rx, ry = beta_x - bx, beta_y - by
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            det = a * c - b * b
            sx, sy = (c * rx - b * ry) / det, (a * ry - b * rx) / det
        good = np.isfinite(sx) & np.isfinite(sy)
        idx = np.flatnonzero(active)
        x[idx[good]] += sx[good]
        y[idx[good]] += sy[good]
        active[idx[~good | (np.hypot(sx, sy) < 1e-10)]] = False
    return x, y


def find_image(lens: Lens, beta_x: float, beta_y: float, offsets, n_iter: int = 30) -> tuple[float, float]:
    """The most magnified image of the source point (beta_x, beta_y) in the field (:func:`find_images`);
    the best grid point, refined, when none converges."""
    images = find_images(lens, beta_x, beta_y, offsets, n_iter)
    if images:
        return images[0][0], images[0][1]
    t = np.asarray(offsets, dtype=float)
    xx, yy = np.meshgrid(t, t)
    bx, by = lens.ray_shoot(xx, yy)
    k = int(np.argmin(np.hypot(bx - beta_x, by - beta_y)))
    return _newton(lens, float(xx.flat[k]), float(yy.flat[k]), beta_x, beta_y, n_iter)


def lensing_truth(lens: Lens, source_centre, r_eff_arcsec: float, psf_fwhm: float, offsets,
                  flux_magnification: float = math.nan, trace: GridTrace | None = None) -> dict:
    """What lensing did to a mock, for its truth.

    ``source_centre`` is the galaxy's source-plane centre (arcsec, east,
    north), ``r_eff_arcsec`` its effective radius (source plane),
    ``psf_fwhm`` the image-plane PSF FWHM (arcsec), ``offsets`` the field's
    pixel-centre offsets per axis (arcsec) and ``flux_magnification`` the
    lensed over intrinsic line flux (NaN when unknown); ``trace`` the lens
    already evaluated on ``meshgrid(offsets, offsets)`` (:func:`trace_grid`).

    Returns
    -------
    dict
        ``mu`` (signed, at the image of the centre), ``mu_t``, ``mu_r``,
        ``pa_t``, ``pa_r`` (deg east of north), the image position
        ``lens_image_x``, ``lens_image_y`` (arcsec), ``x_resolution_source``
        = 2 r_eff / (psf_fwhm / sqrt|mu_t mu_r|), ``x_resolution_t``,
        ``x_resolution_r`` (= 2 r_eff |mu_t,r| / psf_fwhm),
        ``flux_magnification``, ``n_images`` (images of the centre in the
        field; the values above are those of the most magnified) and
        ``critical_pixels``.
    """
    images = find_images(lens, float(source_centre[0]), float(source_centre[1]), offsets,
                         traced=None if trace is None else (trace.beta_x, trace.beta_y))
    x, y = (images[0][0], images[0][1]) if images else find_image(lens, *map(float, source_centre), offsets)
    st = {k: float(v) for k, v in lens.stretch(np.array(x), np.array(y)).items()}
    t = np.asarray(offsets, dtype=float)
    xx, yy = np.meshgrid(t, t)
    x_img = 2.0 * r_eff_arcsec / psf_fwhm
    return {"mu": st["mu"], "mu_t": st["mu_t"], "mu_r": st["mu_r"], "pa_t": st["pa_t"], "pa_r": st["pa_r"],
            "lens_image_x": x, "lens_image_y": y,
            "x_resolution_source": x_img * math.sqrt(abs(st["mu_t"] * st["mu_r"])),
            "x_resolution_t": x_img * abs(st["mu_t"]), "x_resolution_r": x_img * abs(st["mu_r"]),
            "flux_magnification": float(flux_magnification), "n_images": len(images),
            "critical_pixels": critical_pixels(lens, xx, yy, trace)}
