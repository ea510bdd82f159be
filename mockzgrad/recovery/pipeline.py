"""The recovery pipeline: from an observer product to a metallicity gradient, by recipe.

Recovery sees only data products, as an observer does: for a cube, its
data, variance, spectral and spatial sampling and PSF description. It
never imports the galaxy model and never reads the product's truth.

:func:`recover` is two stages (each selectable through a
:class:`~mockzgrad.config.Recipe`):

1. the product's front end (:mod:`mockzgrad.recovery.frontend`, chosen by
   the product's ``kind``): for a cube, redshift, geometry, PSF matching,
   binning, spectra and line fits, giving per-bin line fluxes and radii;
2. the shared back end (:func:`mockzgrad.recovery.backend.measure_gradient`):
   optional Balmer-decrement dust correction, metallicity per bin
   (Method I, Method II, line-flux Bayesian) and the gradient fit (exact
   analytic posterior or emcee; two-point slope for two bins; none for
   fewer);

and :class:`RecoveryResult` reports both.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Recipe, config_to_dict, load_recipe
from .backend import GradientMeasurement, fit_method_gradient, measure_gradient, median_over_diagnostics
from .frontend import FrontEndResult, front_end
from .lensing import check_lens_use

__all__ = ["RecoveryResult", "recover", "sector_gradients"]


@dataclass
class RecoveryResult:
    """What the recovery measured.

    Attributes
    ----------
    recipe : dict
        The recipe used (its name is ``recipe["recipe"]["name"]``).
    grad_z, grad_z_lo, grad_z_hi : float
        Gradient of the recipe's primary method, dex/kpc: median and
        16th/84th percentiles (NaN when no gradient could be measured).
    z0, z0_lo, z0_hi : float
        Intercept, 12+log(O/H) at r = 0.
    method : str
        The primary method.
    gradients : dict
        Method -> gradient record (Method II also per diagnostic).
    bins : list of dict
        Per-bin radius, fluxes, metallicities and the diagnostics used.
    excluded : list of dict
        Bins left out and why.
    redshift, kpc_per_arcsec : float
    geometry : dict
    status : str
        ``"ok"`` or ``"no_gradient"`` (with ``reason``).
    sector_gradients : dict
        With the recipe's ``binning.sectors``: ``"sector:<lo>-<hi>"``
        (azimuth from the major axis, deg) -> the primary method's gradient
        record fitted, by the same fit, to the bins of that sector alone,
        with ``sector_deg`` and ``n_bins`` (:func:`sector_gradients`). Empty
        (and left out of :meth:`to_dict` and :meth:`summary`) without sectors.
    """

    recipe: dict
    grad_z: float
    grad_z_lo: float
    grad_z_hi: float
    z0: float
    z0_lo: float
    z0_hi: float
    method: str
    gradients: dict
    bins: list
    excluded: list
    redshift: float
    kpc_per_arcsec: float
    geometry: dict
    status: str = "ok"
    reason: str = ""
    provenance: dict = field(default_factory=dict)
    sector_gradients: dict = field(default_factory=dict)

    @property
    def grad_z_err(self) -> float:
        return 0.5 * (self.grad_z_hi - self.grad_z_lo)

    def to_dict(self) -> dict:
        """JSON-able record of every field (``sector_gradients`` only when there are sectors)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if not self.sector_gradients:
            del out["sector_gradients"]
        return _jsonable(out)

    def write_json(self, path, *, overwrite: bool = True) -> None:
        """Write :meth:`to_dict` as JSON, atomically; ``overwrite=False`` refuses an existing file."""
        from ..fileio import atomic_write

        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=overwrite)

    def summary(self) -> dict:
        """Flat scalars for a results table (suites).

        Per method ``m``: ``grad_z_<m>``, ``grad_z_err_<m>``. With sectors, per
        sector ``<lo>-<hi>`` (deg from the major axis): ``grad_z_sector:<lo>-<hi>``,
        ``grad_z_err_sector:<lo>-<hi>`` (dex/kpc; NaN when the sector has too
        few bins) and ``n_bins_sector:<lo>-<hi>`` (its valid bins).
        """
        out = {"grad_z_measured": self.grad_z, "grad_z_measured_lo": self.grad_z_lo,
               "grad_z_measured_hi": self.grad_z_hi, "z0_measured": self.z0,
               "method": self.method, "recipe": self.recipe["recipe"]["name"],
               "n_bins": sum(1 for b in self.bins if b.get("valid")), "status_recovery": self.status,
               "reason": self.reason, "redshift_measured": self.redshift}
        for m, g in self.gradients.items():
            if isinstance(g, dict) and "grad_z" in g:
                out[f"grad_z_{m}"] = g["grad_z"]
                out[f"grad_z_err_{m}"] = g.get("grad_z_err", math.nan)
            if isinstance(g, dict) and "weight_share" in g:  # Method I: a diagnostic holding > 80 %
                out[f"dominant_diagnostic_{m}"] = g.get("dominant_diagnostic") or ""
        for key, g in self.sector_gradients.items():
            out[f"grad_z_{key}"] = _f(g.get("grad_z"))
            out[f"grad_z_err_{key}"] = _f(g.get("grad_z_err"))
            out[f"n_bins_{key}"] = int(g.get("n_bins", 0))
        return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def recover(product, recipe: Recipe | str = "lee2026", *, redshift: float | None = None,
            cosmology=None, rng: np.random.Generator | None = None,
            reference_line: str | None = None, lens=None) -> RecoveryResult:
    """Measure the metallicity gradient of a product as a published recipe does.

    Parameters
    ----------
    product : MockCube
        An observer product: data, variance, channel edges, pixel scale and
        PSF description (its ``kind`` chooses the front end; ``"ifu"``
        when it has none).
    recipe : Recipe or str
        A recipe or the name/path of one.
    redshift : float, optional
        Systemic redshift; default: from the integrated spectrum's peak,
        identified as ``reference_line``.
    cosmology : astropy cosmology, optional
        Default flat LambdaCDM (H0 = 70, Om0 = 0.3).
    rng : numpy.random.Generator, optional
        For emcee samplers and bootstrap (required when they are used).
    reference_line : str, optional
        The brightest line (default: [OIII] 5008 if covered, else Halpha).
    lens : mockzgrad.products.lens.ObserverLens, optional
        The observer's lens model on the data grid (the LENS file), for a
        recipe with ``[lensing] use = true``: geometry and radii are then
        measured in the source plane (:mod:`mockzgrad.recovery.lensing`).

    Returns
    -------
    RecoveryResult
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if recipe.metallicity.nii_ha is not None and "Ha" not in getattr(product, "blends", {}):
        # nii_ha describes a Halpha blended with [NII] (grism maps); a product that resolves them has none
        recipe = recipe.replace(**{"metallicity.nii_ha": None})
    check_lens_use(recipe, lens)
    measure_fluxes = front_end(getattr(product, "kind", "ifu"))
    front = measure_fluxes(product, recipe, redshift=redshift, cosmology=cosmology, reference_line=reference_line,
                           **({} if lens is None else {"lens": lens}))
    if front.fluxes is None:
        return _no_gradient(recipe, front, "no bin passed the gating cuts")
    back = measure_gradient(front.fluxes, front.binning.radius_kpc, recipe, rng=rng, integrated=front.integrated)
    result = _result(recipe, front, back)
    # after the main fit, so its rng draws are the same with and without sectors
    result.sector_gradients = sector_gradients(front.binning, back, recipe, rng=rng)
    return result


def sector_gradients(binning, back: GradientMeasurement, recipe, *, rng=None) -> dict:
    """The primary method's gradient fitted to the bins of each azimuthal sector alone.

    The per-bin metallicities and cuts are the measurement's own; only the
    bins entering the fit change: those of one sector (azimuth range from
    the major axis, folded to [0, 90] deg, :func:`~mockzgrad.recovery.binning.azimuthal_sectors`).
    The fit is the recipe's (``gradient.fit``, ``gradient.bootstrap``), with the
    method's own minimum number of bins (Method II: 3 per diagnostic, then the
    median over diagnostics, as for the whole galaxy).

    Parameters
    ----------
    binning : mockzgrad.recovery.binning.Binning
        The recovery's bins; ``binning.sector`` (shape (n_bins, 2), deg) None
        means no sectors.
    back : GradientMeasurement
        The back end's per-bin metallicities of every method.
    recipe : mockzgrad.config.Recipe
    rng : numpy.random.Generator, optional
        For emcee and bootstrap fits (as in :func:`recover`).

    Returns
    -------
    dict
        ``"sector:<lo>-<hi>"`` -> gradient record (``grad_z``, ``grad_z_err``
        in dex/kpc, ``z0`` in dex, or ``grad_z = None`` and ``reason``) with
        ``sector_deg = [lo, hi]`` and ``n_bins`` (valid bins of the sector);
        sectors in increasing azimuth. Empty without sectors.
    """
    if getattr(binning, "sector", None) is None:
        return {}
    edges = np.asarray(binning.sector, dtype=float)
    radius = np.asarray(binning.radius_kpc, dtype=float)
    out = {}
    for lo, hi in sorted({(float(a), float(b)) for a, b in edges}):
        keep = (edges[:, 0] == lo) & (edges[:, 1] == hi)
        rec = _subset_gradient(back, radius, keep, recipe, rng)
        rec["sector_deg"] = [lo, hi]
        out[f"sector:{lo:g}-{hi:g}"] = rec
    return out


def _subset_gradient(back: GradientMeasurement, radius, keep, recipe, rng) -> dict:
    """Primary-method gradient record over the bins ``keep`` (bool per bin) only, with ``n_bins``."""
    def fit(mets, min_bins):
        return fit_method_gradient(dataclasses.replace(mets, valid=mets.valid & keep), radius, recipe, rng,
                                   min_bins=min_bins)

    if back.method == "II":
        per_diag = [m for m in back.metallicities if m.label.startswith("II:")]
        fits = {m.label[3:]: g.fit for m in per_diag
                if (g := fit(m, 3)).fit is not None and math.isfinite(float(g.fit.grad_z))}
        n_bins = max((int((m.valid & keep).sum()) for m in per_diag), default=0)
        rec = median_over_diagnostics(fits, "no diagnostic has a gradient (>= 3 bins) in this sector").to_dict()
    else:
        mets = [m for m in back.metallicities if m.label == back.method]
        if not mets:
            return {"grad_z": None, "reason": f"no metallicities of method {back.method!r}", "n_bins": 0}
        rec = fit(mets[-1], 2).to_dict()
        n_bins = int((mets[-1].valid & keep).sum())
    rec["n_bins"] = n_bins
    return rec


def _f(v) -> float:
    return math.nan if v is None else float(v)


def _bin_records(front: FrontEndResult, back: GradientMeasurement) -> list:
    """Per-bin radius, fluxes (after the dust step), A_V, metallicities and, with sectors, the azimuth range."""
    bins, fluxes, dust = front.binning, back.fluxes, back.dust
    radius = np.asarray(bins.radius_kpc, dtype=float)
    out = []
    for i in range(bins.n_bins):
        rec = {"bin": i, "radius_kpc": float(radius[i]), "n_spaxels": int(np.asarray(bins.n_spaxels)[i]),
               "fluxes": {n: float(fluxes.flux[i, j]) for j, n in enumerate(fluxes.names)},
               "flux_errors": {n: float(math.sqrt(max(fluxes.cov[i, j, j], 0.0)))
                               for j, n in enumerate(fluxes.names)}}
        if bins.inner is not None and np.isfinite(np.asarray(bins.inner)[i]):
            rec["inner_kpc"], rec["outer_kpc"] = float(bins.inner[i]), float(bins.outer[i])
        if bins.sector is not None:  # recipe binning.sectors: azimuth range from the major axis, deg, and base bin
            rec["sector_deg"] = [float(v) for v in np.asarray(bins.sector)[i]]
            if bins.parent is not None:
                rec["parent"] = int(np.asarray(bins.parent)[i])
        if dust.a_v is not None:
            rec["a_v"], rec["a_v_source"] = float(dust.a_v[i]), dust.a_v_source[i]
        if back.metallicities:
            rec["metallicity"] = {m.label: m.record(i) for m in back.metallicities}
            rec["valid"] = any(bool(m.valid[i]) for m in back.metallicities)
        out.append(rec)
    return out


def _result(recipe, front: FrontEndResult, back: GradientMeasurement) -> RecoveryResult:
    gradients = {g.label: g.to_dict() for g in back.gradients}
    primary = gradients.get(back.method, {})
    status, reason = "ok", ""
    if primary.get("grad_z") is None:
        status, reason = "no_gradient", primary.get("reason", "no gradient")
    nan = math.nan
    return RecoveryResult(
        recipe=config_to_dict(recipe), grad_z=_f(primary.get("grad_z")), grad_z_lo=_f(primary.get("grad_z_lo")),
        grad_z_hi=_f(primary.get("grad_z_hi")), z0=_f(primary.get("z0")), z0_lo=_f(primary.get("z0_lo", nan)),
        z0_hi=_f(primary.get("z0_hi", nan)), method=back.method, gradients=gradients,
        bins=_bin_records(front, back),
        excluded=[e.to_dict() for e in front.excluded + back.dust.excluded],
        redshift=float(front.selection.redshift), kpc_per_arcsec=float(front.kpc_per_arcsec),
        geometry=_geometry_record(recipe, front), status=status, reason=reason,
        provenance={"mockzgrad_version": __version__,
                    "calibrations": {d.key: d.provenance() for d in back.diagnostics}})


def _geometry_record(recipe, front: FrontEndResult) -> dict:
    """The fitted geometry; a lensed recovery says in which plane each quantity is measured."""
    out = _jsonable(front.geometry.__dict__)
    if recipe.lensing is not None and recipe.lensing.use:
        out["planes"] = {"centre_axis_ratio_pa": "source plane (observer's lens model)",
                         "radius": "source plane: each spaxel's ray-traced centre",
                         "bins": "image-plane spaxels",
                         "sector_azimuth": "source plane: each spaxel's ray-traced centre, from the "
                                           "source-plane major axis, deprojected with the source-plane "
                                           "axis ratio"}
    return out


def _no_gradient(recipe, front: FrontEndResult, reason: str) -> RecoveryResult:
    nan = math.nan
    return RecoveryResult(recipe=config_to_dict(recipe), grad_z=nan, grad_z_lo=nan, grad_z_hi=nan,
                          z0=nan, z0_lo=nan, z0_hi=nan, method=recipe.metallicity.method, gradients={},
                          bins=[], excluded=[e.to_dict() for e in front.excluded],
                          redshift=float(front.selection.redshift), kpc_per_arcsec=float(front.kpc_per_arcsec),
                          geometry=_jsonable(getattr(front.geometry, "__dict__", {})), status="no_gradient",
                          reason=reason)
