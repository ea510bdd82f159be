"""The line model evaluated for many spectra at once, and its normal equations.

For given ``(v, sigma)`` per spectrum the model is linear in the free fluxes
and baseline terms. This module evaluates the channel-integrated line
profiles and their derivatives, builds the design matrix of each block of
linked windows, solves the batched weighted normal equations and returns the
profile chi^2 with the reduced (Schur-complement) Gauss-Newton system on
``(v, sigma)`` of variable projection (Kaufman 1975, BIT 15, 49; Golub &
Pereyra 2003, Inverse Problems 19, R1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from ...physics.lines import C_KMS

__all__ = [
    "line_profiles",
    "block_design",
    "block_nonlinear",
    "solve_normal",
    "projected_norm2",
    "evaluate",
    "active_columns",
]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: A line column is unconstrained if less than this fraction of its profile
#: (at the start point) falls on valid channels.
_MIN_COVERAGE = 1e-3


def line_profiles(setup, v, s, deriv):
    """Channel-integrated unit profiles of every line on its window channels.

    ``v``, ``s``: arrays of shape (B,), km/s. Returns per window ``(P, dPv,
    dPs)`` with shapes ``(B, n_chan_window, n_lines_window)`` (derivatives
    w.r.t. ``v`` and ``sigma``; None unless ``deriv``). The normal CDF is
    evaluated once per channel edge when the window's channels touch.
    """
    out = []
    for sl, members, edges in zip(setup.win_slices, setup.win_lines, setup.win_edges):
        lam = setup.lam_obs[members]                                  # (Lm,)
        mu = lam[None, :] * (1.0 + v[:, None] / C_KMS)                # (B, Lm)
        sw = mu * (s[:, None] / C_KMS)                                # (B, Lm)
        if edges is not None:                                         # n + 1 shared edges
            ze = (edges[None, :, None] - mu[:, None, :]) / sw[:, None, :]
            cdf = erf(ze / _SQRT2)
            prof = 0.5 * (cdf[:, 1:] - cdf[:, :-1])
        else:
            ze = None
            zlo = (setup.lo[sl][None, :, None] - mu[:, None, :]) / sw[:, None, :]
            zhi = (setup.hi[sl][None, :, None] - mu[:, None, :]) / sw[:, None, :]
            prof = 0.5 * (erf(zhi / _SQRT2) - erf(zlo / _SQRT2))
        if not deriv:
            out.append((prof, None, None))
            continue
        inv_s = 1.0 / sw[:, None, :]
        if ze is not None:
            pe = _INV_SQRT_2PI * np.exp(-0.5 * ze * ze)
            zpe = ze * pe
            d_mu = (pe[:, :-1] - pe[:, 1:]) * inv_s                   # dP/dmu
            d_s = (zpe[:, :-1] - zpe[:, 1:]) * inv_s                  # dP/ds at fixed mu
        else:
            plo = _INV_SQRT_2PI * np.exp(-0.5 * zlo * zlo)
            phi = _INV_SQRT_2PI * np.exp(-0.5 * zhi * zhi)
            d_mu = (plo - phi) * inv_s
            d_s = (zlo * plo - zhi * phi) * inv_s
        dmu_dv = (lam / C_KMS)[None, None, :]
        ds_dv = (lam[None, :] * s[:, None] / C_KMS**2)[:, None, :]
        dpv = d_mu * dmu_dv + d_s * ds_dv
        dps = d_s * (mu / C_KMS)[:, None, :]
        out.append((prof, dpv, dps))
    return out


def block_design(setup, blk, profs, n_batch):
    """Design matrix ``(B, C_b, p_b)`` of one block from the line profiles."""
    chans, cols, parts, n_lines_b = blk
    a = np.zeros((n_batch, chans.size, cols.size))
    a[:, :, n_lines_b:] = setup.base[np.ix_(chans, cols[n_lines_b:] - setup.n_free)]
    for m, lsl in parts:
        prof = profs[m][0]
        for j, k in enumerate(setup.win_lines[m]):
            a[:, lsl, setup.line_local[k]] += setup.line_coef[k] * prof[:, :, j]
    return a


def block_nonlinear(setup, blk, profs, beta_b):
    """``d model / d(v, sigma)`` at fixed linear parameters, shape (B, C_b, 2)."""
    chans, _, parts, _ = blk
    jn = np.zeros((beta_b.shape[0], chans.size, 2))
    for m, lsl in parts:
        members = setup.win_lines[m]
        _, dpv, dps = profs[m]
        amp = setup.line_coef[members][None, :] * beta_b[:, setup.line_local[members]]   # (B, Lm)
        jn[:, lsl, 0] = np.matmul(dpv, amp[:, :, None])[:, :, 0]
        jn[:, lsl, 1] = np.matmul(dps, amp[:, :, None])[:, :, 0]
    return jn


def solve_normal(m, b, active, want_inverse=False):
    """Solve batched normal equations with Jacobi scaling.

    Inactive parameters (``active`` False) are fixed at 0 (identity rows).
    Returns the solution and, if asked, the inverse matrix (0 for inactive).
    """
    d = np.einsum("...ii->...i", m)
    act = active & (d > 0.0) & np.isfinite(d)
    scale = np.where(act, 1.0 / np.sqrt(np.where(act, d, 1.0)), 0.0)
    ms = m * scale[..., :, None] * scale[..., None, :]
    p = m.shape[-1]
    eye = np.eye(p)
    ms = ms + eye * (~act)[..., None, :] + 1e-13 * eye
    ms = np.where(np.isfinite(ms), ms, 0.0)
    rhs = np.where(np.isfinite(b), b, 0.0) * scale
    try:
        if want_inverse:
            inv = np.linalg.inv(ms)
            x = np.matmul(inv, rhs[..., None])[..., 0]
        else:
            x = np.linalg.solve(ms, rhs[..., None])[..., 0]
            inv = None
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(ms)
        x = np.einsum("...ij,...j->...i", inv, rhs)
    x = x * scale
    if inv is not None:
        inv = inv * scale[..., :, None] * scale[..., None, :]
    return x, inv


def projected_norm2(m, b, active):
    """``b^T M^-1 b`` for batched small normal equations, by Cholesky.

    ``m`` maps ``(i, j)`` with ``i >= j`` to the matrix element, an array
    over the batch; ``b`` and ``active`` are sequences of ``p`` such arrays
    (broadcastable). Each element being a contiguous batch array, the loops
    over the matrix indices are cheap.
    The columns are Jacobi-scaled; inactive ones and pivots that vanish
    (degenerate directions) are dropped.
    """
    p = len(b)
    act = [active[i] & (m[i, i] > 0.0) & np.isfinite(m[i, i]) for i in range(p)]
    sc = [np.where(act[i], 1.0 / np.sqrt(np.where(act[i], m[i, i], 1.0)), 0.0) for i in range(p)]
    low = [[None] * p for _ in range(p)]
    z = [None] * p
    total = 0.0
    for j in range(p):
        piv = act[j].astype(float)
        for k in range(j):
            piv = piv - low[j][k] ** 2
        ok = piv > 1e-10
        ljj = np.sqrt(np.where(ok, piv, 1.0))
        inv = np.where(ok, 1.0 / ljj, 0.0)
        for i in range(j + 1, p):
            lij = m[i, j] * sc[i] * sc[j]
            for k in range(j):
                lij = lij - low[i][k] * low[j][k]
            low[i][j] = lij * inv
        zj = b[j] * sc[j]
        for k in range(j):
            zj = zj - low[j][k] * z[k]
        z[j] = zj * inv
        total = total + z[j] ** 2
    return total


def evaluate(setup, v, s, y, w, active, full=False):
    """Profile chi^2 and the reduced Gauss-Newton system at ``(v, s)`` per spectrum.

    The linear parameters are solved block by block (blocks share only
    ``v`` and ``sigma``). Returns ``chi2`` (B,), ``beta`` (B, p), the
    gradient-like vector ``g = J_n^T W r`` (B, 2) and the Schur complement
    ``h`` (B, 2, 2) of the Gauss-Newton matrix on ``(v, sigma)``; with
    ``full`` also ``J^T W J`` over all parameters (B, p + 2, p + 2).
    """
    n = v.size
    p = setup.n_free + 2 * setup.n_win
    profs = line_profiles(setup, v, s, deriv=True)
    chi2 = np.zeros(n)
    beta = np.zeros((n, p))
    g = np.zeros((n, 2))
    h = np.zeros((n, 2, 2))
    hess = np.zeros((n, p + 2, p + 2)) if full else None
    for blk in setup.blocks:
        chans, cols = blk[0], blk[1]
        a = block_design(setup, blk, profs, n)
        yb, wb = y[:, chans], w[:, chans]
        aw = a * wb[:, :, None]
        m = np.matmul(aw.transpose(0, 2, 1), a)
        bvec = np.matmul(yb[:, None, :], aw)[:, 0, :]
        bb, minv = solve_normal(m, bvec, active[:, cols], want_inverse=True)
        r = yb - np.matmul(a, bb[:, :, None])[:, :, 0]
        chi2 += np.sum(wb * r * r, axis=1)
        jn = block_nonlinear(setup, blk, profs, bb)
        jnw = jn * wb[:, :, None]
        g += np.matmul(r[:, None, :], jnw)[:, 0, :]
        hnn = np.matmul(jnw.transpose(0, 2, 1), jn)
        hnl = np.matmul(jnw.transpose(0, 2, 1), a)            # (B, 2, p_b)
        h += hnn - np.matmul(np.matmul(hnl, minv), hnl.swapaxes(1, 2))
        beta[:, cols] = bb
        if full:
            hess[:, cols[:, None], cols[None, :]] = m
            hess[:, cols, p:] = hnl.swapaxes(1, 2)
            hess[:, p:, cols] = hnl
            hess[:, p:, p:] += hnn
    return chi2, beta, g, h, hess


def active_columns(setup, w, s0):
    """Which linear parameters each spectrum constrains, (S, p) bool."""
    n_spec = w.shape[0]
    valid = w > 0.0
    profs = line_profiles(setup, np.zeros(1), np.array([float(np.median(s0))]), deriv=False)
    covered = np.zeros((n_spec, setup.n_free))
    total = np.zeros(setup.n_free)
    for (sl, members), (prof, _, _) in zip(zip(setup.win_slices, setup.win_lines), profs):
        for j, k in enumerate(members):
            col = np.abs(setup.line_coef[k] * prof[0, :, j])
            covered[:, setup.line_col[k]] += valid[:, sl].astype(float) @ col
            total[setup.line_col[k]] += col.sum()
    act = np.empty((n_spec, setup.n_free + 2 * setup.n_win), dtype=bool)
    act[:, : setup.n_free] = covered >= _MIN_COVERAGE * np.maximum(total, 1e-300)
    for m, sl in enumerate(setup.win_slices):
        n_valid = np.count_nonzero(valid[:, sl], axis=1)
        act[:, setup.n_free + 2 * m] = n_valid >= 1
        act[:, setup.n_free + 2 * m + 1] = n_valid >= 2
    return act
