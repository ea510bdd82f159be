"""One mock of a suite: observe it, recover the gradient, compare.

This is the only place (with curves and the budget) where the truth and
the recovered values meet. :func:`run_mock` is what suite executors call in
worker processes; it returns flat JSON-serialisable scalars.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from ..config import config_from_dict, load_recipe
from ..errors import MockzgradWarning
from ..observation import observe

__all__ = ["run_mock", "measure_mock", "TRUTH_COLUMNS"]

#: Truth columns of a results row (same names as in the cube header).
TRUTH_COLUMNS = ("grad_z", "z0", "r_eff", "r_eff_arcsec", "psf_fwhm", "x_resolution", "inclination",
                 "redshift", "noise_sigma", "snr", "sigma0", "axis_ratio")
#: Truth columns written only when the truth has them: a non-circular PSF
#: (``x_resolution`` is then 2 r_eff / the PSF FWHM along the galaxy's major
#: axis; see :mod:`mockzgrad.config.resolution`).
OPTIONAL_TRUTH_COLUMNS = ("x_resolution_geomean", "psf_fwhm_minor", "psf_pa", "psf_fwhm_along",
                          # a lensed source: magnifications and the source-plane resolution
                          "mu", "mu_t", "mu_r", "x_resolution_source", "x_resolution_t", "x_resolution_r")


def run_mock(spec, *, observe_with=None) -> dict:
    """Observe and recover one mock of a suite.

    Parameters
    ----------
    spec : MockSpec
        ``spec.config``: the full mock configuration dict (seed included);
        ``spec.recovery``: ``{"recipe": name or path, "overrides": {dotted: value}}``;
        ``spec.cube_path``: where to write the observed product (None: not kept).
    observe_with : callable or None
        Replaces :func:`~mockzgrad.observation.observe` (same signature and
        product), e.g. the planner's noise-free cache; None: ``observe``.

    Returns
    -------
    dict
        ``grad_z_true`` and the other truth columns, the recovered
        ``grad_z_measured`` (+ ``_lo``/``_hi`` percentiles) of the recipe's
        primary method and each other method, and timings.
    """
    from ..recovery.pipeline import recover

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MockzgradWarning)
        out = _run(spec, recover, observe_with or observe)
    # warnings become data in the results row instead of stderr noise from workers
    messages = sorted({str(w.message) for w in caught if issubclass(w.category, MockzgradWarning)})
    out["warnings"] = " | ".join(messages) if messages else None
    return out


def _run(spec, recover, observe) -> dict:
    t0 = time.perf_counter()
    cfg = config_from_dict(spec.config)
    rec = dict(spec.recovery or {})
    recipe = _recipe(rec.get("recipe", "lee2026"))
    if rec.get("overrides"):
        recipe = recipe.replace(**rec["overrides"])
    product = observe(cfg, keep_noise_free=False)
    t1 = time.perf_counter()
    if getattr(spec, "cube_path", None):
        Path(spec.cube_path).parent.mkdir(parents=True, exist_ok=True)
        product.write(spec.cube_path, overwrite=True)
    result = measure_mock(product, cfg, recipe, recover)
    t2 = time.perf_counter()
    truth = product.truth
    out = {f"{k}_true" if k in ("grad_z", "z0") else k: _scalar(truth.get(k)) for k in TRUTH_COLUMNS}
    out["snr_target"] = _scalar(truth.get("snr_target"))
    # share of the flux from where Z(r) leaves the calibrations' range (largest over lines), and the z0 choice
    out["outside_flux_frac"] = _scalar(truth.get("outside_flux_frac_max"))
    out["z0_mode"] = truth.get("z0_mode")
    out.update({k: _scalar(truth[k]) for k in OPTIONAL_TRUTH_COLUMNS if k in truth})
    out.update({k: _scalar(v) for k, v in result.summary().items()})
    out["time_cube_s"] = t1 - t0
    out["time_recover_s"] = t2 - t1
    return out


#: Recipes read in this process: (name or path, the file's signature) -> Recipe (frozen; every mock of a
#: suite reads the same one, ~0.6 ms a time)
_RECIPES: dict = {}


def _recipe(name):
    """:func:`~mockzgrad.config.load_recipe` of ``name``, read again when a file of that name changed."""
    try:
        st = os.stat(str(name))
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    except (OSError, ValueError):
        sig = None
    key = (str(name), sig)
    recipe = _RECIPES.get(key)
    if recipe is None:
        if len(_RECIPES) >= 16:
            _RECIPES.clear()
        recipe = _RECIPES[key] = load_recipe(name)
    return recipe


def measure_mock(product, cfg, recipe, recover=None):
    """Recover a mock's gradient as a suite does: the observer's product and lens, the seeded rng.

    Parameters
    ----------
    product : Product
        What :func:`~mockzgrad.observation.observe` made of ``cfg``.
    cfg : MockConfig
    recipe : Recipe
    recover : callable, optional
        :func:`mockzgrad.recovery.pipeline.recover` (default).

    Returns
    -------
    RecoveryResult
    """
    if recover is None:
        from ..recovery.pipeline import recover
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2])
    observed = _observer_product(product, cfg, recipe)
    return recover(observed, recipe, rng=rng, lens=_observer_lens(observed, cfg, recipe))


def _observer_product(product, cfg, recipe):
    """What the observer measures on: slitless exposures become line maps first.

    The extraction uses the grism redshift, taken here as the true redshift
    (a grism survey measures it from the same spectra to ~0.001-0.01).
    """
    if getattr(product, "kind", "ifu") != "grism":
        return product
    from ..recovery.grism_extract import extract_line_maps

    nii_ha = recipe.metallicity.nii_ha if isinstance(recipe.metallicity.nii_ha, float) else 0.05
    return extract_line_maps(product, cfg.galaxy.redshift, nii_ha=nii_ha)


def _observer_lens(product, cfg, recipe):
    """The observer's lens model on the product's grid when the recipe works in the source plane."""
    if getattr(recipe, "lensing", None) is None or not recipe.lensing.use:
        return None
    from ..products.lens import observer_lens

    shape = product.data.shape[-2:] if hasattr(product, "data") else product.shape
    return observer_lens(cfg, shape, product.pixel_scale)


def _scalar(v):
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, dict):  # one value per exposure (grism): their median in the row
        values = [float(x) for x in v.values() if x is not None]
        v = float(np.median(values)) if values else math.nan
    v = float(v)
    return v if math.isfinite(v) else None
