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
    ``2 r_eff / psf_fwhm`` of the mock, dimensionless; > 0. For a
    non-circular PSF ``psf_fwhm`` is the FWHM of the PSF's profile along
    the galaxy's major axis (:mod:`mockzgrad.config.resolution`; the
    suite's truth also has ``x_resolution_geomean``, 2 r_eff over the
    geometric mean of the two FWHMs, which the curves do not use).

and may have ``grad_z_measured_lo`` / ``grad_z_measured_hi`` (15.87th /
84.13th percentiles, dex/kpc; carried but not used), ``snr`` (the suite's S/N
definition; needed for the S/N check), ``inclination`` (deg; needed for
the correction surface) and ``mock_index`` (names rows in error messages).
Other column names are mapped with ``derive_curves(..., columns=...)``
(:mod:`mockzgrad.corrections.columns`).

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

Degree choice (``degree="auto"``): the form -- a polynomial in ``x`` of degree
``d`` in 1..4, or in ``1 / x`` of degree ``d`` in 1..2 (``c0 + c1/x (+ c2/x^2)``,
monotone and saturating; recorded as ``fit.variable``) -- that minimises the Bayesian information criterion ``BIC = chi^2 + (d + 1) ln n``
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

Where the parts live
--------------------
This module derives the curves (:func:`derive_curves`, options in
:class:`CurveOptions`) and re-exports the public names of the modules it
uses: :mod:`~mockzgrad.corrections.columns` (results-table columns),
:mod:`~mockzgrad.corrections.binning` (grouping, x bins, running medians),
:mod:`~mockzgrad.corrections.polyfit` (polynomial fits, BIC),
:mod:`~mockzgrad.corrections.checks` (S/N and sign checks) and
:mod:`~mockzgrad.corrections.curveset` (:class:`CorrectionCurves` and its
ECSV file).
"""


from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import ConfigError, DataError
from ..validate import integer, positive
from .binning import (
    GRAD_DECIMALS,
    PERCENTILES,
    RunningMedian,
    assign_groups,
    auto_edges,
    local_stats,
    make_grouping,
    running_median,
)
from .checks import MEDIAN_SE, CheckReport, GroupCheck, group_checks
from .columns import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    as_table,
    canonical_columns,
    column_map,
    numeric_column,
    soft_numeric,
    status_ok,
)
from .curveset import (
    FORMAT_NAME,
    FORMAT_VERSION,
    REQUIRED_PROVENANCE,
    SIGNS,
    CorrectionCurves,
    Curve,
    CurvesCheckWarning,
    CurvesShapeWarning,
    CurvesWarning,
    OutsideCurvesWarning,
    check_provenance,
    suite_provenance,
)
from .polyfit import (
    DEGREE_RULE,
    INCLINATION_SCALE,
    MAX_DEGREE,
    MAX_DEGREE_INCLINATION,
    RATIO_BOUNDS,
    PolynomialFit,
    SurfaceFit,
    fit_polynomial,
    shape_problem,
    fit_surface,
    residual_scatter,
)

__all__ = [
    "derive_curves",
    "CurveOptions",
    # re-exported from the modules above, where they are documented
    "suite_provenance",
    "CorrectionCurves",
    "Curve",
    "PolynomialFit",
    "SurfaceFit",
    "RunningMedian",
    "assign_groups",
    "CurvesWarning",
    "CurvesCheckWarning",
    "CurvesShapeWarning",
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

# warnings about a single curve are raised from _skip, called by _derive_curve, called by _derive_group,
# called by derive_curves: this stack level points them at the caller of derive_curves
_CURVE_WARNING_LEVEL = 5


def _or(alternatives: str, check, *args):
    """Run a validator; on failure add the option's other allowed forms to its message."""
    try:
        return check(*args)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or {alternatives})") from None


@dataclass(frozen=True, kw_only=True, eq=False)
class CurveOptions:
    """How correction curves are derived: the options of :func:`derive_curves`, checked on construction.

    Attributes
    ----------
    x_bins : None, int >= 1 or sequence of edges
        Bins in ``x`` for the running medians. ``None``: quantile edges,
        ``min(12, n // min_per_bin)`` bins, merged with a neighbour until each
        holds >= ``min_per_bin`` mocks. An int: that many quantile bins (then
        merged likewise). Edges (>= 2, increasing, finite): used as given (a
        bin with fewer than ``min_per_bin`` mocks gets NaN statistics);
        every mock is fitted, inside the edges or not. Stored as a list of
        floats.
    degree : "auto" or int in 0..8
        Polynomial degree; "auto" chooses 1..4 by BIC (:data:`DEGREE_RULE`).
    min_per_bin : int >= 1
        Minimum mocks per x bin.
    pool_signs : bool
        Also keep the pooled ``"both"`` curves (positive and negative
        intrinsic gradients together). ``"pos"`` and ``"neg"`` are always
        derived where mocks of that sign exist.
    grad_bins : None, "discrete", int, sequence or {"edges": sequence}
        Grouping of ``|grad_z_true|`` (dex/kpc), see
        :func:`~mockzgrad.corrections.binning.make_grouping`. ``None``
        ("auto"): the distinct values rounded to 1e-6 when there are at most
        10, otherwise 4 equal-count bins. A sequence: the suite's discrete
        values; each mock goes to the nearest (for gradients sampled around
        them). A binned group is labelled by the median ``|grad_z_true|`` of
        its mocks. Checked when the mocks are grouped.
    clip_sigma : float > 0 or None
        Mocks farther than ``clip_sigma`` local scatters from the running
        median, then from the preliminary fit, are left out of the
        polynomial fit; ``None`` keeps all.
    check_sigma : float > 0
        Significance above which a check is flagged, sigma.
    surface : bool or None
        Fit ``ratio(x, inclination)`` surfaces. ``None``: when the used
        mocks have >= 3 distinct inclinations. ``True`` requires that.
    surface_degree : "auto" or (int, int)
        ``(degree_x, degree_inclination)``, ``degree_x`` in 0..8 and
        ``degree_inclination`` in 0..2; "auto" by BIC. Stored as a tuple.
    min_per_sign : int >= 1
        Mocks of one sign a group needs for its ``"pos"`` / ``"neg"``
        curves; fewer: pooled curve only (said in a warning and in
        ``settings["per_sign"]``).
    """

    x_bins: object = None
    degree: object = "auto"
    min_per_bin: int = 5
    pool_signs: bool = True
    grad_bins: object = None
    clip_sigma: float | None = 5.0
    check_sigma: float = 3.0
    surface: bool | None = None
    surface_degree: object = "auto"
    min_per_sign: int = 20
    #: The x edges when ``x_bins`` gives them, else None.
    explicit_edges: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self):
        object.__setattr__(self, "min_per_bin", integer("min_per_bin", self.min_per_bin, 1))
        object.__setattr__(self, "min_per_sign", integer("min_per_sign", self.min_per_sign, 1))
        if not (isinstance(self.degree, str) and self.degree == "auto"):
            object.__setattr__(self, "degree", _or("'auto'", integer, "degree", self.degree, 0, MAX_DEGREE))
        if self.clip_sigma is not None:
            _or("None", positive, "clip_sigma", self.clip_sigma)  # kept as given: it is written in the settings
        object.__setattr__(self, "check_sigma", positive("check_sigma", self.check_sigma))
        object.__setattr__(self, "surface_degree", self._checked_surface_degree())
        x_bins, edges = self._checked_x_bins()
        object.__setattr__(self, "x_bins", x_bins)
        object.__setattr__(self, "explicit_edges", edges)

    def _checked_surface_degree(self):
        value = self.surface_degree
        if isinstance(value, str) and value == "auto":
            return "auto"
        try:
            dx, di = value
        except (TypeError, ValueError):
            raise ConfigError(f"surface_degree = {value!r}; allowed 'auto' or (degree_x, "
                              "degree_inclination)") from None
        return (integer("surface_degree[0] (degree_x)", dx, 0, MAX_DEGREE),
                integer("surface_degree[1] (degree_inclination)", di, 0, MAX_DEGREE_INCLINATION))

    def _checked_x_bins(self):
        value = self.x_bins
        if value is None:
            return None, None
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return _or("a sequence of edges, or None", integer, "x_bins", value, 1), None
        try:
            e = np.asarray(value, dtype=float) if not isinstance(value, (str, bool)) else np.array([])
        except (TypeError, ValueError):
            e = np.array([])
        if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ConfigError(f"x_bins = {value!r}; allowed None, an integer >= 1, or >= 2 increasing "
                              "finite edges")
        return [float(v) for v in e], e


@dataclass(frozen=True, eq=False)
class _Sample:
    """Mocks as arrays, one entry per mock: x, ratio, |grad_z_true|, its sign, S/N and inclination (or None)."""

    x: np.ndarray
    ratio: np.ndarray
    abs_grad: np.ndarray
    sign: np.ndarray
    snr: np.ndarray | None
    inclination: np.ndarray | None

    def subset(self, sel) -> "_Sample":
        return _Sample(self.x[sel], self.ratio[sel], self.abs_grad[sel], self.sign[sel],
                       None if self.snr is None else self.snr[sel],
                       None if self.inclination is None else self.inclination[sel])


@dataclass(frozen=True, eq=False)
class _UsableMocks:
    """The mocks a results table offers for curves, and how many rows were left out, by reason."""

    sample: _Sample
    n_rows: int
    excluded: dict


@dataclass(frozen=True, eq=False)
class _GroupResult:
    """The curves of one group of |grad_z| (pooled one only if kept) and its S/N and sign checks."""

    curves: tuple
    snr_check: GroupCheck
    sign_check: GroupCheck
    n_per_sign: tuple = (0, 0)
    shape: tuple = ()


def derive_curves(table, *, provenance: Mapping, x_bins=None, degree="auto", min_per_bin: int = 5,
                  pool_signs: bool = True, grad_bins=None, clip_sigma: float | None = 5.0,
                  check_sigma: float = 3.0, surface: bool | None = None,
                  surface_degree="auto", columns: Mapping | None = None, min_per_sign: int = 20) -> CorrectionCurves:
    """Derive correction curves from a suite's results table.

    Parameters
    ----------
    table : `~astropy.table.Table` or convertible (dict of columns, structured array, DataFrame)
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
    x_bins, degree, min_per_bin, pool_signs, grad_bins, clip_sigma, check_sigma, surface, surface_degree
        How the curves are derived; see :class:`CurveOptions`.
    columns : mapping, optional
        Column names of the table for the roles of :data:`REQUIRED_COLUMNS`
        and :data:`OPTIONAL_COLUMNS` when they differ, e.g.
        ``{"grad_z_true": "galaxy.metallicity.grad_z"}``; kept in
        ``settings["columns"]`` (used by :func:`~mockzgrad.plots.plot_curves`).
    min_per_sign : int, optional
        Mocks of each sign a ``|grad_z|`` group needs for per-sign curves; see :class:`CurveOptions`.

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
    check_provenance(provenance)
    opts = CurveOptions(x_bins=x_bins, degree=degree, min_per_bin=min_per_bin, pool_signs=pool_signs,
                        grad_bins=grad_bins, clip_sigma=clip_sigma, check_sigma=check_sigma, surface=surface,
                        surface_degree=surface_degree, min_per_sign=min_per_sign)
    cmap = column_map(columns)
    mocks = _read_mocks(table, cmap)
    sample = mocks.sample
    grouping = make_grouping(sample.abs_grad, opts.grad_bins)
    labels = assign_groups(sample.abs_grad, grouping)
    do_surface = _want_surface(sample.inclination, opts.surface)
    groups = []
    for label in np.unique(labels[np.isfinite(labels)]):  # a loop, not a comprehension: see _CURVE_WARNING_LEVEL
        groups.append(_derive_group(sample.subset(labels == label), float(label), opts, do_surface))
    report = CheckReport(threshold_sigma=opts.check_sigma, snr=tuple(g.snr_check for g in groups),
                         sign=tuple(g.sign_check for g in groups))
    if report.flagged:
        warnings.warn("correction curves depend on " + "; ".join(c.message() for c in report.flagged),
                      CurvesCheckWarning, stacklevel=2)
    per_sign = _per_sign_note(groups, opts)
    shape = [p for g in groups for p in g.shape]
    if shape:
        warnings.warn("ratio curves that are not admissible (the ratio model does not describe these groups): "
                      + "; ".join(f"|grad_z| = {p['abs_grad']:g} {p['sign']}: {p['problem']}" for p in shape),
                      CurvesShapeWarning, stacklevel=2)
    curves = [c for g in groups for c in g.curves]
    if not curves:
        raise DataError(f"no correction curve could be derived from {sample.x.size} usable mocks "
                        f"(min_per_bin = {opts.min_per_bin}, degree = {opts.degree!r})")
    checks = {**report.as_dict(), "shape": shape, "shape_rule": f"within {list(RATIO_BOUNDS)} over the mocks' x "
              "range, no turning point there (coming back by > min(1 sigma, 0.02)) unless the running medians show one "
              "of the same kind (maximum or minimum) within one bin of it"}
    settings = {**_settings(opts, grouping, do_surface, mocks, cmap), "per_sign": per_sign}
    return CorrectionCurves.create(curves, provenance=provenance, checks=checks, settings=settings)


def _per_sign_note(groups, opts: CurveOptions) -> dict:
    """Which groups have per-sign curves; warns (once) about those with too few mocks of a sign."""
    short = [(g.snr_check.abs_grad, g.n_per_sign) for g in groups if 0 < min(g.n_per_sign) < opts.min_per_sign]
    if short:
        warnings.warn("no per-sign curves for " + ", ".join(f"|grad_z| = {a:g} ({p} pos, {n} neg mocks)"
                                                              for a, (p, n) in short)
                      + f": need >= min_per_sign = {opts.min_per_sign} of each sign; pooled curves only there",
                      CurvesWarning, stacklevel=3)
    return {"min_per_sign": opts.min_per_sign,
            "groups": [{"abs_grad": g.snr_check.abs_grad, "n_pos": g.n_per_sign[0], "n_neg": g.n_per_sign[1],
                        "per_sign_curves": min(g.n_per_sign) >= opts.min_per_sign} for g in groups]}


# --------------------------------------------------------------------------- steps


def _read_mocks(table, cmap: Mapping) -> _UsableMocks:
    """The usable mocks of a results table; failed mocks are dropped before any column is parsed."""
    t = canonical_columns(as_table(table), cmap)
    ids = np.asarray(t["mock_index"]).astype(str) if "mock_index" in t.colnames else np.arange(len(t)).astype(str)
    # failed mocks have no recovered (or even true) values: leave them out before any column is parsed
    ok_status = status_ok(t)
    n_not_ok = int(np.sum(~ok_status))
    if n_not_ok:
        t, ids = t[ok_status], ids[ok_status]
    if len(t) == 0:
        raise DataError(f"no mock with status 'ok' among {n_not_ok} rows: nothing to derive curves from")
    g_true = numeric_column(t, "grad_z_true", ids)
    g_meas = soft_numeric(t, "grad_z_measured")
    x_all = numeric_column(t, "x_resolution", ids)
    snr_all = numeric_column(t, "snr", ids) if "snr" in t.colnames else None
    inc_all = numeric_column(t, "inclination", ids) if "inclination" in t.colnames else None
    excluded = {"status_not_ok": n_not_ok}
    ok = np.ones(len(t), bool)
    for reason, bad in (("measured_not_finite", ~np.isfinite(g_meas)),
                        ("true_zero_or_not_finite", (g_true == 0) | ~np.isfinite(g_true)),
                        ("x_not_positive_finite", ~(np.isfinite(x_all) & (x_all > 0)))):
        excluded[reason] = int((ok & bad).sum())
        ok &= ~bad
    if not ok.any():
        raise DataError(f"results table: no usable mock among {len(t)} rows (excluded: {excluded})")
    sample = _Sample(x=x_all[ok], ratio=g_meas[ok] / g_true[ok], abs_grad=np.abs(g_true[ok]),
                     sign=np.sign(g_true[ok]), snr=snr_all[ok] if snr_all is not None else None,
                     inclination=inc_all[ok] if inc_all is not None else None)
    return _UsableMocks(sample=sample, n_rows=len(t), excluded=excluded)


def _want_surface(inc, requested) -> bool:
    """Whether to fit ratio(x, inclination) surfaces: asked for, or by default with >= 3 inclinations."""
    n_distinct = 0 if inc is None else np.unique(np.round(inc[np.isfinite(inc)], GRAD_DECIMALS)).size
    possible = inc is not None and n_distinct >= 3 and bool(np.all(np.isfinite(inc)))
    if requested is None:
        return possible
    if requested and not possible:
        raise ConfigError(f"surface = True but the mocks have {n_distinct} distinct finite inclinations; "
                          "allowed: >= 3 (or a continuous range) in column 'inclination'")
    return bool(requested)


def _derive_group(group: _Sample, label: float, opts: CurveOptions, do_surface: bool) -> _GroupResult:
    """Curves of every sign of one group of |grad_z| and the group's checks (against the pooled curve)."""
    derived = {}
    n_sign = (int(np.sum(group.sign > 0)), int(np.sum(group.sign < 0)))
    for sign in SIGNS:
        sel = np.ones(group.x.size, bool) if sign == "both" else (group.sign > 0 if sign == "pos" else group.sign < 0)
        # a single-sign suite keeps its one-sign curve; a mixed one needs min_per_sign of each sign for them
        if sign != "both" and 0 < min(n_sign) < opts.min_per_sign:
            continue
        if sel.any():
            curve = _derive_curve(group.subset(sel), label, sign, opts, do_surface)
            if curve is not None:
                derived[sign] = curve
    pooled = derived.get("both")
    if pooled is None:
        residual = group.ratio
    elif pooled.surface is not None:
        residual = group.ratio - pooled.surface(group.x, group.inclination)
    else:
        residual = group.ratio - pooled.fit(group.x)
    snr_check, sign_check = group_checks(label, group.x, residual, group.sign, group.snr, opts.min_per_bin,
                                         opts.check_sigma)
    kept = tuple(c for s, c in derived.items() if s != "both" or opts.pool_signs)
    shape = tuple({"abs_grad": label, "sign": c.sign, "problem": p} for c in kept
                  for p in [shape_problem(c.fit.coefficients, *c.x_range, RATIO_BOUNDS,
                                          _medians_turn_over(c.running), c.fit.covariance,
                                          c.fit.variable)] if p)
    return _GroupResult(curves=kept, snr_check=snr_check, sign_check=sign_check, n_per_sign=n_sign, shape=shape)


def _medians_turn_over(running: RunningMedian) -> tuple:
    """Turning points of the running medians: ``(kind, x_from, x_to)`` per interior extremum beyond both ends.

    An interior maximum (minimum) counts when it lies above (below) the first and the last bin's median by
    more than 2 standard errors; the standard error of a bin's median is ``MEDIAN_SE * w / sqrt(n)`` with
    ``w`` the larger of the bin's half 16-84 width and the median of all bins' (a bin of ~5 mocks can show a
    spuriously narrow width). The window runs from the centre of the bin before to that of the bin after the
    extremum's plateau (the neighbours within 2 standard errors of it): a fitted curve may turn over there, and
    only with the same kind of extremum.
    """
    ok = np.isfinite(running.median)
    m, n, xc = running.median[ok], running.n[ok], running.x_center[ok]
    if m.size < 3:
        return ()
    half = 0.5 * (running.p84[ok] - running.p16[ok])
    se = MEDIAN_SE * np.maximum(half, float(np.median(half))) / np.sqrt(np.maximum(n, 1))
    out = []
    for kind, j in (("max", int(np.argmax(m))), ("min", int(np.argmin(m)))):
        if 0 < j < m.size - 1:
            d_first = abs(m[j] - m[0]) / math.hypot(se[j], se[0])
            d_last = abs(m[j] - m[-1]) / math.hypot(se[j], se[-1])
            if min(d_first, d_last) > 2.0:
                lo, hi = j, j  # the plateau: neighbours within 2 standard errors of the extremum
                while lo > 0 and abs(m[lo - 1] - m[j]) <= 2.0 * math.hypot(se[lo - 1], se[j]):
                    lo -= 1
                while hi < m.size - 1 and abs(m[hi + 1] - m[j]) <= 2.0 * math.hypot(se[hi + 1], se[j]):
                    hi += 1
                out.append((kind, float(xc[max(lo - 1, 0)]), float(xc[min(hi + 1, m.size - 1)])))
    return tuple(out)


def _skip(message: str) -> None:
    warnings.warn(message, CurvesWarning, stacklevel=_CURVE_WARNING_LEVEL)


def _derive_curve(s: _Sample, label: float, sign: str, opts: CurveOptions, do_surface: bool) -> Curve | None:
    """One curve: running median, outlier clipping, weighted fit, surface; None (with a warning) if impossible."""
    where = f"|grad_z| = {label:g} dex/kpc, sign {sign!r}"
    need = max(opts.min_per_bin, 3)
    if s.x.size < need:
        return _skip(f"no curve for {where}: {s.x.size} mocks, need >= {need}")
    edges = opts.explicit_edges
    if edges is None:
        edges, _ = auto_edges([s.x], opts.min_per_bin, n_bins=opts.x_bins)
    running = running_median(s.x, s.ratio, edges, opts.min_per_bin)
    stats = local_stats(s.x, running)
    if stats is None:
        return _skip(f"no curve for {where}: no x bin holds min_per_bin = {opts.min_per_bin} mocks")
    keep, sigma = _clip_and_weigh(s, stats, opts)
    fit = None if sigma is None else fit_polynomial(s.x[keep], s.ratio[keep], sigma[keep], opts.degree,
                                                    n_clipped=int((~keep).sum()), bounds=RATIO_BOUNDS,
                                                    allow_turnover=_medians_turn_over(running))
    if fit is None:
        return _skip(f"no curve for {where}: {int(keep.sum())} mocks at {np.unique(s.x[keep]).size} distinct x "
                     f"cannot constrain degree {opts.degree!r}")
    surface = None
    if do_surface:
        surface = _surface(s, keep, opts)
        if isinstance(surface, str):
            _skip(f"no surface for {where}: {surface}")
            surface = None
    inc = s.inclination
    inc_range = (math.nan, math.nan) if inc is None or not np.any(np.isfinite(inc)) else \
        (float(np.nanmin(inc)), float(np.nanmax(inc)))
    return Curve(abs_grad=label, sign=sign, fit=fit, running=running, x_range=(float(s.x.min()), float(s.x.max())),
                 n_mocks=s.x.size, grad_range=(float(s.abs_grad.min()), float(s.abs_grad.max())),
                 inclination_range=inc_range, surface=surface)


def _clip_and_weigh(s: _Sample, stats, opts: CurveOptions):
    """Mocks kept for the fit and the local scatter s(x) that weights them (None: no degree is feasible)."""
    clip = opts.clip_sigma
    # gross outliers first (the raw bin scatter includes the trend within a bin, so this is lenient) ...
    keep = np.ones(s.x.size, bool) if clip is None else np.abs(s.ratio - stats.median) <= clip * stats.scatter
    # ... then weights from the scatter of residuals about a preliminary fit of the highest candidate degree
    scatter = residual_scatter(s.x, s.ratio, keep, opts.min_per_bin, opts.degree)
    if scatter is None:
        return keep, None
    sigma, residual = scatter
    if clip is not None:
        keep &= np.abs(residual) <= clip * sigma
    return keep, sigma


def _surface(s: _Sample, keep, opts: CurveOptions) -> SurfaceFit | str:
    """The ratio(x, inclination) surface of the kept mocks, or why there is none."""
    if np.unique(np.round(s.inclination, GRAD_DECIMALS)).size < 2:
        return "one inclination only"
    surface = fit_surface(s.x[keep], s.inclination[keep], s.ratio[keep], opts.min_per_bin, opts.degree,
                          opts.surface_degree)
    return "too few distinct x / inclinations" if surface is None else surface


def _settings(opts: CurveOptions, grouping: dict, do_surface: bool, mocks: _UsableMocks, cmap: dict) -> dict:
    """How the curves were derived, as written in the ECSV meta."""
    grad_bins = opts.grad_bins
    return {
        "degree": opts.degree, "degree_rule": DEGREE_RULE, "min_per_bin": opts.min_per_bin,
        "pool_signs": bool(opts.pool_signs), "x_bins": opts.x_bins,
        "grad_bins": grad_bins if not isinstance(grad_bins, np.ndarray) else grad_bins.tolist(),
        "grouping": grouping, "clip_sigma": opts.clip_sigma, "check_sigma": float(opts.check_sigma),
        "surface": bool(do_surface), "surface_degree": opts.surface_degree if opts.surface_degree == "auto"
        else list(opts.surface_degree), "inclination_scale": INCLINATION_SCALE,
        "percentiles": list(PERCENTILES), "n_rows": mocks.n_rows, "n_used": int(mocks.sample.x.size),
        "excluded": mocks.excluded, "columns": cmap, "ratio": "grad_z_measured / grad_z_true",
    }
