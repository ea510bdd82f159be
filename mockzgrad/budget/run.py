"""The flattening budget of one setup: the gradient re-measured as effects are switched on one at a time.

Every step runs the real observation (:func:`mockzgrad.observation.observe`)
and the real recovery (:func:`mockzgrad.suites.job.measure_mock`, the suite
path), with effects switched off through the mock's configuration; steps
(a)-(b), which have no spectral dimension, sum the observed line maps in the
pipeline's own annuli and run the pipeline's back end. The order is fixed
(:data:`STEPS`); each cumulative step adds one effect to the one before:

- ``a0`` every effect off: the true Z map averaged in each annulus (weights:
  the reference line's flux), at the annulus' flux-weighted true radius;
  equals the intrinsic gradient for a linear profile (the check);
- ``a1`` (a) radius assignment: the same averages at the radius the recipe
  assigns to each annulus (Lee et al. 2026: the mid-point of its edges);
- ``a2`` (a) binning: the line fluxes summed per annulus, ratios of sums
  inverted by the recipe's metallicity method (no PSF, no spectra);
- ``b`` + the PSF on the line fluxes;
- ``c`` + pixels and the spectral dimension: the noise-free cube through the
  full front end (geometry fit, PSF matching, spectra, LSF, line fits),
  calibrations extrapolated (no clipping), no ratio scatter;
- ``d`` + calibration clipping (``lines.outside_range`` as configured);
- ``e1`` + the recipe's per-line S/N gate (``gating.snr_min``; steps a-d
  run with it at 0): noise-free, the gate still acts because the variance
  describes the configured S/N;
- ``e`` + noise (and the configured ratio scatter), with the S/N-set
  outermost annulus: median and 16-84 % over realisations (seeds
  ``seed``, ``seed + 1``, ...); realisation 0 is the suite's mock.

The annuli of steps a-e1 are those the recipe chooses on the noise-free
cube (their outer end set by the integrated S/N the variance describes).

Alternatives on the noise-free mock of step (e1), each against that step:
``f:<method>`` every metallicity method, ``g:<recipe>`` every other shipped
unlensed recipe, ``h:<line>`` every other gating line the mock has.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..config import MockConfig, Recipe, available_recipes, load_recipe
from ..config.recipe import METHODS
from ..errors import MockzgradError, MockzgradWarning
from ..observation import observe
from ..source.galaxy import resolve_galaxy
from ..suites.job import measure_mock
from ..validate import integer
from . import maps as mapsmod

__all__ = ["STEPS", "GATE_LINES", "BudgetStep", "Budget", "flattening_budget", "step_configs"]

#: The cumulative steps, in order: key -> what is switched on at that step.
STEPS = {
    "a0": "every effect off: true Z, flux-weighted radius",
    "a1": "(a) radius assigned to each annulus",
    "a2": "(a) ratios of line fluxes summed per annulus",
    "b": "(b) + PSF on the line fluxes",
    "c": "(c) + pixels, spectra, LSF, line fits, geometry fit",
    "d": "(d) + calibration clipping",
    "e1": "(e) + S/N gating of the lines (noise-free)",
    "e": "(e) + noise (S/N gating, S/N-set outer annulus)",
}
#: Recipe change that switches the per-line S/N gate off (steps a-d): every diagnostic is used in every bin.
NO_GATING = {"gating.snr_min": 0.0}
#: Gating lines tried in step (h), when the mock renders them.
GATE_LINES = ("brightest", "Ha", "OIII_5008", "Hb")


@dataclass(frozen=True)
class BudgetStep:
    """One row of the budget.

    Attributes
    ----------
    key : str
        ``a0`` ... ``e`` (cumulative) or ``f:<method>``, ``g:<recipe>``, ``h:<line>`` (alternatives).
    label : str
    grad_z : float
        Measured gradient, dex/kpc (step e: median over realisations; NaN: not measured).
    ratio, ratio_lo, ratio_hi : float
        grad_z / intrinsic; 16th and 84th percentiles over realisations (step e), else equal to ``ratio``.
    grad_z_first : float
        Realisation 0 (step e; the suite's value for this mock), else ``grad_z``.
    n : int
        Realisations measured.
    note : str
        Why a step was not measured, or what it was measured on.
    """

    key: str
    label: str
    grad_z: float
    ratio: float
    ratio_lo: float
    ratio_hi: float
    grad_z_first: float
    n: int = 1
    note: str = ""


@dataclass(frozen=True)
class Budget:
    """The budget of one setup: the intrinsic gradient, the steps, and the setup's x and recipe."""

    grad_z_true: float
    steps: tuple
    recipe: str
    x_resolution: float
    meta: dict = field(default_factory=dict)

    def step(self, key: str) -> BudgetStep:
        """The row of step ``key``."""
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def to_table(self):
        """An astropy Table: one row per step, with the intrinsic gradient and setup in ``meta``."""
        from astropy.table import Table

        names = ("key", "label", "grad_z", "ratio", "ratio_lo", "ratio_hi", "grad_z_first", "n", "note")
        rows = [tuple(getattr(s, k) for k in names) for s in self.steps]
        t = Table(rows=rows, names=names)
        t.meta.update({"grad_z_true": self.grad_z_true, "recipe": self.recipe,
                       "x_resolution": self.x_resolution, **self.meta})
        return t


def step_configs(cfg: MockConfig) -> dict:
    """The configurations of the cumulative cube steps: ``maps`` (a, b without PSF), ``c``, ``d``.

    ``b``'s maps use ``maps`` with the configured PSF; the field of view is
    set by the caller to the reference cube's so every step has the same spaxels.
    """
    quiet = {"noise.enabled": False, "lines.ratio_scatter": "none"}
    c = cfg.replace(**quiet, **{"lines.outside_range": "extrapolate"})
    d = cfg.replace(**quiet)
    return {"c": c, "d": d}


def _map_config(cfg: MockConfig, fov: float, psf: bool) -> MockConfig:
    changes = dict(mapsmod.MAP_SWITCHES)
    changes["instrument.fov"] = fov
    if not psf:  # a Gaussian far below a pixel: the kernel sampled at pixel centres is a delta
        changes.update({"instrument.psf.kind": "gaussian", "instrument.psf.fwhm": 1e-3,
                        "instrument.psf.fwhm_minor": None, "instrument.psf.beta": None,
                        "instrument.psf.file": None, "instrument.psf.ref_wavelength": None,
                        "instrument.psf.scaling_exponent": None})
    return cfg.replace(**changes)


def _primary(result) -> float:
    return float(result.grad_z) if result.grad_z == result.grad_z else math.nan


def _row(key, value, true, note="", *, label=None) -> BudgetStep:
    r = value / true if true else math.nan
    return BudgetStep(key, label or STEPS.get(key, key), value, r, r, r, value, 1, note)


_MAP_KEYS = ("a0", "a1", "a2", "b")


def _map_steps(cfg_c, ref_cube, ref_result, recipe, true) -> list:
    """Steps a0, a1, a2, b on the reference cube's annuli (NaN rows, with the reason, when they cannot run)."""
    if cfg_c.instrument.kind != "ifu" or cfg_c.lensing is not None:
        return [_row(k, math.nan, true, "steps (a)-(b) need an unlensed IFU mock") for k in _MAP_KEYS]
    try:
        return _measure_map_steps(cfg_c, ref_cube, ref_result, recipe, true)
    except MockzgradError as exc:  # no annuli, lines that cannot be separated, no usable diagnostic
        return [_row(k, math.nan, true, f"{type(exc).__name__}: {exc}") for k in _MAP_KEYS]


def _measure_map_steps(cfg_c, ref_cube, ref_result, recipe, true) -> list:
    labels = mapsmod.annulus_labels(ref_cube, ref_result)
    fov = (ref_cube.data.shape[-1] - 0.01) * ref_cube.pixel_scale  # ceil(fov / pixel) = the same spaxels
    model = resolve_galaxy(cfg_c.galaxy, cfg_c.lines, cfg_c.cosmology)
    rows = []
    for psf in (False, True):
        cfg_m = _map_config(cfg_c, fov, psf)
        cube = observe(cfg_m, keep_noise_free=True)
        if cube.data.shape[-2:] != ref_cube.data.shape[-2:]:
            raise mapsmod.BudgetError(f"map cube {cube.data.shape[-2:]} and reference cube "
                                      f"{ref_cube.data.shape[-2:]} differ in spaxels")
        maps = mapsmod.line_maps(cube, cfg_m.galaxy.redshift, cfg_m.lines.lines)
        if not psf:
            ref = maps[cfg_m.lines.reference_line]
            rows.append(_row("a0", mapsmod.true_z_gradient(model, cube, ref, labels, ref_result, assigned=False),
                             true))
            rows.append(_row("a1", mapsmod.true_z_gradient(model, cube, ref, labels, ref_result), true))
        grads = mapsmod.maps_gradient(maps, labels, ref_result, recipe, _rng(cfg_m))
        rows.append(_row("b" if psf else "a2", grads.get(recipe.metallicity.method, math.nan), true))
    return rows


def _rng(cfg):
    return np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2])


def _noise_step(cfg: MockConfig, recipe: Recipe, n: int, true: float) -> BudgetStep:
    values = []
    for k in range(n):
        cfg_k = cfg if k == 0 else cfg.replace(seed=(cfg.seed + k) % 2**63)
        values.append(_primary(measure_mock(observe(cfg_k, keep_noise_free=False), cfg_k, recipe)))
    v = np.asarray(values)
    ok = v[np.isfinite(v)]
    if not ok.size:
        return BudgetStep("e", STEPS["e"], math.nan, math.nan, math.nan, math.nan, values[0], n,
                          "no realisation gave a gradient")
    med, lo, hi = (float(np.percentile(ok, p)) for p in (50, 16, 84))
    r = sorted((lo / true, hi / true))
    note = f"{ok.size} of {n} realisations measured" if ok.size < n else ""
    return BudgetStep("e", STEPS["e"], med, med / true, r[0], r[1], values[0], n, note)


def _alternatives(product, cfg: MockConfig, recipe: Recipe, true: float) -> list:
    """f: each method; g: each other shipped unlensed recipe; h: each other gating line (noise-free mock d)."""
    rows = []
    others = tuple(m for m in METHODS if m != recipe.metallicity.method)
    res = _try(product, cfg, recipe.replace(**{"metallicity.also": others}))
    for m in METHODS:
        g = res.gradients.get(m, {}) if not isinstance(res, str) else {}
        value = g.get("grad_z") if isinstance(g, dict) else None
        rows.append(_row(f"f:{m}", math.nan if value is None else float(value), true,
                         res if isinstance(res, str) else "", label=f"(f) method {m}"))
    for name in available_recipes():
        if name == recipe.recipe.name or name.endswith("_lensed"):
            continue
        res = _try(product, cfg, load_recipe(name))
        rows.append(_row(f"g:{name}", math.nan if isinstance(res, str) else _primary(res), true,
                         res if isinstance(res, str) else "", label=f"(g) recipe {name}"))
    for line in GATE_LINES:
        if line == recipe.gating.line or (line != "brightest" and line not in cfg.lines.lines):
            continue
        res = _try(product, cfg, recipe.replace(**{"gating.line": line}))
        rows.append(_row(f"h:{line}", math.nan if isinstance(res, str) else _primary(res), true,
                         res if isinstance(res, str) else "", label=f"(h) gating line {line}"))
    return rows


def _try(product, cfg, recipe):
    """The recovery's result, or the one-line reason it failed."""
    try:
        return measure_mock(product, cfg, recipe)
    except MockzgradError as exc:
        return f"{type(exc).__name__}: {exc}"


def flattening_budget(cfg: MockConfig, recipe: Recipe | str = "lee2026", *, realisations: int = 5,
                      alternatives: bool = True) -> Budget:
    """Measure the flattening budget of one setup (the steps of :data:`STEPS`, then f, g, h).

    Parameters
    ----------
    cfg : MockConfig
        The setup; its seed is realisation 0 of step (e).
    recipe : Recipe or str
        The observer's recipe (name or path of a shipped one).
    realisations : int
        Noise realisations of step (e); [1, 1000].
    alternatives : bool
        Also measure (f) methods, (g) recipes, (h) gating lines.

    Returns
    -------
    Budget
    """
    realisations = integer("realisations", realisations, 1, 1000)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MockzgradWarning)  # range and field warnings are the budget's subject
        cfgs = step_configs(cfg)
        free = recipe.replace(**NO_GATING)
        ref_cube = observe(cfgs["c"], keep_noise_free=False)
        true = float(ref_cube.truth["grad_z"])
        ref = measure_mock(ref_cube, cfgs["c"], free)
        rows = _map_steps(cfgs["c"], ref_cube, ref, free, true)
        rows.append(_row("c", _primary(ref), true))
        prod_d = observe(cfgs["d"], keep_noise_free=False)
        share = {"outside_flux_frac": float(prod_d.truth.get("outside_flux_frac_max", math.nan)),
                 "outside_flux_frac_extrapolated": float(ref_cube.truth.get("outside_flux_frac_max", math.nan))}
        rows.append(_row("d", _primary(measure_mock(prod_d, cfgs["d"], free)), true))
        rows.append(_row("e1", _primary(measure_mock(prod_d, cfgs["d"], recipe)), true))
        rows.append(_noise_step(cfg, recipe, realisations, true))
        if alternatives:
            rows.extend(_alternatives(prod_d, cfgs["d"], recipe, true))
    meta = {**share, "z0": float(ref_cube.truth["z0"]), "z0_mode": ref_cube.truth.get("z0_mode", ""),
            "psf_fwhm": float(ref_cube.truth.get("psf_fwhm", math.nan)),
            "pixel_scale": float(cfg.instrument.pixel_scale)}
    return Budget(grad_z_true=true, steps=tuple(rows), recipe=recipe.recipe.name,
                  x_resolution=float(ref_cube.truth.get("x_resolution", math.nan)), meta=meta)
