"""From the fine, pre-PSF scene to the 2D spectra of every pointing (noise-free).

Per pointing (dispersion step ``i``, cross-dispersion dither ``j``), following
S1 Sect. 2.1 and the shutter geometry of Ferruit et al. 2022 (ext):

1. the telescope PSF per line (the scene convolved on the fine grid,
   :func:`psf_stage`);
2. the shutter mask: along dispersion the open width of the one shutter
   column (fine columns weighted by their open fraction); along the slit the
   ``n_shutters`` open areas, the walls between them and at the ends block
   light;
3. integration across the open width with the intra-shutter wavelength
   shift (module notes of :mod:`.plan`), and placement along the slit on
   detector rows of ``detector_pixel``;
4. the grating LSF is already in the rendered line width (Gaussian).

Conventions: exposures have axes ``(steps_disp, steps_cross, n_chan,
n_rows)``, flux per detector pixel (erg/s/cm^2); detector row ``r`` of dither
``j`` covers ``y_j - R/2 + [r, r + 1) detector_pixel`` on the sky, ``R =
n_rows detector_pixel`` the smallest multiple of the pixel holding the
slitlet.
"""

from __future__ import annotations

import math

import numpy as np

from .. import psf as psf_mod
from .plan import SlitstepPlan

__all__ = ["PSF_GROUP_TOLERANCE", "line_groups", "psf_stage", "point_transmission", "slit_rows", "open_intervals", "row_matrix", "column_weights", "expose"]


def psf_stage(cube: np.ndarray, plan: SlitstepPlan) -> np.ndarray:
    """Convolve the padded fine scene with the telescope PSF (each channel with its nearest line's kernel).

    Parameters
    ----------
    cube : ndarray, shape (n_fine, n_ext, n_ext)
        Pre-PSF scene, flux per fine pixel and fine spectral bin.
    plan : SlitstepPlan

    Returns
    -------
    ndarray, same shape; flux conserved to rounding (periodic FFT in float32,
    the padding of the plan absorbs the wrap).
    """
    kernels = plan.kernels
    if len(kernels) == 1 or not plan.psf.varies:
        return psf_mod.convolve_with_kernel(cube, next(iter(kernels.values())), pad=False, single=True)
    centres = 0.5 * (plan.sampling.edges_lo + plan.sampling.edges_hi)
    groups = line_groups(plan.psf, plan.line_waves)
    nearest = groups[np.argmin(np.abs(centres[:, None] - plan.line_waves[None, :]), axis=1)]
    out = np.empty_like(cube)
    # channels are sorted in wavelength, so each group of lines owns contiguous runs of channels
    edges = np.flatnonzero(np.diff(nearest)) + 1
    for a, b in zip(np.r_[0, edges], np.r_[edges, nearest.size]):
        w = plan.line_waves[groups == nearest[a]]
        kern = kernels[np.round(w[w.size // 2], 6)]
        out[a:b] = psf_mod.convolve_with_kernel(cube[a:b], kern, pad=False, single=True)
    return out


#: Lines whose PSF FWHMs agree within this fraction share one kernel (the
#: PSF of the middle line): 2 % of a 0.05" PSF is 0.001", far below the
#: 0.1-0.2" resolution of the mode.
PSF_GROUP_TOLERANCE = 0.02


def line_groups(psf, line_waves: np.ndarray) -> np.ndarray:
    """Group index of each line: lines sorted by wavelength, a new group where the FWHM grows by the tolerance."""
    order = np.argsort(line_waves)
    fwhm = np.asarray(psf.fwhm_at(line_waves[order]), dtype=float)
    group = np.zeros(line_waves.size, dtype=np.int64)
    g, start = 0, fwhm[0]
    for k, f in zip(order, fwhm):
        if abs(f / start - 1.0) > PSF_GROUP_TOLERANCE:
            g, start = g + 1, f
        group[k] = g
    return group


def slit_rows(ss) -> np.ndarray:
    """Edges of the detector rows along the slit, arcsec from the slitlet centre, shape (n_rows + 1,)."""
    n_rows = int(math.ceil(ss.slit_length / ss.detector_pixel - 1e-9))
    return (np.arange(n_rows + 1) - 0.5 * n_rows) * ss.detector_pixel


def open_intervals(ss) -> np.ndarray:
    """Open parts of the slitlet along the slit, arcsec from its centre, shape (n_shutters, 2)."""
    centres = (np.arange(ss.n_shutters) - 0.5 * (ss.n_shutters - 1)) * ss.shutter_pitch[1]
    half = 0.5 * ss.shutter_open[1]
    return np.stack([centres - half, centres + half], axis=1)


def _overlap(a_lo, a_hi, b_lo, b_hi):
    return np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None)


def row_matrix(plan: SlitstepPlan, y_slit: float) -> tuple[np.ndarray, np.ndarray]:
    """Fine rows -> detector rows through the open shutters, for a slitlet centred at ``y_slit``.

    Returns
    -------
    matrix : ndarray, shape (n_rows, n_ext)
        Fraction of each fine row's flux landing in each detector row
        (its overlap with the row and the open area, over the fine pixel).
    open_fraction : ndarray, shape (n_rows,)
        Open fraction of each detector row.
    """
    ss, f = plan.ss, plan.fine_pixel
    edges = slit_rows(ss) + y_slit
    opens = open_intervals(ss) + y_slit
    y = plan.offsets()
    r_lo, r_hi = edges[:-1, None], edges[1:, None]
    matrix = np.zeros((r_lo.shape[0], y.size))
    area = np.zeros(r_lo.shape[0])
    for o_lo, o_hi in opens:
        lo, hi = np.maximum(r_lo, o_lo), np.minimum(r_hi, o_hi)
        matrix += _overlap(lo, hi, y[None, :] - 0.5 * f, y[None, :] + 0.5 * f) / f
        area += _overlap(r_lo[:, 0], r_hi[:, 0], o_lo, o_hi)
    return matrix, area / ss.detector_pixel


def column_weights(plan: SlitstepPlan, x_shutter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fine columns seen through the shutter centred at ``x_shutter``.

    Returns
    -------
    cols : ndarray of int
        Fine columns (padded grid) overlapping the open width.
    weight : ndarray
        Open fraction of each.
    shift : ndarray of int
        Fine spectral bins the column's light moves, ``floor((x_c - x_shutter) / f)``.
    """
    f, half = plan.fine_pixel, 0.5 * plan.ss.shutter_open[0]
    x = plan.offsets()
    weight = _overlap(x - 0.5 * f, x + 0.5 * f, x_shutter - half, x_shutter + half) / f
    cols = np.flatnonzero(weight > 1e-12)
    shift = np.floor((x[cols] - x_shutter) / f + 1e-9).astype(np.int64)
    return cols, weight[cols], shift


def _dispersed(columns: dict, plan: SlitstepPlan, x_shutter: float) -> np.ndarray:
    """Light through one shutter column on detector fine bins, shape (n_chan * k_sub, n_ext).

    ``columns[c]``: fine column ``c`` of the convolved scene, shape (n_fine, n_ext), contiguous.
    """
    k = plan.k_sub
    q = (plan.grid.index[:, None] * k + np.arange(k)[None, :]).ravel()
    cols, weight, shift = column_weights(plan, x_shutter)
    out = np.zeros((q.size, plan.sampling.n_ext))
    for c, w, m in zip(cols, weight, shift):
        pos = np.searchsorted(plan.fine_index, q - m)
        out += w * columns[c][pos]
    return out


def expose(conv: np.ndarray, plan: SlitstepPlan) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free 2D spectra of every pointing.

    Parameters
    ----------
    conv : ndarray, shape (n_fine, n_ext, n_ext)
        The PSF-convolved fine scene.
    plan : SlitstepPlan

    Returns
    -------
    exposures : ndarray, shape (steps_disp, steps_cross, n_chan, n_rows)
        Flux per detector pixel, erg/s/cm^2.
    open_fraction : ndarray, shape (steps_cross, n_rows)
        Open fraction of each detector row of each dither.
    """
    k, n_chan = plan.k_sub, plan.grid.n_chan
    rows = [row_matrix(plan, y) for y in plan.y_steps]
    n_rows = rows[0][0].shape[0]
    out = np.zeros((plan.x_steps.size, plan.y_steps.size, n_chan, n_rows))
    if n_chan == 0:
        return out, np.stack([a for _, a in rows])
    used = np.unique(np.concatenate([column_weights(plan, x)[0] for x in plan.x_steps]))
    block = np.ascontiguousarray(np.moveaxis(conv[:, :, used], 2, 0))  # (n_used, n_fine, n_ext)
    columns = {int(c): block[k] for k, c in enumerate(used)}
    for i, x in enumerate(plan.x_steps):
        disp = _dispersed(columns, plan, x)
        for j, (matrix, _) in enumerate(rows):
            out[i, j] = (disp @ matrix.T).reshape(n_chan, k, n_rows).sum(axis=1)
    return out, np.stack([a for _, a in rows])


def point_transmission(plan: SlitstepPlan) -> np.ndarray:
    """Fraction of a point source at a shutter's centre that the open area transmits, per detector channel.

    The telescope PSF at the channel's nearest line (as in
    :func:`psf_stage`), sampled at a fifth of the fine pixel, integrated over ``shutter_open[0] x shutter_open[1]``
    centred on the source: the path loss of a centred point source, shape (n_chan,).
    """
    ss, f = plan.ss, plan.fine_pixel / 5.0  # finer than the scene: partial pixels at the edges err as f^2
    trans = {}
    for w in plan.kernels:
        kern = plan.psf.kernel(f, wavelength=w if plan.psf.varies else None, sampling="integrate")
        h = kern.shape[0] // 2
        t = np.arange(-h, h + 1) * f
        wx = _overlap(t - 0.5 * f, t + 0.5 * f, -0.5 * ss.shutter_open[0], 0.5 * ss.shutter_open[0]) / f
        wy = _overlap(t - 0.5 * f, t + 0.5 * f, -0.5 * ss.shutter_open[1], 0.5 * ss.shutter_open[1]) / f
        trans[w] = float(wy @ kern @ wx)
    waves = np.array(sorted(trans))
    nearest = np.argmin(np.abs(plan.grid.centres[:, None] - waves[None, :]), axis=1)
    return np.array([trans[w] for w in waves])[nearest]
