"""Polynomial curves ``ratio(x)`` and surfaces ``ratio(x, inclination)``, weighted least squares, BIC.

A curve is ``ratio(x) = sum_k c_k x^k`` and a surface ``ratio(x, i) =
sum_jk c_jk x^j t^k`` with ``t = i / INCLINATION_SCALE`` (``x = 2 r_eff /
psf_fwhm`` dimensionless, ``i`` the inclination in deg). Both are fitted to
the individual mocks by weighted least squares with weights ``1 / s(x)^2``,
``s(x)`` the local scatter of the residuals about a preliminary unweighted
fit of the highest candidate degree (:func:`residual_scatter`). The
coefficient covariance is ``(X^T W X)^-1`` scaled by ``chi^2 / dof`` (an
unknown overall error scale): it is the uncertainty of the mean curve, not
the scatter of single galaxies about it. The degree is chosen by the
Bayesian information criterion ``BIC = chi^2 + k ln n`` (Schwarz 1978,
Ann. Stat. 6, 461) with ``k`` coefficients and ``n`` mocks; see
:data:`DEGREE_RULE`. Beside the polynomials in ``x`` the automatic choice
compares polynomials in ``u = 1 / x`` of degree 1 and 2 (``ratio = c0 + c1 / x
(+ c2 / x^2)``), monotone saturating forms (:data:`INVERSE_DEGREES`); a fit
records its variable (``PolynomialFit.variable``, ``"x"`` or ``"1/x"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .binning import GRAD_DECIMALS, local_scatter, readonly_array

__all__ = [
    "INCLINATION_SCALE",
    "DEGREE_CANDIDATES",
    "MAX_DEGREE",
    "MAX_DEGREE_INCLINATION",
    "DEGREE_RULE",
    "INVERSE_DEGREES",
    "VARIABLES",
    "PolynomialFit",
    "SurfaceFit",
    "residual_scatter",
    "fit_polynomial",
    "shape_problem",
    "RATIO_BOUNDS",
    "fit_surface",
]

#: Inclination scale of the surface variable ``t = inclination / INCLINATION_SCALE``, deg.
INCLINATION_SCALE = 90.0
#: Degrees compared when ``degree="auto"``.
DEGREE_CANDIDATES = (1, 2, 3, 4)
#: Degrees of the polynomials in ``u = 1 / x`` compared beside :data:`DEGREE_CANDIDATES` when ``degree="auto"``.
INVERSE_DEGREES = (1, 2)
#: Variables a curve may be a polynomial in.
VARIABLES = ("x", "1/x")
#: Largest polynomial degree that may be asked for.
MAX_DEGREE = 8
#: The rule that chooses the polynomial degree when ``degree="auto"``.
DEGREE_RULE = (
    "polynomial in x of degree d in 1..4 or in u = 1/x of degree d in 1..2 (ratio = c0 + c1/x (+ c2/x^2)) "
    "minimising BIC = chi2 + (d + 1) ln(n) (Schwarz 1978), chi2 of the weighted "
    "least-squares fit to the individual mocks with weights 1/s(x)^2, s(x) = half 16-84 width of the "
    "residuals about an unweighted fit of the highest candidate degree in x bins of >= 25 mocks, "
    "interpolated in x; candidates need more distinct x than coefficients "
    "and dof >= 1 and must stay in [0, 1.2] over the mocks' x range without turning over there (coming back "
    "from an extremum by > min(1 sigma of the fit, 0.02)) unless the running medians show a turning point of "
    "the same kind (maximum or minimum) within one bin of the fit's (else degrees 0-1 only); surfaces: "
    "(degree_x in 1..4, degree_inclination in 0..min(2, n_incl - 1)) "
    "by the same criterion"
)
#: A ratio curve turns over only where it comes back from its extremum by more than this many sigma ...
TURNOVER_SIGMA = 1.0
#: ... or by more than this (measured / intrinsic), whichever is smaller: where the data are sparse the fit's
#: own sigma is large, and a turn-down within it would still be drawn (and used) as one.
TURNOVER_MAX = 0.02
#: Range an admissible ratio curve stays in over the mocks' x range (measured / intrinsic).
RATIO_BOUNDS = (0.0, 1.2)
#: Largest degree in inclination of a surface.
MAX_DEGREE_INCLINATION = 2


def _std_from_covariance(a, covariance) -> np.ndarray:
    return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", a, covariance, a), 0.0))


@dataclass(frozen=True, eq=False)
class PolynomialFit:
    """Polynomial ``ratio(x) = sum_k c_k u^k`` in ``u = x`` or ``u = 1 / x``.

    Attributes
    ----------
    coefficients : ndarray, shape (degree + 1,)
        ``c_k``, lowest order first.
    covariance : ndarray, shape (degree + 1, degree + 1)
        Covariance of the coefficients.
    chi2 : float
        Weighted chi^2 of the fit (NaN for curves given as polynomials).
    dof : int
        Degrees of freedom, ``n_points - degree - 1``.
    n_points : int
        Mocks fitted.
    n_clipped : int
        Mocks left out as outliers.
    candidates : tuple of int or str
        Forms that were compared (one entry for a fixed degree): an int
        ``d`` for degree ``d`` in ``x``, ``"1/x deg d"`` for degree ``d`` in ``1 / x``.
    bic : tuple of float
        BIC of each candidate, same order.
    variable : {"x", "1/x"}
        The variable ``u`` of the polynomial.
    """

    coefficients: np.ndarray
    covariance: np.ndarray
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    n_clipped: int = 0
    candidates: tuple = ()
    bic: tuple = ()
    variable: str = "x"

    def __post_init__(self):
        c = readonly_array(self.coefficients)
        cov = readonly_array(self.covariance)
        if c.ndim != 1 or c.size < 1:
            raise ConfigError(f"coefficients = {self.coefficients!r}; expected a 1-D sequence of >= 1 numbers")
        if cov.shape != (c.size, c.size):
            raise ConfigError(f"covariance shape {cov.shape}; expected {(c.size, c.size)} for {c.size} coefficients")
        object.__setattr__(self, "coefficients", c)
        object.__setattr__(self, "covariance", cov)
        if self.variable not in VARIABLES:
            raise ConfigError(f"variable = {self.variable!r}; allowed {list(VARIABLES)}")
        object.__setattr__(self, "candidates", tuple(d if isinstance(d, str) else int(d) for d in self.candidates))
        object.__setattr__(self, "bic", tuple(float(b) for b in self.bic))

    @property
    def degree(self) -> int:
        """Polynomial degree (in :attr:`variable`)."""
        return int(self.coefficients.size - 1)

    @property
    def form(self) -> str:
        """Short label of the form: ``"deg d"`` (in ``x``) or ``"1/x deg d"``."""
        return form_label(self.variable, self.degree)

    def design(self, x) -> np.ndarray:
        """Design matrix ``u^k`` (``u = x`` or ``1 / x``), shape ``x.shape + (degree + 1,)``."""
        return _design(self.variable, np.asarray(x, dtype=float), self.degree)

    def __call__(self, x) -> np.ndarray:
        """Evaluate the curve at ``x`` (dimensionless)."""
        return self.design(x) @ self.coefficients

    def std(self, x) -> np.ndarray:
        """1-sigma uncertainty of the curve at ``x`` from the coefficient covariance."""
        return _std_from_covariance(self.design(x), self.covariance)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` coefficient vectors from the Gaussian of the fit, shape ``(size, degree + 1)``."""
        return rng.multivariate_normal(self.coefficients, self.covariance, size=size, method="svd")


@dataclass(frozen=True, eq=False)
class SurfaceFit:
    """Surface ``ratio(x, i) = sum_jk c_jk x^j t^k`` with ``t = i / 90 deg``.

    Attributes
    ----------
    coefficients : ndarray, shape (degree_x + 1, degree_inclination + 1)
        ``c_jk``; row ``j`` is the power of ``x``, column ``k`` that of ``t``.
    covariance : ndarray
        Covariance of ``coefficients.ravel()`` (C order: ``j`` major).
    inclination_range : tuple of float
        Inclinations spanned by the mocks, deg.
    chi2, dof, n_points, candidates, bic
        As for :class:`PolynomialFit`; ``candidates`` holds ``(degree_x,
        degree_inclination)`` pairs.
    """

    coefficients: np.ndarray
    covariance: np.ndarray
    inclination_range: tuple
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    candidates: tuple = ()
    bic: tuple = ()

    def __post_init__(self):
        c = readonly_array(self.coefficients)
        if c.ndim != 2:
            raise ConfigError(f"surface coefficients shape {c.shape}; expected (degree_x + 1, degree_inclination + 1)")
        cov = readonly_array(self.covariance)
        if cov.shape != (c.size, c.size):
            raise ConfigError(f"surface covariance shape {cov.shape}; expected {(c.size, c.size)}")
        object.__setattr__(self, "coefficients", c)
        object.__setattr__(self, "covariance", cov)
        object.__setattr__(self, "inclination_range", tuple(float(v) for v in self.inclination_range))
        object.__setattr__(self, "candidates", tuple(tuple(int(v) for v in p) for p in self.candidates))
        object.__setattr__(self, "bic", tuple(float(b) for b in self.bic))

    @property
    def degree_x(self) -> int:
        """Degree in ``x``."""
        return int(self.coefficients.shape[0] - 1)

    @property
    def degree_inclination(self) -> int:
        """Degree in ``t = inclination / 90 deg``."""
        return int(self.coefficients.shape[1] - 1)

    def design(self, x, inclination) -> np.ndarray:
        """Design matrix ``x^j t^k``, shape ``broadcast.shape + (n_coefficients,)``."""
        x, inc = np.broadcast_arrays(np.asarray(x, float), np.asarray(inclination, float))
        return _surface_design(x, inc / INCLINATION_SCALE, self.degree_x, self.degree_inclination)

    def __call__(self, x, inclination) -> np.ndarray:
        """Evaluate at ``x`` (dimensionless) and ``inclination`` (deg)."""
        return self.design(x, inclination) @ self.coefficients.ravel()

    def std(self, x, inclination) -> np.ndarray:
        """1-sigma uncertainty of the surface from the coefficient covariance."""
        return _std_from_covariance(self.design(x, inclination), self.covariance)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` raveled coefficient vectors, shape ``(size, n_coefficients)``."""
        return rng.multivariate_normal(self.coefficients.ravel(), self.covariance, size=size, method="svd")


def form_label(variable: str, degree: int) -> str:
    """``"deg d"`` for a polynomial in ``x``, ``"1/x deg d"`` for one in ``1 / x``."""
    return f"deg {degree}" if variable == "x" else f"{variable} deg {degree}"


def _design(variable: str, x, d: int) -> np.ndarray:
    """Design matrix ``u^k``, k = 0..d, ``u = x`` or ``1 / x`` (x > 0), shape ``x.shape + (d + 1,)``."""
    u = x if variable == "x" else 1.0 / x
    return u[..., None] ** np.arange(d + 1)


# --------------------------------------------------------------------------- least squares and BIC


def _wls(a, r, w):
    """Weighted linear least squares ``r ~ a @ c`` with weights ``w`` (inverse variances).

    Parameters
    ----------
    a : ndarray, shape (n, k)
        Design matrix.
    r : ndarray, shape (n,)
        Data.
    w : ndarray, shape (n,)
        Weights, > 0.

    Returns
    -------
    coefficients : ndarray, shape (k,)
    covariance : ndarray, shape (k, k)
        ``(a^T W a)^-1`` (pseudo-inverse if singular), not scaled by ``chi^2 / dof``.
    chi2 : float
        ``sum w (r - a c)^2``.
    """
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], r * sw, rcond=None)
    ata = (a * w[:, None]).T @ a
    try:
        cov = np.linalg.inv(ata)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(ata)
    chi2 = float(np.sum(w * (r - a @ coef) ** 2))
    return coef, cov, chi2


def _best_by_bic(a_of, r, w, cands, n_coef):
    """Fit every candidate with the fixed weights and keep the one of least BIC = chi2 + k ln n.

    Returns (candidate, coefficients, scaled covariance, chi2, dof, bic of every candidate).
    """
    n = r.size
    fits = []
    for cand in cands:
        coef, cov, chi2 = _wls(a_of(cand), r, w)
        fits.append((coef, cov, chi2, n_coef(cand)))
    bic = [chi2 + k * math.log(n) for _, _, chi2, k in fits]
    best = int(np.argmin(bic))
    coef, cov, chi2, k = fits[best]
    dof = n - k
    scale = chi2 / dof if dof > 0 else 1.0
    return cands[best], coef, cov * scale, chi2, dof, bic


# --------------------------------------------------------------------------- curves ratio(x)


def _candidate_degrees(x, degree) -> list:
    """Degrees that ``x`` can constrain: more distinct values than coefficients and >= 1 degree of freedom.

    Parameters
    ----------
    x : ndarray
        ``x`` of the mocks to be fitted.
    degree : "auto" or int
        ``"auto"``: :data:`DEGREE_CANDIDATES`; otherwise that degree only.

    Returns
    -------
    list of int
        Possibly empty.
    """
    n, n_distinct = x.size, np.unique(x).size
    cands = list(DEGREE_CANDIDATES) if degree == "auto" else [int(degree)]
    return [d for d in cands if d + 1 <= n_distinct and n - (d + 1) >= 1]


def residual_scatter(x, r, keep, min_per_bin: int, degree):
    """Local scatter ``s(x)`` of the residuals about an unweighted fit of the highest candidate degree.

    Parameters
    ----------
    x, r : ndarray
        Resolution and ratio of every mock.
    keep : ndarray of bool
        Mocks that take part in the fit and the scatter.
    min_per_bin : int
    degree : "auto" or int

    Returns
    -------
    (ndarray, ndarray) or None
        ``s(x)`` and the residuals, for every mock (kept or not); None when
        no degree is feasible for the kept mocks.
    """
    cands = _candidate_degrees(x[keep], degree)
    if not cands:
        return None
    d = max(cands)
    a = x[:, None] ** np.arange(d + 1)
    coef, _, _ = _wls(a[keep], r[keep], np.ones(int(keep.sum())))
    res = r - a @ coef
    return local_scatter(x[keep], res[keep], x, min_per_bin), res


def _scaled_fit(x, r, sigma, cand):
    """Coefficients and covariance (scaled by chi2/dof) of the weighted fit of ``cand = (variable, degree)``."""
    variable, d = cand
    coef, cov, chi2 = _wls(_design(variable, x, d), r, 1.0 / sigma**2)
    dof = x.size - (d + 1)
    return coef, (cov * chi2 / dof if dof > 0 else cov)


def _turning_points(y, xx, tol) -> list:
    """(kind, x) of the interior extrema the curve comes back from by more than ``tol`` on both sides.

    At an interior maximum (minimum) the curve falls (rises) on both sides; the turning point counts when the
    smaller of the two excursions, each to the curve's extreme value on that side, exceeds ``tol`` there.
    """
    y = np.asarray(y, float)
    tol = np.broadcast_to(np.asarray(tol, float), y.shape)
    dy = np.diff(y)
    out = []
    for k in range(1, y.size - 1):
        if dy[k - 1] > 0 >= dy[k] or dy[k - 1] < 0 <= dy[k]:
            sgn = 1.0 if dy[k - 1] > 0 else -1.0  # +1: a maximum
            left, right = sgn * (y[k] - y[:k + 1]), sgn * (y[k] - y[k:])
            il, ir = int(np.argmax(left)), k + int(np.argmax(right))
            if left[il] > tol[il] and right[ir - k] > tol[ir]:
                out.append(("max" if sgn > 0 else "min", float(xx[k])))
    return out


def shape_problem(coef, x_lo: float, x_hi: float, bounds=RATIO_BOUNDS, allow_turnover=False,
                  covariance=None, variable: str = "x") -> str | None:
    """Why the polynomial ``coef`` is not an admissible ratio curve on ``[x_lo, x_hi]``, or None.

    It must stay within ``bounds`` and be monotone over the range (no
    turning point inside the data) except where ``allow_turnover`` allows
    one: True allows any; a sequence of ``(kind, x_from, x_to)`` windows
    (kind "max" or "min", from the running medians) allows a turning point
    of that kind inside a window. With the coefficient ``covariance``, a
    turning point counts only where the curve comes back from its extremum
    by more than :data:`TURNOVER_SIGMA` times its own 1-sigma uncertainty or
    :data:`TURNOVER_MAX`, whichever is smaller (a wiggle within the errors
    is not a turnover, but a visible turn-down is, however sparse the data).
    ``variable`` (``"x"`` or ``"1/x"``) is the variable of the polynomial.
    """
    xx = np.linspace(x_lo, x_hi, 200)
    coef = np.asarray(coef, float)
    a = _design(variable, xx, coef.size - 1)
    y = a @ coef
    if bounds is not None and (y.min() < bounds[0] or y.max() > bounds[1]):
        return f"leaves [{bounds[0]:g}, {bounds[1]:g}] ({y.min():.3g} to {y.max():.3g})"
    if allow_turnover is True:
        return None
    tol = 1e-9 * max(1.0, float(np.abs(y).max()))
    if covariance is not None:
        tol = tol + np.minimum(TURNOVER_SIGMA * _std_from_covariance(a, covariance), TURNOVER_MAX)
    windows = tuple(allow_turnover or ())
    for kind, x_t in _turning_points(y, xx, tol):
        if not any(k == kind and lo <= x_t <= hi for k, lo, hi in windows):
            return f"turns over inside the mocks' x range (a {'maximum' if kind == 'max' else 'minimum'} " \
                   f"at x = {x_t:.2g} the running medians do not show)"
    return None


def fit_polynomial(x, r, sigma, degree, *, n_clipped: int = 0, bounds=None,
                   allow_turnover: bool = True) -> PolynomialFit | None:
    """Weighted polynomial fit of ``r(x)``, degree fixed or chosen by BIC among admissible degrees.

    Parameters
    ----------
    x, r : ndarray
        Resolution and ratio of the mocks fitted.
    sigma : ndarray
        Local scatter of each mock, > 0; weights ``1 / sigma^2``.
    degree : "auto" or int
    n_clipped : int
        Mocks left out before the fit (recorded).
    bounds : (float, float) or None
        With ``degree="auto"``, only degrees whose fit stays within
        ``bounds`` over the mocks' x range and (unless ``allow_turnover``)
        is monotone there are candidates (:func:`shape_problem`); when none
        is, degree 0 and 1 are fitted and the one of least BIC is returned
        (its shape problem is for the caller to report).
    allow_turnover : bool or sequence of (kind, x_from, x_to)
        Turning points the running medians show (see :func:`shape_problem`).

    Returns
    -------
    PolynomialFit or None
        None when no candidate degree is feasible (more distinct x than coefficients and >= 1 degree of freedom).
    """
    cands = [("x", d) for d in _candidate_degrees(x, degree)]
    if not cands:
        return None
    if degree == "auto" and float(x.min()) > 0.0:
        n, n_distinct = x.size, np.unique(x).size
        cands += [("1/x", d) for d in INVERSE_DEGREES if d + 1 <= n_distinct and n - (d + 1) >= 1]
    if bounds is not None and degree == "auto":
        fine = []
        for cand in cands:
            coef, cov = _scaled_fit(x, r, sigma, cand)
            if shape_problem(coef, float(x.min()), float(x.max()), bounds, allow_turnover, cov, cand[0]) is None:
                fine.append(cand)
        cands = fine or [("x", d) for d in (0, 1) if d + 1 <= np.unique(x).size and x.size - (d + 1) >= 1]
        if not cands:
            return None
    (variable, d), coef, cov, chi2, dof, bic = _best_by_bic(lambda c: _design(c[0], x, c[1]), r, 1.0 / sigma**2,
                                                            cands, lambda c: c[1] + 1)
    labels = tuple(dd if v == "x" else form_label(v, dd) for v, dd in cands)
    return PolynomialFit(coefficients=coef, covariance=cov, chi2=chi2, dof=dof, n_points=x.size,
                         n_clipped=n_clipped, candidates=labels, bic=tuple(bic), variable=variable)


# --------------------------------------------------------------------------- surfaces ratio(x, inclination)


def _surface_design(x, t, dx: int, di: int) -> np.ndarray:
    """Design matrix ``x^j t^k`` (``j`` major), shape ``x.shape + ((dx + 1) * (di + 1),)``.

    Parameters
    ----------
    x, t : ndarray
        Resolution and scaled inclination ``t = inclination / 90 deg``, same shape.
    dx, di : int
        Degrees in ``x`` and ``t``.
    """
    j = np.arange(dx + 1)[:, None]
    k = np.arange(di + 1)[None, :]
    return (x[..., None, None] ** j * t[..., None, None] ** k).reshape(x.shape + ((dx + 1) * (di + 1),))


def _surface_candidates(x, inc, degree, surface_degree) -> list:
    n, n_x = x.size, np.unique(x).size
    n_i = np.unique(np.round(inc, GRAD_DECIMALS)).size
    if surface_degree == "auto":
        dxs = list(DEGREE_CANDIDATES) if degree == "auto" else [int(degree)]
        cands = [(dx, di) for dx in dxs for di in range(min(MAX_DEGREE_INCLINATION, n_i - 1) + 1)]
    else:
        cands = [tuple(int(v) for v in surface_degree)]
    return [(dx, di) for dx, di in cands if dx + 1 <= n_x and di + 1 <= n_i and n - (dx + 1) * (di + 1) >= 1]


def fit_surface(x, inc, r, min_per_bin: int, degree, surface_degree) -> SurfaceFit | None:
    """Weighted fit of ``r(x, inclination)``, degrees fixed or chosen by BIC.

    Parameters
    ----------
    x, inc, r : ndarray
        Resolution, inclination (deg) and ratio of the mocks fitted.
    min_per_bin : int
        For the x bins of the local scatter.
    degree : "auto" or int
        Degree in ``x`` (``"auto"``: 1..4).
    surface_degree : "auto" or (int, int)
        ``(degree_x, degree_inclination)``; ``"auto"``: ``degree`` in ``x``
        and 0..min(2, n_inclinations - 1) in inclination, by BIC.

    Returns
    -------
    SurfaceFit or None
        None when no candidate has enough distinct ``x`` and inclinations.
    """
    t = inc / INCLINATION_SCALE
    cands = _surface_candidates(x, inc, degree, surface_degree)
    if not cands:
        return None
    # weights from the scatter about an unweighted fit of the largest candidate
    dx1, di1 = max(cands, key=lambda p: (p[0] + 1) * (p[1] + 1))
    a1 = _surface_design(x, t, dx1, di1)
    coef1, _, _ = _wls(a1, r, np.ones(x.size))
    sigma = local_scatter(x, r - a1 @ coef1, x, min_per_bin)
    (dx, di), coef, cov, chi2, dof, bic = _best_by_bic(lambda p: _surface_design(x, t, *p), r, 1.0 / sigma**2,
                                                       cands, lambda p: (p[0] + 1) * (p[1] + 1))
    return SurfaceFit(coefficients=coef.reshape(dx + 1, di + 1), covariance=cov,
                      inclination_range=(float(inc.min()), float(inc.max())), chi2=chi2, dof=dof, n_points=x.size,
                      candidates=tuple(cands), bic=tuple(bic))
