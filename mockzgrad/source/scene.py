"""The noise-free, pre-PSF scene of a mock: every line rendered once, for every mode.

An observation mode chooses where the scene is sampled (channel edges,
pixel scale, field and padding, oversampling: a :class:`SceneSampling`) and
asks :func:`render_scene` for it; the mode then applies its own PSF, noise
and detector (IFU cube today; grism dispersion and slit stepping later).

Rendering: every spaxel of the padded field is split into ``os x os``
sub-pixels; each sub-pixel emits every line as a Gaussian in wavelength
(flux = surface brightness x line factor at its radius, line-of-sight
velocity of the disk, dispersion :attr:`SceneSampling.line_sigma`),
integrated over each channel by :func:`mockzgrad.source.render.render_lines`,
and the sub-pixels are summed into spaxels. Spaxels whose centre lies within
``oversample_radius`` r_eff (where light and velocity change within a
spaxel) use ``oversample`` sub-pixels per axis, the others
``oversample_outer``: the two passes partition the field. Profiles are cut
at 5 sigma (6e-7 of each line's flux is left out) and sub-pixels beyond the
radius holding all but 1e-7 of the light are skipped.

Conventions: cube axes ``(n_chan, n_ext, n_ext)``, north = +row, east =
-column; the field centre (the sky origin of the galaxy model) is at pixel
``pad + (n - 1) / 2`` on both axes; flux per spaxel and channel in the unit
of ``lines.reference_flux`` (erg/s/cm^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import LinesConfig
from ..physics.lines import LINES
from . import lineflux
from .galaxy import GalaxyModel
from .render import render_lines

__all__ = ["PROFILE_TRUNCATION_SIGMA", "SceneSampling", "Scene", "observed_line_waves", "spaxel_centres",
           "render_scene"]

#: Line profiles are truncated at this many standard deviations.
PROFILE_TRUNCATION_SIGMA = 5.0

#: Sub-pixels beyond the radius enclosing 1 - this fraction of the light are skipped.
_LIGHT_TAIL = 1e-7


@dataclass(frozen=True, kw_only=True, eq=False)
class SceneSampling:
    """Where a mode asks the scene to be rendered.

    Attributes
    ----------
    edges_lo, edges_hi : ndarray, shape (n_chan,)
        Channel edges, observed frame, Angstrom; sorted, not overlapping
        (gaps allowed).
    pixel_scale : float
        Spaxel size, arcsec; > 0.
    n : int
        Side of the field the mode keeps, spaxels.
    pad : int
        Spaxels rendered before the field on each axis (the margin a PSF
        kernel needs); >= 0.
    n_ext : int
        Side of the rendered (padded) field, spaxels; >= n + pad.
    line_sigma : float
        Gaussian line-of-sight dispersion the profiles are rendered with,
        km/s; >= 0: the galaxy's ``sigma0``, or ``sigma0`` with a Gaussian
        LSF folded in (:func:`mockzgrad.observation.lsf.gaussian_line_sigma`).
    oversample : int
        Sub-pixels per spaxel per axis within ``oversample_radius``; >= 1.
    oversample_outer : int
        Sub-pixels per spaxel per axis beyond it; >= 1 (capped at
        ``oversample``).
    oversample_radius : float
        Deprojected radius, in r_eff, of the spaxels (by their centres)
        rendered with ``oversample``.
    """

    edges_lo: np.ndarray
    edges_hi: np.ndarray
    pixel_scale: float
    n: int
    pad: int
    n_ext: int
    line_sigma: float
    oversample: int
    oversample_outer: int
    oversample_radius: float

    def pixel_offsets(self, start: int, stop: int, os_k: int) -> np.ndarray:
        """Sub-pixel centres of spaxels ``start:stop`` of the padded axis, in spaxels from the field centre."""
        return (np.arange((stop - start) * os_k) + 0.5) / os_k - 0.5 + start - self.pad - 0.5 * (self.n - 1)


@dataclass(frozen=True, eq=False)
class Scene:
    """The noise-free, pre-PSF scene of one mock.

    Attributes
    ----------
    cube : ndarray, shape (n_chan, n_ext, n_ext)
        Flux per spaxel and channel on the padded field, erg/s/cm^2.
    sampling : SceneSampling
    line_waves : ndarray, shape (n_lines,)
        Observed wavelength of each line at zero velocity, Angstrom.
    ratio_offsets : dict or None
        The drawn offsets (dex) of the generating log ratios for
        ``lines.ratio_scatter`` ``"per_mock"`` (key -> float) or
        ``"per_ring"`` (key -> one value per ring); None otherwise.
    """

    cube: np.ndarray
    sampling: SceneSampling
    line_waves: np.ndarray
    ratio_offsets: dict | None

    def crop(self, cube: np.ndarray | None = None) -> np.ndarray:
        """The central ``n x n`` field of ``cube`` (default: the scene's own cube)."""
        s = self.sampling
        cube = self.cube if cube is None else cube
        return cube[:, s.pad:s.pad + s.n, s.pad:s.pad + s.n]


def observed_line_waves(model: GalaxyModel, lines: LinesConfig) -> np.ndarray:
    """Observed wavelength of each rendered line at zero velocity, rest x (1 + redshift), Angstrom."""
    return np.array([LINES[name].wavelength * (1.0 + model.redshift) for name in lines.lines])


@dataclass(frozen=True, eq=False)
class _RatioScatter:
    """Drawn offsets of the generating log ratios, and how to look them up at sub-pixels."""

    kind: str
    draws: dict | None  # per_mock: key -> float; per_ring: key -> (n_ring,); per_spaxel: key -> (n_ext, n_ext)
    ring: float  # ring width, kpc (per_ring)

    def at(self, r_kpc: np.ndarray, box: tuple[int, int, int, int], os_k: int) -> dict | None:
        if self.kind == "per_mock":
            return self.draws
        if self.kind == "per_ring":
            ring = np.floor(r_kpc / self.ring).astype(np.int64)
            return {k: v[ring] for k, v in self.draws.items()}
        if self.kind == "per_spaxel":
            i0, i1, j0, j1 = box
            return {k: np.repeat(np.repeat(v[i0:i1, j0:j1], os_k, axis=0), os_k, axis=1)
                    for k, v in self.draws.items()}
        return None

    def at_cells(self, r_kpc: np.ndarray, rows: np.ndarray, cols: np.ndarray, os_k: int) -> dict | None:
        """As :meth:`at` for the strip of spaxels ``(rows, cols)`` (:class:`_Cells`)."""
        if self.kind == "per_spaxel":
            return {k: np.tile(np.repeat(v[rows, cols], os_k), (os_k, 1)) for k, v in self.draws.items()}
        return self.at(r_kpc, (0, 0, 0, 0), os_k)

    def recorded(self) -> dict | None:
        return self.draws if self.kind in ("per_mock", "per_ring") else None


def _draw_scatter(model: GalaxyModel, lines: LinesConfig, s: SceneSampling, r_pix: np.ndarray,
                  rng: np.random.Generator) -> _RatioScatter:
    """Draw the calibration scatter of the generating ratios (``lines.ratio_scatter``)."""
    draws = None
    if lines.ratio_scatter == "per_mock":
        draws = lineflux.draw_ratio_offsets(lines, rng)
    elif lines.ratio_scatter == "per_ring":
        # rings out to the farthest sub-pixel of the padded field
        margin = 2.0 * s.pixel_scale * model.kpc_per_arcsec / max(model.axis_ratio, 1e-3)
        n_ring = int((float(r_pix.max()) + margin) / lines.ratio_scatter_ring) + 1
        draws = lineflux.draw_ratio_offsets(lines, rng, shape=(n_ring,))
    elif lines.ratio_scatter == "per_spaxel":
        draws = lineflux.draw_ratio_offsets(lines, rng, shape=(s.n_ext, s.n_ext))
    return _RatioScatter(lines.ratio_scatter, draws, lines.ratio_scatter_ring)


@dataclass(frozen=True, eq=False)
class _Pass:
    """One rendering pass: spaxels ``use`` of the box ``[i0:i1, j0:j1]`` with ``os_k`` sub-pixels per axis."""

    box: tuple[int, int, int, int]
    os_k: int
    use: np.ndarray


def _traced(lens, x, y):
    """Source-plane offsets beta = theta - alpha(theta) of sky offsets (x, y), arcsec; (x, y) when unlensed."""
    return (x, y) if lens is None else lens.ray_shoot(x, y)


@dataclass(frozen=True, eq=False)
class _Cells:
    """Scattered spaxels ``(rows, cols)`` of the padded field rendered with ``os_k`` sub-pixels per axis,
    laid out side by side as one ``os_k x (n os_k)`` strip (only their sub-pixels are computed)."""

    rows: np.ndarray
    cols: np.ndarray
    os_k: int


def _critical_passes(passes: list[_Pass], near: np.ndarray, os_crit: int) -> tuple[list[_Pass], _Cells]:
    """Take the spaxels ``near`` a critical curve out of ``passes``; they are rendered at ``os_crit``."""
    out = [_Pass(p.box, p.os_k, p.use & ~near[p.box[0]:p.box[1], p.box[2]:p.box[3]]) for p in passes]
    rows, cols = np.nonzero(near)
    return out, _Cells(rows, cols, os_crit)


#: |mu| above which a rendered spaxel is checked for under-sampling (issue 17: "|mu| > 100").
MU_UNDERSAMPLED = 100.0


def needed_oversample(lens, x, y, pixel_scale: float) -> np.ndarray:
    """Sub-pixels per axis that resolve the lens mapping at spaxel centres (x, y), arcsec.

    Near a fold mu ~ 1 / d (d the distance to the critical curve, estimated
    as |det A| / |grad det A|); sub-pixels no larger than 2 d / 3 keep
    mu within a factor 2 across each of them, so the spaxel needs
    ceil(1.5 pixel_scale / d) of them per axis. A geometric pre-filter:
    the spaxels it flags are rendered again with twice the sub-pixels and
    warned about only when their flux changes (:func:`_warn_undersampled`).
    """
    h = 0.05 * pixel_scale
    det = lens.det_a(x, y)
    gx = (lens.det_a(x + h, y) - lens.det_a(x - h, y)) / (2 * h)
    gy = (lens.det_a(x, y + h) - lens.det_a(x, y - h)) / (2 * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(det) / np.hypot(gx, gy)
        need = np.ceil(1.5 * pixel_scale / d)
    return np.where(np.isfinite(need), np.maximum(need, 1.0), np.inf)


#: A flagged spaxel is under-sampled when doubling its sub-pixels per axis changes its flux by more than this
#: fraction of the brightest spaxel's (the IFU mode's oversampling tolerance, 0.5 % of the peak).
UNDERSAMPLED_TOL = 5e-3

#: Largest sub-pixels per axis (``lensing.oversample_near_critical``'s upper bound).
_OS_MAX = 64


def _undersampled_candidates(lens, x, y, lit: np.ndarray, os_map: np.ndarray, pixel_scale: float,
                             mu: np.ndarray | None = None) -> np.ndarray:
    """Lit spaxels with |mu| > MU_UNDERSAMPLED whose sub-pixels are coarser than :func:`needed_oversample`
    asks and below the largest allowed (boolean map). ``mu``: the magnification at (x, y), when known."""
    mu = lens.magnification(x, y) if mu is None else mu
    flag = lit & (np.abs(mu) > MU_UNDERSAMPLED) & (os_map < _OS_MAX)
    if flag.any():
        flag[flag] = needed_oversample(lens, x[flag], y[flag], pixel_scale) > os_map[flag]
    return flag


#: At most this many candidates (the most magnified) are rendered again per scene: bounds the check's cost.
_MAX_CHECKED = 32


def _warn_undersampled(cube: np.ndarray, candidates: np.ndarray, os_map: np.ndarray, render_at,
                       tol: float = UNDERSAMPLED_TOL, priority: np.ndarray | None = None) -> int:
    """Warn (CriticalCurveWarning) when candidate spaxels (:func:`_undersampled_candidates`) are not converged.

    Each group of candidates with the same sub-pixels per axis k is rendered again at 2k (``render_at(rows,
    cols, k)`` -> flux per channel, (n_chan, n_cells)); if its spaxels' flux changes by more than ``tol`` of
    the brightest spaxel's flux in ``cube``, k doubles again, up to 64. The warning names the smallest k that
    converged (the needed ``oversample_near_critical``). Surface brightness is conserved, so an extended
    source's image is smooth across a fold and the few sub-pixels of the field usually suffice; a compact
    source on a caustic is what needs more. Of more than :data:`_MAX_CHECKED` candidates, those with the
    largest ``priority`` (e.g. the magnification) are checked. Returns the needed oversample (0: none).
    """
    import warnings

    from ..physics.lensing import CriticalCurveWarning

    if not candidates.any():
        return 0
    peak = float(cube.sum(axis=0).max())
    if not peak > 0.0:
        return 0
    n_cand = int(candidates.sum())
    if n_cand > _MAX_CHECKED:
        prio = np.where(candidates, np.inf if priority is None else priority, -np.inf).ravel()
        keep = np.zeros(candidates.size, dtype=bool)
        keep[np.argsort(-prio, kind="stable")[:_MAX_CHECKED]] = True
        candidates = keep.reshape(candidates.shape)
    need, n_short, worst, shown_os = 0, 0, 0.0, 0
    for k0 in np.unique(os_map[candidates]).astype(int):
        rows, cols = np.nonzero(candidates & (os_map == k0))
        flux, k, short = cube[:, rows, cols].sum(axis=0), k0, None
        while k < _OS_MAX:
            k2 = min(2 * k, _OS_MAX)
            flux2 = render_at(rows, cols, k2).sum(axis=0)
            change = np.abs(flux2 - flux) / peak
            if short is None:
                short = change > tol  # the spaxels not converged at their own sampling
                worst = max(worst, float(change.max()))
            if not (change > tol).any():
                break
            flux, k = flux2, k2
        if short is not None and short.any():
            n_short += int(short.sum())
            shown_os = max(shown_os, k0)
            need = max(need, k if k < _OS_MAX or not (change > tol).any() else _OS_MAX + 1)
    if not n_short:
        return 0
    shown = f">= {need}" if need <= _OS_MAX else \
        f">= {_OS_MAX} (the largest allowed; their flux still changed from {_OS_MAX // 2} to {_OS_MAX})"
    checked = f" (of the {_MAX_CHECKED} most magnified of {n_cand} checked)" if n_cand > _MAX_CHECKED else ""
    warnings.warn(f"{n_short} rendered spaxels{checked} have |mu| > {MU_UNDERSAMPLED:g} with too few sub-pixels "
                  f"(up to {shown_os} per axis; doubling them changes their flux by up to {100 * worst:.2g} % of "
                  f"the brightest spaxel's): set lensing.oversample_near_critical {shown}",
                  CriticalCurveWarning, stacklevel=4)
    return min(need, _OS_MAX)


#: |mu| above which a lit spaxel is rendered with ``oversample_near_critical`` sub-pixels per axis.
MU_NEAR_CRITICAL = 20.0


def _near_critical(model: GalaxyModel, lens, x, y, r_pix: np.ndarray, pixel_scale: float, kcs=None):
    """Lit spaxels with |mu| > MU_NEAR_CRITICAL at centres (x, y), and the magnification there.

    A spaxel is lit when some of it may fall within the light radius: its
    centre's source-plane disk radius ``r_pix`` (kpc) is within the light
    radius plus twice the source-plane half-diagonal of the spaxel (its
    image under the Jacobian, largest singular value |1 - kappa| + |gamma|,
    deprojected by 1 / axis ratio). Dark spaxels get nothing from extra
    sub-pixels, so they keep the field's sampling. ``kcs``: (kappa, gamma1,
    gamma2) at (x, y) when already known.
    """
    kap, g1, g2 = lens.convergence_shear(x, y) if kcs is None else kcs
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = 1.0 / ((1.0 - kap) ** 2 - g1 * g1 - g2 * g2)
        reach = (np.abs(1.0 - kap) + np.hypot(g1, g2)) * pixel_scale * math.sqrt(2.0) \
            * model.kpc_per_arcsec / max(model.axis_ratio, 1e-3)
    lit = ~(r_pix > model.light_radius(1.0 - _LIGHT_TAIL) + np.where(np.isfinite(reach), reach, np.inf))
    return lit & (np.abs(mu) > MU_NEAR_CRITICAL), mu


def _os_map(passes: list, shape) -> np.ndarray:
    """Sub-pixels per axis each spaxel is rendered with."""
    out = np.zeros(shape)
    for p in passes:
        i0, i1, j0, j1 = p.box
        out[i0:i1, j0:j1][p.use] = p.os_k
    return out


def _render_pass(model: GalaxyModel, lines: LinesConfig, s: SceneSampling, scatter: _RatioScatter,
                 line_waves: np.ndarray, p: _Pass, use_numba: bool, lens=None, disk=None) -> np.ndarray:
    """Render one pass; returns the cube of its box, shape (n_chan, i1 - i0, j1 - j0). ``disk``: the
    (r_kpc, cos_phi) of its sub-pixels when already known (the spaxel centres of a one-sub-pixel pass)."""
    i0, i1, j0, j1 = p.box
    os_k, ps = p.os_k, s.pixel_scale
    py = s.pixel_offsets(i0, i1, os_k)
    px = s.pixel_offsets(j0, j1, os_k)
    xx, yy = np.meshgrid(-px * ps, py * ps)  # east is -column
    use = p.use if os_k == 1 else np.repeat(np.repeat(p.use, os_k, axis=0), os_k, axis=1)
    return _render_subpixels(model, lines, s, line_waves, xx, yy, use, os_k, use_numba, lens,
                             lambda r_kpc: scatter.at(r_kpc, p.box, os_k), disk)


def _render_cells(model: GalaxyModel, lines: LinesConfig, s: SceneSampling, scatter: _RatioScatter,
                  line_waves: np.ndarray, c: _Cells, use_numba: bool, lens=None) -> np.ndarray:
    """Render scattered spaxels (:class:`_Cells`); returns shape (n_chan, n_cells)."""
    os_k, ps = c.os_k, s.pixel_scale
    sub = (np.arange(os_k) + 0.5) / os_k - 0.5
    origin = s.pad + 0.5 * (s.n - 1)
    py = (c.rows[None, :] - origin + sub[:, None]) * ps  # (os_k, n_cells): sub-row a of spaxel k
    px = (c.cols[:, None] - origin + sub[None, :]).ravel() * ps  # spaxel k's sub-columns side by side
    yy = np.repeat(py, os_k, axis=1)
    xx = np.broadcast_to(-px, yy.shape)  # east is -column
    use = np.ones(yy.shape, dtype=bool)
    cube = _render_subpixels(model, lines, s, line_waves, xx, yy, use, os_k, use_numba, lens,
                             lambda r_kpc: scatter.at_cells(r_kpc, c.rows, c.cols, os_k))
    return cube[:, 0, :]


def _render_subpixels(model: GalaxyModel, lines: LinesConfig, s: SceneSampling, line_waves: np.ndarray,
                      xx, yy, use, os_k: int, use_numba: bool, lens, offsets_at, disk=None) -> np.ndarray:
    """Render sub-pixels at sky offsets (xx, yy), arcsec, binned ``os_k x os_k`` into spaxels; ``use``:
    the sub-pixels of the pass; ``offsets_at(r_kpc)``: the ratio offsets there; ``disk``: their
    (r_kpc, cos_phi) when already known (else traced and computed here)."""
    ps = s.pixel_scale
    # lensed: at beta, surface brightness conserved
    r_kpc, cos_phi = model.disk_coords(*_traced(lens, xx, yy)) if disk is None else disk
    offsets = offsets_at(r_kpc)
    factors = lineflux.line_factors(lines, model.metallicity(r_kpc), r_kpc=r_kpc, ratio_offsets=offsets)
    sb = model.surface_brightness(r_kpc) * (ps / os_k) ** 2 * lines.reference_flux
    r_light = model.light_radius(1.0 - _LIGHT_TAIL)
    keep = use & (r_kpc <= r_light)
    sb[~keep] = 0.0  # not this pass's spaxels, or negligible light: skipped by the kernel
    flux_sub = np.stack([sb * factors[name] for name in lines.lines])
    vlos = model.vlos(r_kpc, cos_phi)
    return render_lines(flux_sub, vlos, np.full_like(vlos, s.line_sigma), line_waves, s.edges_lo, s.edges_hi,
                        os_k, n_sigma=PROFILE_TRUNCATION_SIGMA, use_numba=use_numba)


def _passes(inner: np.ndarray, os_in: int, os_out: int) -> list[_Pass]:
    """The whole field at ``os_out``, then the box around the ``inner`` spaxels at ``os_in``."""
    n_ext = inner.shape[0]
    if os_out == os_in or not inner.any() or inner.all():
        return [_Pass((0, n_ext, 0, n_ext), os_in, np.ones_like(inner))]
    rows, cols = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
    i0, i1, j0, j1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return [_Pass((0, n_ext, 0, n_ext), os_out, ~inner),
            _Pass((i0, i1, j0, j1), os_in, inner[i0:i1, j0:j1])]


def spaxel_centres(sampling: SceneSampling) -> tuple[np.ndarray, np.ndarray]:
    """Sky offsets (x east, y north; arcsec) of the padded field's spaxel centres, (n_ext, n_ext) each
    (east is -column); the kept field is ``[pad:pad + n, pad:pad + n]``."""
    s = sampling
    centres = np.arange(s.n_ext) - s.pad - 0.5 * (s.n - 1)  # spaxel centres, spaxels from the field centre
    return np.meshgrid(-centres * s.pixel_scale, centres * s.pixel_scale)


def render_scene(model: GalaxyModel, lines: LinesConfig, sampling: SceneSampling, *,
                 rng: np.random.Generator, use_numba: bool = True, lens=None,
                 oversample_near_critical: int = 1, trace=None) -> Scene:
    """Render the noise-free, pre-PSF scene of a galaxy on a mode's sampling.

    Parameters
    ----------
    model : GalaxyModel
        The resolved galaxy (:func:`mockzgrad.source.galaxy.resolve_galaxy`).
    lines : LinesConfig
        Lines to render, reference flux (erg/s/cm^2), generating set, dust
        and calibration scatter.
    sampling : SceneSampling
        Channels, pixel scale, padded field and oversampling chosen by the
        mode.
    rng : numpy.random.Generator
        Draws the calibration scatter (``lines.ratio_scatter``); unused when
        it is ``"none"``.
    use_numba : bool
        Use the compiled render kernel (False: its numpy twin).
    lens : mockzgrad.physics.lensing.Lens or None
        A lens in front of the galaxy: every sub-pixel's sky offset theta
        is traced to beta = theta - alpha(theta) and the galaxy (light,
        velocity, Z(r), ratios) is evaluated there; flux per sub-pixel is
        SB(beta) x its area, so surface brightness is conserved and
        magnification and multiple images follow. The oversampling region
        is chosen by the source-plane radius of each spaxel centre.
    oversample_near_critical : int
        Sub-pixels per axis of the lit spaxels whose |mu| > 20 (lensed
        only; used when above ``sampling.oversample``).
    trace : mockzgrad.physics.lensing.GridTrace or None
        ``lens`` already evaluated at the padded field's spaxel centres
        (:func:`spaxel_centres`, :func:`mockzgrad.physics.lensing.trace_grid`);
        None: evaluated here.

    Returns
    -------
    Scene
        The padded cube, axes ``(n_chan, n_ext, n_ext)``, and the drawn
        ratio offsets.
    """
    s = sampling
    line_waves = observed_line_waves(model, lines)
    pxx, pyy = spaxel_centres(s)
    traced = (trace.beta_x, trace.beta_y) if lens is not None and trace is not None else _traced(lens, pxx, pyy)
    r_pix, cos_pix = model.disk_coords(*traced)
    scatter = _draw_scatter(model, lines, s, r_pix, rng)
    inner = r_pix <= s.oversample_radius * model.r_eff
    passes = _passes(inner, s.oversample, min(s.oversample_outer, s.oversample))
    cells = None
    if lens is not None:
        near, mu = _near_critical(model, lens, pxx, pyy, r_pix, s.pixel_scale,
                                  None if trace is None else (trace.kappa, trace.gamma1, trace.gamma2))
        if oversample_near_critical > s.oversample and near.any():
            passes, cells = _critical_passes(passes, near, oversample_near_critical)
        os_map = _os_map(passes, pxx.shape)
        if cells is not None:
            os_map[cells.rows, cells.cols] = cells.os_k
        candidates = _undersampled_candidates(lens, pxx, pyy, r_pix <= model.light_radius(1.0 - _LIGHT_TAIL),
                                              os_map, s.pixel_scale, mu)
    first = passes[0]
    whole = first.os_k == 1 and first.box == (0, s.n_ext, 0, s.n_ext)  # its sub-pixels are the spaxel centres
    cube = _render_pass(model, lines, s, scatter, line_waves, first, use_numba, lens,
                        (r_pix, cos_pix) if whole else None)
    for p in passes[1:]:  # only the pass's own spaxels (its box holds others: the corners; a lensed arc's)
        rows, cols = np.nonzero(p.use)
        c = _Cells(rows + p.box[0], cols + p.box[2], p.os_k)
        cube[:, c.rows, c.cols] += _render_cells(model, lines, s, scatter, line_waves, c, use_numba, lens)
    if cells is not None:
        cube[:, cells.rows, cells.cols] += _render_cells(model, lines, s, scatter, line_waves, cells, use_numba,
                                                         lens)
    if lens is not None:  # flagged spaxels checked by rendering them again with twice the sub-pixels
        _warn_undersampled(cube, candidates, os_map, lambda rows, cols, k: _render_cells(
            model, lines, s, scatter, line_waves, _Cells(rows, cols, k), use_numba, lens), priority=np.abs(mu))
    return Scene(cube=cube, sampling=s, line_waves=line_waves, ratio_offsets=scatter.recorded())
