"""The recovery's front end for cubes: from a cube to per-bin line fluxes.

A front end turns an observer product into what the back end
(:func:`~mockzgrad.recovery.backend.measure_gradient`) measures: a
:class:`~mockzgrad.recovery.fluxes.BinFluxes` table, one deprojected radius
per bin and the fluxes of the whole galaxy. :data:`FRONT_ENDS` maps a
product's ``kind`` to its front end; for an IFU cube (``"ifu"``) the stages
are, each with a typed result:

1. :func:`check_cube`: data, variance and PSF description are usable;
2. :func:`select_lines`: the redshift (given, or from the integrated
   spectrum's brightest peak, :func:`estimate_redshift`), the lines the
   recipe needs that the cube covers, and the usable diagnostics
   (:class:`LineSelection`);
3. :func:`measure_geometry`: centre, axis ratio and PA from a 2D Gaussian
   fit to the reference line map, or given by the recipe;
4. :func:`match_psf`: every channel degraded to the PSF of the reddest line
   used when the PSF varies with wavelength (:class:`MatchedCube`);
5. :func:`bin_cube`: the recipe's binning scheme on the gating-line map,
   optional sectors, the radial range (:class:`CubeBins`);
6. :func:`measure_line_fluxes`: spectra summed per bin, errors from the
   variance or an RMS, vectorised line fits.

Recovery sees only the product, as an observer does: the cube, its
variance, its spectral and spatial sampling and its PSF description. It
never reads the cube's truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..config.continuum import CENTRE_WINDOW_REST
from ..errors import DataError, RecoveryError
from ..observation.psf import PSF, psf_from_header
from ..physics.cosmology import kpc_per_arcsec
from ..physics.lines import BLENDS, C_KMS, LINES
from ..validate import choice
from . import binning as binmod
from . import geometry as geomod
from . import linefit, psf_matching, spectra
from .backend import LeftOut, diagnostics_of, lines_needed, split_diagnostics
from .binning import Binning
from .fluxes import BinFluxes
from .geometry import Geometry
from .selection import FrontEndResult, LineSelection
from . import continuum as contmod
from . import lensing as lensmod
from .maps_frontend import maps_front_end

__all__ = [
    "LineSelection",
    "MatchedCube",
    "CubeBins",
    "FrontEndResult",
    "FRONT_ENDS",
    "front_end",
    "cube_front_end",
    "check_cube",
    "estimate_redshift",
    "select_lines",
    "measure_geometry",
    "match_psf",
    "bin_cube",
    "measure_line_fluxes",
]

#: Half-width of the channel window summed into a line map, km/s.
_MAP_HALF_WIDTH_KMS = 600.0


# ---------------------------------------------------------------------------
# stage results
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MatchedCube:
    """Data and variance after PSF matching, axes ``(n_chan, ny, nx)``, and the FWHM (arcsec) they have."""

    data: np.ndarray
    variance: np.ndarray
    psf_fwhm: float


@dataclass(frozen=True, eq=False)
class CubeBins:
    """The bins after the radial range, and what the binning left out."""

    binning: Binning
    excluded: tuple[LeftOut, ...] = ()


# ---------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------

def check_cube(cube) -> tuple[np.ndarray, PSF]:
    """The cube's data as float and its PSF; refuse a cube recovery cannot use.

    A cube that carries its effective kernel as an image (``psf_image``, the
    ``PSF`` extension, e.g. slit stepping) gets that image as its PSF, so the
    geometry fit deconvolves and the annuli follow the real kernel.

    Raises
    ------
    DataError
        No finite data, no positive finite variance, or no PSF description.
    """
    data = np.asarray(cube.data, dtype=float)
    # the first value settles both checks in the usual case (finite data, finite positive variance)
    # without a pass over the cube; otherwise the full checks
    var = np.asarray(cube.variance)
    if not (data.size and np.isfinite(data.flat[0])) and not np.isfinite(data).any():
        raise DataError("cube: DATA has no finite values")
    if not (var.size and np.isfinite(var.flat[0]) and var.flat[0] > 0) and (
            not np.isfinite(var).any() or np.nanmax(var) <= 0):
        raise DataError("cube: VAR has no positive finite values")
    if not cube.psf:
        raise DataError("cube: no PSF description in the header (PSF_KIND, PSF_FWHM); "
                        "recovery needs the PSF to choose the annulus width")
    image = getattr(cube, "psf_image", None)
    if image is not None:  # the effective kernel the product carries (e.g. slit stepping): the real PSF
        header = {**cube.psf, "PSF_KIND": "image", "PSF_PIXS": cube.psf_image_pixel}
        return data, psf_from_header(header, image=np.asarray(image, dtype=float))
    return data, psf_from_header(cube.psf)


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
    spec = _channel_nansum(cube.data)
    noise = np.sqrt(_channel_nansum(cube.variance))
    waves = cube.wavelengths  # a property computing the centres: once here, not per line
    k = int(np.nanargmax(spec))
    lo, hi = max(k - 2, 0), min(k + 3, spec.size)
    w = np.clip(spec[lo:hi], 0, None)
    lam = waves[lo:hi]
    centre = float(np.sum(w * lam) / np.sum(w)) if np.sum(w) > 0 else float(waves[k])
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
            near = np.abs(waves / lam - 1.0) * C_KMS <= 250.0
            if near.any():
                flux, err = spec[near].sum(), math.sqrt(float(np.sum(noise[near] ** 2)))
                score += int(err > 0 and flux / err >= 3.0)
        if score > best_score:
            best, best_score = z, score
    return best


def _channel_nansum(a) -> np.ndarray:
    """``np.nansum(a, axis=(1, 2))``; a C-contiguous float64 cube without NaN is summed in place (the
    same sums: nansum sums a NaN-replaced copy of the same layout), skipping nansum's copy (~1 ms)."""
    a = np.asarray(a)
    if a.dtype == np.float64 and a.flags.c_contiguous:
        with np.errstate(invalid="ignore"):  # inf - inf: nansum below says so itself
            s = np.sum(a, axis=(1, 2))
        if not np.isnan(s).any():  # a NaN anywhere makes its channel's sum NaN
            return s
    return np.nansum(a, axis=(1, 2))


def _covered(cube, line, redshift, margin_kms=300.0) -> bool:
    lam = LINES[line].wavelength * (1.0 + redshift)
    near = np.abs(cube.wavelengths / lam - 1.0) * C_KMS <= margin_kms
    return bool(near.any())


#: Doublets whose ratio the line model ties (:func:`mockzgrad.recovery.linefit.default_line_model`).
_TIED_DOUBLETS = ("OIII", "NII")


def with_tied_partners(cube, lines: LineSelection, names) -> list[str]:
    """``names`` plus the covered partners of their tied doublets ([NII] 6550 for 6585, [OIII] 4960 for 5008).

    A line the cube holds but the model leaves out is fitted by the linear
    baseline instead: [NII] 6550 inside the Halpha window (a third of
    [NII] 6585) raised the baseline by ~1-3 % of the continuum at EW(Halpha)
    = 60 A rest, and the EW(Halpha) fell by as much (S1's N2 recipe fits
    [NII] 6585 only). The partner is tied, so no parameter is added.
    """
    out = list(names)
    for blend in _TIED_DOUBLETS:
        members = BLENDS[blend]
        if any(m in out for m in members):
            out += [m for m in members if m not in out and _covered(cube, m, lines.redshift)]
    return out


def select_lines(cube, recipe, *, redshift: float | None = None,
                 reference_line: str | None = None) -> LineSelection:
    """Redshift, the lines to fit and the usable diagnostics (see :func:`recover` for the defaults).

    Raises
    ------
    RecoveryError
        The brightest line cannot be identified, or no diagnostic has all
        its lines in the cube.
    """
    keys = recipe.metallicity.diagnostics
    if reference_line is None:
        reference_line = recipe.gating.line if recipe.gating.line != "brightest" else "OIII_5008"
    if redshift is None:
        candidates = [reference_line] + [n for n in ("OIII_5008", "Ha") if n != reference_line]
        for d in diagnostics_of(keys):
            candidates += [n for n in sorted(d.lines) if n not in candidates]
        redshift = estimate_redshift(cube, candidates)
        if not math.isfinite(redshift):
            raise RecoveryError("cannot identify the brightest line to estimate the redshift; pass redshift=")
    wanted = lines_needed(recipe) | {reference_line}
    if recipe.gating.line != "brightest":
        wanted.add(recipe.gating.line)
    present = tuple(n for n in LINES if n in wanted and _covered(cube, n, redshift))
    usable, missing = split_diagnostics(keys, present)
    if not usable:
        lo, hi = float(np.nanmin(cube.edges_lo)), float(np.nanmax(cube.edges_hi))
        raise RecoveryError(f"none of the recipe's diagnostics {list(keys)} has all its lines in the cube at "
                            f"redshift = {redshift:g} (lines covered: {list(present)}; the cube's wavelength "
                            f"range {lo:.0f}-{hi:.0f} A covers rest {lo / (1 + redshift):.0f}-"
                            f"{hi / (1 + redshift):.0f} A{_not_covered_note(cube, wanted, present, redshift)})")
    excluded = tuple(LeftOut(diagnostic=d.key, reason=f"line(s) {', '.join(lines)} not covered by the cube")
                     for d, lines in missing)
    gate_line = reference_line if recipe.gating.line == "brightest" else recipe.gating.line
    return LineSelection(redshift=redshift, reference_line=reference_line, gate_line=gate_line, lines=present,
                         diagnostics=usable, excluded=excluded)


def _channel_intervals(cube, tol: float = 1e-6) -> list[tuple[float, float]]:
    """Contiguous wavelength intervals of the cube's channels, Angstrom (gaps, e.g. a detector gap, split them)."""
    lo, hi = np.asarray(cube.edges_lo, float), np.asarray(cube.edges_hi, float)
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    breaks = np.flatnonzero(lo[1:] > hi[:-1] * (1.0 + tol)) + 1
    return [(float(lo[i]), float(hi[j - 1])) for i, j in zip(np.r_[0, breaks], np.r_[breaks, lo.size])]


def _not_covered_note(cube, wanted, present, redshift: float) -> str:
    """``"; not covered: Ha at 13126 A, ...; channels only in 9707-9747, ... A"`` for the error of :func:`select_lines`
    (the channel intervals only when gaps split the cube's range, e.g. a slit-stepped cube's band and chip gap)."""
    lost = [n for n in LINES if n in wanted and n not in present]
    note = "; not covered: " + ", ".join(f"{n} at {LINES[n].wavelength * (1 + redshift):.0f} A" for n in lost)
    spans = _channel_intervals(cube)
    if len(spans) > 1:
        note += "; channels only in " + ", ".join(f"{a:.0f}-{b:.0f}" for a, b in spans) + " A"
    return note if lost else ""


#: Lines within this many rest-frame Angstrom of the reference or gating line are fitted for the
#: continuum-subtracted maps (:func:`line_flux_maps`): Halpha with the [NII] doublet (<= 35 A), not [SII].
_MAP_FIT_SPAN_REST = 60.0


def line_flux_maps(cube, lines: LineSelection) -> dict | None:
    """Continuum-subtracted maps of the reference and gating lines, when the cube has a continuum.

    A channel sum around a line (:func:`mockzgrad.recovery.geometry.line_map`)
    holds the line and the continuum under it; with a stellar continuum
    that adds ``EW``-dependent flux that has the continuum's profile, which
    would bias the geometry fit and pass spaxels through the line S/N cut on
    continuum alone. When a continuum is detected in the rest window
    :data:`~mockzgrad.config.continuum.CENTRE_WINDOW_REST`
    (:attr:`~mockzgrad.recovery.continuum.ContinuumImage.detected`), every
    spaxel's spectrum is fitted (:func:`mockzgrad.recovery.linefit.fit_lines`:
    Gaussian lines on a linear baseline) with the lines within
    :data:`_MAP_FIT_SPAN_REST` of the two lines, and the maps are the fitted
    line fluxes and their errors (NaN where a fit failed or a spaxel has no
    data).

    Returns
    -------
    dict or None
        ``{line: (flux, err)}`` for the reference and gating lines, arrays of
        shape ``(ny, nx)`` in the cube's flux unit; None when no continuum
        is detected (the channel-sum maps are then the line maps).
    """
    img = contmod.continuum_image(cube, lines.redshift, CENTRE_WINDOW_REST)
    if not img.detected:
        return None
    wanted = {lines.reference_line, lines.gate_line} & set(lines.lines)
    rest = [LINES[n].wavelength for n in wanted]
    fitted = [n for n in lines.lines if min(abs(LINES[n].wavelength - w) for w in rest) <= _MAP_FIT_SPAN_REST]
    fitted = with_tied_partners(cube, lines, fitted)
    data, var = np.asarray(cube.data, float), np.asarray(cube.variance, float)
    ny, nx = data.shape[1:]
    ok = (np.isfinite(data) & np.isfinite(var)).any(axis=0)
    labels = np.where(ok, np.cumsum(ok.ravel()).reshape(ny, nx) - 1, -1)
    spec, errors = spectra.sum_spectra(data, var, labels, int(ok.sum()))
    ref = lines.reference_line if lines.reference_line in fitted else None
    fit = linefit.fit_lines(spec, errors, cube.edges_lo, cube.edges_hi, lines.redshift,
                            linefit.default_line_model(fitted), reference_line=ref)
    maps = {}
    for name in wanted:
        k = fit.line_names.index(name)
        good = np.asarray(fit.success, bool) & np.isfinite(fit.flux_err[:, k])
        flux, err = np.full((ny, nx), np.nan), np.full((ny, nx), np.nan)
        flux[ok], err[ok] = np.where(good, fit.flux[:, k], np.nan), np.where(good, fit.flux_err[:, k], np.nan)
        maps[name] = (flux, err)
    return maps


def _line_map(cube, lines: LineSelection, name: str, maps: dict | None):
    """``(flux, err)`` of ``name``: from ``maps`` (continuum-subtracted) when given, else the channel sum."""
    if maps is not None and name in maps:
        return maps[name]
    return geomod.line_map(cube, lines.observed(name), half_width_kms=_MAP_HALF_WIDTH_KMS)


def measure_geometry(cube, recipe, psf: PSF, lines: LineSelection, *, source_xy=None,
                     maps: dict | None = None) -> tuple[Geometry, float]:
    """Geometry given by the recipe or fitted to the reference line map.

    ``maps``: continuum-subtracted line maps (:func:`line_flux_maps`); None:
    the channel-sum map.
    ``radius_map``, ``source_xy``: a lensed recovery's source-plane radii and
    ray-traced spaxel centres (:func:`~mockzgrad.recovery.binning.recipe_binning`).

    ``recipe.mode = "catalog"``: the centre is fitted as for ``"fit"``, PA
    and b/a are the product's imaging catalogue values (``cube.catalog``;
    S1 Sect. 3.2 takes them from CANDELS imaging); a product without a
    catalogue is a :class:`~mockzgrad.errors.DataError`.

    Parameters
    ----------
    recipe : mockzgrad.config.GeometryRecipe

    Returns
    -------
    geometry : Geometry
    psf_fwhm : float
        PSF FWHM at the reference line, arcsec; for a non-circular PSF the
        FWHM of its profile along the galaxy's major axis
        (:func:`~mockzgrad.recovery.psf_matching.fwhm_along`, the
        convention of ``x_resolution``).
    """
    wave = lines.observed(lines.reference_line)
    psf_fwhm = float(psf.fwhm_at(wave))
    if recipe.mode == "given":
        given = geomod.Geometry.given(x_offset=recipe.x_offset, y_offset=recipe.y_offset,
                                      axis_ratio=recipe.axis_ratio, pa=recipe.pa, q0=recipe.q0)
        return given, _fwhm_along_major(psf, given, psf_fwhm, cube.pixel_scale, wave)
    ref_map, ref_err = _line_map(cube, lines, lines.reference_line, maps)
    # only spaxels where the line is detected constrain the fit (and keep it fast)
    with np.errstate(invalid="ignore", divide="ignore"):
        detected = ref_map > 2.0 * ref_err
    mask = detected if detected.sum() >= 12 else None
    catalog = _catalog_geometry(cube) if recipe.mode == "catalog" else None
    if source_xy is not None:  # lensed: the Gaussian is fitted at the ray-traced spaxel centres
        fitted = lensmod.fit_source_geometry(ref_map, ref_err, *source_xy, q0=recipe.q0, mask=mask)
        return (fitted if catalog is None else _with_catalog(fitted, catalog, recipe.q0)), psf_fwhm
    # the PSF as the 2-D kernel it is (a covariance matrix unless circular)
    fitted = geomod.fit_geometry(ref_map, ref_err, cube.pixel_scale, q0=recipe.q0, mask=mask,
                                 **psf_matching.geometry_psf(psf, cube.pixel_scale, wavelength=wave))
    if catalog is not None:
        fitted = _with_catalog(fitted, catalog, recipe.q0)
    return fitted, _fwhm_along_major(psf, fitted, psf_fwhm, cube.pixel_scale, wave)


def _catalog_geometry(cube) -> tuple[float, float]:
    """``(pa, axis_ratio)`` of the product's imaging catalogue (``geometry.mode = "catalog"``).

    Raises
    ------
    DataError
        The product has no catalogue with ``pa`` and ``axis_ratio``.
    """
    catalog = getattr(cube, "catalog", None) or {}
    if "pa" not in catalog or "axis_ratio" not in catalog:
        raise DataError(f"geometry.mode = 'catalog': the product has no imaging catalogue with pa and axis_ratio "
                        f"(CATALOG extension; found {sorted(catalog)}); use mode 'fit' or 'given'")
    return float(catalog["pa"]), float(catalog["axis_ratio"])


def _with_catalog(fitted: Geometry, catalog: tuple[float, float], q0: float) -> Geometry:
    """The catalogue's PA and b/a around the fitted centre (centre errors kept)."""
    pa, axis_ratio = catalog
    given = geomod.Geometry.given(pa=pa, axis_ratio=axis_ratio, x_offset=fitted.x_offset,
                                  y_offset=fitted.y_offset, q0=q0)
    return replace(given, x_offset_err=fitted.x_offset_err, y_offset_err=fitted.y_offset_err)


def _fwhm_along_major(psf: PSF, geometry: Geometry, psf_fwhm: float, pixel_scale: float, wave: float) -> float:
    """``psf_fwhm`` for a circular PSF, else the PSF's FWHM along the galaxy's major axis (arcsec)."""
    if psf_matching.is_circular(psf):
        return psf_fwhm
    return psf_matching.fwhm_along(psf, geometry.pa, pixel_scale, wavelength=wave)


def match_psf(cube, data, psf: PSF, lines: LineSelection, psf_fwhm: float) -> MatchedCube:
    """Degrade every channel to the PSF of the reddest line fitted when the PSF varies with wavelength.

    ``psf_fwhm`` (arcsec) is the FWHM of unmatched data; with matching it
    becomes the FWHM at the reddest line.
    """
    if not psf.varies:
        return MatchedCube(data, np.asarray(cube.variance, float), psf_fwhm)
    reddest = max(LINES[n].wavelength for n in lines.lines) * (1 + lines.redshift)
    variance = psf_matching.homogenise_variance(np.asarray(cube.variance, float), cube.wavelengths, psf, reddest,
                                                pixel_scale=cube.pixel_scale)
    data = psf_matching.homogenise_psf(data, cube.wavelengths, psf, reddest, pixel_scale=cube.pixel_scale)
    if not psf_matching.is_circular(psf):  # the FWHM along the galaxy's major axis, scaled to the reddest line
        ref = lines.observed(lines.reference_line)
        return MatchedCube(data, variance, psf_fwhm * float(psf.fwhm_at(reddest) / psf.fwhm_at(ref)))
    return MatchedCube(data, variance, float(psf.fwhm_at(reddest)))


def bin_cube(cube, recipe, geometry: Geometry, scale: float, psf_fwhm: float, lines: LineSelection, *,
             radius_map=None, maps: dict | None = None, source_xy=None) -> CubeBins:
    """The recipe's bins on the gating-line map, then its radial range.

    ``maps``: continuum-subtracted line maps (:func:`line_flux_maps`); None:
    the channel-sum map.
    ``radius_map``, ``source_xy``: a lensed recovery's source-plane radii and
    ray-traced spaxel centres (:func:`~mockzgrad.recovery.binning.recipe_binning`).

    Parameters
    ----------
    recipe : mockzgrad.config.BinningRecipe
    scale : float
        Proper kpc per arcsec.
    psf_fwhm : float
        FWHM of the data binned, arcsec.

    Raises
    ------
    RecoveryError
        The gating line is not covered.
    """
    if lines.gate_line not in lines.lines:
        raise RecoveryError(f"gating line {lines.gate_line} is not covered by the cube")
    gate_map, gate_err = _line_map(cube, lines, lines.gate_line, maps)
    x1, y1 = cube.offsets()
    xx, yy = np.meshgrid(x1, y1)
    bins = binmod.recipe_binning(xx, yy, geometry, scale, recipe, psf_fwhm=psf_fwhm, gate_map=gate_map,
                                 gate_err=gate_err, radius_map=radius_map, source_xy=source_xy)
    excluded = [LeftOut(bin=where, reason=str(why)) for where, why in bins.excluded]
    r_min = 0.0 if recipe.scheme in binmod.CUTS_SPAXELS_BY_RADIUS else recipe.r_min_kpc
    bins, dropped = binmod.radial_cut(bins, r_min, recipe.r_max_kpc)
    excluded += [LeftOut(bin=i, reason=why) for i, why in dropped]
    return CubeBins(bins, tuple(excluded))


def _bin_fluxes(fit, names) -> BinFluxes:
    """Fluxes of ``names`` with their full covariance (tied lines included)."""
    idx = [fit.line_names.index(n) for n in names]
    flux = np.asarray(fit.flux)[:, idx]
    tie = np.asarray(fit.tie_matrix)[idx]  # (n_lines, n_free)
    cov_free = np.asarray(fit.covariance)
    cov = np.einsum("lf,bfg,mg->blm", tie, cov_free, tie)
    return BinFluxes(tuple(names), flux, cov)


def measure_line_fluxes(cube, matched: MatchedCube, bins: Binning, recipe,
                        lines: LineSelection) -> tuple[BinFluxes, BinFluxes | None]:
    """Fit the lines of every bin's summed spectrum.

    Returns
    -------
    fluxes : BinFluxes
        Line fluxes of each bin.
    integrated : BinFluxes or None
        Fluxes of the sum of all bins' spectra, when the recipe corrects for
        dust and both its Balmer lines are fitted (their global A_V).
    """
    lam_lo, lam_hi = cube.edges_lo, cube.edges_hi
    spec, errors = spectra.sum_spectra(matched.data, matched.variance, bins.labels, bins.n_bins)
    if recipe.errors.model == "rms":
        waves = np.array([lines.observed(n) for n in lines.lines])
        errors = spectra.rms_error_spectrum(spec, lam_lo, lam_hi, waves, mask_kms=recipe.errors.mask_kms,
                                            window=recipe.errors.window)
    model = linefit.default_line_model(list(lines.lines), oii_ratio=recipe.metallicity.oii_ratio)
    fit = linefit.fit_lines(spec, errors, lam_lo, lam_hi, lines.redshift, model,
                            reference_line=lines.reference_line)
    fluxes = _bin_fluxes(fit, lines.lines)
    if not (recipe.dust.correct and all(n in lines.lines for n in recipe.dust.pair)):
        return fluxes, None
    tot_spec = np.nansum(spec, axis=0)[None]
    tot_err = np.sqrt(np.nansum(errors**2, axis=0))[None]
    tot_fit = linefit.fit_lines(tot_spec, tot_err, lam_lo, lam_hi, lines.redshift, model,
                                reference_line=lines.reference_line)
    return fluxes, _bin_fluxes(tot_fit, lines.lines)


def continuum_centre(cube, recipe, geometry: Geometry, lines: LineSelection) -> tuple[Geometry, tuple]:
    """The centre at the continuum peak (``recipe.centre = "continuum_peak"``; S1 Sect. 3.2).

    The peak of the continuum in the rest window
    :data:`~mockzgrad.config.continuum.CENTRE_WINDOW_REST`
    (:func:`mockzgrad.recovery.continuum.continuum_peak`) replaces the
    centre of ``geometry`` when the cube has a detected continuum there;
    otherwise ``geometry`` is kept and a note says why.

    Returns
    -------
    geometry : Geometry
    notes : tuple of LeftOut
        One record (``step = "centre"``) saying where the centre came from.
    """
    if recipe.centre != "continuum_peak" or recipe.mode == "given":
        return geometry, ()
    img = contmod.continuum_image(cube, lines.redshift, CENTRE_WINDOW_REST)
    lo, hi = CENTRE_WINDOW_REST
    if not img.detected:
        why = "no channels there" if img.n_chan == 0 else f"continuum S/N {img.snr:.1f} < {contmod.DETECTION_SNR:g}"
        return geometry, (LeftOut(reason=f"continuum-peak centre not used: {why} (rest {lo:g}-{hi:g} A); centre "
                                         f"fitted to the {lines.reference_line} map", step="centre"),)
    x, y, x_err, y_err = contmod.continuum_peak(img, cube.pixel_scale)
    moved = replace(geometry, x_offset=x, y_offset=y, x_offset_err=x_err, y_offset_err=y_err)
    return moved, (LeftOut(reason=f"centre = continuum peak in rest {lo:g}-{hi:g} A ({img.n_chan} channels, "
                                  f"S/N {img.snr:.0f}): ({x:+.3f}, {y:+.3f}) arcsec", step="centre"),)


def ew_selection(cube, recipe, binned: CubeBins, lines: LineSelection) -> CubeBins:
    """The spaxel bins that pass ``recipe.ew_snr_min`` on the gating line's EW (S1 Sect. 3.1), when set.

    Applied when the cube has a continuum detected in the rest window
    :data:`~mockzgrad.config.continuum.CENTRE_WINDOW_REST` (a line-free
    stretch); otherwise the bins are kept and a note says why.
    """
    if recipe.ew_snr_min is None or recipe.scheme != "spaxels" or binned.binning.n_bins == 0:
        return binned
    img = contmod.continuum_image(cube, lines.redshift, CENTRE_WINDOW_REST)
    if not img.detected:
        lo, hi = CENTRE_WINDOW_REST
        why = "no channels there" if img.n_chan == 0 else f"continuum S/N {img.snr:.1f} < {contmod.DETECTION_SNR:g}"
        note = LeftOut(reason=f"EW({lines.gate_line}) cut not applied: no continuum detected in rest {lo:g}-{hi:g} A "
                              f"({why})", step="ew_cut")
        return CubeBins(binned.binning, binned.excluded + (note,))
    kept, dropped, _ = contmod.ew_cut(cube, binned.binning, lines, lines.gate_line, recipe.ew_snr_min,
                                      recipe.min_spaxels, fit_names=with_tied_partners(cube, lines, lines.lines))
    return CubeBins(kept, binned.excluded + tuple(LeftOut(bin=where, reason=why) for where, why in dropped))


# ---------------------------------------------------------------------------
# the cube front end
# ---------------------------------------------------------------------------

def cube_front_end(cube, recipe, *, redshift: float | None = None, cosmology=None,
                   reference_line: str | None = None, lens=None) -> FrontEndResult:
    """Per-bin line fluxes of an IFU cube (the stages of the module notes).

    Parameters are those of :func:`~mockzgrad.recovery.pipeline.recover`;
    ``recipe`` is a :class:`~mockzgrad.config.Recipe`.
    """
    data, psf = check_cube(cube)
    lines = select_lines(cube, recipe, redshift=redshift, reference_line=reference_line)
    scale = kpc_per_arcsec(lines.redshift, cosmology)
    src = None if lens is None else lensmod.source_coords(lens, data.shape[1:], cube.pixel_scale)
    maps = line_flux_maps(cube, lines)
    geometry, psf_fwhm = measure_geometry(cube, recipe.geometry, psf, lines, source_xy=src, maps=maps)
    geometry, notes = continuum_centre(cube, recipe.geometry, geometry, lines)
    matched = match_psf(cube, data, psf, lines, psf_fwhm)
    binned = bin_cube(cube, recipe.binning, geometry, scale, matched.psf_fwhm, lines,
                      radius_map=None if src is None else lensmod.source_radius_map(*src, geometry), maps=maps,
                      source_xy=src)
    binned = ew_selection(cube, recipe.binning, binned, lines)
    excluded = lines.excluded + notes + binned.excluded
    if binned.binning.n_bins == 0:
        return FrontEndResult(lines, scale, geometry, binned.binning, None, None, excluded)
    fluxes, integrated = measure_line_fluxes(cube, matched, binned.binning, recipe, lines)
    return FrontEndResult(lines, scale, geometry, binned.binning, fluxes, integrated, excluded)


#: Product ``kind`` -> front end ``(product, recipe, *, redshift, cosmology, reference_line) -> FrontEndResult``.
FRONT_ENDS = {
    "ifu": cube_front_end,
    "linemaps": maps_front_end,
}


def front_end(kind: str):
    """The front end of products of ``kind`` in :data:`FRONT_ENDS`.

    Raises
    ------
    ConfigError
        No front end is registered for ``kind`` (the message lists those that are).
    """
    return FRONT_ENDS[choice("product.kind", kind, tuple(FRONT_ENDS))]
