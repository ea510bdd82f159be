"""Line maps from grism exposures, as an observer extracts them: :func:`extract_line_maps`.

Observer side: uses the exposures (SCI, VAR), their dispersion keywords
(the calibration, :class:`mockzgrad.observation.grism.dispersion.GrismDispersion`),
the direct images and the PSF keywords; never the forward model, the source
model or the truth.

Every map is a set of unknowns on the direct-image grid; a *group* ties the
lines of one map (:data:`LINE_GROUPS`): [OIII] 4960 = [OIII] 5008 / 2.98
(Storey & Zeippen 2000, as Wang et al. 2017 Sect. 4.3), Halpha + [NII]
6550,6585 left blended at a fixed [NII]6585/Halpha (the map is the blend's
total; Wang et al. 2017 Sect. 4.3), the [OII] and [SII] doublets as blends
(the map is the doublet's total). The model of an exposure is
``sum_groups sum_lines c_k D(lambda_k) map_g`` with ``D`` the dispersion
operator (:func:`~mockzgrad.observation.grism.dispersion.disperse`, which
includes the sensitivity), weighted by ``1/sigma`` per frame pixel (so
the fit minimises sum (data - model)^2 / VAR) and solved directly: the
groups split into blocks that share exposures (one per filter for NIRISS),
each block's normal equations are built from the explicit sparse model
matrix (:func:`_design_matrix`, the operator of
:func:`~mockzgrad.observation.grism.dispersion.disperse`) and solved by
Cholesky (:func:`_normal_solve`).

Two methods:

``"isophote"`` (Wang et al. 2017 Sect. 4.3, S3 in reference/instruments.md)
    per exposure: a continuum model, the direct image of the exposure's
    filter spread flat in f_lambda over the filter and dispersed, with one
    free amplitude (rescaled to the local level), is fitted together with
    the line maps, whose unknowns are restricted to the direct-image isophote
    at ``isophote`` (10 %) of its peak: the support that de-blends Hbeta
    from [OIII] in one orientation; maps of the exposures are then combined
    by inverse variance. Not modelled: the per-exposure alignment by
    normalised cross-correlation (S3 Eq. 1) and the rejection of flagged maps.
``"joint"`` (the LINEAR / slitlessutils idea)
    one map per group on the object's segmentation (direct-image pixels at
    >= ``segmentation`` (0.1 %) of the peak, as grizli models only the
    segmentation's pixels; the map is NaN outside), all exposures as data;
    the continuum amplitude of each exposure is fitted alongside.

Variances: the exact diagonal of ``(A^T W A)^-1`` (``W = 1/VAR``), the
covariance of the weighted least-squares solution (continuum amplitudes
marginalised), up to O(damp^2) with the negligible default damping;
not ``1/diag(A^T W A)``, which is exact only for non-overlapping traces
and underestimates the variance of de-blended maps several-fold.
Correlations between map pixels (anti-correlations of neighbours, from the
linear split and the de-blending) are not kept: per-bin variances summed
from the pixels are approximate.

Not modelled: line-of-sight velocities. Every line is dispersed at its
rest wavelength times ``1 + redshift``, while rotation and ``sigma0`` move
and widen it by a fraction of a pixel (NIRISS at 0.03": ~0.4 pixel for
130 km/s). The mismatch of the bright [OIII] leaks into the faint Hbeta
map: on the NIRISS z = 3.06 example (PSF 0.01", noise-free), Hbeta's rms
residual is 3.7 % of its peak (0.5 % with the kinematics switched off) and,
in the outer Voronoi bins of an S/N-50 mock, Hbeta/[OIII] comes out 10-25 %
high; wang2022 then gives +0.094 dex/kpc for +0.05 (the true maps summed in
the same bins give +0.049). Bins holding many pixels (S/N-10 mocks) average
it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve, lapack

from .. import __version__
from ..errors import ConfigError, DataError
from ..observation.grism.dispersion import GrismDispersion, disperse
from ..physics.lines import LINES
from ..products.linemaps import LineMaps

__all__ = ["LINE_GROUPS", "EXTRACTION_METHODS", "LineGroup", "line_groups", "extract_line_maps"]

#: [OIII] 5008 / 4960 flux ratio (Storey & Zeippen 2000; Wang et al. 2017 Sect. 4.3).
OIII_RATIO = 2.98
#: [NII] 6585 / 6550 flux ratio (DESIGN.md).
NII_RATIO = 3.071
#: Extraction methods.
EXTRACTION_METHODS = ("isophote", "joint")


@dataclass(frozen=True)
class LineGroup:
    """One map: its name, the lines it ties (line id -> flux share of the map) and the lines it reports."""

    name: str
    shares: tuple  # ((line id, flux per unit map flux), ...)
    blend: tuple   # line ids whose total the map is


def line_groups(nii_ha: float = 0.05) -> tuple[LineGroup, ...]:
    """The map groups; ``nii_ha`` is the [NII]6585/Halpha assumed inside the Halpha blend ([0, 0.5])."""
    if not (isinstance(nii_ha, (int, float)) and 0.0 <= nii_ha <= 0.5):
        raise ConfigError(f"nii_ha = {nii_ha!r}; allowed [0, 0.5]")
    w = np.array([1.0, nii_ha, nii_ha / NII_RATIO])
    w = w / w.sum()
    return (
        LineGroup("OII_3727", (("OII_3727", 0.5), ("OII_3730", 0.5)), ("OII_3727", "OII_3730")),
        LineGroup("NeIII_3870", (("NeIII_3870", 1.0),), ("NeIII_3870",)),
        LineGroup("Hg", (("Hg", 1.0),), ("Hg",)),
        LineGroup("Hb", (("Hb", 1.0),), ("Hb",)),
        LineGroup("OIII_5008", (("OIII_5008", 1.0), ("OIII_4960", 1.0 / OIII_RATIO)), ("OIII_5008",)),
        LineGroup("Ha", (("Ha", w[0]), ("NII_6585", w[1]), ("NII_6550", w[2])), ("Ha", "NII_6550", "NII_6585")),
        LineGroup("SII_6718", (("SII_6718", 0.5), ("SII_6733", 0.5)), ("SII_6718", "SII_6733")),
    )


#: Default groups ([NII]/Halpha = 0.05, Wang et al. 2017 "vanilla", Table 3).
LINE_GROUPS = line_groups()


# ---------------------------------------------------------------------------
# the linear model of a set of exposures
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Exposure:
    model: GrismDispersion
    data: np.ndarray      # e-/s, weighted by 1/sigma
    weight: np.ndarray    # 1/sigma, 0 where unusable
    continuum: np.ndarray | None  # dispersed continuum template, weighted


def _models(mock) -> list[GrismDispersion]:
    return [GrismDispersion.from_header(e.header, e.sci.shape) for e in mock.exposures]


def _continuum_template(mock, model: GrismDispersion) -> np.ndarray | None:
    """The direct image of the exposure's filter, flat in f_lambda over the filter, dispersed (e-/s)."""
    direct = mock.direct.get(model.filter)
    if direct is None:
        return None
    step = model.dispersion
    waves = np.arange(model.sens_lo + 0.5 * step, model.sens_hi, step)
    slices = np.repeat(np.asarray(direct, float)[None] * (step / (model.sens_hi - model.sens_lo)), waves.size, 0)
    return disperse(slices, waves, model)


def _prepare(mock, models, which, continuum: bool) -> list[_Exposure]:
    out = []
    for i in which:
        e, m = mock.exposures[i], models[i]
        var = np.asarray(e.var, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(np.isfinite(var) & (var > 0) & np.isfinite(e.sci), 1.0 / np.sqrt(var), 0.0)
        cont = _continuum_template(mock, m) if continuum else None
        out.append(_Exposure(m, np.nan_to_num(np.asarray(e.sci, float)) * w, w,
                             None if cont is None or not np.any(cont) else cont * w))
    return out


def _design_matrix(exps, groups, redshift, support) -> sp.csr_matrix:
    """The weighted model A (rows: frame pixels of every exposure; columns: group x support pixel).

    ``A[r, c] = w_r * share * S(lambda) * tent weight`` of the line at ``lambda`` of the column's pixel
    landing on frame pixel ``r``: the same geometry and split as
    :func:`~mockzgrad.observation.grism.dispersion.disperse` (checked against it in the tests).
    """
    cols = np.flatnonzero(support.ravel())
    rows, idx, vals, offset = [], [], [], 0
    for e in exps:
        m = e.model
        ny, nx = m.shape
        bx, by = (a.ravel()[cols] for a in m.direct_positions())
        w = e.weight.ravel()
        for g, group in enumerate(groups):
            for line, share in group.shares:
                lam = LINES[line].wavelength * (1 + redshift)
                sens = float(m.sensitivity(lam))
                if sens <= 0:
                    continue
                x, y = bx + float(m.dx(lam)), by + float(m.dy(lam))
                i0, j0 = np.floor(x), np.floor(y)
                fx, fy = x - i0, y - j0
                i0, j0 = i0.astype(np.int64), j0.astype(np.int64)
                for dj, wy in ((0, 1.0 - fy), (1, fy)):
                    for di, wx in ((0, 1.0 - fx), (1, fx)):
                        i, j = i0 + di, j0 + dj
                        ok = (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
                        r = (j * nx + i)[ok]
                        rows.append(offset + r)
                        idx.append(g * cols.size + np.flatnonzero(ok))
                        vals.append(wx[ok] * wy[ok] * (sens * share) * w[r])
        offset += e.data.size
    shape = (offset, len(groups) * cols.size)
    if not rows:
        return sp.csr_matrix(shape)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(idx))), shape=shape)


def _continuum_columns(exps) -> np.ndarray:
    """Dense weighted continuum columns, one per exposure that has a template (rows as the design matrix)."""
    with_cont = [k for k, e in enumerate(exps) if e.continuum is not None]
    out = np.zeros((sum(e.data.size for e in exps), len(with_cont)))
    starts = np.cumsum([0] + [e.data.size for e in exps])
    for j, k in enumerate(with_cont):
        out[starts[k]:starts[k + 1], j] = exps[k].continuum.ravel()
    return out


def _normal_solve(a, c, b, damp):
    """Solution and variance of ``min |[A C] x - b|^2 + damp^2 |x|_J^2`` (``J``: unit-scaled unknowns).

    Returns ``(x, var)`` for the columns of ``A`` (the continuum amplitudes are solved for and
    marginalised). ``var = diag(N_d^-1)``, ``N_d = [A C]^T [A C] + damp^2 diag(.)``: the exact
    covariance of the weighted least-squares solution for unit-variance weighted data (the rows of A
    and b are divided by sigma), up to O(damp^2) (the damped estimator's covariance is
    ``N_d^-1 N N_d^-1``). Columns that no frame pixel sees get NaN.
    """
    n_a = a.shape[1]
    top = (a.T @ a).toarray()
    n = np.block([[top, np.asarray(a.T @ c)], [np.asarray(c.T @ a), c.T @ c]]) if c.shape[1] else top
    rhs = np.concatenate([a.T @ b, c.T @ b]) if c.shape[1] else a.T @ b
    d = np.diag(n).copy()
    seen = d > 0
    s = 1.0 / np.sqrt(d[seen])
    ns = n[np.ix_(seen, seen)] * s[:, None] * s[None, :]
    ns[np.diag_indices_from(ns)] += damp**2
    factor = cho_factor(ns, lower=True, check_finite=False)
    x_all = np.full(d.size, np.nan)
    var_all = np.full(d.size, np.nan)
    x_all[seen] = cho_solve(factor, rhs[seen] * s, check_finite=False) * s
    inv, info = lapack.dpotri(factor[0], lower=1)
    if info != 0:
        raise DataError(f"grism extraction: the normal matrix is singular (dpotri info {info})")
    var_all[seen] = np.diag(inv) * s**2
    return x_all[:n_a], var_all[:n_a]


def _blocks(exps, groups, redshift):
    """Independent sub-problems: groups linked through the exposures that see them (with those exposures)."""
    sees = [[k for k, e in enumerate(exps) if e.model.covers(LINES[g.shares[0][0]].wavelength * (1 + redshift))]
            for g in groups]
    todo, out = set(range(len(groups))), []
    while todo:
        block, frontier = set(), {todo.pop()}
        while frontier:
            g = frontier.pop()
            block.add(g)
            linked = {h for h in todo if set(sees[h]) & set(sees[g])}
            todo -= linked
            frontier |= linked
        ks = sorted({k for g in block for k in sees[g]})
        out.append((sorted(block), ks))
    return out


def _solve(exps, groups, redshift, support, *, damp):
    """Maps (n_groups, n, n) and their variances by weighted least squares on ``exps``; NaN outside ``support``.

    The problem splits into blocks of groups that share exposures (:func:`_blocks`); each is solved
    directly from its normal equations (:func:`_normal_solve`).
    """
    n = exps[0].model.n_direct
    k = int(support.sum())
    maps = np.full((len(groups), n, n), np.nan)
    mvar = np.full((len(groups), n, n), np.nan)
    for gs, ks in _blocks(exps, groups, redshift):
        sub = [exps[i] for i in ks]
        a = _design_matrix(sub, [groups[g] for g in gs], redshift, support)
        b = np.concatenate([e.data.ravel() for e in sub])
        x, var = _normal_solve(a, _continuum_columns(sub), b, damp)
        for j, g in enumerate(gs):
            maps[g][support] = x[j * k:(j + 1) * k]
            mvar[g][support] = var[j * k:(j + 1) * k]
    return maps, mvar, int(support.sum())


# ---------------------------------------------------------------------------
# the methods
# ---------------------------------------------------------------------------

def _covered_groups(models, groups, redshift):
    """Groups whose main line some exposure covers, and the others (for provenance)."""
    used, left = [], []
    for g in groups:
        lam = LINES[g.shares[0][0]].wavelength * (1 + redshift)
        (used if any(m.covers(lam) for m in models) else left).append(g)
    return used, left


def _isophote(mock, model: GrismDispersion, fraction: float) -> np.ndarray:
    """Direct-image pixels at >= ``fraction`` of the peak (the exposure's filter, else any direct image)."""
    n = model.n_direct
    direct = mock.direct.get(model.filter)
    if direct is None and mock.direct:
        direct = next(iter(mock.direct.values()))
    if direct is None:
        return np.ones((n, n), bool)
    d = np.nan_to_num(np.asarray(direct, float))
    return d >= fraction * d.max()


def _inverse_variance(maps, variances):
    """Inverse-variance mean of per-exposure maps (NaN or non-positive variances are left out)."""
    m, v = np.asarray(maps), np.asarray(variances)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(np.isfinite(m) & np.isfinite(v) & (v > 0), 1.0 / v, 0.0)
        wsum = w.sum(axis=0)
        mean = np.where(wsum > 0, np.sum(np.nan_to_num(m) * w, axis=0) / wsum, np.nan)
        var = np.where(wsum > 0, 1.0 / wsum, np.nan)
    return mean, var


def _segmentation(mock, n: int, fraction: float, max_pixels: int) -> np.ndarray:
    """The object's pixels: >= ``fraction`` of the peak in any direct image, at most ``max_pixels`` (brightest)."""
    images = [np.nan_to_num(np.asarray(d, float)) for d in mock.direct.values()]
    images = [d / d.max() for d in images if d.max() > 0]
    if not images:
        raise DataError("grism exposures: no direct image with flux; the joint extraction needs one for the "
                        "object's segmentation")
    level = np.max(images, axis=0)
    seg = level >= fraction
    if seg.sum() > max_pixels:
        seg = level >= np.sort(level.ravel())[-max_pixels]
    return seg


def _extract_isophote(mock, models, groups, redshift, *, isophote, damp, continuum, **_):
    per_map = {g.name: ([], []) for g in groups}
    sizes = []
    for i, m in enumerate(models):
        here = [g for g in groups if m.covers(LINES[g.shares[0][0]].wavelength * (1 + redshift))]
        if not here:
            continue
        exps = _prepare(mock, models, [i], continuum)
        maps, var, size = _solve(exps, here, redshift, _isophote(mock, m, isophote), damp=damp)
        sizes.append(size)
        for g, mp, vr in zip(here, maps, var):
            per_map[g.name][0].append(mp)
            per_map[g.name][1].append(vr)
    out = {name: _inverse_variance(ms, vs) for name, (ms, vs) in per_map.items() if ms}
    return out, sizes


def _extract_joint(mock, models, groups, redshift, *, damp, continuum, segmentation, max_support, **_):
    n = models[0].n_direct
    exps = _prepare(mock, models, range(len(models)), continuum)
    support = _segmentation(mock, n, segmentation, max_support)
    maps, var, size = _solve(exps, groups, redshift, support, damp=damp)
    return {g.name: (maps[k], var[k]) for k, g in enumerate(groups)}, [size]


def _map_psfs(mock, names, redshift) -> dict:
    from ..observation.psf import psf_from_header

    if not mock.psf:
        raise DataError("grism exposures: no PSF keywords (PSF_KIND, PSF_FWHM); line maps need the PSF")
    psf = psf_from_header(mock.psf)
    return {n: psf.at_wavelength(LINES[n].wavelength * (1 + redshift)).to_header() for n in names}


def extract_line_maps(mock, redshift: float, *, method: str = "joint", nii_ha: float = 0.05,
                      isophote: float = 0.1, segmentation: float = 1e-3, max_support: int = 2500,
                      damp: float = 1e-4, continuum: bool = True) -> LineMaps:
    """Line maps with variances from grism exposures.

    Parameters
    ----------
    mock : GrismMock
        Exposures (SCI, VAR in e-/s, dispersion keywords), direct images, PSF keywords.
    redshift : float
        Grism redshift of the source; > 0.
    method : {"joint", "isophote"}
        See the module notes.
    nii_ha : float
        [NII]6585/Halpha inside the Halpha blend map; [0, 0.5].
    isophote : float
        Isophote of the ``"isophote"`` method, fraction of the direct image's peak; (0, 1).
    segmentation : float
        The ``"joint"`` method's unknowns: pixels at >= ``segmentation`` of the peak of any direct
        image (the object's segmentation; the map is NaN elsewhere); (0, 1).
    max_support : int
        At most this many (the brightest) pixels per map in the ``"joint"`` method (the dense normal
        equations of a block of k maps cost (k x max_support)^3 / 3); >= 1.
    damp : float
        Damping on unknowns scaled to unit normal-matrix diagonal; >= 0 (1e-4: negligible, guards
        against an exactly singular block).
    continuum : bool
        Fit a continuum amplitude per exposure (needs the direct image of its filter).

    Returns
    -------
    LineMaps
        On the direct-image grid; ``provenance`` lists the method, exposures and lines not covered.
        Its ``truth`` is empty (recovery never reads it; a suite copies the mock's truth).

    Raises
    ------
    ConfigError
        Unknown method, or a parameter out of range.
    DataError
        No exposure, or no line covered at ``redshift``.
    """
    if method not in EXTRACTION_METHODS:
        raise ConfigError(f"method = {method!r}; allowed: {', '.join(EXTRACTION_METHODS)}")
    if not (isinstance(redshift, (int, float)) and math.isfinite(redshift) and redshift > 0):
        raise ConfigError(f"redshift = {redshift!r}; allowed > 0")
    if not (0.0 < isophote < 1.0):
        raise ConfigError(f"isophote = {isophote!r}; allowed (0, 1)")
    if not (0.0 < segmentation < 1.0):
        raise ConfigError(f"segmentation = {segmentation!r}; allowed (0, 1)")
    if not (isinstance(max_support, int) and max_support >= 1):
        raise ConfigError(f"max_support = {max_support!r}; allowed an integer >= 1")
    if not (isinstance(damp, (int, float)) and damp >= 0):
        raise ConfigError(f"damp = {damp!r}; allowed >= 0")
    if not mock.exposures:
        raise DataError("grism exposures: none in the product")
    models = _models(mock)
    groups, left = _covered_groups(models, line_groups(nii_ha), redshift)
    if not groups:
        raise DataError(f"no line of {[g.name for g in line_groups(nii_ha)]} is covered by any exposure "
                        f"at redshift {redshift}")
    run = _extract_joint if method == "joint" else _extract_isophote
    res, sizes = run(mock, models, groups, redshift, isophote=isophote, damp=damp, continuum=continuum,
                     segmentation=segmentation, max_support=max_support)
    names = [g.name for g in groups if g.name in res]
    blends = {g.name: g.blend for g in groups if g.blend != (g.name,)}
    provenance = {"method": method, "nii_ha_assumed": nii_ha, "damp": damp, "support_pixels": sizes,
                  "exposures": [e.name for e in mock.exposures], "mockzgrad_version": __version__,
                  "excluded": [{"line": g.name, "reason": "not covered"} for g in left]}
    if method == "isophote":
        provenance["isophote"] = isophote
    else:
        provenance["segmentation"] = segmentation
    return LineMaps(names=tuple(names), flux=np.stack([res[n][0] for n in names]),
                    variance=np.stack([res[n][1] for n in names]), pixel_scale=float(mock.pixel_scale),
                    psfs=_map_psfs(mock, names, redshift), redshift=float(redshift), blends=blends,
                    provenance=provenance, config_toml=getattr(mock, "config_toml", ""))
