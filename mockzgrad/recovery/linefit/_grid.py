"""The grid start: profile chi^2 of all spectra on a coarse ``(v, sigma)`` grid.

The grid is common to all spectra, so the design matrix of each grid point
is shared and the weighted normal matrices of all spectra are one matrix
product; each spectrum starts its refinement from its best grid point
inside its own bounds.
"""

from __future__ import annotations

import numpy as np

from ._design import block_design, line_profiles, projected_norm2

__all__ = ["grid_chi2", "grid_start"]


def grid_chi2(setup, y, w, active, v_grid, s_grid):
    """Profile chi^2 of all spectra at every (v, s) grid point, shape (G, S).

    The grid is common to all spectra, so the design matrix of each grid
    point is shared and the weighted normal matrices of all spectra are one
    matrix product. chi^2 is a sum over independent blocks (windows not
    linked by a tie), each solved on its own small set of columns.
    """
    vv, ss = np.meshgrid(v_grid, s_grid, indexing="ij")
    vv, ss = vv.ravel(), ss.ravel()
    profs = line_profiles(setup, vv, ss, deriv=False)
    n_spec = y.shape[0]
    wy = w * y
    out = np.zeros((vv.size, n_spec))
    nf = setup.n_free
    for blk in setup.blocks:
        chans, cols = blk[0], blk[1]
        a_b = block_design(setup, blk, profs, vv.size)       # (G, Cb, pb)
        w_b, wy_b = w[:, chans], wy[:, chans]
        act_b = active[:, cols].T[:, None, :]                 # (pb, 1, S)
        pb = a_b.shape[2]
        is_line = cols < nf
        yy = np.sum(wy_b * y[:, chans], axis=1)
        # baseline-baseline elements do not depend on the grid point
        pairs_fixed = [(i, j) for i in range(pb) for j in range(i + 1) if not (is_line[i] or is_line[j])]
        pairs_grid = [(i, j) for i in range(pb) for j in range(i + 1) if is_line[i] or is_line[j]]
        a0 = a_b[0]
        fixed = {(i, j): (w_b @ (a0[:, i] * a0[:, j]))[None, :] for i, j in pairs_fixed}
        b_fixed = {i: (wy_b @ a0[:, i])[None, :] for i in range(pb) if not is_line[i]}
        lines_b = [i for i in range(pb) if is_line[i]]
        step = max(1, int(4e6 // max(1, n_spec * (len(pairs_grid) + len(lines_b)))))
        for g0 in range(0, vv.size, step):
            a = a_b[g0 : g0 + step]                           # (g, Cb, pb)
            ng = a.shape[0]
            prod = np.stack([a[:, :, i] * a[:, :, j] for i, j in pairs_grid], axis=0)  # (k, g, Cb)
            mg = (prod.reshape(-1, prod.shape[2]) @ w_b.T).reshape(len(pairs_grid), ng, n_spec)
            bl = (a[:, :, lines_b].transpose(2, 0, 1).reshape(-1, a.shape[1]) @ wy_b.T).reshape(
                len(lines_b), ng, n_spec
            )
            m = dict(fixed)
            m.update({pair: mg[k] for k, pair in enumerate(pairs_grid)})
            b = [bl[lines_b.index(i)] if is_line[i] else b_fixed[i] for i in range(pb)]
            quad = projected_norm2(m, b, act_b)
            out[g0 : g0 + ng] += yy[None, :] - quad
    return out, vv, ss


def grid_start(setup, y, w, active, vb, sb, n_grid):
    """Best point of a coarse ``(v, sigma)`` grid for each spectrum.

    Parameters
    ----------
    setup : FitSetup
    y, w : numpy.ndarray, shape (S, C)
        Data and weights on the window channels.
    active : numpy.ndarray of bool, shape (S, p)
        Linear parameters each spectrum constrains.
    vb : (float, float)
        Velocity bounds, km/s.
    sb : numpy.ndarray, shape (S, 2)
        ``sigma`` bounds per spectrum, km/s.
    n_grid : (int, int)
        Grid points in ``v`` and ``sigma``.

    Returns
    -------
    v, s : numpy.ndarray, shape (S,)
        Start point, km/s; grid points outside a spectrum's ``sigma``
        bounds are ignored (mid-range ``sigma`` if none is left).
    """
    v_grid = np.linspace(vb[0], vb[1], n_grid[0])
    s_grid = np.linspace(sb[:, 0].min(), sb[:, 1].max(), n_grid[1])
    chi2_grid, vv, ss = grid_chi2(setup, y, w, active, v_grid, s_grid)
    inside = (ss[:, None] >= sb[None, :, 0]) & (ss[:, None] <= sb[None, :, 1])
    chi2_grid = np.where(inside & np.isfinite(chi2_grid), chi2_grid, np.inf)
    best = np.argmin(chi2_grid, axis=0)
    v = vv[best].copy()
    s = np.where(np.isfinite(chi2_grid[best, np.arange(y.shape[0])]), ss[best], 0.5 * (sb[:, 0] + sb[:, 1]))
    s = np.clip(s, sb[:, 0], sb[:, 1])
    return v, s
