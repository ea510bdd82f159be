"""The recovery pipeline: from a cube to a metallicity gradient, by recipe.

Recovery sees only data products, as an observer does: the cube, its
variance, its spectral and spatial sampling and its PSF description. It
never imports the galaxy model and never reads the cube's truth.

Steps (each selectable through a :class:`~mockzgrad.config.Recipe`):

1. redshift from the integrated spectrum's brightest line (or given);
2. geometry from a 2D Gaussian fit to the brightest line map (or given);
3. PSF homogenisation when the PSF varies with wavelength;
4. binning (annuli of PSF HWHM, fixed annuli, grown annuli, spaxels,
   Voronoi; optionally azimuthal sectors), radii in deprojected kpc;
5. spectra summed per bin, errors from the variance cube or an RMS;
6. vectorised line fits (shared velocity and width, tied doublets);
7. optional Balmer-decrement dust correction (global fallback);
8. metallicity per bin (Method I, Method II, line-flux Bayesian);
9. gradient fit (exact analytic posterior or emcee; two-point slope for
   two bins; none for fewer).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..physics import calibrations
from ..config import Recipe, config_to_dict, load_recipe
from ..physics.cosmology import kpc_per_arcsec
from ..errors import DataError, RecoveryError
from ..physics.lines import C_KMS, LINES
from ..observe.psf import psf_from_header
from . import binning as binmod
from . import geometry as geomod
from . import metallicity as metmod
from .gradient import fit_gradient, median_gradient_over_diagnostics
from .linefit import default_line_model, fit_lines, rms_error_spectrum
from .spectra import sum_spectra

__all__ = ["RecoveryResult", "recover", "estimate_redshift"]

_BALMER = ("Ha", "Hb", "Hg")


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

    @property
    def grad_z_err(self) -> float:
        return 0.5 * (self.grad_z_hi - self.grad_z_lo)

    def to_dict(self) -> dict:
        return _jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})

    def write_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))

    def summary(self) -> dict:
        """Flat scalars for a results table (suites)."""
        out = {"grad_z_measured": self.grad_z, "grad_z_measured_lo": self.grad_z_lo,
               "grad_z_measured_hi": self.grad_z_hi, "z0_measured": self.z0,
               "method": self.method, "recipe": self.recipe["recipe"]["name"],
               "n_bins": sum(1 for b in self.bins if b.get("valid")), "status_recovery": self.status,
               "reason": self.reason, "redshift_measured": self.redshift}
        for m, g in self.gradients.items():
            if isinstance(g, dict) and "grad_z" in g:
                out[f"grad_z_{m}"] = g["grad_z"]
                out[f"grad_z_err_{m}"] = g.get("grad_z_err", math.nan)
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


def estimate_redshift(cube, candidates) -> float:
    """Redshift from the integrated spectrum's brightest peak.

    The peak's flux-weighted centroid is identified, in turn, with each
    candidate line; the identification that puts the most other catalogue
    lines (more than 600 km/s from the peak, so a doublet partner on the
    same profile does not count) on flux detected at S/N >= 3 wins (ties:
    the earlier candidate, i.e. the recipe's reference line).
    Returns NaN when no identification gives a positive redshift.
    """
    if isinstance(candidates, str):
        candidates = [candidates]
    spec = np.nansum(cube.data, axis=(1, 2))
    noise = np.sqrt(np.nansum(cube.variance, axis=(1, 2)))
    k = int(np.nanargmax(spec))
    lo, hi = max(k - 2, 0), min(k + 3, spec.size)
    w = np.clip(spec[lo:hi], 0, None)
    lam = cube.wavelengths[lo:hi]
    centre = float(np.sum(w * lam) / np.sum(w)) if np.sum(w) > 0 else float(cube.wavelengths[k])
    best, best_score = math.nan, -1
    for line in candidates:
        z = centre / LINES[line].wavelength - 1.0
        if z <= 0:
            continue
        score = 0
        for other in LINES:  # every catalogue line counts as support ...
            lam = LINES[other].wavelength * (1 + z)
            if abs(lam / centre - 1.0) * C_KMS < 600.0:
                continue  # ... except lines on the peak's own profile (a doublet partner)
            near = np.abs(cube.wavelengths / lam - 1.0) * C_KMS <= 250.0
            if near.any():
                flux, err = spec[near].sum(), math.sqrt(float(np.sum(noise[near] ** 2)))
                score += int(err > 0 and flux / err >= 3.0)
        if score > best_score:
            best, best_score = z, score
    return best


def _covered(cube, line, redshift, margin_kms=300.0):
    lam = LINES[line].wavelength * (1.0 + redshift)
    near = np.abs(cube.wavelengths / lam - 1.0) * C_KMS <= margin_kms
    return bool(near.any())


def _bin_fluxes(fit, names):
    """Fluxes of ``names`` with their full covariance (tied lines included)."""
    idx = [fit.line_names.index(n) for n in names]
    flux = np.asarray(fit.flux)[:, idx]
    tie = np.asarray(fit.tie_matrix)[idx]  # (n_lines, n_free)
    cov_free = np.asarray(fit.covariance)
    cov = np.einsum("lf,bfg,mg->blm", tie, cov_free, tie)
    return metmod.BinFluxes(tuple(names), flux, cov)


def recover(cube, recipe: Recipe | str = "lee2026", *, redshift: float | None = None,
            cosmology=None, rng: np.random.Generator | None = None,
            reference_line: str | None = None) -> RecoveryResult:
    """Measure the metallicity gradient of a cube as a published recipe does.

    Parameters
    ----------
    cube : MockCube
        Data, variance, channel edges, pixel scale and PSF description.
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

    Returns
    -------
    RecoveryResult
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    data = np.asarray(cube.data, dtype=float)
    if not np.isfinite(data).any():
        raise DataError("cube: DATA has no finite values")
    if not np.isfinite(cube.variance).any() or np.nanmax(cube.variance) <= 0:
        raise DataError("cube: VAR has no positive finite values")
    if not cube.psf:
        raise DataError("cube: no PSF description in the header (PSF_KIND, PSF_FWHM); "
                        "recovery needs the PSF to choose the annulus width")
    psf = psf_from_header(cube.psf)

    # --- redshift and the lines the recipe needs --------------------------
    diags = [calibrations.get_diagnostic(k) for k in recipe.metallicity.diagnostics]
    if reference_line is None:
        reference_line = recipe.gating.line if recipe.gating.line != "brightest" else "OIII_5008"
    if redshift is None:
        candidates = [reference_line] + [n for n in ("OIII_5008", "Ha") if n != reference_line]
        for d in diags:
            candidates += [n for n in sorted(d.lines) if n not in candidates]
        redshift = estimate_redshift(cube, candidates)
        if not math.isfinite(redshift):
            raise RecoveryError("cannot identify the brightest line to estimate the redshift; pass redshift=")
    scale = kpc_per_arcsec(redshift, cosmology)
    wanted = set()
    for d in diags:
        wanted |= set(d.lines)
    if recipe.dust.correct or recipe.metallicity.method == "flux":
        wanted |= {"Ha", "Hb", "Hg"}
    wanted.add(reference_line)
    if recipe.gating.line != "brightest":
        wanted.add(recipe.gating.line)
    present = [n for n in LINES if n in wanted and _covered(cube, n, redshift)]
    excluded = []
    usable_diags = [d for d in diags if set(d.lines) <= set(present)]
    for d in diags:
        if d not in usable_diags:
            missing = sorted(set(d.lines) - set(present))
            excluded.append({"bin": None, "diagnostic": d.key,
                             "reason": f"line(s) {', '.join(missing)} not covered by the cube"})
    if not usable_diags:
        raise RecoveryError(f"none of the recipe's diagnostics {list(recipe.metallicity.diagnostics)} "
                            f"has all its lines in the cube (lines covered: {present})")

    # --- geometry -------------------------------------------------------
    x1, y1 = cube.offsets()
    xx, yy = np.meshgrid(x1, y1)
    psf_fwhm = float(psf.fwhm_at(LINES[reference_line].wavelength * (1 + redshift)))
    ref_map, ref_err = geomod.line_map(cube, LINES[reference_line].wavelength * (1 + redshift),
                                       half_width_kms=600.0)
    g = recipe.geometry
    if g.mode == "given":
        geom = geomod.Geometry.given(x_offset=g.x_offset, y_offset=g.y_offset,
                                     axis_ratio=g.axis_ratio, pa=g.pa, q0=g.q0)
    else:
        # only spaxels where the line is detected constrain the fit (and keep it fast)
        with np.errstate(invalid="ignore", divide="ignore"):
            detected = ref_map > 2.0 * ref_err
        mask = detected if detected.sum() >= 12 else None
        geom = geomod.fit_geometry(ref_map, ref_err, cube.pixel_scale, psf_fwhm=psf_fwhm, q0=g.q0, mask=mask)

    # --- PSF homogenisation (to the reddest line used) ---------------------
    if psf.varies:
        reddest = max(LINES[n].wavelength for n in present) * (1 + redshift)
        variance = geomod.homogenise_variance(np.asarray(cube.variance, float), cube.wavelengths, psf, reddest,
                                              pixel_scale=cube.pixel_scale)
        data = geomod.homogenise_psf(data, cube.wavelengths, psf, reddest, pixel_scale=cube.pixel_scale)
        psf_fwhm = float(psf.fwhm_at(reddest))
    else:
        variance = np.asarray(cube.variance, float)

    # --- gating map and binning --------------------------------------------
    gate_line = reference_line if recipe.gating.line == "brightest" else recipe.gating.line
    if gate_line not in present:
        raise RecoveryError(f"gating line {gate_line} is not covered by the cube")
    gate_map, gate_err = geomod.line_map(cube, LINES[gate_line].wavelength * (1 + redshift),
                                         half_width_kms=600.0)
    b = recipe.binning
    common = dict(gate_map=gate_map, gate_err=gate_err)
    if b.scheme == "annuli":
        # width = PSF HWHM (Lee et al. 2026); below a spaxel each ring holds the
        # spaxels whose centres fall in it and empty rings are skipped
        bins = binmod.elliptical_annuli(xx, yy, geom, scale, width_arcsec=0.5 * psf_fwhm,
                                        snr_outer=b.snr_outer, **common)
    elif b.scheme == "fixed_annuli":
        bins = binmod.fixed_annuli(xx, yy, geom, scale, n_annuli=b.n_annuli, width_arcsec=b.width_arcsec,
                                   **common)
    elif b.scheme == "grown_annuli":
        bins = binmod.grown_annuli(xx, yy, geom, scale, target_snr=b.target_snr, **common)
    elif b.scheme == "spaxels":
        bins = binmod.spaxels(xx, yy, geom, scale, snr_min=b.snr_min, r_min_kpc=b.r_min_kpc,
                              r_max_kpc=b.r_max_kpc, min_spaxels=b.min_spaxels, **common)
    else:
        bins = binmod.voronoi(xx, yy, geom, scale, target_snr=b.target_snr, **common)
    if b.sectors:
        bins = binmod.azimuthal_sectors(bins, xx, yy, geom)
    excluded.extend(_excluded_records(bins))
    bins = _radial_cut(bins, b.r_min_kpc if b.scheme != "spaxels" else 0.0, b.r_max_kpc, excluded)
    n_bins = int(np.asarray(bins.radius_kpc).size)
    if n_bins == 0:
        return _no_gradient(recipe, redshift, scale, geom, excluded, "no bin passed the gating cuts")

    # --- spectra, errors and line fits --------------------------------------
    spectra, errors = sum_spectra(data, variance, bins.labels, n_bins)
    line_waves = np.array([LINES[n].wavelength * (1 + redshift) for n in present])
    if recipe.errors.model == "rms":
        errors = rms_error_spectrum(spectra, cube.edges_lo, cube.edges_hi, line_waves,
                                    mask_kms=recipe.errors.mask_kms, window=recipe.errors.window)
    model = default_line_model(present, oii_ratio=recipe.metallicity.oii_ratio)
    fit = fit_lines(spectra, errors, cube.edges_lo, cube.edges_hi, redshift, model,
                    reference_line=reference_line)
    fluxes = _bin_fluxes(fit, present)

    # --- dust --------------------------------------------------------------
    a_v_info = None
    missing_balmer = [n for n in recipe.dust.pair if n not in present]
    if recipe.dust.correct and missing_balmer:
        # no decrement without both Balmer lines: say so and go on uncorrected
        excluded.append({"bin": None, "step": "dust",
                         "reason": f"{' and '.join(missing_balmer)} not covered by the cube: "
                                   "no Balmer-decrement dust correction"})
        a_v_info = (np.zeros(n_bins), ["none"] * n_bins)
    elif recipe.dust.correct:
        tot_spec = np.nansum(spectra, axis=0)[None]
        tot_err = np.sqrt(np.nansum(errors**2, axis=0))[None]
        tot_fit = fit_lines(tot_spec, tot_err, cube.edges_lo, cube.edges_hi, redshift, model,
                            reference_line=reference_line)
        tot_fluxes = _bin_fluxes(tot_fit, present)
        dust_kw = dict(law=recipe.dust.law, law_lines=recipe.dust.law_lines, pair=tuple(recipe.dust.pair),
                       snr_min=recipe.dust.snr_min)
        _, a_v_global, _ = metmod.balmer_decrement_correction(tot_fluxes, global_a_v=0.0, **dust_kw)
        fluxes, a_v, a_v_source = metmod.balmer_decrement_correction(
            fluxes, global_a_v=float(np.asarray(a_v_global)[0]), **dust_kw)
        a_v_info = (np.asarray(a_v), list(a_v_source))

    # --- metallicity -------------------------------------------------------
    met = recipe.metallicity
    radius = np.asarray(bins.radius_kpc, dtype=float)
    methods = [met.method] + [m for m in met.also if m != met.method]
    ratios = metmod.log_ratios(fluxes, usable_diags, snr_min=recipe.gating.snr_min,
                               gate=recipe.gating.mode, covariance=met.covariance)
    per_bin = [{"bin": i, "radius_kpc": float(radius[i]), "n_spaxels": int(np.asarray(bins.n_spaxels)[i]),
                "fluxes": {n: float(fluxes.flux[i, j]) for j, n in enumerate(present)},
                "flux_errors": {n: float(math.sqrt(max(fluxes.cov[i, j, j], 0.0)))
                                for j, n in enumerate(present)}}
               for i in range(n_bins)]
    for i, rec in enumerate(per_bin):
        if bins.inner is not None and np.isfinite(np.asarray(bins.inner)[i]):
            rec["inner_kpc"], rec["outer_kpc"] = float(bins.inner[i]), float(bins.outer[i])
        if a_v_info is not None:
            rec["a_v"], rec["a_v_source"] = float(a_v_info[0][i]), a_v_info[1][i]
    gradients = {}
    for m in methods:
        if m == "I":
            res = metmod.method_one(ratios, scatter=met.scatter, covariance=met.covariance,
                                    logu=met.logu, sampler=met.sampler, rng=rng)
            gradients["I"] = _fit_method(res, radius, "I", per_bin, recipe, rng)
        elif m == "flux":
            res = metmod.line_flux_method(fluxes, usable_diags, dust_law=recipe.dust.law,
                                          fit_dust=met.fit_a_v, nii_ha=met.nii_ha,
                                          sampler=met.sampler, rng=rng, logu=met.logu)
            gradients["flux"] = _fit_method(res, radius, "flux", per_bin, recipe, rng)
        else:
            per_diag = metmod.method_two(ratios, logu=met.logu)
            fits = {}
            for key, res in per_diag.items():
                rec = _fit_method(res, radius, f"II:{key}", per_bin, recipe, rng, min_bins=3)
                if rec.get("grad_z") is not None and math.isfinite(rec.get("grad_z", math.nan)):
                    fits[key] = rec["_fit"]
                gradients[f"II:{key}"] = rec
            if fits:
                med, std = median_gradient_over_diagnostics(fits)
                gradients["II"] = {"grad_z": float(med), "grad_z_err": float(std),
                                   "grad_z_lo": float(med - std) if math.isfinite(std) else float(med),
                                   "grad_z_hi": float(med + std) if math.isfinite(std) else float(med),
                                   "z0": float(np.median([f.z0 for f in fits.values()])),
                                   "diagnostics": sorted(fits), "method": "II"}
            else:
                gradients["II"] = {"grad_z": None, "reason": "no diagnostic has a gradient (>= 3 bins)"}
    for g_rec in gradients.values():
        g_rec.pop("_fit", None)
    primary = gradients.get(met.method, {})
    status, reason = "ok", ""
    if primary.get("grad_z") is None:
        status, reason = "no_gradient", primary.get("reason", "no gradient")
    nan = math.nan
    return RecoveryResult(
        recipe=config_to_dict(recipe), grad_z=_f(primary.get("grad_z")), grad_z_lo=_f(primary.get("grad_z_lo")),
        grad_z_hi=_f(primary.get("grad_z_hi")), z0=_f(primary.get("z0")), z0_lo=_f(primary.get("z0_lo", nan)),
        z0_hi=_f(primary.get("z0_hi", nan)), method=met.method, gradients=gradients, bins=per_bin,
        excluded=excluded, redshift=float(redshift), kpc_per_arcsec=float(scale),
        geometry=_jsonable(geom.__dict__ if hasattr(geom, "__dict__") else dict(geom)), status=status,
        reason=reason, provenance={"mockzgrad_version": __version__,
                                   "calibrations": {d.key: d.provenance() for d in usable_diags}})


def _radial_cut(bins, r_min, r_max, excluded):
    """Leave out bins outside [r_min, r_max] kpc, relabelling the rest."""
    radius = np.asarray(bins.radius_kpc, dtype=float)
    keep = radius >= r_min
    if r_max is not None:
        keep &= radius <= r_max
    if keep.all():
        return bins
    for i in np.flatnonzero(~keep):
        excluded.append({"bin": int(i), "reason": f"radius {radius[i]:.2f} kpc outside the fitted range "
                                                  f"[{r_min}, {r_max}] kpc"})
    new_index = np.full(radius.size, -1)
    new_index[keep] = np.arange(int(keep.sum()))
    labels = np.asarray(bins.labels)
    new_labels = np.where(labels >= 0, new_index[np.maximum(labels, 0)], -1)
    import dataclasses

    changes = {"labels": new_labels}
    for name in ("radius_kpc", "inner", "outer", "n_spaxels", "sector", "snr", "parent"):
        val = getattr(bins, name, None)
        if val is not None and np.ndim(val) >= 1 and np.shape(val)[0] == radius.size:
            changes[name] = np.asarray(val)[keep]
    return dataclasses.replace(bins, **changes)


def _f(v) -> float:
    return math.nan if v is None else float(v)


def _excluded_records(bins) -> list:
    out = []
    for item in getattr(bins, "excluded", []) or []:
        if isinstance(item, dict):
            out.append(dict(item))
        else:
            where, why = item
            out.append({"bin": _jsonable(where), "reason": str(why)})
    return out


def _fit_method(res, radius, label, per_bin, recipe, rng, *, min_bins=2) -> dict:
    """Store per-bin metallicities of one method and fit its gradient."""
    z = np.asarray(res.z, dtype=float)  # best fit (minimum chi^2); errors from percentiles
    lo = np.asarray(res.z_lo, dtype=float)
    hi = np.asarray(res.z_hi, dtype=float)
    valid = np.asarray(res.valid, dtype=bool).copy()
    reasons = list(res.reason)
    max_err = recipe.metallicity.max_z_err
    err = 0.5 * (hi - lo)
    for i in range(z.size):
        if valid[i] and max_err is not None and not err[i] <= max_err:
            valid[i] = False
            reasons[i] = f"sigma(Z) = {err[i]:.3f} dex > metallicity.max_z_err = {max_err}"
        if valid[i] and radius[i] < recipe.gradient.r_min_kpc:
            valid[i] = False
            reasons[i] = f"radius {radius[i]:.2f} kpc < gradient.r_min_kpc = {recipe.gradient.r_min_kpc}"
        if valid[i] and not (np.isfinite(z[i]) and np.isfinite(err[i]) and err[i] > 0):
            valid[i] = False
            reasons[i] = reasons[i] or "metallicity not finite"
        rec = {"z": float(z[i]), "z_lo": float(lo[i]), "z_hi": float(hi[i])} if valid[i] else \
              {"z": None, "reason": reasons[i] or "left out"}
        if valid[i] and not lo[i] <= z[i] <= hi[i]:
            # the best fit lies outside its own 16-84 % interval: a bimodal
            # posterior (e.g. R3 alone, double valued); said, not hidden
            rec["bimodal"] = True
        used = getattr(res, "diagnostics_used", None)
        if used is not None and valid[i]:
            rec["diagnostics"] = list(used[i])
        per_bin[i].setdefault("metallicity", {})[label] = rec
        per_bin[i]["valid"] = per_bin[i].get("valid", False) or bool(valid[i])
    n_valid = int(valid.sum())
    if n_valid < min_bins:
        return {"grad_z": None, "n_bins": n_valid,
                "reason": f"{n_valid} bin(s) with a metallicity; at least {min_bins} needed"}
    # symmetric errors from the 16-84 % interval (the best fit may sit outside
    # a bimodal posterior's interval, where one-sided arms would be negative)
    zerr = 0.5 * (hi[valid] - lo[valid])
    fit = fit_gradient(radius[valid], z[valid], zerr, method=recipe.gradient.fit, rng=rng,
                       bootstrap=recipe.gradient.bootstrap)
    rec = dict(fit.to_dict())
    rec["grad_z_err"] = float(fit.grad_z_err)
    rec["_fit"] = fit
    return rec


def _no_gradient(recipe, redshift, scale, geom, excluded, reason) -> RecoveryResult:
    nan = math.nan
    return RecoveryResult(recipe=config_to_dict(recipe), grad_z=nan, grad_z_lo=nan, grad_z_hi=nan,
                          z0=nan, z0_lo=nan, z0_hi=nan, method=recipe.metallicity.method, gradients={},
                          bins=[], excluded=excluded, redshift=float(redshift), kpc_per_arcsec=float(scale),
                          geometry=_jsonable(getattr(geom, "__dict__", {})), status="no_gradient",
                          reason=reason)
