"""The recovery's front end for line maps: from :class:`~mockzgrad.products.linemaps.LineMaps` to per-bin fluxes.

Registered as ``FRONT_ENDS["linemaps"]`` in :mod:`mockzgrad.recovery.frontend`.
Line maps replace the cube front end's spectra and line fits: the stages are

1. :func:`check_maps`: flux and variance maps and the PSF keywords are usable;
2. :func:`select_map_lines`: the redshift (given, else the grism redshift
   the maps were extracted at), the gating and reference lines, the maps the
   recipe needs and the usable diagnostics; a gating line without a map is
   a :class:`~mockzgrad.errors.RecoveryError` naming it;
3. geometry: the recipe's, or a 2D Gaussian fit to the reference map
   (:func:`mockzgrad.recovery.geometry.fit_geometry`, as for cubes);
4. :func:`match_map_psfs`: maps whose PSF is narrower than the broadest
   used are degraded to it (Gaussian kernels of width
   ``sqrt(fwhm_target^2 - fwhm^2)``);
5. binning: the recipe's scheme (:func:`mockzgrad.recovery.binning.recipe_binning`,
   then ``radial_cut``) on a smooth model of the gating map
   (:func:`~mockzgrad.recovery.binning.gate_model`), not on its noisy pixels: bins chosen from the
   noisy map of a line they then measure select its upward fluctuations
   (a pixel S/N cut keeps the high ones, vorbin closes a bin when its
   summed S/N reaches the target), which biased the gating line high by
   ~0.8 sigma per bin (1.6 sigma in the outer half) in NIRISS S/N-50 mocks
   and, through R3 and O32, the outer metallicities low: positive
   gradients came back ~0 or negative;
6. :func:`sum_map_fluxes`: maps summed per bin into a
   :class:`~mockzgrad.recovery.fluxes.BinFluxes` table; a bin's variance
   sums the covariances of its pixel pairs (:func:`bin_variance`) where the
   maps carry covariance stencils (``LineMaps.covariance``, written by the
   joint extraction, whose neighbouring pixels are anti-correlated), else
   the per-pixel variances (independent pixels; a PSF-matched map uses
   these too).

A map that is a blend (``LineMaps.blends``, e.g. ``"Ha"`` = Ha+[NII] 6550,
6585 at grism resolution) is used only by a recipe that models the blend
(``metallicity.nii_ha`` set, line-flux method). Recovery reads maps,
variances, pixel scale and PSF keywords, never the truth.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..errors import DataError, RecoveryError
from ..observation.psf import FWHM_PER_SIGMA, psf_from_header
from ..physics.cosmology import kpc_per_arcsec
from ..physics.lines import LINES
from . import binning as binmod
from . import geometry as geomod
from . import lensing as lensmod
from . import spectra
from .backend import LeftOut, lines_needed, split_diagnostics
from .binning import Binning, gate_model
from .fluxes import BinFluxes
from .geometry import Geometry
from .selection import FrontEndResult, LineSelection

#: Doublets a grism blends whose members diagnostics use only as their sum ([OII] 3727,3730; [SII]
#: 6718,6733): a blend map of one is split into equal shares with fully correlated errors (exact for the sum).
SPLIT_DOUBLETS = frozenset({("OII_3727", "OII_3730"), ("SII_6718", "SII_6733")})

__all__ = ["SPLIT_DOUBLETS", "check_maps", "select_map_lines", "match_map_psfs",
           "bin_maps", "bin_variance", "sum_map_fluxes", "maps_front_end"]


def check_maps(maps) -> tuple[np.ndarray, np.ndarray]:
    """Flux and variance stacks ``(n_maps, ny, nx)`` as float; refuse maps recovery cannot use.

    Raises
    ------
    DataError
        No variance, no finite flux, no positive finite variance, or a map without PSF keywords.
    """
    if getattr(maps, "variance", None) is None:
        raise DataError("line maps: no VAR (variance) maps; recovery needs the variance of every map")
    flux = np.asarray(maps.flux, dtype=float)
    var = np.asarray(maps.variance, dtype=float)
    if var.shape != flux.shape:
        raise DataError(f"line maps: flux {flux.shape} and VAR {var.shape} differ in shape")
    if not np.isfinite(flux).any():
        raise DataError("line maps: FLUX has no finite values")
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(var) & (var > 0)).any():
            raise DataError("line maps: VAR has no positive finite values")
    for n in maps.names:
        if not maps.psfs.get(n):
            raise DataError(f"line maps: map {n} has no PSF keywords (PSF_KIND, PSF_FWHM); "
                            "recovery needs the PSF to choose the annulus width")
    return flux, var


def _brightest(maps, flux) -> str:
    totals = [np.nansum(np.clip(flux[i], 0, None)) for i in range(len(maps.names))]
    return maps.names[int(np.argmax(totals))]


def _available(maps) -> dict:
    """Line id -> (map name, weight): each map's line, and the members of a split doublet blend."""
    out = {}
    for n in maps.names:
        parts = maps.components(n)
        if tuple(sorted(parts)) in SPLIT_DOUBLETS:
            out.update({p: (n, 1.0 / len(parts)) for p in parts})
        else:
            out[n] = (n, 1.0)
    return out


def _check_blends(maps, recipe, used) -> None:
    for n in used:
        parts = maps.components(n)
        if parts == (n,) or tuple(sorted(parts)) in SPLIT_DOUBLETS:
            continue
        if n == "Ha" and recipe.metallicity.nii_ha is not None and recipe.metallicity.method == "flux":
            continue
        raise RecoveryError(f"line map {n} is the blend {'+'.join(parts)}; the recipe would take it as pure {n} "
                            "(a blended Halpha needs metallicity.method = 'flux' with metallicity.nii_ha set)")


def select_map_lines(maps, flux, recipe, *, redshift: float | None = None,
                     reference_line: str | None = None) -> LineSelection:
    """Redshift, gating and reference lines, maps used and usable diagnostics.

    Raises
    ------
    RecoveryError
        The gating line has no map; a used map is a blend the recipe does
        not model; no diagnostic has all its lines among the maps.
    """
    z = float(maps.redshift if redshift is None else redshift)
    gate = recipe.gating.line
    if gate != "brightest" and gate not in maps.names:
        raise RecoveryError(f"gating line {gate} has no line map (maps: {', '.join(maps.names)})")
    if gate == "brightest":
        gate = _brightest(maps, flux)
    if reference_line is None:
        reference_line = gate
    elif reference_line not in maps.names:
        raise RecoveryError(f"reference line {reference_line} has no line map (maps: {', '.join(maps.names)})")
    wanted = lines_needed(recipe) | {reference_line, gate}
    present = tuple(n for n in LINES if n in wanted and n in _available(maps))
    keys = recipe.metallicity.diagnostics
    usable, missing = split_diagnostics(keys, present)
    if not usable:
        raise RecoveryError(f"none of the recipe's diagnostics {list(keys)} has all its lines among the "
                            f"line maps (maps: {list(maps.names)})")
    _check_blends(maps, recipe, [n for n in present if n in lines_needed(recipe)])
    excluded = tuple(LeftOut(diagnostic=d.key, reason=f"line(s) {', '.join(lines)} have no line map")
                     for d, lines in missing)
    return LineSelection(redshift=z, reference_line=reference_line, gate_line=gate, lines=present,
                        diagnostics=usable, excluded=excluded)


def _fwhm(maps, line: str, lines: LineSelection) -> float:
    return float(psf_from_header(maps.psfs[line]).fwhm_at(lines.observed(line)))


def _smooth(img, var, sigma_pix: float):
    """Gaussian-smoothed map and the variance of the smoothed map (independent pixels)."""
    ok = np.isfinite(img) & np.isfinite(var)
    out = ndimage.gaussian_filter(np.where(ok, img, 0.0), sigma_pix, mode="constant")
    s2 = sigma_pix / math.sqrt(2.0)  # sum of squared kernel weights: Gaussian of sigma/sqrt2, norm 1/(4 pi s^2)
    v = ndimage.gaussian_filter(np.where(ok, var, 0.0), s2, mode="constant") / (4.0 * math.pi * sigma_pix**2)
    out[~ok], v[~ok] = np.nan, np.nan
    return out, v


def match_map_psfs(maps, flux, var, lines: LineSelection) -> tuple[np.ndarray, np.ndarray, float]:
    """Degrade the used maps to the broadest PSF FWHM among them (Gaussian approximation).

    Returns
    -------
    flux, var : ndarray, shape (n_maps, ny, nx)
    psf_fwhm : float
        The common FWHM, arcsec.
    """
    avail = _available(maps)
    fwhm = {m: _fwhm(maps, m, lines) for m in {avail[n][0] for n in lines.lines}}
    target = max(fwhm.values())
    flux, var = flux.copy(), var.copy()
    for n, f in fwhm.items():
        if f >= target * (1.0 - 1e-3):
            continue
        sigma_pix = math.sqrt(target**2 - f**2) / FWHM_PER_SIGMA / maps.pixel_scale
        if sigma_pix < 0.3:  # below a third of a pixel the smoothing is negligible and poorly sampled
            continue
        i = maps.index(n)
        flux[i], var[i] = _smooth(flux[i], var[i], sigma_pix)
    return flux, var, target


def bin_maps(maps, flux, var, recipe, geometry: Geometry, scale: float, psf_fwhm: float,
             lines: LineSelection, radius_map=None, source_xy=None) -> tuple[Binning, tuple]:
    """The recipe's bins on the gating map's ring model (:func:`~mockzgrad.recovery.binning.gate_model`), then its radial range.

    The ring width is one map pixel; the rings follow ``geometry`` (or
    ``radius_map``, arcsec, when given; lensed sectors take their azimuth at
    ``source_xy``, the ray-traced spaxel centres). The bins' S/N (``Binning.snr``)
    is then that of the model: the measured one is in the bin fluxes.
    """
    i = maps.index(lines.gate_line)
    with np.errstate(invalid="ignore"):
        gate_err = np.sqrt(var[i])
    x1, y1 = maps.offsets()
    xx, yy = np.meshgrid(x1, y1)
    radius = geomod.elliptical_radius(xx, yy, geometry) if radius_map is None else np.asarray(radius_map, float)
    model = gate_model(flux[i], radius, maps.pixel_scale)
    bins = binmod.recipe_binning(xx, yy, geometry, scale, recipe, psf_fwhm=psf_fwhm, gate_map=model,
                                 gate_err=gate_err, radius_map=radius_map, source_xy=source_xy,
                                 gate_is_model=True)
    excluded = [LeftOut(bin=where, reason=str(why)) for where, why in bins.excluded]
    r_min = 0.0 if recipe.scheme in binmod.CUTS_SPAXELS_BY_RADIUS else recipe.r_min_kpc
    bins, dropped = binmod.radial_cut(bins, r_min, recipe.r_max_kpc)
    excluded += [LeftOut(bin=i, reason=why) for i, why in dropped]
    return bins, tuple(excluded)


def _shifted(a, dy: int, dx: int, fill):
    """``out[y, x] = a[y + dy, x + dx]`` (``fill`` where that falls off the grid)."""
    out = np.full(a.shape, fill, dtype=a.dtype)
    ny, nx = a.shape
    ys, yd = slice(max(dy, 0), ny + min(dy, 0)), slice(max(-dy, 0), ny + min(-dy, 0))
    xs, xd = slice(max(dx, 0), nx + min(dx, 0)), slice(max(-dx, 0), nx + min(-dx, 0))
    out[yd, xd] = a[ys, xs]
    return out


def bin_variance(cov, offsets, labels, valid, n_bins: int) -> np.ndarray:
    """Variance of per-bin sums of a map whose pixel covariances are the stencil ``cov``.

    ``var_b = sum over pixel pairs (p, p + o_k) both valid and in bin b of cov[k, p]``
    (:attr:`~mockzgrad.products.linemaps.LineMaps.covariance`); pairs further apart than the stencil
    are taken as uncorrelated.

    Parameters
    ----------
    cov : ndarray, shape (n_offsets, ny, nx)
    offsets : ndarray of int, shape (n_offsets, 2)
    labels : ndarray of int, shape (ny, nx)
        Bin of each pixel, -1 for none.
    valid : ndarray of bool, shape (ny, nx)
        Pixels whose value enters the sums (finite flux and variance).
    n_bins : int
    """
    lab = np.where(valid, labels, -1)
    out = np.zeros(n_bins)
    for k, (dy, dx) in enumerate(np.asarray(offsets, int)):
        same = (lab >= 0) & (_shifted(lab, int(dy), int(dx), -1) == lab)
        out += np.bincount(lab[same], weights=np.nan_to_num(cov[k][same]), minlength=n_bins)[:n_bins]
    return out


def _map_variances(maps, flux, var, idx, labels, n_bins: int, pixel_var) -> np.ndarray:
    """Per-bin variance ``(n_bins, n_used)`` of each used map: from its covariance stencil where it has
    one and was not PSF-matched (smoothing changes it), else ``pixel_var`` (summed pixel variances)."""
    out = np.array(pixel_var, dtype=float)
    if getattr(maps, "covariance", None) is None:
        return out
    for j, i in enumerate(idx):
        if not np.array_equal(var[i], np.asarray(maps.variance[i], float), equal_nan=True):
            continue
        valid = np.isfinite(flux[i]) & np.isfinite(var[i])
        out[:, j] = bin_variance(maps.covariance[i], maps.cov_offsets, labels, valid, n_bins)
    return out


def sum_map_fluxes(maps, flux, var, bins: Binning, lines: LineSelection,
                   recipe) -> tuple[BinFluxes, BinFluxes | None]:
    """Maps summed per bin, with their variances (pixel covariances included where the maps carry them);
    the whole galaxy too when the recipe corrects for dust."""
    avail = _available(maps)
    used = sorted({avail[n][0] for n in lines.lines}, key=maps.index)
    idx = [maps.index(m) for m in used]
    sums, errs = spectra.sum_spectra(flux[idx], var[idx], bins.labels, bins.n_bins)
    bvar = _map_variances(maps, flux, var, idx, bins.labels, bins.n_bins, np.asarray(errs) ** 2)
    t = np.zeros((len(lines.lines), len(used)))  # line fluxes = t @ map sums (a split doublet: fixed shares)
    for k, n in enumerate(lines.lines):
        m, w = avail[n]
        t[k, used.index(m)] = w
    fluxes = _expand(lines.lines, np.asarray(sums), bvar, t)
    if not (recipe.dust.correct and all(n in lines.lines for n in recipe.dust.pair)):
        return fluxes, None
    total = np.nansum(sums, axis=0)[None]
    total_var = _map_variances(maps, flux, var, idx, np.where(bins.labels >= 0, 0, -1), 1,
                               np.nansum(np.asarray(errs) ** 2, axis=0)[None])
    return fluxes, _expand(lines.lines, total, total_var, t)


def _expand(names, sums, var, t) -> BinFluxes:
    """BinFluxes of lines ``t @ maps`` per bin: flux ``sums @ t.T``, covariance ``t diag(var) t^T``."""
    flux = sums @ t.T
    cov = np.einsum("lm,bm,km->blk", t, var, t)
    return BinFluxes(tuple(names), flux, cov)


def _geometry(maps, flux, var, recipe, lines: LineSelection, source_xy=None) -> Geometry:
    if recipe.mode == "given":
        return Geometry.given(x_offset=recipe.x_offset, y_offset=recipe.y_offset, axis_ratio=recipe.axis_ratio,
                              pa=recipe.pa, q0=recipe.q0)
    if recipe.mode == "catalog":
        raise DataError("geometry.mode = 'catalog': line maps carry no imaging catalogue with pa and "
                        "axis_ratio; use mode 'fit' or 'given'")
    i = maps.index(lines.reference_line)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.sqrt(var[i])
        detected = flux[i] > 2.0 * err
    mask = detected if detected.sum() >= 12 else None
    if source_xy is not None:  # lensed: the Gaussian is fitted at the ray-traced pixel centres
        return lensmod.fit_source_geometry(flux[i], err, *source_xy, q0=recipe.q0, mask=mask)
    return geomod.fit_geometry(flux[i], err, maps.pixel_scale, psf_fwhm=_fwhm(maps, lines.reference_line, lines),
                               q0=recipe.q0, mask=mask)


def maps_front_end(maps, recipe, *, redshift: float | None = None, cosmology=None,
                   reference_line: str | None = None, lens=None) -> FrontEndResult:
    """Per-bin line fluxes of line maps (the stages of the module notes).

    Parameters are those of :func:`~mockzgrad.recovery.pipeline.recover`;
    ``maps`` is a :class:`~mockzgrad.products.linemaps.LineMaps`, ``recipe``
    a :class:`~mockzgrad.config.Recipe`; ``redshift`` defaults to the maps'
    grism redshift and ``reference_line`` to the gating line (the brightest
    map for ``gating.line = "brightest"``).
    """
    flux, var = check_maps(maps)
    lines = select_map_lines(maps, flux, recipe, redshift=redshift, reference_line=reference_line)
    scale = kpc_per_arcsec(lines.redshift, cosmology)
    src = None if lens is None else lensmod.source_coords(lens, maps.shape, maps.pixel_scale)
    geometry = _geometry(maps, flux, var, recipe.geometry, lines, source_xy=src)
    flux, var, psf_fwhm = match_map_psfs(maps, flux, var, lines)
    radius_map = None if src is None else lensmod.source_radius_map(*src, geometry)
    bins, excl = bin_maps(maps, flux, var, recipe.binning, geometry, scale, psf_fwhm, lines, radius_map,
                          source_xy=src)
    excluded = lines.excluded + excl
    if bins.n_bins == 0:
        return FrontEndResult(lines, scale, geometry, bins, None, None, excluded)
    fluxes, integrated = sum_map_fluxes(maps, flux, var, bins, lines, recipe)
    return FrontEndResult(lines, scale, geometry, bins, fluxes, integrated, excluded)
