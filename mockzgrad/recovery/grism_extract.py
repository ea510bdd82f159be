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
    by inverse variance, optionally after aligning them (``align``: shift and
    rotation at the maximum normalised cross-correlation, S3 Eq. 1) and
    without the flagged exposures (``reject``, or ``REJECT`` in a header).
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
linear split and the de-blending): the joint method keeps, per map pixel, its covariances with the
pixels within COV_RADIUS (4) pixels of it (Chebyshev distance) in the same map (``LineMaps.covariance``; read from the
same inverse), so that bin errors sum the covariance of the bin's pixel pairs
(:func:`mockzgrad.recovery.maps_frontend.sum_map_fluxes`); covariances between maps and beyond the
stencil are not kept. The isophote method keeps none (per-pixel variances only).

Continuum templates: the direct images include the line light (up to 6.5 % on [NeIII] at rest EW
100 A); ``clean_direct=N`` re-solves with the line maps subtracted from them (N = 3: all totals
within 1.1 %, NIRISS example, noise-free).

Light outside the segmentation (``halo=True``, joint method): the pixels below ``segmentation`` of the
peak still emit (0.5 % of the NIRISS example's lines, 2 % of a line's flux at its outskirts); unmodelled,
that light went into the support's maps, most into faint ones whose traces overlap the bright lines'
(Hbeta +1.7 %, NIRISS z = 3.06, PSF 0.01", noise-free, with the exact line profiles). One extra unknown
per group, the direct image outside the support as its shape, marginalised like the continuum
(:func:`_halo_columns`), brings Hbeta to 1.0000 with exact profiles.

Line-of-sight velocities (``velocities="rotation"``, joint method; default ``"none"``, see
:data:`DEFAULT_VELOCITIES`). Diagnosis on the
NIRISS z = 3.06 example (PSF 0.01", noise-free, wang2022; the truth's own line maps give -0.0491 /
+0.0501 for -0.05 / +0.05, so every error below is the extraction's). A rotating disk moves each line
by v/c lambda / dispersion pixels (NIRISS at 0.03": 150 km/s ~ 0.45 pixel) and widens it by sigma0
(80 km/s ~ 0.25 pixel). Hbeta's trace from a pixel 18 (27) pixels redward of the bright [OIII] 4960
(5008) core along the dispersion lands on that core's trace, so a model error of the bright core of
~0.1 % of its peak becomes tens of per cent of the faint outer Hbeta on that side (measured: Hbeta /
truth 1.5-2.6 at 3-6 kpc on one side without velocities); which gradient sign passes then depends on
how the line ratios place that leak. Measured (Hbeta rms residual / peak; grad_z for -0.05 / +0.05):
no velocities 2.8-3.7 %, -0.0461 / +0.0389 (with the halo -0.0503 / +0.0415); the true field without
width 1.5 %, -0.0547 / +0.0421; the true field with sigma0 as 3 Gauss-Hermite nodes 1.0 %, -0.0571 /
+0.0598 (the linear split between pixels has kinks: 3 nodes leave 3.3 % of the data peak, 17 uniform
nodes 0.65 %); the true field with sigma0 on 17 uniform nodes (:data:`PROFILE_NODES`) 0.13-0.2 %,
-0.0517 / +0.0533; the exact per-pixel line profiles of the mock 0.00 % in the Hbeta/[OIII] block.
The former one-amplitude arctan field with a fixed turnover (``"arctan"``) overestimated V by ~35 %
(209-227 km/s vs 156). ``"rotation"`` now fits (:func:`_fit_kinematics`, Gauss-Newton on the
brightest block with the pixels at >= 1 % of the peak, the rest as halo) ring velocities at 0.25-4.5
half-light radii (linear between rings; the inner rings matter: with rings from 0.5 r_half the
chi2 of even the truth-projected curve was 30x that of the true field), the disk's centre and major
axis (started from the direct images' moments) and one line dispersion; every line of a pixel is
dispersed at ``lambda (1 + z)(1 + v / c)`` with that Gaussian width. Measured: ring speeds within
3-9 km/s of the truth's, sigma 94-95 km/s (80 intrinsic, 84 with the mock's channel quantisation),
Hbeta rms 0.35-0.46 %, grad_z -0.0508 / +0.0561. That +0.0561 is not the maps' error: at the
example's noise.snr = 10 the larger variances of the fitted-width model leave 4 Voronoi bins, and the
TRUE line maps with those variances give +0.0550; at noise.snr = 30 (the NIRISS suite's depth; 49-59
bins) ``"rotation"`` gives +0.0513 / -0.0529 (truth maps +0.0520 / -0.0511), ``"none"`` +0.0752 /
-0.0231. The extracted Hgamma/Hbeta per annulus (noise-free, no dust: Case B 0.468 everywhere) stays
within 0.5 % of the truth to 0.5" (2.6 r_eff) with ``"rotation"``; with ``"none"`` it falls to 0.33 at
0.4-0.5" (Hbeta 1.16-1.30x the truth at 0.3-0.5" from the [OIII] core, Hgamma 0.53-0.92 beyond
0.4"), which wang2022's per-bin A_V turns into dust rising outward (the suites' positive offset).
Not the filter edge (Hgamma at 1.763 um lies on F200W's blue taper): with ``"rotation"`` Hgamma is
within 0.5 % of the truth everywhere; without rotation in the mock Hgamma is within 0.3 % and only
Hbeta deviates (channel quantisation: the mock disperses each 5.5 A channel at its centre, Hbeta
-2.0 A and [OIII] 4960 +2.5 A from their wavelengths when sigma0 = 0); at z = 3.2 (Hgamma mid-filter)
``"none"`` falls the same way. ``"rotation"`` costs ~2-3x the time of ``"none"`` (its support is capped
at ROTATION_MAX_PIXELS) and is not the default: with noise it doubles the map variances and its line sigma
can run away on a nearly face-on disk (:data:`DEFAULT_VELOCITIES`). Not modelled: non-circular
motions, a dispersion varying over the disk, a kinematic axis ratio other than the direct images'.
The ``"isophote"`` method has no velocities; it can align the exposures' maps (``align``, Wang et al.
2017 Eq. 1: shift and rotation at the NCCF maximum) and leave out flagged ones (``reject`` or a
``REJECT`` header keyword).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve, lapack

from .. import __version__
from ..errors import ConfigError, DataError
from ..kernels.disperse import bilinear_corners
from ..observation.grism.dispersion import GrismDispersion, disperse
from ..physics.lines import C_KMS, LINES, OII_DOUBLET_RATIO, SII_DOUBLET_RATIO
from ..products.linemaps import LineMaps

__all__ = ["LINE_GROUPS", "EXTRACTION_METHODS", "LineGroup", "line_groups", "extract_line_maps", "fit_redshift",
           "redshift_source"]

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
        LineGroup("OII_3727", (("OII_3727", 1.0 / (1.0 + OII_DOUBLET_RATIO)),
                               ("OII_3730", OII_DOUBLET_RATIO / (1.0 + OII_DOUBLET_RATIO))), ("OII_3727", "OII_3730")),
        LineGroup("NeIII_3870", (("NeIII_3870", 1.0),), ("NeIII_3870",)),
        LineGroup("Hg", (("Hg", 1.0),), ("Hg",)),
        LineGroup("Hb", (("Hb", 1.0),), ("Hb",)),
        LineGroup("OIII_5008", (("OIII_5008", 1.0), ("OIII_4960", 1.0 / OIII_RATIO)), ("OIII_5008",)),
        LineGroup("Ha", (("Ha", w[0]), ("NII_6585", w[1]), ("NII_6550", w[2])), ("Ha", "NII_6550", "NII_6585")),
        LineGroup("SII_6718", (("SII_6718", SII_DOUBLET_RATIO / (1.0 + SII_DOUBLET_RATIO)),
                               ("SII_6733", 1.0 / (1.0 + SII_DOUBLET_RATIO))), ("SII_6718", "SII_6733")),
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


def _continuum_template(mock, model: GrismDispersion, direct_images=None) -> np.ndarray | None:
    """The direct image of the exposure's filter, flat in f_lambda over the filter, dispersed (e-/s).

    ``direct_images`` (filter -> image) replaces ``mock.direct`` (the line-free direct images).
    """
    direct = (mock.direct if direct_images is None else direct_images).get(model.filter)
    if direct is None:
        return None
    step = model.dispersion
    waves = np.arange(model.sens_lo + 0.5 * step, model.sens_hi, step)
    slices = np.repeat(np.asarray(direct, float)[None] * (step / (model.sens_hi - model.sens_lo)), waves.size, 0)
    return disperse(slices, waves, model)


def _prepare(mock, models, which, continuum: bool, direct_images=None) -> list[_Exposure]:
    """Weighted exposures."""
    out = []
    for i in which:
        e, m = mock.exposures[i], models[i]
        var = np.asarray(e.var, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(np.isfinite(var) & (var > 0) & np.isfinite(e.sci), 1.0 / np.sqrt(var), 0.0)
        cont = _continuum_template(mock, m, direct_images) if continuum else None
        out.append(_Exposure(m, np.nan_to_num(np.asarray(e.sci, float)) * w, w,
                             None if cont is None or not np.any(cont) else cont * w))
    return out


#: Line-profile nodes of a dispersion sigma, in units of sigma: uniform steps of sigma / 2 to +-4 sigma
#: with Gaussian weights. The linear split between pixels has kinks, so Gauss-Hermite nodes converge slowly
#: (NIRISS example, model of the true maps vs the data, max residual / peak: 3 nodes 3.3 %, 7 nodes 1.8 %,
#: 11 nodes 1.0 %; these 17 uniform nodes 0.65 %, 33 nodes 0.64 %).
PROFILE_NODES = np.arange(-4.0, 4.0 + 1e-9, 0.5)
PROFILE_WEIGHTS = np.exp(-0.5 * PROFILE_NODES**2) / np.exp(-0.5 * PROFILE_NODES**2).sum()


def _design_matrix(exps, groups, redshift, support, velocity=None, sigma=0.0) -> sp.csr_matrix:
    """The weighted model A (rows: frame pixels of every exposure; columns: group x support pixel).

    ``sigma`` (km/s): every line a Gaussian of this dispersion (:data:`PROFILE_NODES`), else a delta.
    """
    if sigma > 0:
        v0 = np.zeros(support.shape) if velocity is None else np.asarray(velocity, float)
        return sum(w * _design_at(exps, groups, redshift, support, v0 + u * sigma)
                   for u, w in zip(PROFILE_NODES, PROFILE_WEIGHTS))
    return _design_at(exps, groups, redshift, support, velocity)


def _design_at(exps, groups, redshift, support, velocity=None) -> sp.csr_matrix:
    """:func:`_design_matrix` for lines without width.

    ``A[r, c] = w_r * share * S(lambda) * tent weight`` of the line at ``lambda`` of the column's pixel
    landing on frame pixel ``r``: the same geometry and split as
    :func:`~mockzgrad.observation.grism.dispersion.disperse` (checked against it in the tests).
    ``velocity`` (km/s, shape of ``support``, or None for 0) moves each pixel's lines to
    ``lambda (1 + z) (1 + v / c)``.
    """
    cols = np.flatnonzero(support.ravel())
    doppler = 1.0 if velocity is None else 1.0 + np.asarray(velocity, float).ravel()[cols] / C_KMS
    rows, idx, vals, offset = [], [], [], 0
    for e in exps:
        m = e.model
        ny, nx = m.shape
        bx, by = (a.ravel()[cols] for a in m.direct_positions())
        w = e.weight.ravel()
        for g, group in enumerate(groups):
            for line, share in group.shares:
                lam = LINES[line].wavelength * (1 + redshift) * doppler
                sens = np.broadcast_to(np.asarray(m.sensitivity(lam), float), bx.shape)
                if not np.any(sens > 0):
                    continue
                for flat, wgt, ok in bilinear_corners(bx + m.dx(lam), by + m.dy(lam), (ny, nx)):
                    r = flat[ok]
                    rows.append(offset + r)
                    idx.append(g * cols.size + np.flatnonzero(ok))
                    vals.append(wgt[ok] * (sens[ok] * share) * w[r])
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


def _normal_solve(a, c, b, damp, variance=True, covariance=False):
    """Solution and variance of ``min |[A C] x - b|^2 + damp^2 |x|_J^2`` (``J``: unit-scaled unknowns).

    Returns ``(x, var)`` for the columns of ``A`` (the continuum amplitudes are solved for and
    marginalised). ``var = diag(N_d^-1)``, ``N_d = [A C]^T [A C] + damp^2 diag(.)``: the exact
    covariance of the weighted least-squares solution for unit-variance weighted data (the rows of A
    and b are divided by sigma), up to O(damp^2) (the damped estimator's covariance is
    ``N_d^-1 N N_d^-1``). Columns that no frame pixel sees get NaN. With ``variance=False`` the
    variance is not computed (NaN) and the third value is the weighted residual ``|b - [A C] x|^2``;
    with ``covariance=True`` the third value is a function ``cov(i, j)`` (index arrays of columns of
    ``A``) giving their covariances (NaN where unseen), read from the inverse's lower triangle.
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
    if not variance:
        x0 = np.nan_to_num(x_all)
        resid = b - a @ x0[:n_a] - (c @ x0[n_a:] if c.shape[1] else 0.0)
        return x_all[:n_a], var_all[:n_a], float(resid @ resid)
    inv, info = lapack.dpotri(factor[0], lower=1)
    if info != 0:
        raise DataError(f"grism extraction: the normal matrix is singular (dpotri info {info})")
    var_all[seen] = np.diag(inv) * s**2
    if not covariance:
        return x_all[:n_a], var_all[:n_a], math.nan
    col = np.full(d.size, -1)
    col[seen] = np.arange(int(seen.sum()))

    def cov(i, j):
        ci, cj = col[i], col[j]
        ok = (ci >= 0) & (cj >= 0)
        hi, lo = np.maximum(ci, cj)[ok], np.minimum(ci, cj)[ok]
        out = np.full(np.shape(i), np.nan)
        out[ok] = inv[hi, lo] * s[ci[ok]] * s[cj[ok]]
        return out

    return x_all[:n_a], var_all[:n_a], cov


#: Half-width (pixels) of the covariance stencil kept per map pixel (``LineMaps.covariance``).
COV_RADIUS = 4


def cov_offsets(radius: int = COV_RADIUS) -> np.ndarray:
    """Offsets ``(dy, dx)`` of the covariance stencil, shape ``((2 radius + 1)^2, 2)``, row-major."""
    r = np.arange(-radius, radius + 1)
    return np.stack(np.meshgrid(r, r, indexing="ij"), axis=-1).reshape(-1, 2)


def _stencil(cov, first: int, support, offsets) -> np.ndarray:
    """``out[k, y, x] = Cov(map[y, x], map[y + dy_k, x + dx_k])`` of one map (columns ``first + support index``).

    ``cov(i, j)``: covariances of unknowns (:func:`_normal_solve`). 0 where either pixel is outside the
    support or the grid (no map value there).
    """
    n = support.shape[0]
    pos = np.full(support.shape, -1)
    pos[support] = np.arange(int(support.sum()))
    ys, xs = np.nonzero(support)
    out = np.zeros((len(offsets), n, n))
    for k, (dy, dx) in enumerate(offsets):
        qy, qx = ys + dy, xs + dx
        ok = (qy >= 0) & (qy < n) & (qx >= 0) & (qx < n)
        ok[ok] = pos[qy[ok], qx[ok]] >= 0
        out[k, ys[ok], xs[ok]] = np.nan_to_num(cov(first + pos[ys[ok], xs[ok]], first + pos[qy[ok], qx[ok]]))
    return out


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


def _halo_images(mock, support) -> dict:
    """Per direct-image filter: its light outside ``support`` (>= 0, 0 inside), the shape of the halo columns."""
    out = {}
    for name, image in mock.direct.items():
        d = np.clip(np.nan_to_num(np.asarray(image, float)), 0.0, None)
        d[support] = 0.0
        if np.any(d > 0):
            out[name] = d / d.max()
    return out


def _halo_columns(exps, groups, redshift, halo, velocity=None, sigma=0.0) -> np.ndarray:
    """Dense weighted halo columns, one per group: the group's lines from the light outside the support.

    Column g = the model of map g equal to the halo image (the direct image of each exposure's filter
    outside the support; the images' mean where the filter has none), amplitude free and
    marginalised like the continuum. Rows as the design matrix; groups no exposure sees are dropped.
    """
    if not halo:
        return np.zeros((sum(e.data.size for e in exps), 0))
    mask = np.any([h > 0 for h in halo.values()], axis=0)
    fallback = np.mean(list(halo.values()), axis=0)
    out = np.zeros((sum(e.data.size for e in exps), len(groups)))
    start, npix = 0, int(mask.sum())
    for e in exps:
        w = halo.get(e.model.filter, fallback)[mask]
        a = _design_matrix([e], groups, redshift, mask, velocity, sigma)
        for g in range(len(groups)):
            out[start:start + e.data.size, g] = a[:, g * npix:(g + 1) * npix] @ w
        start += e.data.size
    return out[:, np.any(out != 0, axis=0)]


def _solve(exps, groups, redshift, support, *, damp, velocity=None, offsets=None, halo=None, sigma=0.0):
    """Maps (n_groups, n, n) and their variances by weighted least squares on ``exps``; NaN outside ``support``.

    The problem splits into blocks of groups that share exposures (:func:`_blocks`); each is solved
    directly from its normal equations (:func:`_normal_solve`). With ``offsets`` (:func:`cov_offsets`)
    the fourth value is each map's covariance stencil ``(n_groups, n_offsets, n, n)`` (:func:`_stencil`),
    else None.
    """
    n = exps[0].model.n_direct
    k = int(support.sum())
    maps = np.full((len(groups), n, n), np.nan)
    mvar = np.full((len(groups), n, n), np.nan)
    stencils = None if offsets is None else np.zeros((len(groups), len(offsets), n, n))
    for gs, ks in _blocks(exps, groups, redshift):
        sub = [exps[i] for i in ks]
        a = _design_matrix(sub, [groups[g] for g in gs], redshift, support, velocity, sigma)
        b = np.concatenate([e.data.ravel() for e in sub])
        c = _continuum_columns(sub)
        if halo:
            c = np.hstack([c, _halo_columns(sub, [groups[g] for g in gs], redshift, halo, velocity, sigma)])
        x, var, cov = _normal_solve(a, c, b, damp, covariance=offsets is not None)
        for j, g in enumerate(gs):
            maps[g][support] = x[j * k:(j + 1) * k]
            mvar[g][support] = var[j * k:(j + 1) * k]
            if offsets is not None:
                stencils[g] = _stencil(cov, j * k, support, offsets)
    return maps, mvar, int(support.sum()), stencils


# ---------------------------------------------------------------------------
# line-of-sight velocities: a rotation field fitted to the data
# ---------------------------------------------------------------------------

#: Velocity models of the joint extraction.
VELOCITY_MODELS = ("none", "rotation", "arctan")
#: Velocity model per extraction method when none is given: "none" for both. The fitted rotation field removes
#: the noise-free bias of the joint inversion on rotating disks (module notes) but is not the default: on noisy
#: NIRISS suite mocks (noise.snr = 30) it doubles the map variances (Voronoi bins 64 -> 29, 89 -> 58, 355 -> 169
#: on three mocks) and on a nearly face-on one (inclination 12 deg) the fitted line sigma ran to 175 km/s (80
#: intrinsic): 6 bins instead of 152 and -0.137 for grad_z = -0.03 (2026-12-06).
DEFAULT_VELOCITIES = {"joint": "none", "isophote": "none"}
#: Trial amplitude (km/s) of the rotation fit: chi2 at V = 0, +-step, parabola through them.
ROTATION_STEP = 100.0
#: Turnover radius of the arctan rotation curve, in units of the direct image's half-light radius.
ROTATION_TURNOVER = 0.4


@dataclass(frozen=True)
class _DiskGeometry:
    """A thin disk's in-plane coordinates of every direct-image pixel (from the direct image's moments)."""

    radius: np.ndarray   # deprojected radius, pixels
    cos_phi: np.ndarray  # cosine of the in-plane azimuth from the major axis
    r_half: float        # half-light radius (deprojected), pixels
    params: tuple = ()   # (x centre, y centre, major-axis angle in radians, axis ratio), pixels


def _disk_coords(n: int, xc: float, yc: float, angle: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Deprojected radius (pixels) and cos(azimuth) of every pixel of an n x n grid for a thin disk."""
    y, x = np.mgrid[:n, :n].astype(float)
    dx, dy = x - xc, y - yc
    ux, uy = math.cos(angle), math.sin(angle)
    a, b = dx * ux + dy * uy, (-dx * uy + dy * ux) / q
    radius = np.hypot(a, b)
    return radius, np.divide(a, radius, out=np.zeros_like(a), where=radius > 0)


def _disk_geometry(mock, n: int) -> _DiskGeometry:
    """Centre, major axis and axis ratio from the flux-weighted moments of the direct images (>= 1 % of peak)."""
    images = [np.nan_to_num(np.asarray(d, float)) for d in mock.direct.values()]
    level = np.sum([d / d.max() for d in images if d.max() > 0], axis=0)
    w = np.where(level >= 0.01 * level.max(), level, 0.0)
    y, x = np.mgrid[:n, :n].astype(float)
    xc, yc = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
    dx, dy = x - xc, y - yc
    mom = np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(), (w * dy * dy).sum()]])
    evals, evecs = np.linalg.eigh(mom / w.sum())
    ux, uy = evecs[:, 1]
    q = max(math.sqrt(max(evals[0], 0.0) / evals[1]), 0.1)
    angle = math.atan2(uy, ux)
    radius, cos_phi = _disk_coords(n, xc, yc, angle, q)
    order = np.argsort(radius.ravel())
    cum = np.cumsum(w.ravel()[order])
    r_half = float(radius.ravel()[order][np.searchsorted(cum, 0.5 * cum[-1])])
    return _DiskGeometry(radius, cos_phi, max(r_half, 1.0), (float(xc), float(yc), angle, q))


def _rotation_field(amplitude: float, geometry: _DiskGeometry) -> np.ndarray:
    """Line-of-sight velocity (km/s): ``V (2/pi) arctan(R / r_t) cos(phi)``, ``r_t`` = ROTATION_TURNOVER r_half."""
    r_t = ROTATION_TURNOVER * geometry.r_half
    return amplitude * (2.0 / math.pi) * np.arctan(geometry.radius / r_t) * geometry.cos_phi


def _fit_rotation(exps, groups, redshift, support, geometry, *, damp, halo=None) -> float:
    """Amplitude V (km/s) of the arctan field (:func:`_rotation_field`) minimising chi2 of the brightest block.

    The former velocity model (kept for comparison; ``velocities="rotation"`` uses :func:`_fit_kinematics`).
    chi2(V) at V = 0 and +-ROTATION_STEP, the parabola's minimum, then once more with half the step.
    """
    grp, sub = _brightest_block(exps, groups, redshift)
    b = np.concatenate([e.data.ravel() for e in sub])
    cont = _continuum_columns(sub)

    def chi2(v):
        field = _rotation_field(v, geometry)
        a = _design_matrix(sub, grp, redshift, support, field)
        c = np.hstack([cont, _halo_columns(sub, grp, redshift, halo, field)]) if halo else cont
        return _normal_solve(a, c, b, damp, variance=False)[2]

    centre, step = 0.0, ROTATION_STEP
    for _ in range(2):
        c0, cm, cp = chi2(centre), chi2(centre - step), chi2(centre + step)
        curvature = cp + cm - 2.0 * c0
        if curvature <= 0:
            break
        centre = float(np.clip(centre + 0.5 * step * (cm - cp) / curvature, centre - 2 * step, centre + 2 * step))
        step *= 0.5
    return centre


#: Ring radii of the fitted rotation curve, in units of the direct images' half-light radius: V(R) linear
#: between them, 0 at R = 0, constant beyond the last.
ROTATION_RINGS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.5)
#: Rings beyond this fraction of the fit support's largest radius are dropped (V constant beyond the last).
ROTATION_REACH = 0.8
#: Support of the velocity fit: direct-image pixels at >= this fraction of the peak (the rest: halo columns).
ROTATION_SUPPORT = 0.01
#: At most this many (the brightest) pixels in the velocity fit's support. Uncapped, the NIRISS suite's largest
#: mocks (r_eff 3 kpc, inclination 10 deg) have 7366 pixels at >= 1 % of the peak, i.e. dense normal equations
#: of ~22000 unknowns (3 maps of the F200W block) at every Gauss-Newton step (a suite worker reached 12.5 GB
#: resident, 2026-12-06); the NIRISS example has 1114 (unchanged by the cap).
ROTATION_MAX_PIXELS = 1500
#: Gauss-Newton iterations of the velocity fit (at most; it stops when the steps fall below 0.5 km/s).
ROTATION_ITERATIONS = 8
#: Finite-difference step (km/s) of the model's velocity and dispersion derivatives.
VELOCITY_STEP = 10.0
#: Starting line dispersion (km/s) of the fit (the derivative in sigma vanishes at 0).
SIGMA_START = 50.0


@dataclass(frozen=True, eq=False)
class _Kinematics:
    """A fitted velocity field: line-of-sight velocity per direct pixel and the line dispersion, km/s."""

    velocity: np.ndarray
    sigma: float
    rings: np.ndarray    # ring radii, pixels
    speeds: np.ndarray   # V at the rings (projected, km/s; positive: the receding side along +major axis)


def _ring_basis(geometry: _DiskGeometry, rings: np.ndarray) -> np.ndarray:
    """``B_k(R) cos(phi)`` per ring (shape (K, n, n)): the velocity field is ``sum_k V_k B_k cos(phi)``."""
    knots = np.concatenate([[0.0], rings])
    return np.array([np.interp(geometry.radius, knots, np.concatenate([[0.0], np.eye(rings.size)[k]]))
                     * geometry.cos_phi for k in range(rings.size)])


def _fit_kinematics(mock, exps, groups, redshift, geometry, *, damp) -> _Kinematics:
    """Ring velocities and the line dispersion by Gauss-Newton on the brightest block.

    The model of the block (maps on the pixels at >= ROTATION_SUPPORT of the peak, halo and continuum
    columns) is linearised in the ring speeds ``V_k`` and ``sigma`` around the current values: the extra
    columns ``dA/dv (x B_k cos phi)`` and ``dA/dsigma x`` (``x`` the current maps; central differences of
    VELOCITY_STEP) are solved for with the maps, and the step is applied; from V = 0, sigma = SIGMA_START.
    """
    n = exps[0].model.n_direct
    support = _segmentation(mock, n, ROTATION_SUPPORT, ROTATION_MAX_PIXELS)
    halo = _halo_images(mock, support)
    grp, sub = _brightest_block(exps, groups, redshift)
    b = np.concatenate([e.data.ravel() for e in sub])
    cont = _continuum_columns(sub)
    rings = np.asarray(ROTATION_RINGS) * geometry.r_half
    rings = rings[rings <= ROTATION_REACH * geometry.radius[support].max()]
    geo = np.array(geometry.params[:3])  # centre x, y (pixels) and major-axis angle (radians), refined
    q = geometry.params[3]
    speeds, sigma, eps = np.zeros(rings.size), SIGMA_START, VELOCITY_STEP
    h_geo = np.array([0.05, 0.05, 0.01])  # finite-difference steps: pixels, pixels, radians

    def field(speeds, g):
        radius, cos_phi = _disk_coords(n, g[0], g[1], g[2], q)
        return np.tensordot(speeds, _ring_basis(_DiskGeometry(radius, cos_phi, geometry.r_half), rings), axes=1)

    def design(v, sig):
        return _design_matrix(sub, grp, redshift, support, v, sig)

    for _ in range(ROTATION_ITERATIONS):
        radius, cos_phi = _disk_coords(n, *geo, q)
        basis = _ring_basis(_DiskGeometry(radius, cos_phi, geometry.r_half), rings)
        v = np.tensordot(speeds, basis, axes=1)
        a = design(v, sigma)
        c = np.hstack([cont, _halo_columns(sub, grp, redshift, halo, v, sigma)])
        x = np.nan_to_num(_normal_solve(a, c, b, damp, variance=False)[0])
        dv = (design(v + eps, sigma) - design(v - eps, sigma)) / (2 * eps)
        ds = (design(v, sigma + eps) - design(v, max(sigma - eps, 0.0))) / (sigma + eps - max(sigma - eps, 0.0))
        dfields = [bk for bk in basis] + [(field(speeds, geo + hk) - field(speeds, geo - hk)) / (2 * hk.sum())
                                          for hk in np.diag(h_geo)]
        jac = np.column_stack([dv @ (x * np.tile(f[support], len(grp))) for f in dfields] + [ds @ x])
        step = _normal_solve(sp.hstack([a, sp.csr_matrix(jac)]).tocsr(), c, b, damp, variance=False)[0][-jac.shape[1]:]
        step = np.nan_to_num(step)
        k = rings.size
        speeds = speeds + np.clip(step[:k], -100.0, 100.0)
        geo = geo + np.clip(step[k:k + 3], -20 * h_geo, 20 * h_geo)
        sigma = float(np.clip(sigma + np.clip(step[-1], -100.0, 100.0), 0.0, 500.0))
        if max(np.max(np.abs(step[:k])), abs(step[-1])) < 0.5 and np.all(np.abs(step[k:k + 3]) < h_geo):
            break
    return _Kinematics(field(speeds, geo), sigma, rings, speeds)


# ---------------------------------------------------------------------------
# the grism redshift: chi2 of the joint model over z
# ---------------------------------------------------------------------------

#: Half-width of the redshift search around the guess, in pixels of trace shift of the main line.
REDSHIFT_SPAN_PIXELS = 3.0


def _brightest_block(exps, groups, redshift):
    """The block (groups, exposures) with the most weighted signal (sum of data^2 - pixels)."""
    def signal(ks):
        return sum(float(exps[k].data.ravel() @ exps[k].data.ravel()) - int(np.count_nonzero(exps[k].weight))
                   for k in ks)

    gs, ks = max(_blocks(exps, groups, redshift), key=lambda blk: signal(blk[1]))
    return [groups[g] for g in gs], [exps[k] for k in ks]


def _chi2_curve(exps, groups, support, *, damp):
    """chi2(z) of the weighted joint model (maps and continuum amplitudes re-solved at each z)."""
    b = np.concatenate([e.data.ravel() for e in exps])
    cont = _continuum_columns(exps)

    def chi2(z):
        return _normal_solve(_design_matrix(exps, groups, z, support), cont, b, damp, variance=False)[2]

    return chi2


def _parabola_min(zs, c) -> float:
    """Vertex of the parabola through three equally spaced points (the middle one if not convex)."""
    h = zs[1] - zs[0]
    curv = c[0] + c[2] - 2.0 * c[1]
    if curv <= 0:
        return float(zs[1])
    return float(zs[1] + np.clip(0.5 * h * (c[0] - c[2]) / curv, -h, h))


def fit_redshift(mock, redshift_guess: float, *, nii_ha: float = 0.05, segmentation: float = 1e-3,
                 max_support: int = 2500, damp: float = 1e-4, continuum: bool = True,
                 span_pixels: float = REDSHIFT_SPAN_PIXELS) -> float:
    """Grism redshift: the z minimising chi2 of the joint line model of the brightest block.

    The observer's step before extraction (the maps are then made at this z). chi2(z) (maps and
    continuum amplitudes re-solved at each z) on a grid of half-pixel trace shifts of the block's main
    line within ``span_pixels`` of the guess, a parabola through the lowest point and its neighbours,
    then once more at a tenth of a pixel around it. No error is returned: chi2(z) is not a parabola
    at sub-pixel scale (the linear split between pixels), and its curvature misstated the scatter of z
    over noise realisations (2.3 x too small at half a pixel, not convex at a tenth).

    Parameters
    ----------
    mock : GrismMock
    redshift_guess : float
        Starting redshift (a catalogue or photometric value); > 0.
    nii_ha, segmentation, max_support, damp, continuum
        As :func:`extract_line_maps` (``"joint"``).
    span_pixels : float
        Half-width of the search, pixels of trace shift; > 0.

    Returns
    -------
    float
        The redshift. Not modelled: line-of-sight velocities (every line at one z) and the
        wavelength zero-point error.

    Raises
    ------
    ConfigError
        Bad guess or span.
    DataError
        No exposure, or no line covered at the guess.
    """
    if not (isinstance(redshift_guess, (int, float)) and math.isfinite(redshift_guess) and redshift_guess > 0):
        raise ConfigError(f"redshift_guess = {redshift_guess!r}; allowed > 0")
    if not (isinstance(span_pixels, (int, float)) and span_pixels > 0):
        raise ConfigError(f"span_pixels = {span_pixels!r}; allowed > 0")
    if not mock.exposures:
        raise DataError("grism exposures: none in the product")
    models = _models(mock)
    groups, _ = _covered_groups(models, line_groups(nii_ha), redshift_guess)
    if not groups:
        raise DataError(f"no line is covered by any exposure at redshift {redshift_guess}")
    exps = _prepare(mock, models, range(len(models)), continuum)
    grp, sub = _brightest_block(exps, groups, redshift_guess)
    support = _segmentation(mock, models[0].n_direct, segmentation, max_support)
    chi2 = _chi2_curve(sub, grp, support, damp=damp)
    pixel_dz = min(e.model.dispersion for e in sub) / LINES[grp[0].shares[0][0]].wavelength
    zs = redshift_guess + pixel_dz * np.arange(-span_pixels, span_pixels + 0.25, 0.5)
    c = np.array([chi2(z) for z in zs])
    j = int(np.clip(np.argmin(c), 1, zs.size - 2))
    z = _parabola_min(zs[j - 1:j + 2], c[j - 1:j + 2])
    fine = z + 0.1 * pixel_dz * np.array([-1.0, 0.0, 1.0])
    return float(_parabola_min(fine, np.array([chi2(v) for v in fine])))


def redshift_source(mock, redshift: float | None = None,
                    redshift_guess: float | None = None) -> tuple[float, bool]:
    """The redshift an extraction starts from, and whether to fit it.

    ``redshift`` (given): fixed. Else the grism redshift is fitted, starting from ``redshift_guess``
    or else the product's catalogue redshift (``GrismMock.catalogue_redshift``, keyword ``ZCAT``);
    never from its truth.

    Returns
    -------
    (float, bool)
        The redshift and True when it is only the fit's starting guess.

    Raises
    ------
    ConfigError
        Both ``redshift`` and ``redshift_guess`` given.
    DataError
        Neither given and the product carries no catalogue redshift.
    """
    if redshift is not None and redshift_guess is not None:
        raise ConfigError("redshift and redshift_guess are both given; allowed one (fixed, or the fit's guess)")
    if redshift is not None:
        return float(redshift), False
    guess = redshift_guess if redshift_guess is not None else getattr(mock, "catalogue_redshift", None)
    if guess is None:
        raise DataError("no redshift: the grism file has no catalogue redshift (ZCAT); give --redshift "
                        "(fixed) or --redshift-guess (start of the grism fit)")
    return float(guess), True


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


def _nccf(f: np.ndarray, g: np.ndarray) -> float:
    """Normalised cross-correlation of two maps at zero lag (Wang et al. 2017 Eq. 1; NaN -> 0)."""
    f, g = np.nan_to_num(f), np.nan_to_num(g)
    f, g = f - f.mean(), g - g.mean()
    den = math.sqrt(float((f * f).sum() * (g * g).sum()))
    return float((f * g).sum() / den) if den > 0 else 0.0


def _transform(image: np.ndarray, dx: float, dy: float, angle: float) -> np.ndarray:
    """``image`` rotated by ``angle`` (degrees, about the grid centre) then shifted by (dx, dy) pixels (cubic)."""
    from scipy import ndimage

    out = np.nan_to_num(np.asarray(image, float))
    if angle:
        out = ndimage.rotate(out, angle, reshape=False, order=3, mode="constant")
    return ndimage.shift(out, (dy, dx), order=3, mode="constant")


def _align(image: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, float]:
    """Shift (dx, dy, pixels) and rotation (degrees) of ``image`` maximising its NCCF with ``reference``.

    Wang et al. 2017 Sect. 4.3 align each exposure's map to the reference one by the offsets across
    the trace (the tilt), along it (the wavelength zero point) and a rotation, each at the NCCF maximum
    (their Eq. 1). Here the three are found together (Nelder-Mead from the integer-pixel maximum of
    the shift within +-3 pixels). Returns ``(dx, dy, angle, nccf)``.
    """
    from scipy.optimize import minimize

    lags = np.arange(-3, 4)
    start = max(((float(a), float(b)) for a in lags for b in lags),
                key=lambda d: _nccf(_transform(image, d[0], d[1], 0.0), reference))
    res = minimize(lambda p: -_nccf(_transform(image, p[0], p[1], p[2]), reference), [*start, 0.0],
                   method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-9, "initial_simplex": np.array(
                       [[start[0], start[1], 0.0], [start[0] + 0.5, start[1], 0.0], [start[0], start[1] + 0.5, 0.0],
                        [start[0], start[1], 2.0]])})
    return float(res.x[0]), float(res.x[1]), float(res.x[2]), float(-res.fun)


def _rejected(mock, reject) -> list[str]:
    """Names of the exposures left out: in ``reject`` or flagged in their header (``REJECT`` true)."""
    return [e.name for e in mock.exposures if e.name in set(reject) or bool(e.header.get("REJECT", False))]


def _extract_isophote(mock, models, groups, redshift, *, isophote, damp, continuum, align=False, reject=(), **_):
    per_exp = []  # (exposure index, groups, maps, variances)
    sizes = []
    rejected = _rejected(mock, reject)
    for i, m in enumerate(models):
        here = [g for g in groups if m.covers(LINES[g.shares[0][0]].wavelength * (1 + redshift))]
        if not here or mock.exposures[i].name in rejected:
            continue
        exps = _prepare(mock, models, [i], continuum)
        maps, var, size, _ = _solve(exps, here, redshift, _isophote(mock, m, isophote), damp=damp)
        sizes.append(size)
        per_exp.append((i, here, maps, var))
    fitted = {"rejected_exposures": rejected} if rejected else {}
    if align and per_exp:
        per_exp, fitted["alignment"] = _align_exposures(mock, per_exp)
    per_map = {g.name: ([], []) for g in groups}
    for _, here, maps, var in per_exp:
        for g, mp, vr in zip(here, maps, var):
            per_map[g.name][0].append(mp)
            per_map[g.name][1].append(vr)
    out = {name: (*_inverse_variance(ms, vs), None) for name, (ms, vs) in per_map.items() if ms}
    return out, sizes, fitted


def _align_exposures(mock, per_exp):
    """Every exposure's maps moved onto the reference exposure's by the NCCF alignment (:func:`_align`).

    Per exposure, its highest-S/N map (sum of map^2 / variance) drives the alignment; the reference
    is the exposure with the highest S/N in that same map. The shift and rotation are applied to all
    the exposure's maps and variances (NaN outside the moved support).
    """
    def snr(mp, vr):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.nansum(np.where(vr > 0, mp * mp / vr, 0.0)))

    out, report = [], {}
    for i, here, maps, var in per_exp:
        k = int(np.argmax([snr(mp, vr) for mp, vr in zip(maps, var)]))
        name = here[k].name
        ref = max((p for p in per_exp if any(g.name == name for g in p[1])),
                  key=lambda p: snr(p[2][[g.name for g in p[1]].index(name)], p[3][[g.name for g in p[1]].index(name)]))
        label = mock.exposures[i].name
        if ref[0] == i:
            report[label] = {"reference": True, "map": name}
            out.append((i, here, maps, var))
            continue
        dx, dy, angle, nccf = _align(maps[k], ref[2][[g.name for g in ref[1]].index(name)])
        support = _transform(np.isfinite(maps[k]).astype(float), dx, dy, angle) > 0.5
        moved = np.array([np.where(support, _transform(mp, dx, dy, angle), np.nan) for mp in maps])
        mvar = np.array([np.where(support, np.clip(_transform(vr, dx, dy, angle), 0.0, None), np.nan) for vr in var])
        report[label] = {"reference": mock.exposures[ref[0]].name, "map": name, "dx_pixels": dx, "dy_pixels": dy,
                         "rotation_deg": angle, "nccf": nccf}
        out.append((i, here, moved, mvar))
    return out, report


def _line_free_direct(mock, models, groups, redshift, maps) -> dict:
    """Direct images minus the line maps seen through each filter's throughput (>= 0): the continuum alone.

    A line of flux F at lambda adds F T(lambda) to a direct image (T: the filter's throughput shape,
    peak 1, known to the observer: the exposure's sensitivity over its peak).
    """
    out = {}
    for name, image in mock.direct.items():
        model = next((m for m in models if m.filter == name), None)
        if model is None:
            out[name] = image
            continue
        lines = np.zeros(np.shape(image))
        for g, mp in zip(groups, maps):
            for line, share in g.shares:
                t = float(model.sensitivity(LINES[line].wavelength * (1 + redshift))) / model.sens_peak
                lines += share * t * np.nan_to_num(mp)
        out[name] = np.maximum(np.nan_to_num(np.asarray(image, float)) - lines, 0.0)
    return out


def _extract_joint(mock, models, groups, redshift, *, damp, continuum, segmentation, max_support, velocities,
                   clean_direct, offsets, halo, **_):
    n = models[0].n_direct
    exps = _prepare(mock, models, range(len(models)), continuum)
    support = _segmentation(mock, n, segmentation, max_support)
    halo = _halo_images(mock, support) if halo else None
    velocity, sigma, fitted = None, 0.0, {}
    if velocities == "arctan":
        geometry = _disk_geometry(mock, n)
        amplitude = _fit_rotation(exps, groups, redshift, support, geometry, damp=damp, halo=halo)
        velocity = _rotation_field(amplitude, geometry)
        fitted = {"rotation_amplitude_kms": amplitude,
                  "rotation_turnover_arcsec": ROTATION_TURNOVER * geometry.r_half * float(mock.pixel_scale)}
    elif velocities == "rotation":
        kin = _fit_kinematics(mock, exps, groups, redshift, _disk_geometry(mock, n), damp=damp)
        velocity, sigma = kin.velocity, kin.sigma
        fitted = {"rotation_rings_arcsec": [float(r) * float(mock.pixel_scale) for r in kin.rings],
                  "rotation_speeds_kms": [float(v) for v in kin.speeds], "line_sigma_kms": sigma}
    maps, var, size, cov = _solve(exps, groups, redshift, support, damp=damp, velocity=velocity, offsets=offsets,
                                  halo=halo, sigma=sigma)
    for _ in range(clean_direct if continuum and any(e.continuum is not None for e in exps) else 0):
        clean = _line_free_direct(mock, models, groups, redshift, maps)
        exps = _prepare(mock, models, range(len(models)), continuum, clean)
        maps, var, size, cov = _solve(exps, groups, redshift, support, damp=damp, velocity=velocity, offsets=offsets,
                                      halo=halo, sigma=sigma)
        fitted["continuum_template"] = f"direct images minus line maps ({clean_direct} re-solves)"
    return {g.name: (maps[k], var[k], None if cov is None else cov[k]) for k, g in enumerate(groups)}, [size], fitted


def _map_psfs(mock, names, redshift) -> dict:
    from ..observation.psf import psf_from_header

    if not mock.psf:
        raise DataError("grism exposures: no PSF keywords (PSF_KIND, PSF_FWHM); line maps need the PSF")
    psf = psf_from_header(mock.psf)
    return {n: psf.at_wavelength(LINES[n].wavelength * (1 + redshift)).to_header() for n in names}


def extract_line_maps(mock, redshift: float, *, method: str = "joint", nii_ha: float = 0.05,
                      isophote: float = 0.1, segmentation: float = 1e-3, max_support: int = 2500,
                      damp: float = 1e-4, continuum: bool = True, velocities: str | None = None,
                      clean_direct: int = 0, maps: tuple | None = None, covariance: bool = True,
                      redshift_fit: bool = False, halo: bool = True, align: bool = False,
                      reject: tuple = ()) -> LineMaps:
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
    velocities : {None, "none", "rotation", "arctan"}
        Line-of-sight velocities in the model (None: :data:`DEFAULT_VELOCITIES` of the method, ``"none"``):
        ``"none"`` places every line at ``lambda (1 + redshift)``,
        ``"rotation"`` fits ring velocities, the disk's centre and major axis and a line dispersion
        (:func:`_fit_kinematics`), ``"arctan"`` the former one-amplitude arctan field (module notes;
        ``"joint"`` only; ~2x the time).
    clean_direct : int
        ``"joint"`` with ``continuum``: re-solve this many times, each with continuum templates from
        the direct images minus the previous solution's line maps seen through each filter
        (:func:`_line_free_direct`); >= 0.
    maps : sequence of str or None
        Names of the maps to fit (:data:`LINE_GROUPS`, e.g. ``("OII_3727", "OIII_5008")``); None: every
        group an exposure covers. Lines the source lacks are better left out: a map of no flux still
        takes a share of its neighbours' light where the traces nearly coincide (coarse dispersion).
    covariance : bool
        ``"joint"``: keep each map pixel's covariances with its neighbours within COV_RADIUS pixels
        (``LineMaps.covariance``, from the solution's full covariance), which bin errors then use.
    redshift_fit : bool
        Take ``redshift`` as a guess and fit the grism redshift first (:func:`fit_redshift`); the maps'
        ``redshift`` is then the fitted one, the guess is in ``provenance``.
    halo : bool
        ``"joint"``: model the light outside the segmentation as one extra map per group shaped like the
        direct image there (amplitude fitted and marginalised, :func:`_halo_columns`); without it that
        light (0.5 % of the NIRISS example's) leaks into the maps (Hbeta +1.7 %).
    align : bool
        ``"isophote"``: align every exposure's maps to the reference exposure's by shift and rotation
        at the maximum normalised cross-correlation (Wang et al. 2017 Sect. 4.3, Eq. 1) before combining;
        the offsets are in ``provenance["alignment"]``.
    reject : sequence of str
        ``"isophote"``: names of exposures to leave out (as are exposures whose header has ``REJECT``
        true); listed in ``provenance["rejected_exposures"]``.

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
    if velocities is None and method in DEFAULT_VELOCITIES:
        velocities = DEFAULT_VELOCITIES[method]
    _check_arguments(mock, method, redshift, isophote, segmentation, max_support, damp, clean_direct,
                     velocities, align, reject)
    all_groups = _selected_groups(nii_ha, maps)
    models = _models(mock)
    groups, left = _covered_groups(models, all_groups, redshift)
    if not groups:
        raise DataError(f"no line of {[g.name for g in all_groups]} is covered by any exposure "
                        f"at redshift {redshift}")
    z_fit = {}
    if redshift_fit:
        guess = redshift
        redshift = fit_redshift(mock, guess, nii_ha=nii_ha, segmentation=segmentation,
                                max_support=max_support, damp=damp, continuum=continuum)
        z_fit = {"redshift_guess": guess, "redshift_fitted": redshift}
        groups, left = _covered_groups(models, all_groups, redshift)
    run = _extract_joint if method == "joint" else _extract_isophote
    res, sizes, fitted = run(mock, models, groups, redshift, isophote=isophote, damp=damp, continuum=continuum,
                             segmentation=segmentation, max_support=max_support, velocities=velocities,
                             clean_direct=clean_direct, offsets=cov_offsets() if covariance else None, halo=halo,
                             align=align, reject=tuple(reject))
    return _line_maps(mock, method, groups, left, res, sizes, redshift, nii_ha=nii_ha, damp=damp,
                      velocities=velocities, isophote=isophote, segmentation=segmentation,
                      extra={**z_fit, **fitted})


def _check_arguments(mock, method, redshift, isophote, segmentation, max_support, damp, clean_direct,
                     velocities, align, reject) -> None:
    """One-line ConfigError (DataError for a product without exposures) for each bad argument of
    :func:`extract_line_maps`."""
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
    if not (isinstance(clean_direct, int) and clean_direct >= 0):
        raise ConfigError(f"clean_direct = {clean_direct!r}; allowed an integer >= 0")
    if velocities not in VELOCITY_MODELS or (method == "isophote" and velocities != "none"):
        raise ConfigError(f"velocities = {velocities!r}; allowed: {', '.join(VELOCITY_MODELS)} "
                          f"(\"isophote\": only \"none\")")
    if not mock.exposures:
        raise DataError("grism exposures: none in the product")
    unknown = sorted(set(reject) - {e.name for e in mock.exposures})
    if unknown or (method == "joint" and (align or reject)):
        raise ConfigError(f"reject = {list(reject)!r}, align = {align!r}: unknown exposures {unknown}; allowed "
                          f"names of {[e.name for e in mock.exposures]}, with method = \"isophote\" only")


def _selected_groups(nii_ha: float, maps) -> tuple:
    """The line groups to fit: all of :func:`line_groups`, or those named in ``maps``."""
    all_groups = line_groups(nii_ha)
    if maps is not None:
        unknown = sorted(set(maps) - {g.name for g in all_groups})
        if unknown or not maps:
            raise ConfigError(f"maps = {list(maps)!r}: unknown {unknown}; allowed a non-empty subset of "
                              f"{[g.name for g in all_groups]}")
        all_groups = tuple(g for g in all_groups if g.name in maps)
    return all_groups


def _line_maps(mock, method, groups, left, res, sizes, redshift, *, nii_ha, damp, velocities, isophote,
               segmentation, extra) -> LineMaps:
    """The :class:`LineMaps` product of a solved extraction, with its provenance."""
    names = [g.name for g in groups if g.name in res]
    stencils = [res[n][2] for n in names]
    has_cov = all(c is not None for c in stencils)
    blends = {g.name: g.blend for g in groups if g.blend != (g.name,)}
    provenance = {"method": method, "nii_ha_assumed": nii_ha, "damp": damp, "support_pixels": sizes,
                  "exposures": [e.name for e in mock.exposures], "mockzgrad_version": __version__,
                  "excluded": [{"line": g.name, "reason": "not covered"} for g in left],
                  "velocities": velocities, **extra}
    if method == "isophote":
        provenance["isophote"] = isophote
    else:
        provenance["segmentation"] = segmentation
    return LineMaps(names=tuple(names), flux=np.stack([res[n][0] for n in names]),
                    variance=np.stack([res[n][1] for n in names]), pixel_scale=float(mock.pixel_scale),
                    psfs=_map_psfs(mock, names, redshift), redshift=float(redshift), blends=blends,
                    provenance=provenance, config_toml=getattr(mock, "config_toml", ""),
                    covariance=np.stack(stencils) if has_cov else None, cov_offsets=cov_offsets() if has_cov else None)
