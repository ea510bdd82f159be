"""Beam-smearing correction curves from a suite of mocks.

A correction curve is the ratio of the measured to the intrinsic metallicity
gradient, ``ratio = grad_z_measured / grad_z_true``, as a function of the
resolution parameter ``x = 2 r_eff / psf_fwhm`` (``x_resolution``;
dimensionless), one curve per intrinsic ``|grad_z|`` (dex/kpc). It is derived
from a results table of a suite (one row per mock) and applied to real
gradients by :mod:`mockzgrad.corrections.correct`.

Inputs
------
The results table needs the columns

``status``
    ``"ok"`` or ``"failed"``; only ``"ok"`` rows are used.
``grad_z_true``
    Intrinsic gradient, dex/kpc.
``grad_z_measured``
    Recovered gradient (posterior median), dex/kpc.
``x_resolution``
    ``2 r_eff / psf_fwhm`` of the mock, dimensionless; > 0.

and may have ``grad_z_measured_lo`` / ``grad_z_measured_hi`` (15.87th /
84.13th percentiles, dex/kpc; carried but not used), ``snr`` (the suite's S/N
definition; needed for the S/N check), ``inclination`` (deg; needed for
the correction surface) and ``mock_index`` (names rows in error messages).
Other column names are mapped with ``derive_curves(..., columns=...)``.

What is derived
---------------
For every group of mocks of one intrinsic ``|grad_z|`` and every sign
(``"both"``: positive and negative gradients pooled, ``"pos"``, ``"neg"``):

* running median of the ratio in bins of ``x`` with the 15.87th / 84.13th
  percentiles ("16/84", the scatter of single mocks about the median);
* a polynomial ``ratio(x) = sum_k c_k x^k`` fitted to the individual mocks by
  weighted least squares, each mock weighted by ``1 / s(x)^2`` where ``s(x)``
  is the local scatter of the mocks about a preliminary unweighted fit of the
  highest candidate degree (half the 16-84 width of the residuals in bins of
  >= 25 mocks, interpolated linearly in ``x``); mocks farther than
  ``clip_sigma`` times the local scatter from the running median (gross
  outliers), then from the preliminary fit, are left out (``n_clipped``). The coefficient covariance is
  ``(X^T W X)^-1`` scaled by ``chi^2 / dof`` (as for an unknown overall error
  scale); it is the uncertainty of the *mean* curve, not the scatter of a
  single galaxy about it;
* when the mocks' ``inclination`` takes >= 3 distinct values, a surface
  ``ratio(x, i) = sum_jk c_jk x^j t^k`` with ``t = inclination / 90 deg``.

Degree choice (``degree="auto"``): the polynomial degree ``d`` in 1..4 that
minimises the Bayesian information criterion ``BIC = chi^2 + (d + 1) ln n``
(Schwarz 1978, Ann. Stat. 6, 461), ``chi^2`` with the fixed weights above and
``n`` the number of mocks fitted; a degree is a candidate only if the fit has
more distinct ``x`` values than coefficients and at least one degree of
freedom. The surface uses the same rule over ``degree_x`` in 1..4 and
``degree_inclination`` in 0..min(2, n_distinct_inclinations - 1).

Checks
------
Written in :attr:`CorrectionCurves.checks` and the ECSV meta; a flagged check
raises a :class:`CurvesCheckWarning`.

``snr``
    Per ``|grad_z|`` group (signs pooled), the mocks are split at the median
    S/N (``snr < median`` vs ``snr >= median``).
``sign``
    Per group, positive vs negative intrinsic gradients.

The two halves are binned in ``x`` on common edges (each bin holds at least
``min_per_bin`` mocks of each half) and the running medians of the
*residuals from the pooled polynomial fit* (from the pooled surface when
there is one) are compared (residuals remove the trend of the ratio within a
bin, and the inclination mix). Reported: ``max_diff`` (largest absolute
difference of the medians, ratio units), ``max_diff_scatter`` (the same
difference over the local scatter of single mocks ``s = sqrt((s_a^2 +
s_b^2) / 2)``, ``s_a`` the half 16-84 width of half ``a``'s residuals in
bins of >= 25 mocks: an effect size), ``max_diff_sigma`` (the difference
over its standard error ``sqrt(pi / 2) sqrt(s_a^2 / n_a + s_b^2 / n_b)``: a
significance in the bin where it is largest), ``global_sigma`` (the same significance corrected for having
looked at ``n_bins`` bins: two-sided ``p`` per bin, ``1 - (1 - p)^n_bins``
overall, converted back to Gaussian sigma) and ``flag``
(``global_sigma > check_sigma``).

File format
-----------
:meth:`CorrectionCurves.write` writes one ECSV file (astropy): the table has
one row per (``abs_grad``, ``sign``, x bin) with the running medians; the
polynomial and surface fits, the checks, the settings and the full provenance
are in the table meta (see :meth:`CorrectionCurves.to_table`).
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from astropy.table import Table
from scipy import special

from ..errors import ConfigError, DataError, MockzgradWarning

__all__ = [
    "suite_provenance",
    "CorrectionCurves",
    "Curve",
    "PolynomialFit",
    "SurfaceFit",
    "RunningMedian",
    "derive_curves",
    "assign_groups",
    "CurvesWarning",
    "CurvesCheckWarning",
    "OutsideCurvesWarning",
    "PERCENTILES",
    "SIGNS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_PROVENANCE",
    "DEGREE_RULE",
    "INCLINATION_SCALE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

#: Lower / upper percentiles, 100 Phi(-1) and 100 Phi(+1) (the "16/84" of the literature).
PERCENTILES = (
    50.0 * math.erfc(1.0 / math.sqrt(2.0)),
    100.0 - 50.0 * math.erfc(1.0 / math.sqrt(2.0)),
)
#: Sign labels of the curves: signs pooled, positive and negative intrinsic gradients.
SIGNS = ("both", "pos", "neg")
#: Columns a results table must have.
REQUIRED_COLUMNS = ("status", "grad_z_true", "grad_z_measured", "x_resolution")
#: Optional columns: S/N (for the S/N check), inclination in deg (for surfaces), a row id for messages.
OPTIONAL_COLUMNS = ("snr", "inclination", "mock_index")
#: Keys the provenance mapping must have (others are kept as given).
REQUIRED_PROVENANCE = ("suite", "package_version", "recipe", "calibrations")
#: Inclination scale of the surface variable ``t = inclination / INCLINATION_SCALE``, deg.
INCLINATION_SCALE = 90.0
#: Name and version written in the ECSV meta.
FORMAT_NAME = "mockzgrad.correction_curves"
FORMAT_VERSION = 1
#: Decimals |grad_z_true| is rounded to before grouping (1e-6 dex/kpc).
GRAD_DECIMALS = 6
#: The rule that chooses the polynomial degree when ``degree="auto"``.
DEGREE_RULE = (
    "degree d in 1..4 minimising BIC = chi2 + (d + 1) ln(n) (Schwarz 1978), chi2 of the weighted "
    "least-squares fit to the individual mocks with weights 1/s(x)^2, s(x) = half 16-84 width of the "
    "residuals about an unweighted fit of the highest candidate degree in x bins of >= 25 mocks, "
    "interpolated in x; candidates need more distinct x than coefficients "
    "and dof >= 1; surfaces: (degree_x in 1..4, degree_inclination in 0..min(2, n_incl - 1)) "
    "by the same criterion"
)

_DEGREE_CANDIDATES = (1, 2, 3, 4)
_MAX_DEGREE = 8
_MAX_X_BINS = 12
_MAX_DISCRETE_GRADS = 10
_AUTO_GRAD_BINS = 4
_SIGMA_FLOOR = 1e-6
_MIN_PER_SIGMA_BIN = 25
_MEDIAN_SE = math.sqrt(math.pi / 2.0)  # standard error of a median = this * sigma / sqrt(n)


class CurvesWarning(MockzgradWarning):
    """A correction curve could not be derived as asked, or is used where it is weak."""


class CurvesCheckWarning(CurvesWarning):
    """A consistency check (S/N or sign dependence of the curves) found a significant difference."""


class OutsideCurvesWarning(CurvesWarning):
    """A correction is evaluated outside the x (or inclination) range covered by the mocks."""


# --------------------------------------------------------------------------- data classes


def _frozen_array(values, dtype=float) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class RunningMedian:
    """Running median of the ratio in bins of ``x``.

    Attributes
    ----------
    x_lo, x_hi : ndarray
        Bin edges in ``x = 2 r_eff / psf_fwhm``; a bin is ``[x_lo, x_hi)``,
        the last one closed.
    x_center : ndarray
        Median ``x`` of the mocks in each bin.
    n : ndarray of int
        Mocks in each bin.
    median, p16, p84 : ndarray
        Median and 15.87th / 84.13th percentiles of the ratio; NaN in a bin
        with fewer than ``min_per_bin`` mocks (possible only with explicit
        ``x_bins``).
    """

    x_lo: np.ndarray
    x_hi: np.ndarray
    x_center: np.ndarray
    n: np.ndarray
    median: np.ndarray
    p16: np.ndarray
    p84: np.ndarray

    def __post_init__(self):
        for name in ("x_lo", "x_hi", "x_center", "median", "p16", "p84"):
            object.__setattr__(self, name, _frozen_array(getattr(self, name)))
        object.__setattr__(self, "n", _frozen_array(self.n, dtype=np.int64))

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.n.size)

    @property
    def scatter(self) -> np.ndarray:
        """Half the 16-84 width of each bin, ``(p84 - p16) / 2``; ratio units."""
        return 0.5 * (self.p84 - self.p16)

    @classmethod
    def empty(cls) -> "RunningMedian":
        """A running median with no bins (curves given as polynomials)."""
        e = np.zeros(0)
        return cls(x_lo=e, x_hi=e, x_center=e, n=np.zeros(0, int), median=e, p16=e, p84=e)


@dataclass(frozen=True, eq=False)
class PolynomialFit:
    """Polynomial ``ratio(x) = sum_k c_k x^k``.

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
    candidates : tuple of int
        Degrees that were compared (one entry for a fixed degree).
    bic : tuple of float
        BIC of each candidate, same order.
    """

    coefficients: np.ndarray
    covariance: np.ndarray
    chi2: float = math.nan
    dof: int = 0
    n_points: int = 0
    n_clipped: int = 0
    candidates: tuple = ()
    bic: tuple = ()

    def __post_init__(self):
        c = _frozen_array(self.coefficients)
        cov = _frozen_array(self.covariance)
        if c.ndim != 1 or c.size < 1:
            raise ConfigError(f"coefficients = {self.coefficients!r}; expected a 1-D sequence of >= 1 numbers")
        if cov.shape != (c.size, c.size):
            raise ConfigError(f"covariance shape {cov.shape}; expected {(c.size, c.size)} for {c.size} coefficients")
        object.__setattr__(self, "coefficients", c)
        object.__setattr__(self, "covariance", cov)
        object.__setattr__(self, "candidates", tuple(int(d) for d in self.candidates))
        object.__setattr__(self, "bic", tuple(float(b) for b in self.bic))

    @property
    def degree(self) -> int:
        """Polynomial degree."""
        return int(self.coefficients.size - 1)

    def design(self, x) -> np.ndarray:
        """Design matrix ``x^k``, shape ``x.shape + (degree + 1,)``."""
        x = np.asarray(x, dtype=float)
        return x[..., None] ** np.arange(self.coefficients.size)

    def __call__(self, x) -> np.ndarray:
        """Evaluate the polynomial at ``x`` (dimensionless)."""
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float), self.coefficients)

    def std(self, x) -> np.ndarray:
        """1-sigma uncertainty of the curve at ``x`` from the coefficient covariance."""
        a = self.design(x)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", a, self.covariance, a), 0.0))

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
        c = _frozen_array(self.coefficients)
        if c.ndim != 2:
            raise ConfigError(f"surface coefficients shape {c.shape}; expected (degree_x + 1, degree_inclination + 1)")
        cov = _frozen_array(self.covariance)
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
        a = self.design(x, inclination)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", a, self.covariance, a), 0.0))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` raveled coefficient vectors, shape ``(size, n_coefficients)``."""
        return rng.multivariate_normal(self.coefficients.ravel(), self.covariance, size=size, method="svd")


@dataclass(frozen=True, eq=False)
class Curve:
    """One correction curve: one intrinsic ``|grad_z|`` and one sign.

    Attributes
    ----------
    abs_grad : float
        Intrinsic ``|grad_z|`` of the group, dex/kpc (for binned gradients,
        the median ``|grad_z_true|`` of the group), rounded to 1e-6.
    sign : str
        ``"both"``, ``"pos"`` or ``"neg"``.
    fit : PolynomialFit
        ``ratio(x)``.
    running : RunningMedian
        Running median of the mocks' ratios.
    x_range : tuple of float
        Smallest and largest ``x`` of the mocks (the valid range of the curve).
    n_mocks : int
        Mocks in the group and sign.
    grad_range : tuple of float
        Smallest and largest ``|grad_z_true|`` of the mocks, dex/kpc.
    inclination_range : tuple of float
        Inclinations of the mocks, deg; ``(nan, nan)`` if unknown.
    surface : SurfaceFit or None
        ``ratio(x, inclination)`` when the suite varied inclination.
    """

    abs_grad: float
    sign: str
    fit: PolynomialFit
    running: RunningMedian
    x_range: tuple
    n_mocks: int = 0
    grad_range: tuple = (math.nan, math.nan)
    inclination_range: tuple = (math.nan, math.nan)
    surface: SurfaceFit | None = None

    def __post_init__(self):
        if self.sign not in SIGNS:
            raise ConfigError(f"sign = {self.sign!r}; allowed {SIGNS}")
        object.__setattr__(self, "abs_grad", float(self.abs_grad))
        object.__setattr__(self, "x_range", tuple(float(v) for v in self.x_range))
        object.__setattr__(self, "grad_range", tuple(float(v) for v in self.grad_range))
        object.__setattr__(self, "inclination_range", tuple(float(v) for v in self.inclination_range))
        object.__setattr__(self, "n_mocks", int(self.n_mocks))

    def ratio(self, x, inclination=None) -> np.ndarray:
        """Fitted ratio at ``x``; from the surface when ``inclination`` (deg) is given."""
        if inclination is None:
            return self.fit(x)
        if self.surface is None:
            raise ConfigError(
                f"inclination = {inclination!r} given but the curve |grad_z| = {self.abs_grad:g} dex/kpc, "
                f"sign {self.sign!r} has no surface: the suite did not vary inclination "
                f"(mocks at {self.inclination_range[0]:g}-{self.inclination_range[1]:g} deg); "
                "allowed: inclination=None")
        return self.surface(x, inclination)

    def ratio_std(self, x, inclination=None) -> np.ndarray:
        """1-sigma uncertainty of :meth:`ratio` from the coefficient covariance."""
        if inclination is None:
            return self.fit.std(x)
        self.ratio(x, inclination)  # raises if no surface
        return self.surface.std(x, inclination)


@dataclass(frozen=True, eq=False)
class CorrectionCurves:
    """Correction curves of one suite, with their checks and provenance.

    Build with :func:`derive_curves`, :meth:`from_polynomials` or
    :meth:`read`.

    Attributes
    ----------
    curves : tuple of Curve
        Sorted by ``abs_grad`` then sign (``both``, ``pos``, ``neg``).
    provenance : dict
        Suite, package version, recipe, calibrations and anything else given.
    checks : dict
        S/N and sign checks (see the module docstring).
    settings : dict
        How the curves were derived (degree rule, binning, grouping of
        ``|grad_z|``, mocks excluded and why).
    created : str
        UTC time of derivation, ISO 8601.
    mockzgrad_version : str
        Version of mockzgrad that derived the curves.
    """

    curves: tuple
    provenance: dict
    checks: dict
    settings: dict
    created: str
    mockzgrad_version: str

    def __post_init__(self):
        order = {s: i for i, s in enumerate(SIGNS)}
        curves = tuple(sorted(self.curves, key=lambda c: (c.abs_grad, order[c.sign])))
        if not curves:
            raise DataError("no correction curve could be derived (0 curves)")
        seen = set()
        for c in curves:
            key = (round(c.abs_grad, GRAD_DECIMALS), c.sign)
            if key in seen:
                raise ConfigError(f"two curves for |grad_z| = {c.abs_grad:g} dex/kpc, sign {c.sign!r}")
            seen.add(key)
        object.__setattr__(self, "curves", curves)

    # ----------------------------------------------------------- lookups
    @property
    def signs(self) -> tuple:
        """Signs that have curves, in the order of :data:`SIGNS`."""
        present = {c.sign for c in self.curves}
        return tuple(s for s in SIGNS if s in present)

    @property
    def has_surface(self) -> bool:
        """True when every curve has a ``(x, inclination)`` surface."""
        return all(c.surface is not None for c in self.curves)

    def abs_grads(self, sign: str = "both") -> np.ndarray:
        """Intrinsic ``|grad_z|`` values (dex/kpc) that have a curve of ``sign``, ascending."""
        self._check_sign(sign)
        return np.array([c.abs_grad for c in self.curves if c.sign == sign])

    def _check_sign(self, sign):
        if sign not in self.signs:
            raise ConfigError(f"sign = {sign!r}; allowed for these curves: {self.signs}")

    def curve(self, abs_grad: float, sign: str = "both") -> Curve:
        """The curve of intrinsic ``|grad_z| = abs_grad`` (dex/kpc, matched to 1e-6) and ``sign``."""
        self._check_sign(sign)
        g = abs(float(abs_grad))
        for c in self.curves:
            if c.sign == sign and abs(c.abs_grad - g) <= 0.5 * 10.0**-GRAD_DECIMALS:
                return c
        raise ConfigError(
            f"abs_grad = {abs_grad!r} dex/kpc has no {sign!r} curve; allowed: "
            f"{[float(v) for v in self.abs_grads(sign)]}")

    def ratio(self, x, abs_grad: float, sign: str = "both", inclination=None) -> np.ndarray:
        """Fitted ratio measured / intrinsic gradient.

        Parameters
        ----------
        x : float or array_like
            ``2 r_eff / psf_fwhm``, dimensionless. Values outside
            :meth:`x_range` are extrapolated without warning.
        abs_grad : float
            Intrinsic ``|grad_z|`` of one of the curves, dex/kpc.
        sign : {"both", "pos", "neg"}
            Which curve.
        inclination : float or array_like, optional
            Inclination, deg; evaluates the ``(x, inclination)`` surface
            (an error if the curves have none). ``None`` uses the curve of
            ``x`` alone, i.e. averaged over the suite's inclinations.

        Returns
        -------
        ndarray
            Ratio, broadcast shape of ``x`` and ``inclination``.
        """
        return self.curve(abs_grad, sign).ratio(x, inclination)

    def ratio_std(self, x, abs_grad: float, sign: str = "both", inclination=None) -> np.ndarray:
        """1-sigma uncertainty of :meth:`ratio` from the coefficient covariance."""
        return self.curve(abs_grad, sign).ratio_std(x, inclination)

    def x_range(self, abs_grad: float | None = None, sign: str = "both") -> tuple:
        """Range of ``x`` covered by the mocks.

        Parameters
        ----------
        abs_grad : float, optional
            One curve's ``|grad_z|`` (dex/kpc). ``None``: the intersection of
            the ranges of every curve of ``sign`` (where all are valid).
        sign : {"both", "pos", "neg"}

        Returns
        -------
        (float, float)
        """
        if abs_grad is not None:
            return self.curve(abs_grad, sign).x_range
        self._check_sign(sign)
        ranges = [c.x_range for c in self.curves if c.sign == sign]
        return (max(r[0] for r in ranges), min(r[1] for r in ranges))

    # ----------------------------------------------------------- construction
    @classmethod
    def from_polynomials(cls, coefficients: Mapping, *, x_range, provenance: Mapping,
                         covariances: Mapping | None = None) -> "CorrectionCurves":
        """Curves given directly as polynomials (e.g. published ones).

        Parameters
        ----------
        coefficients : mapping
            ``{abs_grad: [c0, c1, ...]}`` (sign ``"both"``) or
            ``{(abs_grad, sign): [...]}``; ``abs_grad`` in dex/kpc,
            coefficients of ``ratio(x) = sum_k c_k x^k`` lowest order first.
        x_range : (float, float) or mapping
            Valid range of ``x``, for all curves or per key.
        provenance : mapping
            As for :func:`derive_curves`.
        covariances : mapping, optional
            Coefficient covariances per key; zero if not given.
        """
        prov = _check_provenance(provenance)
        curves = []
        for key, coef in coefficients.items():
            g, sign = (key if isinstance(key, tuple) else (key, "both"))
            coef = np.asarray(coef, dtype=float)
            cov = np.zeros((coef.size, coef.size)) if covariances is None or key not in covariances \
                else np.asarray(covariances[key], dtype=float)
            xr = x_range[key] if isinstance(x_range, Mapping) else x_range
            xr = _check_range("x_range", xr)
            g = _check_abs_grad(g)
            curves.append(Curve(abs_grad=g, sign=sign, fit=PolynomialFit(coefficients=coef, covariance=cov),
                                running=RunningMedian.empty(), x_range=xr, n_mocks=0,
                                grad_range=(g, g)))
        return cls(curves=tuple(curves), provenance=prov, checks={}, settings={"source": "from_polynomials"},
                   created=_now(), mockzgrad_version=_package_version())

    # ----------------------------------------------------------- I/O
    def to_table(self) -> Table:
        """The curves as an astropy Table (the ECSV layout).

        Columns, one row per (``abs_grad``, ``sign``, x bin):
        ``abs_grad`` (dex/kpc), ``sign``, ``bin``, ``x_lo``, ``x_hi``,
        ``x_center``, ``n``, ``ratio_median``, ``ratio_p16``, ``ratio_p84``,
        ``ratio_fit`` (the polynomial at ``x_center``; not read back).

        Meta: ``format``, ``format_version``, ``created``,
        ``mockzgrad_version``, ``provenance``, ``degree_rule``,
        ``settings``, ``checks`` and ``curves``: a list with, per curve,
        ``abs_grad``, ``sign``, ``n_mocks``, ``x_range``, ``grad_range``,
        ``inclination_range``, ``fit`` (``degree``, ``coefficients`` lowest
        order first, ``covariance``, ``chi2``, ``dof``, ``n_points``,
        ``n_clipped``, ``candidates``, ``bic``) and ``surface`` (``null`` or
        ``degree_x``, ``degree_inclination``, ``inclination_scale``,
        ``coefficients`` as nested lists ``[j][k]``, ``covariance`` of the
        raveled coefficients, ``inclination_range``, ``chi2``, ``dof``,
        ``n_points``, ``candidates``, ``bic``).
        """
        cols = {k: [] for k in ("abs_grad", "sign", "bin", "x_lo", "x_hi", "x_center", "n",
                                "ratio_median", "ratio_p16", "ratio_p84", "ratio_fit")}
        meta_curves = []
        for c in self.curves:
            r = c.running
            fit_at = c.fit(r.x_center)
            for i in range(r.n_bins):
                cols["abs_grad"].append(c.abs_grad)
                cols["sign"].append(c.sign)
                cols["bin"].append(i)
                cols["x_lo"].append(r.x_lo[i])
                cols["x_hi"].append(r.x_hi[i])
                cols["x_center"].append(r.x_center[i])
                cols["n"].append(r.n[i])
                cols["ratio_median"].append(r.median[i])
                cols["ratio_p16"].append(r.p16[i])
                cols["ratio_p84"].append(r.p84[i])
                cols["ratio_fit"].append(fit_at[i])
            meta_curves.append(_curve_meta(c))
        dtypes = {"sign": "U4", "bin": np.int64, "n": np.int64}
        t = Table({k: np.array(v, dtype=dtypes.get(k, float)) for k, v in cols.items()})
        desc = {
            "abs_grad": "intrinsic |grad_z| of the curve, dex/kpc",
            "sign": "both (signs pooled), pos or neg intrinsic gradients",
            "bin": "index of the x bin",
            "x_lo": "lower edge of the bin in x = 2 r_eff / psf_fwhm",
            "x_hi": "upper edge of the bin in x",
            "x_center": "median x of the mocks in the bin",
            "n": "mocks in the bin",
            "ratio_median": "median of grad_z_measured / grad_z_true",
            "ratio_p16": "15.87th percentile of the ratio",
            "ratio_p84": "84.13th percentile of the ratio",
            "ratio_fit": "fitted polynomial at x_center",
        }
        for k, d in desc.items():
            t[k].description = d
        t.meta.update({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "mockzgrad_version": self.mockzgrad_version,
            "provenance": _yaml_safe(self.provenance, "provenance"),
            "degree_rule": DEGREE_RULE,
            "settings": _yaml_safe(self.settings, "settings"),
            "checks": _yaml_safe(self.checks, "checks"),
            "curves": meta_curves,
        })
        return t

    @classmethod
    def from_table(cls, table: Table) -> "CorrectionCurves":
        """Rebuild curves from :meth:`to_table` output (e.g. read from ECSV)."""
        meta = table.meta
        if meta.get("format") != FORMAT_NAME:
            raise DataError(f"table meta format = {meta.get('format')!r}; expected {FORMAT_NAME!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"table meta format_version = {meta.get('format_version')!r}; "
                            f"supported: {FORMAT_VERSION}")
        missing = [k for k in ("curves", "provenance", "created", "mockzgrad_version") if k not in meta]
        if missing:
            raise DataError(f"table meta lacks {missing}; present: {sorted(meta)}")
        need = ("abs_grad", "sign", "x_lo", "x_hi", "x_center", "n", "ratio_median", "ratio_p16", "ratio_p84")
        absent = [k for k in need if k not in table.colnames]
        if absent:
            raise DataError(f"curves table lacks columns {absent}; present: {table.colnames}")
        curves = []
        for m in meta["curves"]:
            sel = ((np.asarray(table["abs_grad"], float) == m["abs_grad"])
                   & (np.asarray(table["sign"]).astype(str) == m["sign"]))
            rows = table[sel]
            if "bin" in rows.colnames:
                rows = rows[np.argsort(np.asarray(rows["bin"]), kind="stable")]
            running = RunningMedian(
                x_lo=np.asarray(rows["x_lo"], float), x_hi=np.asarray(rows["x_hi"], float),
                x_center=np.asarray(rows["x_center"], float), n=np.asarray(rows["n"], np.int64),
                median=np.asarray(rows["ratio_median"], float), p16=np.asarray(rows["ratio_p16"], float),
                p84=np.asarray(rows["ratio_p84"], float))
            f = m["fit"]
            fit = PolynomialFit(coefficients=f["coefficients"], covariance=f["covariance"], chi2=f["chi2"],
                                dof=f["dof"], n_points=f["n_points"], n_clipped=f["n_clipped"],
                                candidates=f["candidates"], bic=f["bic"])
            s = m.get("surface")
            surface = None
            if s is not None:
                surface = SurfaceFit(coefficients=s["coefficients"], covariance=s["covariance"],
                                     inclination_range=s["inclination_range"], chi2=s["chi2"], dof=s["dof"],
                                     n_points=s["n_points"], candidates=s["candidates"], bic=s["bic"])
            curves.append(Curve(abs_grad=m["abs_grad"], sign=m["sign"], fit=fit, running=running,
                                x_range=m["x_range"], n_mocks=m["n_mocks"], grad_range=m["grad_range"],
                                inclination_range=m["inclination_range"], surface=surface))
        return cls(curves=tuple(curves), provenance=dict(meta["provenance"]), checks=dict(meta.get("checks") or {}),
                   settings=dict(meta.get("settings") or {}), created=meta["created"],
                   mockzgrad_version=meta["mockzgrad_version"])

    def write(self, path, *, overwrite: bool = False) -> None:
        """Write the curves as ECSV (see :meth:`to_table` for the layout).

        Parameters
        ----------
        path : str or path-like
            Output file; must end in ``.ecsv``.
        overwrite : bool
            Replace an existing file.
        """
        path = os.fspath(path)
        if not path.lower().endswith(".ecsv"):
            raise ConfigError(f"path = {path!r}; correction curves are written as ECSV: allowed suffix '.ecsv'")
        if os.path.exists(path) and not overwrite:
            raise DataError(f"path = {path!r} exists; pass overwrite=True to replace it")
        self.to_table().write(path, format="ascii.ecsv", overwrite=overwrite)

    @classmethod
    def read(cls, path) -> "CorrectionCurves":
        """Read curves written by :meth:`write`."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(f"path = {path!r}: no such file")
        try:
            table = Table.read(path, format="ascii.ecsv")
        except Exception as exc:  # astropy raises many kinds for a malformed file
            raise DataError(f"path = {path!r}: not a readable ECSV file ({exc})") from exc
        return cls.from_table(table)


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _package_version() -> str:
    from .. import __version__

    return str(__version__)


def _check_abs_grad(g) -> float:
    try:
        g = float(g)
    except (TypeError, ValueError):
        raise ConfigError(f"abs_grad = {g!r}; expected a number in dex/kpc, > 0") from None
    if not (math.isfinite(g) and g > 0):
        raise ConfigError(f"abs_grad = {g!r} dex/kpc; allowed: finite and > 0")
    return round(abs(g), GRAD_DECIMALS)


def _check_range(field, value) -> tuple:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field} = {value!r}; expected (lo, hi) with 0 < lo <= hi") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ConfigError(f"{field} = {value!r}; allowed: finite 0 < lo <= hi")
    return (lo, hi)


def _yaml_safe(value, field):
    """Convert to plain Python types that ECSV meta round-trips exactly."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _yaml_safe(v, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_yaml_safe(v, f"{field}[{i}]") for i, v in enumerate(np.asarray(value).tolist()
                                                                         if isinstance(value, np.ndarray) else value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"{field} = {value!r} ({type(value).__name__}); allowed: str, number, bool, None, "
                      "list or mapping of these")


def _check_provenance(provenance) -> dict:
    if not isinstance(provenance, Mapping):
        raise ConfigError(f"provenance = {provenance!r}; expected a mapping with keys {REQUIRED_PROVENANCE}")
    missing = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if missing:
        raise ConfigError(f"provenance lacks {missing}; required keys: {list(REQUIRED_PROVENANCE)}, "
                          f"present: {sorted(map(str, provenance))}")
    return _yaml_safe(dict(provenance), "provenance")


def _curve_meta(c: Curve) -> dict:
    f = c.fit
    fit = {
        "degree": f.degree,
        "coefficients": [float(v) for v in f.coefficients],
        "covariance": [[float(v) for v in row] for row in f.covariance],
        "chi2": float(f.chi2), "dof": int(f.dof), "n_points": int(f.n_points), "n_clipped": int(f.n_clipped),
        "candidates": list(f.candidates), "bic": list(f.bic),
    }
    surf = None
    if c.surface is not None:
        s = c.surface
        surf = {
            "degree_x": s.degree_x, "degree_inclination": s.degree_inclination,
            "inclination_scale": INCLINATION_SCALE,
            "coefficients": [[float(v) for v in row] for row in s.coefficients],
            "covariance": [[float(v) for v in row] for row in s.covariance],
            "inclination_range": list(s.inclination_range), "chi2": float(s.chi2), "dof": int(s.dof),
            "n_points": int(s.n_points), "candidates": [list(p) for p in s.candidates], "bic": list(s.bic),
        }
    return {"abs_grad": c.abs_grad, "sign": c.sign, "n_mocks": c.n_mocks, "x_range": list(c.x_range),
            "grad_range": list(c.grad_range), "inclination_range": list(c.inclination_range),
            "fit": fit, "surface": surf}


def _as_table(table) -> Table:
    if isinstance(table, Table):
        return table
    try:
        if hasattr(table, "to_records") and hasattr(table, "columns"):  # a pandas DataFrame
            return Table.from_pandas(table)
        return Table(table)
    except Exception as exc:  # Table() raises many kinds for unconvertible input
        raise DataError(f"table of type {type(table).__name__} cannot be converted to an astropy Table ({exc})") \
            from exc


def _numeric_column(table: Table, name: str, ids) -> np.ndarray:
    """Column as float; masked or non-numeric entries raise naming the rows."""
    col = table[name]
    mask = np.zeros(len(col), bool)
    if hasattr(col, "mask"):
        mask = np.asarray(np.ma.getmaskarray(col))
    raw = np.ma.getdata(col) if hasattr(col, "mask") else np.asarray(col)
    out = np.empty(len(col))
    bad = []
    for i, v in enumerate(raw):
        if mask[i]:
            bad.append(i)
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad.append(i)
    if bad:
        shown = ", ".join(f"{ids[i]!s} ({raw[i]!r})" if not mask[i] else f"{ids[i]!s} (missing)" for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(f"column {name!r}: non-numeric or missing values in rows {shown}{more}")
    return out


# --------------------------------------------------------------------------- grouping


def assign_groups(abs_grad_true, grouping: Mapping) -> np.ndarray:
    """Group label (dex/kpc) of each mock from its ``|grad_z_true|``.

    Parameters
    ----------
    abs_grad_true : array_like
        ``|grad_z_true|`` of the mocks, dex/kpc.
    grouping : mapping
        ``settings["grouping"]`` of a :class:`CorrectionCurves`:
        ``{"mode": "discrete"}`` (label = value rounded to 1e-6),
        ``{"mode": "values", "values": [...]}`` (nearest value) or
        ``{"mode": "bins", "edges": [...], "labels": [...]}`` (the label of
        the bin; NaN outside the edges).

    Returns
    -------
    ndarray
        Label per mock, dex/kpc.
    """
    a = np.abs(np.asarray(abs_grad_true, dtype=float))
    mode = grouping.get("mode")
    if mode == "discrete":
        return np.round(a, GRAD_DECIMALS)
    if mode == "values":
        v = np.asarray(grouping["values"], float)
        return v[np.argmin(np.abs(a[:, None] - v[None, :]), axis=1)] if a.size else np.zeros(0)
    if mode == "bins":
        edges = np.asarray(grouping["edges"], float)
        labels = np.asarray(grouping["labels"], float)
        idx = _bin_index(a, edges)
        out = np.full(a.shape, np.nan)
        ok = idx >= 0
        out[ok] = labels[idx[ok]]
        return out
    raise ConfigError(f"grouping mode = {mode!r}; allowed 'discrete', 'values', 'bins'")


def _make_grouping(abs_g: np.ndarray, grad_bins, min_per_bin: int) -> dict:
    rounded = np.round(abs_g, GRAD_DECIMALS)
    if grad_bins is None or (isinstance(grad_bins, str) and grad_bins == "auto"):
        if np.unique(rounded).size <= _MAX_DISCRETE_GRADS:
            return {"mode": "discrete", "rule": f"auto: <= {_MAX_DISCRETE_GRADS} distinct |grad_z_true|"}
        grad_bins = _AUTO_GRAD_BINS
    if isinstance(grad_bins, str):
        if grad_bins != "discrete":
            raise ConfigError(f"grad_bins = {grad_bins!r}; allowed None/'auto', 'discrete', an int >= 1, "
                              "a sequence of |grad_z| values (dex/kpc) or {'edges': [...]}")
        return {"mode": "discrete"}
    if isinstance(grad_bins, (int, np.integer)) and not isinstance(grad_bins, bool):
        n = int(grad_bins)
        if n < 1:
            raise ConfigError(f"grad_bins = {n}; allowed >= 1")
        edges = np.unique(np.quantile(abs_g, np.linspace(0.0, 1.0, n + 1)))
        if edges.size < 2:
            edges = np.array([abs_g.min(), abs_g.max()])
        return _bins_grouping(abs_g, edges, f"{n} equal-count bins in |grad_z_true|")
    if isinstance(grad_bins, Mapping):
        if set(grad_bins) != {"edges"}:
            raise ConfigError(f"grad_bins = {grad_bins!r}; a mapping must be {{'edges': [...]}}")
        edges = np.asarray(grad_bins["edges"], float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0) \
                or edges[0] < 0:
            raise ConfigError(f"grad_bins edges = {grad_bins['edges']!r}; allowed: >= 2 increasing finite "
                              "values >= 0 (dex/kpc)")
        return _bins_grouping(abs_g, edges, "given edges in |grad_z_true|")
    values = np.asarray(grad_bins, dtype=float) if not isinstance(grad_bins, bool) else np.array([])
    if values.ndim != 1 or values.size < 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"grad_bins = {grad_bins!r}; allowed None/'auto', 'discrete', an int >= 1, a sequence "
                          "of |grad_z| values > 0 (dex/kpc) or {'edges': [...]}")
    values = np.unique(np.round(np.abs(values), GRAD_DECIMALS))
    return {"mode": "values", "values": [float(v) for v in values],
            "rule": "each mock assigned to the nearest given |grad_z| value"}


def _bins_grouping(abs_g, edges, rule) -> dict:
    idx = _bin_index(abs_g, edges)
    labels = []
    for i in range(edges.size - 1):
        sel = abs_g[idx == i]
        labels.append(round(float(np.median(sel)), GRAD_DECIMALS) if sel.size else
                      round(0.5 * float(edges[i] + edges[i + 1]), GRAD_DECIMALS))
    return {"mode": "bins", "edges": [float(e) for e in edges], "labels": labels,
            "rule": rule + "; label = median |grad_z_true| of the bin"}


# --------------------------------------------------------------------------- binning in x


def _bin_index(x, edges) -> np.ndarray:
    """Bin of each value for bins ``[e_i, e_i+1)``, last closed; -1 outside."""
    x = np.asarray(x, float)
    edges = np.asarray(edges, float)
    nb = edges.size - 1
    if nb < 1:
        return np.full(x.shape, -1)
    if edges[0] == edges[-1]:
        return np.where(x == edges[0], 0, -1)
    idx = np.searchsorted(edges, x, side="right") - 1
    idx = np.where(x == edges[-1], nb - 1, idx)
    return np.where((x < edges[0]) | (x > edges[-1]) | ~np.isfinite(x), -1, idx)


def _quantile_edges(x, n_bins) -> np.ndarray:
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        edges = np.array([x.min(), x.max()])
    return edges


def _merge_edges(edges, subsets, min_per_bin):
    """Merge bins until every subset has >= min_per_bin members in each; returns (edges, ok)."""
    edges = list(np.asarray(edges, float))
    while True:
        nb = len(edges) - 1
        counts = np.min([np.bincount(np.clip(_bin_index(s, edges), 0, None)[_bin_index(s, edges) >= 0],
                                     minlength=nb)[:nb] for s in subsets], axis=0)
        if counts.min() >= min_per_bin:
            return np.asarray(edges), True
        if nb == 1:
            return np.asarray(edges), False
        j = int(np.argmin(counts))
        if j == 0:
            del edges[1]
        elif j == nb - 1:
            del edges[-2]
        elif counts[j - 1] <= counts[j + 1]:
            del edges[j]
        else:
            del edges[j + 1]


def _auto_edges(subsets, min_per_bin, n_bins=None):
    pooled = np.concatenate(subsets)
    n = min(s.size for s in subsets)
    target = n_bins if n_bins is not None else max(1, min(_MAX_X_BINS, n // min_per_bin))
    return _merge_edges(_quantile_edges(pooled, target), subsets, min_per_bin)


def _running(x, r, edges, min_per_bin) -> RunningMedian:
    edges = np.asarray(edges, float)
    idx = _bin_index(x, edges)
    nb = edges.size - 1
    xc, n, med, p16, p84 = (np.full(nb, np.nan) for _ in range(5))
    n = np.zeros(nb, np.int64)
    for i in range(nb):
        sel = idx == i
        n[i] = int(sel.sum())
        if n[i] >= max(min_per_bin, 1):
            xc[i] = np.median(x[sel])
            med[i] = np.median(r[sel])
            p16[i], p84[i] = np.percentile(r[sel], PERCENTILES)
        elif n[i] > 0:
            xc[i] = np.median(x[sel])
    return RunningMedian(x_lo=edges[:-1], x_hi=edges[1:], x_center=xc, n=n, median=med, p16=p16, p84=p84)


def _local_stats(x, running: RunningMedian):
    """Running median and scatter interpolated at ``x``; None if no valid bin."""
    ok = np.isfinite(running.median) & np.isfinite(running.x_center)
    if not ok.any():
        return None
    xc = running.x_center[ok]
    order = np.argsort(xc)
    sig = np.maximum(running.scatter[ok][order], _SIGMA_FLOOR)
    return np.interp(x, xc[order], running.median[ok][order]), np.interp(x, xc[order], sig)


# --------------------------------------------------------------------------- fits


def _wls(a, r, w):
    """Weighted least squares: coefficients, unscaled covariance, chi2."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], r * sw, rcond=None)
    ata = (a * w[:, None]).T @ a
    try:
        cov = np.linalg.inv(ata)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(ata)
    chi2 = float(np.sum(w * (r - a @ coef) ** 2))
    return coef, cov, chi2


def _select(fits, n):
    """Pick the minimum-BIC candidate; fits = [(key, coef, cov, chi2, n_par)]."""
    bic = [f[3] + f[4] * math.log(n) for f in fits]
    best = int(np.argmin(bic))
    return best, bic


def _sigma_edges(x, min_per_bin):
    """x bins for the local scatter s(x) used as weights: >= max(min_per_bin, 25) mocks each.

    Wider than the running-median bins so that the scatter, and hence the
    weights and chi^2, are not dominated by the noise of small-sample
    percentiles.
    """
    m = max(min_per_bin, _MIN_PER_SIGMA_BIN)
    edges, _ = _auto_edges([x], m)
    return edges


def _candidate_degrees(x, degree):
    n, n_distinct = x.size, np.unique(x).size
    cands = list(_DEGREE_CANDIDATES) if degree == "auto" else [int(degree)]
    return [d for d in cands if d + 1 <= n_distinct and n - (d + 1) >= 1]


def _residual_sigma(x, r, keep, edges, min_per_bin, degree):
    """Local scatter s(x) of the residuals about an unweighted fit of the highest candidate degree.

    Returns ``(s(x), residuals)`` for every mock, or None if no degree is feasible.
    """
    cands = _candidate_degrees(x[keep], degree)
    if not cands:
        return None
    d = max(cands)
    a = x[:, None] ** np.arange(d + 1)
    coef, _, _ = _wls(a[keep], r[keep], np.ones(int(keep.sum())))
    res = r - a @ coef
    stats = _local_stats(x, _running(x[keep], res[keep], _sigma_edges(x[keep], min_per_bin), min_per_bin))
    if stats is None:
        sigma = np.full(x.size, max(float(np.std(res[keep])), _SIGMA_FLOOR))
    else:
        sigma = stats[1]
    return sigma, res


def _fit_poly(x, r, sigma, degree):
    n = x.size
    cands = _candidate_degrees(x, degree)
    if not cands:
        return None
    w = 1.0 / sigma**2
    fits = []
    for d in cands:
        a = x[:, None] ** np.arange(d + 1)
        coef, cov, chi2 = _wls(a, r, w)
        fits.append((d, coef, cov, chi2, d + 1))
    best, bic = _select(fits, n)
    d, coef, cov, chi2, k = fits[best]
    dof = n - k
    scale = chi2 / dof if dof > 0 else 1.0
    return PolynomialFit(coefficients=coef, covariance=cov * scale, chi2=chi2, dof=dof, n_points=n,
                         candidates=tuple(cands), bic=tuple(bic))


def _surface_design(x, t, dx, di):
    j = np.arange(dx + 1)[:, None]
    k = np.arange(di + 1)[None, :]
    return (x[..., None, None] ** j * t[..., None, None] ** k).reshape(x.shape + ((dx + 1) * (di + 1),))


def _fit_surface(x, inc, r, edges, min_per_bin, degree, surface_degree):
    t = inc / INCLINATION_SCALE
    n = x.size
    n_x = np.unique(x).size
    n_i = np.unique(np.round(inc, GRAD_DECIMALS)).size
    di_max = min(2, n_i - 1)
    if surface_degree == "auto":
        dxs = list(_DEGREE_CANDIDATES) if degree == "auto" else [int(degree)]
        cands = [(dx, di) for dx in dxs for di in range(di_max + 1)]
    else:
        cands = [tuple(int(v) for v in surface_degree)]
    cands = [(dx, di) for dx, di in cands
             if dx + 1 <= n_x and di + 1 <= n_i and n - (dx + 1) * (di + 1) >= 1]
    if not cands:
        return None
    # pass 1: unweighted, largest candidate; residual scatter vs x gives the weights
    dx1, di1 = max(cands, key=lambda p: (p[0] + 1) * (p[1] + 1))
    a1 = _surface_design(x, t, dx1, di1)
    coef1, _, _ = _wls(a1, r, np.ones(n))
    res = r - a1 @ coef1
    stats = _local_stats(x, _running(x, res, _sigma_edges(x, min_per_bin), min_per_bin))
    sigma = stats[1] if stats is not None else np.full(n, max(float(np.std(res)), _SIGMA_FLOOR))
    w = 1.0 / sigma**2
    fits = []
    for dx, di in cands:
        a = _surface_design(x, t, dx, di)
        coef, cov, chi2 = _wls(a, r, w)
        fits.append(((dx, di), coef, cov, chi2, (dx + 1) * (di + 1)))
    best, bic = _select(fits, n)
    (dx, di), coef, cov, chi2, k = fits[best]
    dof = n - k
    scale = chi2 / dof if dof > 0 else 1.0
    return SurfaceFit(coefficients=coef.reshape(dx + 1, di + 1), covariance=cov * scale,
                      inclination_range=(float(inc.min()), float(inc.max())), chi2=chi2, dof=dof, n_points=n,
                      candidates=tuple(cands), bic=tuple(bic))


# --------------------------------------------------------------------------- checks


def _compare(xa, ra, xb, rb, min_per_bin, threshold) -> dict:
    if min(xa.size, xb.size) < min_per_bin:
        return {"applicable": False, "reason": f"fewer than min_per_bin = {min_per_bin} mocks in a half "
                                               f"({xa.size}, {xb.size})"}
    edges, ok = _auto_edges([xa, xb], min_per_bin)
    if not ok:
        return {"applicable": False, "reason": "no x bin holds min_per_bin mocks of both halves"}
    a = _running(xa, ra, edges, min_per_bin)
    b = _running(xb, rb, edges, min_per_bin)
    d = np.abs(a.median - b.median)
    # scatter of single mocks in each half, in that half's bins of >= 25 mocks (stable; a shift between the
    # halves does not change a percentile width), at each common bin's centre
    xc = 0.5 * (a.x_center + b.x_center)
    sa = _local_stats(xc, _running(xa, ra, _sigma_edges(xa, min_per_bin), min_per_bin))[1]
    sb = _local_stats(xc, _running(xb, rb, _sigma_edges(xb, min_per_bin), min_per_bin))[1]
    scat = np.sqrt(0.5 * (sa**2 + sb**2))
    se = _MEDIAN_SE * np.sqrt(sa**2 / a.n + sb**2 / b.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, d / se, np.where(d > 0, np.inf, 0.0))
        e = np.where(scat > 0, d / scat, np.where(d > 0, np.inf, 0.0))
    i = int(np.argmax(z))
    zg = _global_sigma(float(z.max()), int(d.size))
    return {"applicable": True, "n_bins": int(d.size), "max_diff": float(d.max()),
            "max_diff_scatter": float(e.max()), "max_diff_sigma": float(z.max()), "global_sigma": zg,
            "x_at_max": float(0.5 * (a.x_center[i] + b.x_center[i])), "flag": bool(zg > threshold)}


def _global_sigma(z_max: float, n_bins: int) -> float:
    """Gaussian-equivalent significance of the largest of ``n_bins`` independent |z| values.

    Two-sided ``p = erfc(z_max / sqrt 2)`` per bin; the chance that any of
    ``n_bins`` bins reaches it is ``1 - (1 - p)^n_bins``, converted back to
    sigma with ``sqrt(2) erfcinv``.
    """
    if not math.isfinite(z_max):
        return math.inf
    p = math.erfc(z_max / math.sqrt(2.0))
    p_global = -math.expm1(n_bins * math.log1p(-p)) if p < 1 else 1.0
    if p_global <= 0:
        return math.inf
    return float(math.sqrt(2.0) * special.erfcinv(min(p_global, 1.0)))


# --------------------------------------------------------------------------- main entry


def derive_curves(table, *, provenance: Mapping, x_bins=None, degree="auto", min_per_bin: int = 5,
                  pool_signs: bool = True, grad_bins=None, clip_sigma: float | None = 5.0,
                  check_sigma: float = 3.0, surface: bool | None = None,
                  surface_degree="auto", columns: Mapping | None = None) -> CorrectionCurves:
    """Derive correction curves from a suite's results table.

    Parameters
    ----------
    table : `~astropy.table.Table` or convertible (dict of columns, structured array)
        One row per mock with the columns of :data:`REQUIRED_COLUMNS` and
        optionally ``snr`` and ``inclination`` (deg) (see module docstring).
        Rows are used when ``status == "ok"``, ``grad_z_true``,
        ``grad_z_measured`` and ``x_resolution`` are finite,
        ``grad_z_true != 0`` and ``x_resolution > 0``.
    provenance : mapping
        Must hold :data:`REQUIRED_PROVENANCE` (``suite``: file or name,
        ``package_version``: of the package that ran the suite, ``recipe``,
        ``calibrations``); any other keys are kept. Values: str, numbers,
        bool, None, lists and mappings of these.
    x_bins : None, int >= 1 or sequence of edges
        Bins in ``x`` for the running medians. ``None``: quantile edges,
        ``min(12, n // min_per_bin)`` bins, merged with a neighbour until each
        holds >= ``min_per_bin`` mocks. An int: that many quantile bins (then
        merged likewise). Edges: used as given (a bin with fewer than
        ``min_per_bin`` mocks gets NaN statistics); every mock is fitted,
        inside the edges or not.
    degree : "auto" or int in 0..8
        Polynomial degree; "auto" chooses 1..4 by BIC (:data:`DEGREE_RULE`).
    min_per_bin : int >= 1
        Minimum mocks per x bin.
    pool_signs : bool
        Also derive the pooled ``"both"`` curves (positive and negative
        intrinsic gradients together). ``"pos"`` and ``"neg"`` are always
        derived where mocks of that sign exist.
    grad_bins : None, "discrete", int, sequence or {"edges": sequence}
        Grouping of ``|grad_z_true|`` (dex/kpc). ``None`` ("auto"): the
        distinct values rounded to 1e-6 when there are at most 10, otherwise
        4 equal-count bins. ``"discrete"``: the distinct values whatever
        their number. An int: that many equal-count bins. A sequence: the
        suite's discrete values; each mock goes to the nearest (for gradients
        sampled around them). ``{"edges": [...]}``: bins with those edges.
        A binned group is labelled by the median ``|grad_z_true|`` of its
        mocks.
    clip_sigma : float > 0 or None
        Mocks farther than ``clip_sigma`` local scatters from the running
        median are left out of the polynomial fit; ``None`` keeps all.
    check_sigma : float > 0
        Significance above which a check is flagged.
    surface : bool or None
        Fit ``ratio(x, inclination)`` surfaces. ``None``: when the used
        mocks have >= 3 distinct inclinations. ``True`` requires that.
    surface_degree : "auto" or (int, int)
        ``(degree_x, degree_inclination)``; "auto" by BIC.
    columns : mapping, optional
        Column names of the table for the roles of :data:`REQUIRED_COLUMNS`
        and :data:`OPTIONAL_COLUMNS` when they differ, e.g.
        ``{"grad_z_true": "galaxy.metallicity.grad_z"}``; kept in
        ``settings["columns"]`` (used by :func:`~mockzgrad.plots.plot_curves`).

    Returns
    -------
    CorrectionCurves

    Raises
    ------
    DataError
        A required column is missing, a value is not numeric, or no curve can
        be derived.
    ConfigError
        An option is out of its allowed range.

    Warns
    -----
    CurvesWarning
        A group/sign has too few mocks for a curve, or a surface cannot be
        fitted.
    CurvesCheckWarning
        An S/N or sign check is flagged.
    """
    prov = _check_provenance(provenance)
    if isinstance(min_per_bin, bool) or not isinstance(min_per_bin, (int, np.integer)) or min_per_bin < 1:
        raise ConfigError(f"min_per_bin = {min_per_bin!r}; allowed: an integer >= 1")
    min_per_bin = int(min_per_bin)
    if degree != "auto":
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or not 0 <= degree <= _MAX_DEGREE:
            raise ConfigError(f"degree = {degree!r}; allowed 'auto' or an integer in [0, {_MAX_DEGREE}]")
        degree = int(degree)
    if clip_sigma is not None and not (isinstance(clip_sigma, (int, float)) and clip_sigma > 0):
        raise ConfigError(f"clip_sigma = {clip_sigma!r}; allowed a number > 0 or None")
    if not (isinstance(check_sigma, (int, float)) and check_sigma > 0):
        raise ConfigError(f"check_sigma = {check_sigma!r}; allowed a number > 0")
    if surface_degree != "auto":
        try:
            sdx, sdi = (int(v) for v in surface_degree)
        except (TypeError, ValueError):
            raise ConfigError(f"surface_degree = {surface_degree!r}; allowed 'auto' or (degree_x, "
                              "degree_inclination)") from None
        if not (0 <= sdx <= _MAX_DEGREE and 0 <= sdi <= 2):
            raise ConfigError(f"surface_degree = {surface_degree!r}; allowed degree_x in [0, {_MAX_DEGREE}], "
                              "degree_inclination in [0, 2]")
        surface_degree = (sdx, sdi)
    explicit_edges = None
    if x_bins is not None:
        if isinstance(x_bins, (int, np.integer)) and not isinstance(x_bins, bool):
            if x_bins < 1:
                raise ConfigError(f"x_bins = {x_bins}; allowed an integer >= 1, a sequence of edges or None")
            x_bins = int(x_bins)
        else:
            e = np.asarray(x_bins, dtype=float) if not isinstance(x_bins, (str, bool)) else np.array([])
            if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                raise ConfigError(f"x_bins = {x_bins!r}; allowed None, an integer >= 1, or >= 2 increasing "
                                  "finite edges")
            explicit_edges = e
            x_bins = [float(v) for v in e]

    cmap = _column_map(columns)
    t = _canonical(_as_table(table), cmap)
    ids = np.asarray(t["mock_index"]).astype(str) if "mock_index" in t.colnames else np.arange(len(t)).astype(str)
    status = np.char.strip(np.char.lower(np.asarray(t["status"]).astype(str)))
    # failed mocks have no recovered (or even true) values: leave them out
    # before any column is parsed, and report how many
    n_not_ok = int(np.sum(status != "ok"))
    if n_not_ok:
        keep = status == "ok"
        t, ids, status = t[keep], ids[keep], status[keep]
    if len(t) == 0:
        raise DataError(f"no mock with status 'ok' among {n_not_ok} rows: nothing to derive curves from")
    g_true = _numeric_column(t, "grad_z_true", ids)
    g_meas = _soft_numeric(t, "grad_z_measured")
    x_all = _numeric_column(t, "x_resolution", ids)
    snr_all = _numeric_column(t, "snr", ids) if "snr" in t.colnames else None
    inc_all = _numeric_column(t, "inclination", ids) if "inclination" in t.colnames else None

    excluded = {
        "status_not_ok": n_not_ok,
    }
    ok = status == "ok"
    bad_meas = ok & ~np.isfinite(g_meas)
    excluded["measured_not_finite"] = int(bad_meas.sum())
    ok &= ~bad_meas
    zero_true = ok & ((g_true == 0) | ~np.isfinite(g_true))
    excluded["true_zero_or_not_finite"] = int(zero_true.sum())
    ok &= ~zero_true
    bad_x = ok & ~(np.isfinite(x_all) & (x_all > 0))
    excluded["x_not_positive_finite"] = int(bad_x.sum())
    ok &= ~bad_x
    if not ok.any():
        raise DataError(f"results table: no usable mock among {len(t)} rows (excluded: {excluded})")

    x = x_all[ok]
    ratio = g_meas[ok] / g_true[ok]
    abs_g = np.abs(g_true[ok])
    sgn = np.sign(g_true[ok])
    snr = snr_all[ok] if snr_all is not None else None
    inc = inc_all[ok] if inc_all is not None else None
    grouping = _make_grouping(abs_g, grad_bins, min_per_bin)
    labels = assign_groups(abs_g, grouping)

    n_inc_distinct = 0 if inc is None else np.unique(np.round(inc[np.isfinite(inc)], GRAD_DECIMALS)).size
    if surface is None:
        do_surface = inc is not None and n_inc_distinct >= 3 and np.all(np.isfinite(inc))
    else:
        do_surface = bool(surface)
        if do_surface and (inc is None or n_inc_distinct < 3 or not np.all(np.isfinite(inc))):
            raise ConfigError(f"surface = True but the mocks have {n_inc_distinct} distinct finite inclinations; "
                              "allowed: >= 3 (or a continuous range) in column 'inclination'")

    curves = []
    checks = {"threshold_sigma": float(check_sigma),
              "rule": "running medians of residuals from the pooled fit, halves binned on common x edges; "
                      "flag = global_sigma > threshold_sigma (global_sigma: max_diff_sigma corrected for the "
                      "number of bins compared)",
              "snr": [], "sign": [], "any_flagged": False}
    signs = (("both",) if pool_signs else ()) + ("pos", "neg")
    for label in np.unique(labels[np.isfinite(labels)]):
        in_group = labels == label
        pooled = None
        for sign in ("both", "pos", "neg"):
            sel = in_group if sign == "both" else in_group & (sgn > 0 if sign == "pos" else sgn < 0)
            if not sel.any():
                continue
            res = _derive_one(x[sel], ratio[sel], abs_g[sel], None if inc is None else inc[sel], float(label), sign,
                              x_bins, explicit_edges, degree, min_per_bin, clip_sigma,
                              do_surface, surface_degree)
            if res is None:
                continue
            if sign == "both":
                pooled = res
            if sign in signs:
                curves.append(res)
        _group_checks(checks, float(label), in_group, x, ratio, sgn, snr, inc, pooled, min_per_bin, check_sigma)

    flagged = [f"{name} check at |grad_z| = {c['abs_grad']:g} dex/kpc: max difference {c['max_diff']:.3g} "
               f"({c['global_sigma']:.1f} sigma over {c['n_bins']} bins, {c['max_diff_scatter']:.2f} x scatter) "
               f"near x = {c['x_at_max']:.2f}"
               for name in ("snr", "sign") for c in checks[name] if c.get("flag")]
    checks["any_flagged"] = bool(flagged)
    if flagged:
        warnings.warn("correction curves depend on " + "; ".join(flagged), CurvesCheckWarning, stacklevel=2)
    if not curves:
        raise DataError(f"no correction curve could be derived from {int(ok.sum())} usable mocks "
                        f"(min_per_bin = {min_per_bin}, degree = {degree!r})")
    settings = {
        "degree": degree, "degree_rule": DEGREE_RULE, "min_per_bin": min_per_bin, "pool_signs": bool(pool_signs),
        "x_bins": x_bins, "grad_bins": grad_bins if not isinstance(grad_bins, np.ndarray) else grad_bins.tolist(),
        "grouping": grouping, "clip_sigma": clip_sigma, "check_sigma": float(check_sigma),
        "surface": bool(do_surface), "surface_degree": surface_degree if surface_degree == "auto"
        else list(surface_degree), "inclination_scale": INCLINATION_SCALE,
        "percentiles": list(PERCENTILES), "n_rows": len(t), "n_used": int(ok.sum()), "excluded": excluded,
        "columns": cmap, "ratio": "grad_z_measured / grad_z_true",
    }
    return CorrectionCurves(curves=tuple(curves), provenance=prov, checks=_yaml_safe(checks, "checks"),
                            settings=_yaml_safe(settings, "settings"), created=_now(),
                            mockzgrad_version=_package_version())


def _column_map(columns) -> dict:
    roles = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    cmap = {r: r for r in roles}
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns = {columns!r}; expected a mapping role -> column name")
        unknown = [k for k in columns if k not in roles]
        if unknown:
            raise ConfigError(f"columns: unknown role(s) {unknown}; allowed {list(roles)}")
        cmap.update({k: str(v) for k, v in columns.items()})
    return cmap


def _canonical(t: Table, cmap: Mapping) -> Table:
    """A table (sharing the data) with the role names as column names; required roles checked."""
    missing = [f"{cmap[r]!r}" + ("" if cmap[r] == r else f" (role {r!r})") for r in REQUIRED_COLUMNS
               if cmap[r] not in t.colnames]
    if missing:
        raise DataError(f"results table lacks column(s) {', '.join(missing)}; present: {t.colnames}")
    return Table({r: t[name] for r, name in cmap.items() if name in t.colnames}, copy=False)


def _soft_numeric(t, name) -> np.ndarray:
    """Measured gradients: a failed fit may leave NaN / masked / non-numeric; those become NaN."""
    col = t[name]
    raw = np.ma.getdata(col) if hasattr(col, "mask") else np.asarray(col)
    mask = np.asarray(np.ma.getmaskarray(col)) if hasattr(col, "mask") else np.zeros(len(col), bool)
    out = np.full(len(col), np.nan)
    for i, v in enumerate(raw):
        if not mask[i]:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
    return out


def _derive_one(x, r, abs_g, inc, label, sign, x_bins, explicit_edges, degree, min_per_bin, clip_sigma,
                do_surface, surface_degree):
    where = f"|grad_z| = {label:g} dex/kpc, sign {sign!r}"
    if x.size < max(min_per_bin, 3):
        warnings.warn(f"no curve for {where}: {x.size} mocks, need >= {max(min_per_bin, 3)}", CurvesWarning,
                      stacklevel=3)
        return None
    if explicit_edges is not None:
        edges = explicit_edges
    else:
        edges, _ = _auto_edges([x], min_per_bin, n_bins=x_bins)
    running = _running(x, r, edges, min_per_bin)
    stats = _local_stats(x, running)
    if stats is None:
        warnings.warn(f"no curve for {where}: no x bin holds min_per_bin = {min_per_bin} mocks", CurvesWarning,
                      stacklevel=3)
        return None
    med_x, sig_raw = stats
    # gross outliers first (the raw bin scatter includes the trend within a bin, so this is lenient) ...
    keep = np.ones(x.size, bool) if clip_sigma is None else np.abs(r - med_x) <= clip_sigma * sig_raw
    # ... then weights from the scatter of residuals about a preliminary fit of the highest candidate degree
    sig_x = _residual_sigma(x, r, keep, edges, min_per_bin, degree)
    if sig_x is None:
        warnings.warn(f"no curve for {where}: {int(keep.sum())} mocks at {np.unique(x[keep]).size} distinct x "
                      f"cannot constrain degree {degree!r}", CurvesWarning, stacklevel=3)
        return None
    sig_x, res = sig_x
    if clip_sigma is not None:
        keep &= np.abs(res) <= clip_sigma * sig_x
    fit = _fit_poly(x[keep], r[keep], sig_x[keep], degree)
    if fit is None:
        warnings.warn(f"no curve for {where}: {int(keep.sum())} mocks at {np.unique(x[keep]).size} distinct x "
                      f"cannot constrain degree {degree!r}", CurvesWarning, stacklevel=3)
        return None
    fit = PolynomialFit(coefficients=fit.coefficients, covariance=fit.covariance, chi2=fit.chi2, dof=fit.dof,
                        n_points=fit.n_points, n_clipped=int((~keep).sum()), candidates=fit.candidates,
                        bic=fit.bic)
    surf = None
    if do_surface:
        n_i = np.unique(np.round(inc, GRAD_DECIMALS)).size
        if n_i < 2:
            warnings.warn(f"no surface for {where}: one inclination only", CurvesWarning, stacklevel=3)
        else:
            surf = _fit_surface(x[keep], inc[keep], r[keep], edges, min_per_bin, degree, surface_degree)
            if surf is None:
                warnings.warn(f"no surface for {where}: too few distinct x / inclinations", CurvesWarning,
                              stacklevel=3)
    inc_range = (math.nan, math.nan) if inc is None or not np.any(np.isfinite(inc)) else \
        (float(np.nanmin(inc)), float(np.nanmax(inc)))
    return Curve(abs_grad=label, sign=sign, fit=fit, running=running, x_range=(float(x.min()), float(x.max())),
                 n_mocks=x.size, grad_range=(float(abs_g.min()), float(abs_g.max())),
                 inclination_range=inc_range, surface=surf)


def _group_checks(checks, label, in_group, x, ratio, sgn, snr, inc, pooled, min_per_bin, check_sigma):
    xs, rs = x[in_group], ratio[in_group]
    if pooled is None:
        res = rs
    elif pooled.surface is not None:
        res = rs - pooled.surface(xs, inc[in_group])
    else:
        res = rs - pooled.fit(xs)
    entry = {"abs_grad": label}
    if snr is None:
        checks["snr"].append({**entry, "applicable": False, "reason": "no 'snr' column"})
    else:
        s = snr[in_group]
        fin = np.isfinite(s)
        med = float(np.median(s[fin])) if fin.any() else math.nan
        lo, hi = fin & (s < med), fin & (s >= med)
        c = _compare(xs[lo], res[lo], xs[hi], res[hi], min_per_bin, check_sigma) if lo.any() and hi.any() else \
            {"applicable": False, "reason": "one S/N value only"}
        checks["snr"].append({**entry, "split_snr": med, **c})
    pos, neg = sgn[in_group] > 0, sgn[in_group] < 0
    if pos.any() and neg.any():
        checks["sign"].append({**entry, **_compare(xs[pos], res[pos], xs[neg], res[neg], min_per_bin, check_sigma)})
    else:
        checks["sign"].append({**entry, "applicable": False, "reason": "one sign only"})


def suite_provenance(meta, results_path) -> dict:
    """Provenance of curves made from a suite's results: the suite (name and
    TOML), the results file, the package version, the recipe and the
    calibrations it used."""
    import json as _json

    from .. import __version__
    from ..physics import calibrations
    from ..config import load_recipe

    spec = meta.get("suite_spec")
    if isinstance(spec, str):
        try:
            spec = _json.loads(spec)
        except ValueError:
            spec = {}
    spec = spec or {}
    recipe_name = (spec.get("recovery") or {}).get("recipe", "lee2026")
    recipe = load_recipe(recipe_name)
    return {
        "suite": meta.get("suite_name", str(results_path)),
        "suite_toml": meta.get("suite_toml", ""),
        "results": str(results_path),
        "package_version": __version__,
        "recipe": recipe_name,
        "recipe_overrides": (spec.get("recovery") or {}).get("overrides", {}),
        "calibrations": {k: calibrations.get_diagnostic(k).provenance()
                         for k in recipe.metallicity.diagnostics},
    }
