"""Transfer function of a suite: measured = a(x) * intrinsic + b(x), with scatter s(x).

The ratio curves (:mod:`.curves`) describe a suite by ``measured /
intrinsic`` per intrinsic ``abs(grad_z)``; they cannot describe an additive
offset (a ratio of an offset diverges at small ``abs(grad_z)``) and need an
assumed ``abs(grad_z)`` to correct a galaxy. The transfer function describes all
mocks at once:

``grad_z_measured = a(x, ...) * grad_z_true + b(x) + e``,
``e ~ N(0, s(x)^2 + err^2)``,

with ``x = 2 r_eff / psf_fwhm`` (dimensionless), gradients in dex/kpc,
``err`` the mock's own reported 1-sigma error (half the 15.87-84.13 width of
its posterior; 0 when the table has none) and ``s(x)`` the scatter beyond it
(dex/kpc). The forms are linear in ``u = 1 / x`` so that every term tends to
a constant at large ``x`` (a resolved galaxy is not smeared further):

* ``a(x) = sum_k alpha_k u^k``, ``k = 0..degree_a`` (``degree_a`` in 0..2);
* ``b(x) = sum_k beta_k u^k``, ``k = 0..degree_b`` (``degree_b`` in 0..1);
* ``ln s(x) = gamma_0 + gamma_1 u`` (scatter form ``inverse_x``) or
  ``ln s = gamma_0`` (form ``flat``, ``gamma_1 = 0``): a suite whose mocks
  show no scatter beyond their errors at some x is not forced into a scatter
  that rises or falls with x; ``ln s`` is bounded to
  [ln SCATTER_BOUNDS[0], ln SCATTER_BOUNDS[1]] at both ends of the mocks' x
  range, so an s(x) at its floor (no excess scatter) cannot run off to
  ``exp(+-hundreds)`` at the edge of the data;
* optional extra terms of the slope, each one coefficient times
  ``grad_z_true``, used only where the suite sweeps the quantity:
  ``abs_grad`` (``max(abs(grad_z_true) - knee, 0) - max(ref - knee, 0)``: a
  slope that changes with the gradient's size above ``knee`` and not below
  it, e.g. where a calibration's validity range clips only the strong
  gradients; the knee is chosen by cross-validation among 0 (a slope linear
  in abs(grad_z)) and the suite's inner abs(grad_z) levels or quartiles, so a
  reduction seen only at the largest abs(grad_z) is not extrapolated to the
  small ones), ``sign`` (1 for negative intrinsic gradients: a different slope
  per sign), ``sign_inv_x`` (``(1 / x - ref)`` for negative intrinsic
  gradients, 0 for positive ones: the negative gradients' slope changes with
  ``1 / x`` by its own coefficient, so positive and negative gradients may
  flatten differently and at a different rate; tried only in a structure
  that has the ``sign`` term or together with it; with a knee ``x_k``
  chosen by cross-validation among none and low quantiles of the negative
  mocks' x (:func:`sign_inv_x_knee_candidates`), ``1 / x`` is capped at
  ``1 / x_k``: below the knee the negative slope's own 1/x-dependence stops,
  so a steep trend measured at larger x is not extrapolated linearly into the
  smallest x — on the flagship the linear term drove a_neg(0.6) to 0.02
  where the mocks below x = 0.8 measure 0.17 with an offset b near -0.015
  dex/kpc, and the b(x)-in-1/x structure that follows them turned negative
  there, hence inadmissible), ``sign_abs_grad`` (the
  ``abs_grad`` covariate, same knee, for negative intrinsic gradients, 0 for
  positive ones: the slope's change with abs(grad_z) differs by sign, e.g. where
  a calibration's upper validity limit clips the strong positive gradients
  only; tried only with ``sign`` and ``abs_grad``, or together with them),
  ``abs_grad_inv_x`` (the ``abs_grad`` covariate times ``(1 / x - ref)``:
  the abs(grad_z) term's coefficient changes with ``1 / x``; clipping removes a
  fraction of the gradient, so its effect on the slope scales with ``a(x)``,
  which a hinge additive in ``a`` (the same slope change at every x) cannot
  follow where ``a(x)`` is small; tried only with ``abs_grad``),
  ``sign_abs_grad_inv_x`` (the same for negative gradients only; tried only
  with ``sign``, ``abs_grad``, ``sign_abs_grad`` and ``abs_grad_inv_x``),
  ``inclination`` (``(i - ref) / 90 deg``) and
  ``snr`` (``ln(snr / ref)``). ``ref`` is the suite's median (of ``1 / x``
  for ``sign_inv_x``), so ``a(x)`` is the slope of a galaxy at the suite's
  median abs(grad_z), inclination and S/N, of positive sign, and ``slope_sign``
  is the negative gradients' slope difference at the suite's median ``1 / x``.
  The slope of a negative gradient is then
  ``a_neg(x) = alpha_0 + slope_sign + (alpha_1 + slope_sign_inv_x) / x - slope_sign_inv_x ref (+ ...)``.
  A greedy step adds one term, or a term together with at most two of the
  terms it refines that are not in yet (a per-sign slope may be admissible
  only with its own x- or abs(grad_z)-dependence); a step that improves the
  score but is inadmissible on the current base (degrees of a and b) is also
  fitted on the other bases; of the improving admissible steps it
  takes the one with the fewest terms within one standard error of the best.

Fitting (:func:`fit_transfer`): for a given structure the mean coefficients
are a weighted least-squares fit with weights ``1 / (s(x)^2 + err^2)`` and
``gamma`` is the maximum-likelihood scatter given the mean, alternated three
times. The coefficient covariance is ``(X^T W X)^-1`` (the variance model is
fitted, so it is not rescaled); the covariance of ``gamma`` is the inverse
of its Fisher information.

Structure choice (:data:`SELECTION_RULE`): k-fold cross-validation over
mocks (``k = 5``, folds from a seeded permutation), scored by the mean
held-out negative log predictive density. The base structures
(``degree_a``, ``degree_b``) are compared first, then extra terms are added
one at a time while they improve the score; the simplest structure within one
standard error (over folds) of the best is kept; then the ``flat`` scatter
form replaces ``inverse_x`` unless that is better by more than one standard
error (the one-standard-error rule,
Hastie, Tibshirani & Friedman 2009, Elements of Statistical Learning,
sec. 7.10). A structure is admissible only if its slope stays in
``[0, SLOPE_MAX]`` and is monotone in ``x`` over the mocks' range at every
combination of the suite's extreme covariates, and its mean measured gradient
does not decrease with the intrinsic one over the suite's abs(grad_z) range
(per sign, beyond ``MONOTONE_TOL`` of the predictive scatter) at any of them
(:func:`admissible`).

Assessment (:func:`assess`): whether the ratio model and the transfer model
describe the suite; see :class:`Assessment`.

File: :meth:`TransferFunction.write` writes JSON (atomically) with every
coefficient, the covariances, the cross-validation table, the assessment and
the provenance; :meth:`TransferFunction.read` reads it back exactly.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
from scipy import optimize

from ..errors import ConfigError, DataError
from .columns import as_table, canonical_columns, column_map, numeric_column, soft_numeric, status_ok

__all__ = [
    "TransferFunction",
    "Structure",
    "Assessment",
    "fit_transfer",
    "fit_structure",
    "admissible",
    "knee_candidates",
    "sign_inv_x_knee_candidates",
    "assess",
    "read_suite_mocks",
    "SuiteMocks",
    "EXTRA_TERMS",
    "SLOPE_MAX",
    "MONOTONE_TOL",
    "SELECTION_RULE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

FORMAT_NAME = "mockzgrad.transfer_function"
FORMAT_VERSION = 5
#: Format versions this mockzgrad reads (1: before the ``sign_inv_x`` term, 2: before ``abs_grad_inv_x``,
#: 3: before ``grad_range_by_sign``, 4: before ``sign_inv_x_knee``; the same layout otherwise).
FORMAT_VERSIONS_READ = (1, 2, 3, 4, 5)
#: Upper bound of an admissible slope a(x) (measured / intrinsic); the lower bound is 0.
SLOPE_MAX = 1.2
#: Extra slope terms, in the order they are tried.
EXTRA_TERMS = ("abs_grad", "sign", "sign_inv_x", "sign_abs_grad", "abs_grad_inv_x", "sign_abs_grad_inv_x",
               "inclination", "snr")
#: Terms tried only in a structure that has the terms they refine (or added together with them).
_NEEDS = {"sign_inv_x": ("sign",), "sign_abs_grad": ("sign", "abs_grad"), "abs_grad_inv_x": ("abs_grad",),
          "sign_abs_grad_inv_x": ("sign", "abs_grad", "sign_abs_grad", "abs_grad_inv_x")}
#: Largest decrease of the mean measured gradient with the intrinsic one that is still admissible, in units
#: of the predictive scatter sqrt(s(x)^2 + median err^2) at that x (see :func:`admissible`).
MONOTONE_TOL = 0.1
# parents a greedy step may add together with the term that refines them
_MAX_PARENTS_PER_STEP = 2
# intrinsic gradients per sign on which the mean is checked for monotonicity
_N_GRID_G = 41
#: Folds of the cross-validation and the seed of their permutation.
N_FOLDS = 5
FOLD_SEED = 20261204
#: How the structure is chosen (written in the file).
SELECTION_RULE = (
    f"{N_FOLDS}-fold cross-validation over mocks (folds from a permutation seeded with {FOLD_SEED}), "
    "score = mean held-out negative log predictive density; base structures (degree_a in 0..2, degree_b "
    "in 0..1) first, then extra terms added greedily while the score improves (the abs_grad term with each "
    "knee of knee_candidates: 0 and the inner |grad_z| levels or quartiles; sign_inv_x only with sign and with each knee of sign_inv_x_knee_candidates (none and the 2.5/5/10/25 % quantiles of the negative mocks' x with >= 10 of them below), sign_abs_grad only with sign and abs_grad, abs_grad_inv_x only with abs_grad, sign_abs_grad_inv_x only with all four: added after them or with at most two of them in "
    "one step; each step takes the fewest terms within one standard error of the step's best; a step that improves the score but is "
    "inadmissible on the current base is also fitted on the other bases), and every step of that path is also "
    "fitted on every other base; the simplest structure "
    "within one standard error (of the mean per-mock difference to the best) is kept (Hastie et al. 2009, sec. 7.10); "
    f"only structures whose slope stays in [0, {SLOPE_MAX}] and is monotone in x over the mocks' range and whose "
    f"mean measured gradient does not decrease with the intrinsic one over the suite's |grad_z| range per sign "
    f"(decreases below {MONOTONE_TOL:g} of sqrt(s(x)^2 + median err^2) tolerated); "
    "finally the flat scatter form (ln s constant) replaces ln s = gamma_0 + gamma_1 / x unless that is better "
    "by more than one standard error"
)
#: Scatter forms: ``ln s = gamma_0 + gamma_1 / x`` or ``ln s = gamma_0``.
SCATTER_FORMS = ("inverse_x", "flat")
#: Bounds of s(x) (dex/kpc) at both ends of the mocks' x range.
SCATTER_BOUNDS = (1e-6, 10.0)
# a covariate is swept when it takes at least this many distinct values (abs_grad: 2; sign: both signs)
_MIN_DISTINCT = 3
# mocks of each sign needed before a per-sign slope term is tried
_MIN_PER_SIGN = 10


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class SuiteMocks:
    """The usable mocks of a results table, one entry per mock.

    ``g`` intrinsic and ``m`` measured gradients (dex/kpc), ``err`` the mock's
    reported 1-sigma error (dex/kpc, 0 if none), ``x`` the resolution,
    ``inclination`` (deg) and ``snr`` or None.
    """

    g: np.ndarray
    m: np.ndarray
    err: np.ndarray
    x: np.ndarray
    inclination: np.ndarray | None
    snr: np.ndarray | None
    has_errors: bool

    @property
    def n(self) -> int:
        return int(self.g.size)

    def subset(self, sel) -> "SuiteMocks":
        pick = (lambda a: None if a is None else a[sel])
        return SuiteMocks(self.g[sel], self.m[sel], self.err[sel], self.x[sel], pick(self.inclination),
                          pick(self.snr), self.has_errors)


def read_suite_mocks(table, columns: Mapping | None = None) -> SuiteMocks:
    """The mocks of a results table usable for a transfer function.

    Rows are used when ``status == "ok"``, ``grad_z_true``,
    ``grad_z_measured`` and ``x_resolution`` are finite and ``x > 0``
    (``grad_z_true = 0`` is allowed: the transfer function needs no ratio).
    The error is half of ``grad_z_measured_hi - grad_z_measured_lo`` when
    both columns are there.

    Raises
    ------
    DataError
        A required column is missing or no row is usable.
    """
    cmap = column_map(columns)
    raw = as_table(table)
    t = canonical_columns(raw, cmap)
    # the error columns are not roles: read them beside the measured gradient's column
    lo_name, hi_name = cmap["grad_z_measured"] + "_lo", cmap["grad_z_measured"] + "_hi"
    has_err = lo_name in raw.colnames and hi_name in raw.colnames
    if has_err:
        t["grad_z_measured_lo"], t["grad_z_measured_hi"] = raw[lo_name], raw[hi_name]
    t = t[status_ok(t)]
    if len(t) == 0:
        raise DataError("results table: no mock with status 'ok'; nothing to fit a transfer function to")
    ids = np.asarray(t["mock_index"]).astype(str) if "mock_index" in t.colnames else np.arange(len(t)).astype(str)
    g = numeric_column(t, "grad_z_true", ids)
    m = soft_numeric(t, "grad_z_measured")
    x = numeric_column(t, "x_resolution", ids)
    err = 0.5 * (soft_numeric(t, "grad_z_measured_hi") - soft_numeric(t, "grad_z_measured_lo")) if has_err \
        else np.zeros(len(t))
    inc = soft_numeric(t, "inclination") if "inclination" in t.colnames else None
    snr = soft_numeric(t, "snr") if "snr" in t.colnames else None
    ok = np.isfinite(g) & np.isfinite(m) & np.isfinite(x) & (x > 0) & np.isfinite(err) & (err >= 0)
    for extra in (inc, snr):
        if extra is not None:
            ok &= np.isfinite(extra)
    if snr is not None:
        ok &= snr > 0
    if ok.sum() < 10:
        raise DataError(f"results table: {int(ok.sum())} usable mocks of {len(t)}; a transfer function needs "
                        ">= 10")
    pick = (lambda a: None if a is None else a[ok])
    return SuiteMocks(g=g[ok], m=m[ok], err=err[ok], x=x[ok], inclination=pick(inc), snr=pick(snr),
                      has_errors=has_err)


def swept_terms(mocks: SuiteMocks) -> tuple:
    """The extra terms the suite can constrain (see the module docstring)."""
    out = []
    if np.unique(np.round(np.abs(mocks.g), 6)).size >= 2:
        out.append("abs_grad")
    if min(int(np.sum(mocks.g > 0)), int(np.sum(mocks.g < 0))) >= _MIN_PER_SIGN:
        out.append("sign")
        if np.unique(np.round(1.0 / mocks.x[mocks.g < 0], 9)).size >= _MIN_DISTINCT:
            out.append("sign_inv_x")
        if "abs_grad" in out and np.unique(np.round(np.abs(mocks.g[mocks.g < 0]), 6)).size >= 2:
            out.append("sign_abs_grad")
    if "abs_grad" in out and np.unique(np.round(1.0 / mocks.x, 9)).size >= _MIN_DISTINCT:
        out.insert(out.index("abs_grad") + 1, "abs_grad_inv_x")
        if "sign_abs_grad" in out:
            out.insert(out.index("sign_abs_grad") + 1, "sign_abs_grad_inv_x")
    if mocks.inclination is not None and np.unique(np.round(mocks.inclination, 6)).size >= _MIN_DISTINCT:
        out.append("inclination")
    if mocks.snr is not None and np.unique(np.round(mocks.snr, 6)).size >= _MIN_DISTINCT:
        out.append("snr")
    return tuple(out)


def knee_candidates(mocks: SuiteMocks) -> tuple:
    """Knees (abs(grad_z), dex/kpc) tried for the ``abs_grad`` term: 0 (linear) and the inner abs(grad_z) levels.

    A suite on a grid of abs(grad_z) levels gets every level but the smallest (where a knee equals the linear
    term on the grid) and the largest (where the term would vanish); a suite with continuous gradients (more
    than 8 levels) gets the quartiles of abs(grad_z).
    """
    ag = np.abs(mocks.g[mocks.g != 0])
    levels = np.unique(np.round(ag, 6))
    inner = levels[1:-1] if levels.size <= 8 else np.quantile(ag, [0.25, 0.5, 0.75])
    return (0.0,) + tuple(float(k) for k in inner)


#: Quantiles of the negative mocks' x tried as the ``sign_inv_x`` knee (with 0: no knee), each only when at least
#: ``_MIN_PER_SIGN`` negative mocks lie below it.
SIGN_INV_X_KNEE_QUANTILES = (0.025, 0.05, 0.1, 0.25)


def sign_inv_x_knee_candidates(mocks: SuiteMocks) -> tuple:
    """Knees (resolution x) tried for the ``sign_inv_x`` term: 0 (linear in 1 / x everywhere) and the
    :data:`SIGN_INV_X_KNEE_QUANTILES` of the negative mocks' x with at least ``_MIN_PER_SIGN`` negative mocks
    below (a linear-in-1/x slope measured at larger x is not extrapolated into the smallest x: below the knee
    the negative gradients' slope changes with 1 / x as the positive ones' does)."""
    xn = np.sort(mocks.x[mocks.g < 0])
    out = [float(np.quantile(xn, q)) for q in SIGN_INV_X_KNEE_QUANTILES if q * xn.size >= _MIN_PER_SIGN]
    return (0.0,) + tuple(k for k in dict.fromkeys(round(v, 6) for v in out) if k > 0)


def references(mocks: SuiteMocks) -> dict:
    """Reference values of the extra terms: the suite's medians."""
    return {"abs_grad": float(np.median(np.abs(mocks.g))), "rms_grad": float(np.sqrt(np.mean(mocks.g**2))),
            "inv_x": float(np.median(1.0 / mocks.x)),
            "inclination": float(np.median(mocks.inclination)) if mocks.inclination is not None else math.nan,
            "snr": float(np.median(mocks.snr)) if mocks.snr is not None else math.nan}


# --------------------------------------------------------------------------- structure and design


@dataclass(frozen=True)
class Structure:
    """Which terms a transfer function has: degrees of a(x) and b(x) in u = 1/x, and extra slope terms.

    ``knee``: abs(grad_z) (dex/kpc) below which the ``abs_grad`` term is flat; ``sign_inv_x_knee``: resolution
    x (dimensionless) below which the ``sign_inv_x`` term is constant (0: none for either).
    """

    degree_a: int = 1
    degree_b: int = 0
    extras: tuple = ()
    scatter: str = "inverse_x"
    #: abs(grad_z) (dex/kpc) below which the ``abs_grad`` term is flat (0: linear in abs(grad_z) everywhere).
    knee: float = 0.0
    #: Resolution x below which the ``sign_inv_x`` term stops changing (0: linear in 1 / x everywhere).
    sign_inv_x_knee: float = 0.0

    def __post_init__(self):
        if self.scatter not in SCATTER_FORMS:
            raise ConfigError(f"scatter = {self.scatter!r}; allowed {SCATTER_FORMS}")
        if not (math.isfinite(self.knee) and self.knee >= 0):
            raise ConfigError(f"knee = {self.knee!r}; allowed a finite |grad_z| >= 0 (dex/kpc)")
        if not (math.isfinite(self.sign_inv_x_knee) and self.sign_inv_x_knee >= 0):
            raise ConfigError(f"sign_inv_x_knee = {self.sign_inv_x_knee!r}; allowed a finite resolution x >= 0")

    def refs(self, refs: Mapping) -> dict:
        """``refs`` with this structure's ``abs_grad_knee`` (what :func:`extra_values` reads)."""
        return {**refs, "abs_grad_knee": float(self.knee), "sign_inv_x_knee": float(self.sign_inv_x_knee)}

    @property
    def n_coef(self) -> int:
        return self.degree_a + 1 + self.degree_b + 1 + len(self.extras)

    def names(self) -> list:
        """Coefficient names in design-matrix order."""
        return ([f"alpha_{k}" for k in range(self.degree_a + 1)] + [f"beta_{k}" for k in range(self.degree_b + 1)]
                + [f"slope_{e}" for e in self.extras])

    def label(self) -> str:
        names = [f"abs_grad>{self.knee:g}" if e == "abs_grad" and self.knee > 0 else
                 f"sign_inv_x(x>{self.sign_inv_x_knee:.3g})" if e == "sign_inv_x" and self.sign_inv_x_knee > 0 else e
                 for e in self.extras]
        extra = "+" + "+".join(names) if names else ""
        flat = ", flat s" if self.scatter == "flat" else ""
        return f"a{self.degree_a}b{self.degree_b}{extra}{flat}"

    def as_dict(self) -> dict:
        return {"degree_a": self.degree_a, "degree_b": self.degree_b, "extras": list(self.extras),
                "scatter": self.scatter, "abs_grad_knee": float(self.knee),
                "sign_inv_x_knee": float(self.sign_inv_x_knee)}


def extra_values(name: str, g, inclination, snr, refs: Mapping, x=None) -> np.ndarray:
    """The covariate multiplying ``grad_z_true`` in extra term ``name`` (0 at the reference).

    ``x`` (the resolution) is needed by the ``sign_inv_x`` term only.
    """
    g = np.asarray(g, dtype=float)
    if name == "abs_grad":
        knee = float(refs.get("abs_grad_knee") or 0.0)
        knee = knee if math.isfinite(knee) else 0.0
        return np.maximum(np.abs(g) - knee, 0.0) - max(refs["abs_grad"] - knee, 0.0)
    if name == "sign":
        return (g < 0).astype(float)
    if name == "sign_abs_grad":
        return (g < 0) * extra_values("abs_grad", g, inclination, snr, refs)
    if name in ("sign_inv_x", "abs_grad_inv_x", "sign_abs_grad_inv_x"):
        if x is None:
            raise ConfigError(f"extra term {name!r} needs x (the resolution); none given")
        du = 1.0 / np.asarray(x, float) - refs["inv_x"]
        if name == "sign_inv_x":
            xk = float(refs.get("sign_inv_x_knee") or 0.0)
            if xk > 0 and math.isfinite(xk):  # saturates below the knee: 1/x capped at 1/x_knee
                return (g < 0) * (np.minimum(1.0 / np.asarray(x, float), 1.0 / xk) - min(refs["inv_x"], 1.0 / xk))
            return (g < 0) * du
        return extra_values(name[: -len("_inv_x")], g, inclination, snr, refs) * du
    if name == "inclination":
        return np.zeros_like(g) if inclination is None else (np.asarray(inclination, float) - refs["inclination"]) / 90.0
    if name == "snr":
        return np.zeros_like(g) if snr is None else np.log(np.asarray(snr, float) / refs["snr"])
    raise ConfigError(f"extra term {name!r}; allowed {EXTRA_TERMS}")


def design(structure: Structure, x, g, inclination, snr, refs: Mapping) -> np.ndarray:
    """Design matrix of the mean ``a(x, ...) g + b(x)``, shape broadcast(x, g) + (n_coef,)."""
    x, g = np.broadcast_arrays(np.asarray(x, float), np.asarray(g, float))
    u = 1.0 / x
    cols = [g * u**k for k in range(structure.degree_a + 1)] + [u**k for k in range(structure.degree_b + 1)]
    refs = structure.refs(refs)
    cols += [g * extra_values(e, g, inclination, snr, refs, x) for e in structure.extras]
    return np.stack(cols, axis=-1)


def slope_design(structure: Structure, x, g, inclination, snr, refs: Mapping) -> np.ndarray:
    """Design of the slope ``a(x, ...)`` (the coefficients multiplying g), zeros for the offset terms."""
    x, g = np.broadcast_arrays(np.asarray(x, float), np.asarray(g, float))
    u = 1.0 / x
    zero = np.zeros_like(x)
    cols = [u**k for k in range(structure.degree_a + 1)] + [zero for _ in range(structure.degree_b + 1)]
    refs = structure.refs(refs)
    cols += [extra_values(e, g, inclination, snr, refs, x) + zero for e in structure.extras]
    return np.stack(cols, axis=-1)


def offset_design(structure: Structure, x) -> np.ndarray:
    """Design of the offset ``b(x)``, zeros for the slope terms."""
    x = np.asarray(x, float)
    u = 1.0 / x
    zero = np.zeros_like(x)
    cols = [zero for _ in range(structure.degree_a + 1)] + [u**k for k in range(structure.degree_b + 1)]
    cols += [zero for _ in structure.extras]
    return np.stack(cols, axis=-1)


def _scatter(gamma, x) -> np.ndarray:
    return np.exp(gamma[0] + gamma[1] / np.asarray(x, float))


# --------------------------------------------------------------------------- one fit


@dataclass(frozen=True, eq=False)
class _Fit:
    coef: np.ndarray
    cov: np.ndarray
    gamma: np.ndarray
    gamma_cov: np.ndarray


def _nll_gamma(gamma, u, r2, e2):
    v = np.exp(2.0 * (gamma[0] + gamma[1] * u)) + e2
    return 0.5 * float(np.sum(np.log(v) + r2 / v))


def _gamma_from_ends(p, form, u_lo, u_hi):
    """``gamma`` from ln s at the ends of the u range (``inverse_x``) or ln s itself (``flat``)."""
    if form == "flat" or u_hi <= u_lo:
        return np.array([p[0], 0.0])
    g1 = (p[1] - p[0]) / (u_hi - u_lo)
    return np.array([p[0] - g1 * u_lo, g1])


def _fit_gamma(gamma, u, r2, e2, form):
    """Maximum-likelihood ``gamma`` given the squared residuals, ln s bounded at the ends of the u range.

    Started from the previous ``gamma`` and from the moment estimate ``s^2 = mean(r^2 - err^2)`` in each half
    of the u range (the likelihood is flat where s << err, so one start can stall there); the better end wins.
    """
    u_lo, u_hi = float(u.min()), float(u.max())
    lo, hi = math.log(SCATTER_BOUNDS[0]), math.log(SCATTER_BOUNDS[1])
    one = form == "flat" or u_hi <= u_lo
    half = u <= np.median(u)
    moments = [0.5 * math.log(max(float(np.mean(r2[k] - e2[k])), SCATTER_BOUNDS[0] ** 2)) if k.any() else lo
               for k in (half, ~half)]
    starts = [np.clip([gamma[0] + gamma[1] * u_lo, gamma[0] + gamma[1] * u_hi], lo, hi),
              np.clip(moments, lo, hi), np.clip([np.mean(moments)] * 2, lo, hi)]

    def nll(p):
        return _nll_gamma(_gamma_from_ends(p, form, u_lo, u_hi), u, r2, e2)

    best = None
    for p0 in starts:
        p0 = np.array([np.mean(p0)]) if one else np.asarray(p0, float)
        res = optimize.minimize(nll, p0, method="L-BFGS-B", bounds=[(lo, hi)] * p0.size,
                                options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    return _gamma_from_ends(best.x, form, u_lo, u_hi)


def fit_structure(structure: Structure, mocks: SuiteMocks, refs: Mapping, n_iter: int = 3) -> _Fit:
    """Fit one structure: weighted least squares for the mean alternated with maximum-likelihood scatter."""
    a = design(structure, mocks.x, mocks.g, mocks.inclination, mocks.snr, refs)
    u, e2 = 1.0 / mocks.x, mocks.err**2
    gamma = np.array([math.log(max(float(np.std(mocks.m - np.median(mocks.m))), 1e-6)), 0.0])
    for _ in range(n_iter):
        w = 1.0 / (_scatter(gamma, mocks.x) ** 2 + e2)
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], mocks.m * sw, rcond=None)
        r2 = (mocks.m - a @ coef) ** 2
        gamma = _fit_gamma(gamma, u, r2, e2, structure.scatter)
    s2 = _scatter(gamma, mocks.x) ** 2
    w = 1.0 / (s2 + e2)
    cov = np.linalg.pinv((a * w[:, None]).T @ a)
    # Fisher information of gamma: v = s^2 + err^2, d v / d gamma = 2 s^2 (1, u)
    dg = np.stack([np.ones_like(u), u], axis=1)
    fisher = (dg * (2.0 * (s2 * w) ** 2)[:, None]).T @ dg
    if structure.scatter == "flat":  # gamma_1 = 0 is fixed, not fitted
        gamma_cov = np.zeros((2, 2))
        gamma_cov[0, 0] = 1.0 / fisher[0, 0] if fisher[0, 0] > 0 else math.inf
    else:
        gamma_cov = np.linalg.pinv(fisher)
    return _Fit(coef=coef, cov=cov, gamma=gamma, gamma_cov=gamma_cov)


def _predictive_nll(fit: _Fit, structure: Structure, mocks: SuiteMocks, refs) -> np.ndarray:
    a = design(structure, mocks.x, mocks.g, mocks.inclination, mocks.snr, refs)
    mean = a @ fit.coef
    v = _scatter(fit.gamma, mocks.x) ** 2 + mocks.err**2 + np.einsum("ni,ij,nj->n", a, fit.cov, a)
    return 0.5 * (np.log(2.0 * math.pi * v) + (mocks.m - mean) ** 2 / v)


def _folds(n: int) -> np.ndarray:
    k = min(N_FOLDS, max(2, n // 5))
    perm = np.random.default_rng(FOLD_SEED).permutation(n)
    fold = np.empty(n, np.int64)
    fold[perm] = np.arange(n) % k
    return fold


def cross_validate(structure: Structure, mocks: SuiteMocks, refs, fold) -> np.ndarray:
    """Held-out negative log predictive density of every mock (fitted without its fold)."""
    nll = np.empty(mocks.n)
    for f in np.unique(fold):
        test = fold == f
        fit = fit_structure(structure, mocks.subset(~test), refs)
        nll[test] = _predictive_nll(fit, structure, mocks.subset(test), refs)
    return nll


# --------------------------------------------------------------------------- admissibility


def _has_sign_terms(structure: Structure) -> bool:
    return bool({"sign", "sign_inv_x", "sign_abs_grad", "sign_abs_grad_inv_x"} & set(structure.extras))


def _abs_grad_range(mocks: SuiteMocks, sign: float | None = None) -> tuple:
    """(min, max) abs(grad_z) of the mocks with g != 0 of one sign (None: both; all signs when that sign has
    none), dex/kpc; (0, 0) without such mocks."""
    ag = np.abs(mocks.g[mocks.g != 0]) if sign is None else np.abs(mocks.g[np.sign(mocks.g) == sign])
    if ag.size == 0:
        return (0.0, 0.0) if sign is None else _abs_grad_range(mocks)
    return float(ag.min()), float(ag.max())


def _corners(mocks: SuiteMocks, structure: Structure) -> list:
    """(abs(g), sign, inclination, snr) at the suite's extremes of every extra term the structure has.

    With per-sign terms each sign is checked over its own mocks' abs(grad_z) range (a suite whose strong
    gradients of one sign were left out, e.g. for the calibrations' range, is not judged where it has no mocks);
    without them over the range of both signs."""
    by_sign = _has_sign_terms(structure)
    signs = [1.0, -1.0] if by_sign else [1.0]
    incs = [float(mocks.inclination.min()), float(mocks.inclination.max())] \
        if "inclination" in structure.extras else [None]
    snrs = [float(mocks.snr.min()), float(mocks.snr.max())] if "snr" in structure.extras else [None]
    out = []
    for s in signs:
        gs = list(_abs_grad_range(mocks, s if by_sign else None)) if "abs_grad" in structure.extras \
            else [float(np.median(np.abs(mocks.g)))]
        out += [(g, s, i, q) for g in gs for i in incs for q in snrs]
    return out


def admissible(structure: Structure, coef, mocks: SuiteMocks, refs, gamma=None) -> str | None:
    """None if the structure with coefficients ``coef`` is physical over the suite's range, else why not.

    Physical means, at every corner of :func:`_corners` (the suite's extreme abs(grad_z), both signs where the
    structure has a per-sign term, each over its own mocks' abs(grad_z) range, extreme inclination and S/N
    where it has those terms) and on 64 x values spanning the mocks' x range:

    * the slope ``a(x, ...)`` stays in ``[0, SLOPE_MAX]`` and is monotone in x;
    * the mean measured gradient ``a(x, g, ...) g + b(x)`` does not decrease with the intrinsic gradient
      ``g``, per sign, on a grid of g spanning that sign's abs(grad_z) range [min, max] (both signs' range
      for a structure without per-sign terms): smearing or clipping
      can flatten a gradient, not reverse the order of two gradients. A decrease (from the running maximum
      along the grid) smaller than ``MONOTONE_TOL`` times the predictive scatter
      ``sqrt(s(x)^2 + median err^2)`` at that x is tolerated (indistinguishable from flat for one mock);
      ``gamma`` gives s(x) (None: s = 0, only the mocks' errors).
    """
    xx = np.linspace(float(mocks.x.min()), float(mocks.x.max()), 64)
    corners = _corners(mocks, structure)
    for g, s, inc, snr in corners:
        gg = np.full_like(xx, s * max(g, 1e-12))
        slope = slope_design(structure, xx, gg, None if inc is None else np.full_like(xx, inc),
                             None if snr is None else np.full_like(xx, snr), refs) @ coef
        if slope.min() < 0.0 or slope.max() > SLOPE_MAX:
            return f"slope leaves [0, {SLOPE_MAX:g}] ({slope.min():.3g} to {slope.max():.3g})"
        d = np.diff(slope)
        tol = 1e-9 * max(1.0, float(np.abs(slope).max()))
        if np.any(d > tol) and np.any(d < -tol):
            return "slope turns over inside the mocks' x range"
    return _mean_turnover(structure, coef, mocks, refs, gamma, xx, corners)


def _mean_turnover(structure, coef, mocks: SuiteMocks, refs, gamma, xx, corners) -> str | None:
    """Why the mean measured gradient decreases with the intrinsic one (see :func:`admissible`), or None."""
    if not np.any(mocks.g != 0):
        return None
    e_med = float(np.median(mocks.err))
    s_x = np.zeros_like(xx) if gamma is None else _scatter(np.asarray(gamma, float), xx)
    tol = MONOTONE_TOL * np.sqrt(s_x**2 + e_med**2) + 1e-12
    by_sign = _has_sign_terms(structure)
    for s, inc, snr in dict.fromkeys((s, i, q) for _, s, i, q in corners):
        lo, hi = _abs_grad_range(mocks, s if by_sign else None)
        if hi <= lo:
            continue
        grid = np.linspace(lo, hi, _N_GRID_G)
        g = s * grid if s > 0 else -grid[::-1]  # increasing intrinsic gradient
        X, G = np.meshgrid(xx, g, indexing="ij")
        full = (lambda v: None if v is None else np.full_like(X, v))
        mean = design(structure, X, G, full(inc), full(snr), refs) @ coef
        drop = np.maximum.accumulate(mean, axis=1) - mean
        worst = np.max(drop, axis=1)
        k = int(np.argmax(worst / tol))
        if worst[k] > tol[k]:
            j = int(np.argmax(drop[k]))
            jmax = int(np.argmax(mean[k, : j + 1]))
            where = "".join(f", {n} = {v:g}" for n, v in (("inclination", inc), ("snr", snr)) if v is not None)
            return (f"mean measured gradient decreases with the intrinsic one by {worst[k]:.3g} dex/kpc "
                    f"({worst[k] / (tol[k] / MONOTONE_TOL):.2f} of the scatter; tolerated {MONOTONE_TOL:g}) "
                    f"at x = {xx[k]:.2f} from grad_z = {g[jmax]:+.3g} to {g[j]:+.3g} dex/kpc{where}")
    return None


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True, eq=False)
class _Scored:
    structure: Structure
    nll: np.ndarray | None
    admissible: str | None
    se: float = math.nan  # paired standard error of the score difference to the best structure

    @property
    def score(self) -> float:
        return math.inf if self.nll is None else float(np.mean(self.nll))


def _score(structure, mocks, refs, fold) -> _Scored:
    if mocks.n < 2 * (structure.n_coef + 2):
        return _Scored(structure, None, f"{mocks.n} mocks for {structure.n_coef} coefficients")
    full = fit_structure(structure, mocks, refs)
    why = admissible(structure, full.coef, mocks, refs, full.gamma)
    return _Scored(structure, cross_validate(structure, mocks, refs, fold), why)


def select_structure(mocks: SuiteMocks, refs, extras_allowed: tuple) -> tuple:
    """The chosen structure and every scored candidate (see :data:`SELECTION_RULE`)."""
    fold = _folds(mocks.n)
    scored = [_score(Structure(da, db), mocks, refs, fold) for da in (0, 1, 2) for db in (0, 1)]
    ok = [s for s in scored if s.admissible is None and math.isfinite(s.score)]
    if not ok:
        return None, scored
    current = min(ok, key=lambda s: s.score)
    remaining = list(extras_allowed)
    knees = knee_candidates(mocks)
    x_knees = sign_inv_x_knee_candidates(mocks)
    path = []
    while remaining:
        st = current.structure
        trial = [_score(Structure(st.degree_a, st.degree_b, st.extras + step, st.scatter,
                                  knee if "abs_grad" in step else st.knee,
                                  xk if "sign_inv_x" in step else st.sign_inv_x_knee), mocks, refs, fold)
                 for step in _steps(st.extras, remaining)
                 for knee in (knees if "abs_grad" in step else (st.knee,))
                 for xk in (x_knees if "sign_inv_x" in step else (st.sign_inv_x_knee,))]
        # a step that improves the score but is inadmissible on this base (e.g. a per-sign 1/x slope whose
        # linear-in-1/x extrapolation crosses 0 at the smallest x) is also fitted on the other bases, where
        # a(x) or b(x) of another degree may keep it physical
        trial += [_score(replace(s.structure, degree_a=da, degree_b=db), mocks, refs, fold)
                  for s in list(trial) if s.admissible is not None and s.score < current.score
                  for da in (0, 1, 2) for db in (0, 1) if (da, db) != (st.degree_a, st.degree_b)]
        scored += trial
        good = [s for s in trial if s.admissible is None and s.score < current.score]
        if not good:
            break
        # the one-SE rule within the step too: a step adding several terms at once (a refinement with its
        # parents) is taken only if it beats every smaller improving step by more than one standard error
        top = min(good, key=lambda s: s.score)
        near = [s for s in good if s.score <= top.score + float(np.std(s.nll - top.nll)) / math.sqrt(mocks.n)]
        current = min(near, key=lambda s: (s.structure.n_coef, s.score))
        for e in current.structure.extras[len(st.extras):]:
            remaining.remove(e)
        path.append(current.structure)
    # every step of the greedy path on the other bases too, so the one-SE rule can pick a simpler base
    scored += [_score(replace(st, degree_a=da, degree_b=db), mocks, refs, fold)
               for st in path for da in (0, 1, 2) for db in (0, 1) if (da, db) != (st.degree_a, st.degree_b)]
    best = min((s for s in scored if s.admissible is None and math.isfinite(s.score)), key=lambda s: s.score)
    scored = [s if s.nll is None else
              _Scored(s.structure, s.nll, s.admissible, float(np.std(s.nll - best.nll) / math.sqrt(mocks.n)))
              for s in scored]
    within = [s for s in scored if s.admissible is None and math.isfinite(s.score)
              and s.score <= best.score + s.se]
    chosen = min(within, key=lambda s: (s.structure.n_coef, s.score))
    return _scatter_form(chosen, mocks, refs, fold, scored)


def _steps(extras: tuple, remaining: list) -> list:
    """The terms one greedy step may add: each remaining term whose parents (:data:`_NEEDS`) are in, and a
    term together with its missing parents when those are remaining (a per-sign slope may be admissible
    only with its own x- or abs(grad_z)-dependence)."""
    out = []
    for e in remaining:
        missing = tuple(n for n in _NEEDS.get(e, ()) if n not in extras)
        # at most two parents come along (sign_abs_grad with sign and abs_grad): a five-term jump
        # (sign_abs_grad_inv_x with all four) can mimic an offset b(x) missing from the base with odd terms in g
        if all(n in remaining for n in missing) and len(missing) <= _MAX_PARENTS_PER_STEP:
            out.append(missing + (e,))
    return out


def _scatter_form(chosen: _Scored, mocks: SuiteMocks, refs, fold, scored: list) -> tuple:
    """The chosen structure with the flat scatter form unless ``inverse_x`` is better by > 1 standard error."""
    st = chosen.structure
    flat = _score(replace(st, scatter="flat"), mocks, refs, fold)
    if flat.nll is None or chosen.nll is None:
        return st, scored
    se = float(np.std(flat.nll - chosen.nll) / math.sqrt(mocks.n))
    scored = scored + [_Scored(flat.structure, flat.nll, flat.admissible, se)]
    if flat.admissible is None and flat.score <= chosen.score + se:
        return flat.structure, scored
    return st, scored


# --------------------------------------------------------------------------- assessment


#: Thresholds of the assessment.
OFFSET_FRACTION_MAX = 0.2
OFFSET_SIGMA_MIN = 3.0
SIGN_FLIP_MAX = 0.25
DISCRIMINATION_MIN = 1.0
MISFIT_MAX = 0.5


@dataclass(frozen=True)
class Assessment:
    """Whether the ratio model and the transfer model describe a suite.

    Attributes
    ----------
    offset_fraction : float
        Largest ``|b(x)| / (a(x) g_med)`` over the mocks' x range, ``g_med``
        the suite's median abs(grad_z): the offset relative to the smeared
        signal of a typical gradient; ``b(x)`` from a fit with a per-sign
        slope where the suite has both signs (slopes that differ by sign are
        not an offset: per-sign ratio curves describe them).
    offset_sigma : float
        Largest ``|b(x)| / sigma_b(x)`` over the x range.
    sign_flip_fraction : float
        Fraction of mocks whose measured gradient has the opposite sign of
        the intrinsic one, in the abs(grad_z) group where it is largest.
    discrimination : float
        Largest ``a(x) g_med / sqrt(s(x)^2 + median err^2)`` over the x
        range: how many sigma a typical gradient's measurement lies from 0.
    misfit : float
        Largest ``|mean standardised residual|`` in cells of (x tercile,
        abs(grad_z) group, sign) holding >= 10 mocks, where it exceeds
        ``3 / sqrt(n)`` (0 otherwise): lack of fit of the transfer model, in
        units of the scatter.
    ratio_ok, transfer_ok : bool
        The ratio model describes the suite when there is no significant
        offset (``offset_sigma > OFFSET_SIGMA_MIN`` and ``offset_fraction >
        OFFSET_FRACTION_MAX``) and ``sign_flip_fraction <= SIGN_FLIP_MAX``
        and ``discrimination >= DISCRIMINATION_MIN``; the transfer model when
        a structure was admissible, ``misfit <= MISFIT_MAX`` and
        ``discrimination >= DISCRIMINATION_MIN``.
    reasons : tuple of str
        Why a model does not describe the suite (empty when both do).
    """

    offset_fraction: float
    offset_sigma: float
    sign_flip_fraction: float
    discrimination: float
    misfit: float
    ratio_ok: bool
    transfer_ok: bool
    reasons: tuple = ()

    @property
    def usable(self) -> bool:
        """At least one model describes the suite."""
        return self.ratio_ok or self.transfer_ok

    def as_dict(self) -> dict:
        return {"offset_fraction": self.offset_fraction, "offset_sigma": self.offset_sigma,
                "sign_flip_fraction": self.sign_flip_fraction, "discrimination": self.discrimination,
                "misfit": self.misfit, "ratio_ok": self.ratio_ok, "transfer_ok": self.transfer_ok,
                "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Assessment":
        return cls(**{**d, "reasons": tuple(d.get("reasons", ()))})


def _sign_flip_fraction(mocks: SuiteMocks) -> float:
    worst = 0.0
    for ag in np.unique(np.round(np.abs(mocks.g), 6)):
        sel = (np.round(np.abs(mocks.g), 6) == ag) & (mocks.g != 0)
        if sel.sum() >= 5:
            worst = max(worst, float(np.mean(np.sign(mocks.m[sel]) != np.sign(mocks.g[sel]))))
    return worst


def _misfit(tf: "TransferFunction", mocks: SuiteMocks) -> float:
    mean = tf.mean(mocks.x, mocks.g, mocks.inclination, mocks.snr)
    z = (mocks.m - mean) / np.sqrt(tf.scatter(mocks.x) ** 2 + mocks.err**2)
    x_cut = np.quantile(mocks.x, [1 / 3, 2 / 3])
    xb = np.searchsorted(x_cut, mocks.x)
    ag = np.round(np.abs(mocks.g), 6)
    if np.unique(ag).size > 10:  # continuous gradients: |grad_z| terciles
        ag = np.searchsorted(np.quantile(ag, [1 / 3, 2 / 3]), ag).astype(float)
    worst = 0.0
    for group in np.unique(ag):
        for s in (1, -1):
            for b in range(3):
                sel = (ag == group) & (np.sign(mocks.g) == s) & (xb == b)
                n = int(sel.sum())
                if n >= 10:
                    mz = abs(float(np.mean(z[sel])))
                    if mz > 3.0 / math.sqrt(n):
                        worst = max(worst, mz)
    return worst


def assess(tf: "TransferFunction", mocks: SuiteMocks, *, admissible_found: bool = True,
           offset_model: "TransferFunction | None" = None) -> Assessment:
    """Whether the ratio model and the transfer model describe the suite (see :class:`Assessment`).

    ``offset_model`` (default ``tf``) gives the offset b(x) judged for the ratio model: the fit with a
    per-sign slope where the suite has both signs, so that slopes differing by sign (which per-sign ratio
    curves describe) are not mistaken for an offset.
    """
    flips = _sign_flip_fraction(mocks)
    om = offset_model or tf
    xx = np.linspace(tf.x_range[0], tf.x_range[1], 64)
    g_med = tf.references["abs_grad"]
    a = tf.slope(xx)
    b, sb = om.offset(xx), om.offset_std(xx)
    frac = float(np.max(np.abs(b) / np.maximum(a * g_med, 1e-12)))
    sig = float(np.max(np.abs(b) / np.maximum(sb, 1e-300)))
    e_med = float(np.median(mocks.err))
    disc = float(np.max(a * g_med / np.sqrt(tf.scatter(xx) ** 2 + e_med**2)))
    misfit = _misfit(tf, mocks)
    reasons = []
    if frac > OFFSET_FRACTION_MAX and sig > OFFSET_SIGMA_MIN:
        reasons.append(f"ratio: offset b(x) up to {frac:.2f} of the smeared median gradient ({sig:.1f} sigma); "
                       "a ratio cannot correct an offset")
    if flips > SIGN_FLIP_MAX:
        reasons.append(f"ratio: {flips:.0%} of the mocks of one |grad_z| measure the opposite sign")
    if disc <= 0:  # a sigma distance below 0 would read as nonsense: say what it means
        reasons.append("both: the measured gradient does not rise with the intrinsic one (slope a(x) <= 0 "
                       "over the suite's x range)")
    elif disc < DISCRIMINATION_MIN:
        reasons.append(f"both: scatter too large (a typical gradient is at most {disc:.2f} sigma from 0)")
    if not admissible_found:
        reasons.append(f"transfer: no admissible structure (slope outside [0, {SLOPE_MAX:g}] or turning over, or "
                       "mean measured gradient decreasing with the intrinsic one)")
    if misfit > MISFIT_MAX:
        reasons.append(f"transfer: residuals off by {misfit:.2f} scatter in a cell of (x, |grad_z|, sign)")
    ratio_ok = not any(r.startswith(("ratio", "both")) for r in reasons)
    transfer_ok = not any(r.startswith(("transfer", "both")) for r in reasons)
    return Assessment(frac, sig, flips, disc, misfit, ratio_ok, transfer_ok, tuple(reasons))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class TransferFunction:
    """A fitted transfer function (module docstring) with its covariance, selection and assessment.

    Attributes
    ----------
    structure : Structure
    coefficients : ndarray
        In the order of :meth:`Structure.names`.
    covariance : ndarray
        Of the coefficients.
    gamma, gamma_covariance : ndarray
        ``ln s(x) = gamma_0 + gamma_1 / x`` (s in dex/kpc) and its covariance.
    references : dict
        Reference values of the extra terms (suite medians).
    x_range, grad_range : tuple
        Mocks' x and abs(grad_z) (dex/kpc) ranges.
    grad_range_by_sign : dict or None
        ``{"positive": (min, max), "negative": (min, max)}``: abs(grad_z) (dex/kpc) of the mocks of each
        sign (None for a sign without mocks; None altogether in files before format 4). The transfer
        function is measured only there: a suite whose strong gradients of one sign were left out (the
        calibrations' range, :mod:`.calibration_range`) reaches less far on that side.
    inclination_range, snr_range : tuple or None
    n_mocks : int
    has_errors : bool
        The mocks had reported errors (s(x) is the scatter beyond them).
    selection : list of dict
        Every structure scored: label, score, se, admissible.
    assessment : dict
    provenance : dict
    created, mockzgrad_version : str
    """

    structure: Structure
    coefficients: np.ndarray
    covariance: np.ndarray
    gamma: np.ndarray
    gamma_covariance: np.ndarray
    references: dict
    x_range: tuple
    grad_range: tuple
    inclination_range: tuple | None = None
    snr_range: tuple | None = None
    grad_range_by_sign: dict | None = None
    n_mocks: int = 0
    has_errors: bool = False
    selection: list = field(default_factory=list)
    assessment: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    created: str = ""
    mockzgrad_version: str = ""

    # ------------------------------------------------------------- evaluation
    def sign_grad_range(self, sign: float) -> tuple:
        """(min, max) abs(grad_z) (dex/kpc) of the suite's mocks of the sign of ``sign`` (where the transfer
        function was measured for that sign); :attr:`grad_range` where not recorded or the sign had no mocks."""
        key = "negative" if sign < 0 else "positive"
        r = (self.grad_range_by_sign or {}).get(key)
        return tuple(self.grad_range) if r is None else tuple(r)

    def _d(self, x, g, inclination=None, snr=None):
        return design(self.structure, x, g, inclination, snr, self.references)

    def mean(self, x, g, inclination=None, snr=None) -> np.ndarray:
        """Expected measured gradient (dex/kpc) of intrinsic ``g`` (dex/kpc) at ``x``."""
        return self._d(x, g, inclination, snr) @ self.coefficients

    def mean_var(self, x, g, inclination=None, snr=None) -> np.ndarray:
        """Variance of :meth:`mean` from the coefficient covariance, (dex/kpc)^2."""
        d = self._d(x, g, inclination, snr)
        return np.maximum(np.einsum("...i,ij,...j->...", d, self.covariance, d), 0.0)

    def slope(self, x, g=None, inclination=None, snr=None) -> np.ndarray:
        """``a(x, ...)``: d measured / d intrinsic (at the reference covariates, positive sign, by default)."""
        x = np.asarray(x, float)
        g = np.full_like(x, self.references["abs_grad"] or 1.0) if g is None else g
        return slope_design(self.structure, x, g, inclination, snr, self.references) @ self.coefficients

    def slope_std(self, x, g=None, inclination=None, snr=None) -> np.ndarray:
        x = np.asarray(x, float)
        g = np.full_like(x, self.references["abs_grad"] or 1.0) if g is None else g
        d = slope_design(self.structure, x, g, inclination, snr, self.references)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", d, self.covariance, d), 0.0))

    def offset(self, x) -> np.ndarray:
        """``b(x)``, dex/kpc."""
        return offset_design(self.structure, x) @ self.coefficients

    def offset_std(self, x) -> np.ndarray:
        d = offset_design(self.structure, x)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", d, self.covariance, d), 0.0))

    def scatter(self, x) -> np.ndarray:
        """``s(x)``, dex/kpc: scatter of single mocks beyond their reported errors."""
        return _scatter(self.gamma, x)

    # ------------------------------------------------------------- I/O
    def to_dict(self) -> dict:
        """Plain JSON types (the file's content)."""
        def rng(r):
            return None if r is None else [float(v) for v in r]

        return {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": self.created,
            "mockzgrad_version": self.mockzgrad_version,
            "model": "grad_z_measured = a(x, ...) grad_z_true + b(x) + N(0, s(x)^2 + err^2), u = 1/x, "
                     "a = sum alpha_k u^k + sum slope_e * term_e (term of sign_inv_x: (u - references.inv_x) for g < 0, u capped at 1 / structure.sign_inv_x_knee when that is > 0; of sign_abs_grad: the abs_grad term for g < 0; "
                     "of abs_grad_inv_x: the abs_grad term times (u - references.inv_x); of sign_abs_grad_inv_x: "
                     "that for g < 0), b = sum beta_k u^k, ln s = gamma_0 + gamma_1 u "
                     "(gamma_1 = 0 when structure.scatter is 'flat')",
            "structure": self.structure.as_dict(), "names": self.structure.names(),
            "coefficients": [float(v) for v in self.coefficients],
            "covariance": [[float(v) for v in row] for row in self.covariance],
            "gamma": [float(v) for v in self.gamma],
            "gamma_covariance": [[float(v) for v in row] for row in self.gamma_covariance],
            "references": {k: (float(v) if math.isfinite(v) else None) for k, v in self.references.items()},
            "x_range": rng(self.x_range), "grad_range": rng(self.grad_range),
            "inclination_range": rng(self.inclination_range), "snr_range": rng(self.snr_range),
            "grad_range_by_sign": None if self.grad_range_by_sign is None else
            {k: rng(v) for k, v in self.grad_range_by_sign.items()},
            "n_mocks": int(self.n_mocks), "has_errors": bool(self.has_errors),
            "selection_rule": SELECTION_RULE, "selection": self.selection, "assessment": self.assessment,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "TransferFunction":
        if d.get("format") != FORMAT_NAME:
            raise DataError(f"format = {d.get('format')!r}; expected {FORMAT_NAME!r}")
        if d.get("format_version") not in FORMAT_VERSIONS_READ:
            raise DataError(f"format_version = {d.get('format_version')!r}; this mockzgrad reads "
                            f"{', '.join(map(str, FORMAT_VERSIONS_READ))}")
        s = d["structure"]

        def tup(v):
            return None if v is None else tuple(float(a) for a in v)

        return cls(structure=Structure(int(s["degree_a"]), int(s["degree_b"]), tuple(s["extras"]),
                                       str(s.get("scatter", "inverse_x")), float(s.get("abs_grad_knee", 0.0)),
                                       float(s.get("sign_inv_x_knee", 0.0))),
                   coefficients=np.array(d["coefficients"], float), covariance=np.array(d["covariance"], float),
                   gamma=np.array(d["gamma"], float), gamma_covariance=np.array(d["gamma_covariance"], float),
                   references={k: (math.nan if v is None else float(v)) for k, v in d["references"].items()},
                   x_range=tup(d["x_range"]),
                   grad_range=tup(d["grad_range"]), inclination_range=tup(d.get("inclination_range")),
                   snr_range=tup(d.get("snr_range")),
                   grad_range_by_sign=None if d.get("grad_range_by_sign") is None else
                   {k: tup(v) for k, v in d["grad_range_by_sign"].items()},
                   n_mocks=int(d["n_mocks"]), has_errors=bool(d["has_errors"]),
                   selection=list(d.get("selection", [])), assessment=dict(d.get("assessment", {})),
                   provenance=dict(d.get("provenance", {})), created=str(d.get("created", "")),
                   mockzgrad_version=str(d.get("mockzgrad_version", "")))

    def write(self, path, *, overwrite: bool = False) -> None:
        """Write the JSON file (``.json``) atomically."""
        from ..fileio import atomic_write, check_output_path

        path = os.fspath(path)
        if os.path.splitext(path)[1].lower() != ".json":
            raise ConfigError(f"path = {path!r}: extension {os.path.splitext(path)[1]!r}; allowed '.json'")
        check_output_path(path, overwrite)
        text = json.dumps(_json_safe(self.to_dict()), indent=1, allow_nan=False)

        def writer(tmp):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)

        atomic_write(path, writer, overwrite=overwrite)

    @classmethod
    def read(cls, path) -> "TransferFunction":
        """Read a file written by :meth:`write`."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(f"path = {path!r}: no such file")
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"path = {path!r}: not a transfer-function JSON file ({exc})") from None
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"path = {path!r}: malformed transfer-function file ({exc!r})") from None


def _json_safe(value):
    """Plain JSON: non-finite floats become null (strict JSON has no NaN), numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def fit_transfer(table, *, provenance: Mapping | None = None, columns: Mapping | None = None,
                 extras="auto") -> TransferFunction | None:
    """Fit the transfer function of a suite's results table (module docstring).

    Parameters
    ----------
    table : `~astropy.table.Table` or convertible
        Results table (columns as for
        :func:`~mockzgrad.corrections.curves.derive_curves`, plus
        ``grad_z_measured_lo`` / ``_hi`` when available).
    provenance : mapping, optional
        Kept in the file.
    columns : mapping, optional
        Column names for the roles, as for ``derive_curves``.
    extras : "auto" or sequence of str
        Extra slope terms that may be tried; "auto": those of
        :data:`EXTRA_TERMS` the suite sweeps.

    Returns
    -------
    TransferFunction
        With ``assessment`` filled. If no structure is admissible, the
        best-scoring one is returned with ``assessment["transfer_ok"] = False``.
    """
    mocks = read_suite_mocks(table, columns)
    refs = references(mocks)
    allowed = swept_terms(mocks) if extras == "auto" else tuple(extras)
    bad = [e for e in allowed if e not in EXTRA_TERMS]
    if bad:
        raise ConfigError(f"extras = {list(extras)!r}; allowed 'auto' or a subset of {EXTRA_TERMS}")
    chosen, scored = select_structure(mocks, refs, allowed)
    fallback = chosen is None
    if fallback:
        finite = [s for s in scored if math.isfinite(s.score)]
        if not finite:
            raise DataError(f"{mocks.n} mocks: no transfer-function structure can be fitted")
        chosen = min(finite, key=lambda s: s.score).structure
    fit = fit_structure(chosen, mocks, refs)
    tf = _make(chosen, fit, refs, mocks, scored, provenance)
    offset_model = None
    if "sign" in swept_terms(mocks) and "sign" not in chosen.extras:
        with_sign = Structure(chosen.degree_a, chosen.degree_b, chosen.extras + ("sign",), chosen.scatter,
                              chosen.knee)
        offset_model = _make(with_sign, fit_structure(with_sign, mocks, refs), refs, mocks, [], None)
    verdict = assess(tf, mocks, admissible_found=not fallback, offset_model=offset_model)
    return TransferFunction(**{**tf.__dict__, "assessment": verdict.as_dict()})


def _make(structure, fit, refs, mocks: SuiteMocks, scored, provenance) -> TransferFunction:
    from .curveset import _package_version

    def rng(a):
        return None if a is None else (float(a.min()), float(a.max()))

    selection = [{"structure": s.structure.label(), "score": s.score if math.isfinite(s.score) else None,
                  "se_vs_best": s.se if math.isfinite(s.se) else None,
                  "admissible": s.admissible is None, "why_not": s.admissible} for s in scored]
    return TransferFunction(
        structure=structure, coefficients=fit.coef, covariance=fit.cov, gamma=fit.gamma,
        gamma_covariance=fit.gamma_cov, references=structure.refs(refs), x_range=rng(mocks.x), grad_range=rng(np.abs(mocks.g)),
        inclination_range=rng(mocks.inclination), snr_range=rng(mocks.snr),
        grad_range_by_sign={name: rng(np.abs(mocks.g[np.sign(mocks.g) == s])) if np.any(np.sign(mocks.g) == s)
                            else None for name, s in (("positive", 1.0), ("negative", -1.0))},
        n_mocks=mocks.n,
        has_errors=mocks.has_errors, selection=selection, provenance=dict(provenance or {}),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        mockzgrad_version=_package_version())
