"""The recovery's back end: per-bin line fluxes -> dust -> metallicity -> gradient.

Every front end (line fits of a cube's binned spectra today; line maps of a
grism product later) ends with a :class:`~mockzgrad.recovery.fluxes.BinFluxes`
table and one deprojected radius per bin; :func:`measure_gradient` then does
what is common to every product, as a recipe says:

1. optional Balmer-decrement dust correction
   (:func:`~mockzgrad.recovery.dust.balmer_decrement_correction`), with the
   A_V of the integrated fluxes where a bin's own decrement is unusable;
2. the observed log ratios of the usable diagnostics
   (:func:`~mockzgrad.recovery.metallicity.log_ratios`);
3. for the recipe's method and each of its ``also`` methods, in that order:
   metallicity per bin (:data:`METALLICITY_METHODS`), the recipe's cuts on
   the bins (``metallicity.max_z_err``, ``gradient.r_min_kpc``), and the
   gradient fit (:func:`~mockzgrad.recovery.gradient.fit_gradient`; Method II
   fits each diagnostic alone and takes the median gradient);
4. when Method II is not among them, the per-diagnostic gradients
   (each diagnostic alone, labels ``"II:<key>"``) all the same (except
   for grism maps whose Halpha is blended with [NII], ``metallicity.nii_ha``).

Results are typed: :class:`GradientMeasurement` holds a :class:`DustStep`,
one :class:`BinMetallicities` per metallicity label (``"I"``, ``"flux"``,
``"II:<key>"``) and one gradient record per label (:class:`MethodGradient`,
:class:`MedianGradient` for ``"II"``); their ``to_dict``/``record`` methods
give the JSON records of :class:`~mockzgrad.recovery.pipeline.RecoveryResult`.

Radii are deprojected physical kpc, metallicities 12 + log(O/H) in dex,
gradients dex/kpc, A_V mag.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, RecoveryError
from ..physics.calibrations import Diagnostic, all_diagnostics, get_diagnostic
from ..validate import choice
from . import gradient, metallicity
from .dust import balmer_decrement_correction
from .fluxes import BinFluxes

__all__ = [
    "LeftOut",
    "diagnostics_of",
    "DustStep",
    "BinMetallicities",
    "MethodGradient",
    "MedianGradient",
    "MethodInputs",
    "GradientMeasurement",
    "METALLICITY_METHODS",
    "BALMER_LINES",
    "metallicity_method",
    "split_diagnostics",
    "lines_needed",
    "correct_dust",
    "apply_bin_cuts",
    "fit_method_gradient",
    "per_diagnostic_gradients",
    "measure_gradient",
]

#: Per-bin notes of the metallicity methods that mean "Z pinned at a calibration limit"
#: (Method I: prior edge; Method II: ratio beyond the calibration's extreme).
EDGE_NOTES = ("edge of the prior range", "Z at the extreme")

#: Balmer lines fitted when the recipe corrects for dust or uses the line-flux method.
BALMER_LINES = ("Ha", "Hb", "Hg")


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LeftOut:
    """Something the recovery left out, and why.

    Attributes
    ----------
    reason : str
    bin : int, str or None
        Bin index, a region in words (from the binning), or None.
    diagnostic : str or None
        Key of a diagnostic left out.
    step : str or None
        The stage that left something out (e.g. ``"dust"``).
    """

    reason: str
    bin: int | str | None = None
    diagnostic: str | None = None
    step: str | None = None

    def to_dict(self) -> dict:
        """The JSON record: ``bin``, then ``diagnostic`` or ``step`` when set, then ``reason``."""
        out = {"bin": self.bin}
        if self.diagnostic is not None:
            out["diagnostic"] = self.diagnostic
        if self.step is not None:
            out["step"] = self.step
        out["reason"] = self.reason
        return out


@dataclass(frozen=True, eq=False)
class DustStep:
    """Line fluxes after the dust step.

    Attributes
    ----------
    fluxes : BinFluxes
        Dust-corrected fluxes, or the input when nothing was corrected.
    a_v : numpy.ndarray of shape (n_bins,) or None
        A_V applied to each bin, mag; None when the recipe does not correct.
    a_v_source : tuple of str or None
        Per bin ``"bin"``, ``"global"`` or ``"none"``; None as ``a_v``.
    excluded : tuple of LeftOut
        Why no correction was made (a Balmer line not measured).
    """

    fluxes: BinFluxes
    a_v: np.ndarray | None = None
    a_v_source: tuple[str, ...] | None = None
    excluded: tuple[LeftOut, ...] = ()


@dataclass(frozen=True, eq=False)
class BinMetallicities:
    """Per-bin metallicities of one method after the recipe's cuts.

    Attributes
    ----------
    label : str
        ``"I"``, ``"flux"`` or ``"II:<diagnostic key>"``.
    z, z_lo, z_hi : numpy.ndarray, shape (n_bins,)
        Best fit and 15.87/84.13 percentiles, 12 + log(O/H), dex.
    valid : numpy.ndarray of bool, shape (n_bins,)
        The bin enters the gradient fit.
    reasons : tuple of str
        Why a bin is not valid ("" where valid, or where the method gave none).
    diagnostics_used : tuple of tuple of str or None
        Diagnostics that entered each bin (None when the method does not say).
    at_edge : numpy.ndarray of bool or None
        The bin's metallicity is pinned at a calibration limit (a validity
        range edge or a calibration extreme), so it is a bound rather than a
        measurement (None when the method does not say).
    """

    label: str
    z: np.ndarray
    z_lo: np.ndarray
    z_hi: np.ndarray
    valid: np.ndarray
    reasons: tuple[str, ...]
    diagnostics_used: tuple | None = None
    at_edge: np.ndarray | None = None
    branch: tuple | None = None  # Method I: branch of each bin and what chose it (recovery.metallicity.branches)
    chosen_by: tuple | None = None
    branch_prob: np.ndarray | None = None

    def record(self, i: int) -> dict:
        """JSON record of bin ``i``: ``z``, ``z_lo``, ``z_hi`` (or ``z = None`` and a reason)."""
        if not self.valid[i]:
            rec = {"z": None, "reason": self.reasons[i] or "left out"}
            if self.branch is not None and self.branch[i] not in ("", "single"):
                rec.update(self._branch_record(i))  # a bin left out with its branch undecided by its data
            return rec
        z, lo, hi = self.z[i], self.z_lo[i], self.z_hi[i]
        rec = {"z": float(z), "z_lo": float(lo), "z_hi": float(hi)}
        if not lo <= z <= hi:
            # the best fit lies outside its own 16-84 % interval: a bimodal
            # posterior (e.g. R3 alone, double valued); said, not hidden
            rec["bimodal"] = True
        if self.diagnostics_used is not None:
            rec["diagnostics"] = list(self.diagnostics_used[i])
        if self.at_edge is not None and self.at_edge[i]:
            rec["at_range_edge"] = True
        rec.update(self._branch_record(i))
        return rec

    def _branch_record(self, i: int) -> dict:
        """Method I: ``branch``, ``branch_chosen_by`` and ``branch_prob`` of bin ``i`` (empty if none)."""
        if self.branch is None or not self.branch[i]:
            return {}
        rec = {"branch": self.branch[i], "branch_chosen_by": self.chosen_by[i]}
        if self.branch_prob is not None and np.isfinite(self.branch_prob[i]):
            rec["branch_prob"] = float(self.branch_prob[i])
        return rec


@dataclass(frozen=True, eq=False)
class MethodGradient:
    """Gradient fitted to one method's metallicities (``fit`` None: too few bins, ``reason`` says)."""

    label: str
    fit: gradient.GradientFit | None = None
    n_bins: int = 0
    reason: str = ""
    extra: dict | None = None  # method facts recorded with the gradient (Method I: weight shares)

    def to_dict(self) -> dict:
        """The fit's :meth:`~mockzgrad.recovery.gradient.GradientFit.to_dict`, or ``grad_z = None`` and why.

        ``extra`` (e.g. Method I's ``weight_share``, ``dominant_diagnostic``,
        ``scatter_default``) is added to either record.
        """
        if self.fit is None:
            rec = {"grad_z": None, "n_bins": self.n_bins, "reason": self.reason}
        else:
            rec = dict(self.fit.to_dict())
            rec["grad_z_err"] = float(self.fit.grad_z_err)
        rec.update(self.extra or {})
        return rec


@dataclass(frozen=True)
class MedianGradient:
    """Method II: the median of the gradients fitted with each diagnostic alone.

    Attributes
    ----------
    label : str
        ``"II"``.
    grad_z : float or None
        Median gradient, dex/kpc; None when no diagnostic has one.
    grad_z_err : float
        Standard deviation of the per-diagnostic gradients, dex/kpc; with one
        diagnostic, that diagnostic's own gradient error.
    z0 : float
        Median intercept, dex.
    diagnostics : tuple of str
        Keys of the diagnostics with a gradient, sorted.
    reason : str
        Why there is no gradient.
    """

    label: str
    grad_z: float | None
    grad_z_err: float = math.nan
    z0: float = math.nan
    diagnostics: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON record; ``grad_z_lo``/``grad_z_hi`` are ``grad_z -+ grad_z_err`` (``grad_z`` when NaN)."""
        if self.grad_z is None:
            return {"grad_z": None, "reason": self.reason}
        med, std = self.grad_z, self.grad_z_err
        return {"grad_z": float(med), "grad_z_err": float(std),
                "grad_z_lo": float(med - std) if math.isfinite(std) else float(med),
                "grad_z_hi": float(med + std) if math.isfinite(std) else float(med),
                "z0": float(self.z0), "diagnostics": list(self.diagnostics), "method": "II"}


@dataclass(frozen=True, eq=False)
class MethodInputs:
    """What every metallicity method of :data:`METALLICITY_METHODS` receives.

    Attributes
    ----------
    fluxes : BinFluxes
        Line fluxes after the dust step.
    ratios : RatioSet
        Their log ratios (:func:`~mockzgrad.recovery.metallicity.log_ratios`).
    diagnostics : tuple of Diagnostic
        The usable diagnostics.
    radius_kpc : numpy.ndarray, shape (n_bins,)
        Deprojected radius of each bin, kpc.
    """

    fluxes: BinFluxes
    ratios: metallicity.RatioSet
    diagnostics: tuple[Diagnostic, ...]
    radius_kpc: np.ndarray


@dataclass(frozen=True, eq=False)
class GradientMeasurement:
    """What the back end measured.

    Attributes
    ----------
    method : str
        The recipe's primary method.
    diagnostics : tuple of Diagnostic
        The diagnostics used (those whose lines were all measured).
    dust : DustStep
    metallicities : tuple of BinMetallicities
        One per label, in the order measured.
    gradients : tuple of MethodGradient or MedianGradient
        One per label, in the order measured (Method II: each diagnostic,
        then the median ``"II"``).
    """

    method: str
    diagnostics: tuple[Diagnostic, ...]
    dust: DustStep
    metallicities: tuple[BinMetallicities, ...]
    gradients: tuple

    @property
    def fluxes(self) -> BinFluxes:
        """Line fluxes after the dust step."""
        return self.dust.fluxes

    def gradient(self, label: str):
        """The gradient record of ``label`` (the last one measured under that label)."""
        found = [g for g in self.gradients if g.label == label]
        if not found:
            raise KeyError(f"no gradient {label!r}; measured: {', '.join(g.label for g in self.gradients)}")
        return found[-1]

    @property
    def primary(self):
        """The gradient record of the primary method."""
        return self.gradient(self.method)


# ---------------------------------------------------------------------------
# lines and diagnostics
# ---------------------------------------------------------------------------

def split_diagnostics(keys, lines) -> tuple[tuple[Diagnostic, ...], tuple]:
    """The diagnostics whose lines are all in ``lines``, and the others with their missing lines.

    Parameters
    ----------
    keys : sequence of str
        Diagnostic keys (a recipe's ``metallicity.diagnostics``).
    lines : iterable of str
        Line ids measured (or covered).

    Returns
    -------
    usable : tuple of Diagnostic
        In the order of ``keys``.
    missing : tuple of (Diagnostic, list of str)
        Each other diagnostic and its lines not in ``lines``, sorted.
    """
    have = set(lines)
    usable, missing = [], []
    for d in diagnostics_of(keys):
        if set(d.lines) <= have:
            usable.append(d)
        else:
            missing.append((d, sorted(set(d.lines) - have)))
    return tuple(usable), tuple(missing)


def diagnostics_of(keys) -> list[Diagnostic]:
    """The diagnostics of ``keys``, from one look-up of the calibration registry.

    (Each registry look-up checks the calibration files' modification times.)
    """
    known = all_diagnostics()
    return [known[k] if k in known else get_diagnostic(k) for k in keys]  # get_diagnostic: the error


def lines_needed(recipe) -> set[str]:
    """Lines the back end uses under ``recipe``: the diagnostics' and, for dust or the line-flux method, Balmer lines."""
    wanted = set()
    for d in diagnostics_of(recipe.metallicity.diagnostics):
        wanted |= set(d.lines)
    if recipe.dust.correct or recipe.metallicity.method == "flux":
        wanted |= set(BALMER_LINES)
    return wanted


# ---------------------------------------------------------------------------
# dust
# ---------------------------------------------------------------------------

def correct_dust(fluxes: BinFluxes, recipe, *, integrated: BinFluxes | None = None) -> DustStep:
    """The recipe's dust step.

    Parameters
    ----------
    fluxes : BinFluxes
        Observed fluxes of every bin.
    recipe : mockzgrad.config.DustRecipe
    integrated : BinFluxes or None
        Fluxes of the whole galaxy (one bin): its A_V is used in bins whose
        own decrement is unusable. None: those bins are not corrected.

    Returns
    -------
    DustStep
        When a line of ``recipe.pair`` is not measured, no correction and a
        :class:`LeftOut` saying so (every bin ``a_v = 0``, source ``"none"``).
    """
    if not recipe.correct:
        return DustStep(fluxes)
    missing = [n for n in recipe.pair if n not in fluxes.names]
    if missing:
        # no decrement without both Balmer lines: say so and go on uncorrected
        why = LeftOut(step="dust", reason=f"{' and '.join(missing)} not covered by the cube: "
                                          "no Balmer-decrement dust correction")
        return DustStep(fluxes, np.zeros(fluxes.n_bins), ("none",) * fluxes.n_bins, (why,))
    kw = dict(law=recipe.law, law_lines=recipe.law_lines, pair=tuple(recipe.pair), snr_min=recipe.snr_min)
    global_a_v = None
    if integrated is not None:
        _, a_v_global, _ = balmer_decrement_correction(integrated, global_a_v=0.0, **kw)
        global_a_v = float(np.asarray(a_v_global)[0])
    corrected, a_v, source = balmer_decrement_correction(fluxes, global_a_v=global_a_v, **kw)
    return DustStep(corrected, np.asarray(a_v), tuple(source))


# ---------------------------------------------------------------------------
# metallicity methods
# ---------------------------------------------------------------------------

def apply_bin_cuts(res, radius_kpc, recipe, label: str) -> BinMetallicities:
    """A method's per-bin result with the recipe's cuts applied.

    A bin is left out (with the reason) when its error ``(z_hi - z_lo) / 2``
    exceeds ``metallicity.max_z_err``, its radius is below
    ``gradient.r_min_kpc``, or its metallicity or error is not finite and
    positive.

    Parameters
    ----------
    res : MetallicityResult
    radius_kpc : array_like, shape (n_bins,)
        Deprojected radius of each bin, kpc.
    recipe : mockzgrad.config.Recipe
        Uses ``metallicity.max_z_err`` (dex) and ``gradient.r_min_kpc`` (kpc).
    label : str
        The method's label in the result.
    """
    radius = np.asarray(radius_kpc, dtype=float)
    z = np.asarray(res.z, dtype=float)  # best fit (minimum chi^2); errors from percentiles
    lo = np.asarray(res.z_lo, dtype=float)
    hi = np.asarray(res.z_hi, dtype=float)
    valid = np.asarray(res.valid, dtype=bool).copy()
    reasons = list(res.reason)
    max_err = recipe.metallicity.max_z_err
    r_min = recipe.gradient.r_min_kpc
    err = 0.5 * (hi - lo)
    for i in range(z.size):
        if valid[i] and max_err is not None and not err[i] <= max_err:
            valid[i] = False
            reasons[i] = f"sigma(Z) = {err[i]:.3f} dex > metallicity.max_z_err = {max_err}"
        if valid[i] and radius[i] < r_min:
            valid[i] = False
            reasons[i] = f"radius {radius[i]:.2f} kpc < gradient.r_min_kpc = {r_min}"
        if valid[i] and not (np.isfinite(z[i]) and np.isfinite(err[i]) and err[i] > 0):
            valid[i] = False
            reasons[i] = reasons[i] or "metallicity not finite"
    _leave_out_trend_branches(res, valid, reasons)
    notes = getattr(res, "notes", None) or ("",) * z.size
    at_edge = np.array([any(k in (n or "") for k in EDGE_NOTES) for n in notes], dtype=bool)
    return BinMetallicities(label=label, z=z, z_lo=lo, z_hi=hi, valid=valid, reasons=tuple(reasons),
                            diagnostics_used=getattr(res, "diagnostics_used", None), at_edge=at_edge,
                            **_branch_fields(res))


def _leave_out_trend_branches(res, valid, reasons) -> None:
    """Method I bins whose own data do not fix Z leave the gradient fit (in place; reason recorded)."""
    degenerate = getattr(res, "degenerate", None)
    if getattr(res, "method", "") != "I" or degenerate is None:
        return
    for i in np.flatnonzero(valid & degenerate):
        valid[i] = False
        reasons[i] = metallicity.branches.left_out_reason(res.branch[i], res.branch_prob[i], res.z[i],
                                                          res.z_lo[i], res.z_hi[i])


def _branch_fields(res) -> dict:
    """Method I's per-bin branch and what chose it (Method II records its own per diagnostic)."""
    if getattr(res, "method", "") != "I" or getattr(res, "branch", None) is None:
        return {}
    return {"branch": res.branch, "chosen_by": res.chosen_by, "branch_prob": res.branch_prob}


def fit_method_gradient(mets: BinMetallicities, radius_kpc, recipe, rng, *, min_bins: int = 2) -> MethodGradient:
    """Fit Z(r) to the valid bins of one method (``recipe.gradient``) when there are at least ``min_bins``.

    ``radius_kpc`` is a numpy array of the bins' radii, kpc; the errors are
    the half-widths of the bins' 16-84 % intervals.
    """
    valid = mets.valid
    n_valid = int(valid.sum())
    if n_valid < min_bins:
        return MethodGradient(mets.label, n_bins=n_valid,
                              reason=f"{n_valid} bin(s) with a metallicity; at least {min_bins} needed")
    # symmetric errors from the 16-84 % interval (the best fit may sit outside
    # a bimodal posterior's interval, where one-sided arms would be negative)
    zerr = 0.5 * (mets.z_hi[valid] - mets.z_lo[valid])
    fit = gradient.fit_gradient(radius_kpc[valid], mets.z[valid], zerr, method=recipe.gradient.fit, rng=rng,
                                bootstrap=recipe.gradient.bootstrap)
    return MethodGradient(mets.label, fit=fit)


def _method_one(inputs: MethodInputs, recipe, rng):
    met = recipe.metallicity
    res = metallicity.method_one(inputs.ratios, scatter=met.scatter, covariance=met.covariance,
                                 logu=met.logu, sampler=met.sampler, rng=rng, radius=inputs.radius_kpc)
    mets = apply_bin_cuts(res, inputs.radius_kpc, recipe, "I")
    g = fit_method_gradient(mets, inputs.radius_kpc, recipe, rng)
    extra = {"weight_share": dict(res.info.get("weight_share", {})),
             "dominant_diagnostic": res.info.get("dominant")}
    if res.info.get("scatter_default"):
        extra["scatter_default"] = dict(res.info["scatter_default"])
        extra["scatter_default_basis"] = res.info["scatter_default_basis"]
    return (mets,), (dataclasses.replace(g, extra=extra),)


def _line_flux(inputs: MethodInputs, recipe, rng):
    met = recipe.metallicity
    res = metallicity.line_flux_method(inputs.fluxes, list(inputs.diagnostics), dust_law=recipe.dust.law,
                                       fit_dust=met.fit_a_v, nii_ha=met.nii_ha, sampler=met.sampler, rng=rng,
                                       logu=met.logu)
    mets = apply_bin_cuts(res, inputs.radius_kpc, recipe, "flux")
    return (mets,), (fit_method_gradient(mets, inputs.radius_kpc, recipe, rng),)


def per_diagnostic_gradients(inputs: MethodInputs, recipe, rng):
    """Each diagnostic alone (Method II's inversions): per-bin metallicities and a gradient each.

    Labels ``"II:<key>"``; a gradient needs at least 3 bins. These are the
    per-diagnostic gradients some papers report (e.g. N2 and N2O2 separately,
    Li et al. 2025, KURVS); :func:`measure_gradient` adds them to every
    measurement whose methods do not include Method II.

    Returns
    -------
    mets : list of BinMetallicities
    grads : list of MethodGradient
    fits : dict
        Key -> GradientFit of the diagnostics with a finite gradient.
    """
    per_diag = metallicity.method_two(inputs.ratios, logu=recipe.metallicity.logu)
    all_mets, grads, fits = [], [], {}
    for key, res in per_diag.items():
        mets = apply_bin_cuts(res, inputs.radius_kpc, recipe, f"II:{key}")
        g = fit_method_gradient(mets, inputs.radius_kpc, recipe, rng, min_bins=3)
        if g.fit is not None and math.isfinite(float(g.fit.grad_z)):
            fits[key] = g.fit
        all_mets.append(mets)
        grads.append(g)
    return all_mets, grads, fits


def median_over_diagnostics(fits: dict, empty_reason: str = "no diagnostic has a gradient (>= 3 bins)"):
    """Method II's record: the median gradient over the per-diagnostic fits ``fits`` (key -> fit).

    Its error is the spread over diagnostics, or the single diagnostic's own fit
    error when there is only one; ``empty_reason`` when ``fits`` is empty.
    """
    if not fits:
        return MedianGradient("II", None, reason=empty_reason)
    med, std = gradient.median_gradient_over_diagnostics(fits)
    if len(fits) == 1:  # no spread over one diagnostic: its own fit's error is the error
        std = next(iter(fits.values())).grad_z_err
    return MedianGradient("II", float(med), float(std), float(np.median([f.z0 for f in fits.values()])),
                          tuple(sorted(fits)))


def _method_two(inputs: MethodInputs, recipe, rng):
    all_mets, grads, fits = per_diagnostic_gradients(inputs, recipe, rng)
    grads.append(median_over_diagnostics(fits))
    return tuple(all_mets), tuple(grads)


#: The recipe's ``metallicity.method`` names -> function
#: ``(inputs: MethodInputs, recipe, rng) -> (tuple of BinMetallicities, tuple of gradient records)``:
#: Method I (:func:`~mockzgrad.recovery.metallicity.method_one`), Method II
#: (:func:`~mockzgrad.recovery.metallicity.method_two`, per diagnostic and median)
#: and the line-flux method (:func:`~mockzgrad.recovery.metallicity.line_flux_method`).
METALLICITY_METHODS = {"I": _method_one, "II": _method_two, "flux": _line_flux}


def metallicity_method(name: str):
    """The function of method ``name`` in :data:`METALLICITY_METHODS`.

    Raises
    ------
    ConfigError
        ``name`` is not registered (the message lists the registered names).
    """
    return METALLICITY_METHODS[choice("metallicity.method", name, tuple(METALLICITY_METHODS))]


# ---------------------------------------------------------------------------
# the back end
# ---------------------------------------------------------------------------

def measure_gradient(fluxes: BinFluxes, radius_kpc, recipe, *, rng: np.random.Generator | None = None,
                     integrated: BinFluxes | None = None) -> GradientMeasurement:
    """Dust -> metallicity -> gradient from per-bin line fluxes, as ``recipe`` says.

    Parameters
    ----------
    fluxes : BinFluxes
        Observed line fluxes and covariance of every bin (any one unit).
    radius_kpc : array_like, shape (n_bins,)
        Deprojected radius of each bin, physical kpc.
    recipe : mockzgrad.config.Recipe
        Uses its ``dust``, ``gating`` (``snr_min``, ``mode``), ``metallicity``
        and ``gradient`` sections.
    rng : numpy.random.Generator, optional
        For emcee samplers and bootstrap (required when the recipe uses them).
    integrated : BinFluxes, optional
        Fluxes of the whole galaxy (one bin), whose Balmer decrement gives
        the A_V of bins without a usable one of their own.

    Returns
    -------
    GradientMeasurement

    Raises
    ------
    DataError
        ``radius_kpc`` does not have one value per bin.
    RecoveryError
        No diagnostic of the recipe has all its lines in ``fluxes``.
    """
    if not isinstance(fluxes, BinFluxes):
        raise DataError(f"fluxes = {type(fluxes).__name__}: expected a BinFluxes table")
    radius = np.asarray(radius_kpc, dtype=float)
    if radius.shape != (fluxes.n_bins,):
        raise DataError(f"radius_kpc: shape {radius.shape}; expected ({fluxes.n_bins},), one radius per bin")
    keys = recipe.metallicity.diagnostics
    diagnostics, _ = split_diagnostics(keys, fluxes.names)
    if not diagnostics:
        raise RecoveryError(f"none of the recipe's diagnostics {list(keys)} has all its lines among the "
                            f"measured fluxes ({', '.join(fluxes.names)})")
    dust = correct_dust(fluxes, recipe.dust, integrated=integrated)
    met = recipe.metallicity
    ratios = metallicity.log_ratios(dust.fluxes, list(diagnostics), snr_min=recipe.gating.snr_min,
                                    gate=recipe.gating.mode, covariance=met.covariance)
    inputs = MethodInputs(dust.fluxes, ratios, diagnostics, radius)
    all_mets, grads = [], []
    methods = [met.method] + [m for m in met.also if m != met.method]
    for name in methods:
        mets, g = metallicity_method(name)(inputs, recipe, rng)
        all_mets.extend(mets)
        grads.extend(g)
    if "II" not in methods and met.nii_ha is None:
        # per-diagnostic gradients beside the recipe's methods (not for a Halpha+[NII] blend,
        # which only the line-flux method models)
        mets, g, _ = per_diagnostic_gradients(inputs, recipe, rng)
        all_mets.extend(mets)
        grads.extend(g)
    return GradientMeasurement(method=met.method, diagnostics=diagnostics, dust=dust,
                               metallicities=tuple(all_mets), gradients=tuple(grads))
