"""All blocks of linked windows evaluated as one padded batch (the iteration's hot path).

:func:`mockzgrad.recovery.linefit._design.evaluate` solves the linear
parameters block by block; with a few spectra and a few small blocks its
cost is the per-block array calls, not arithmetic. Here the blocks are
stacked along one more batch axis, zero-padded to the largest block
(padded channels have weight 0 and padded columns are inactive, so they
change nothing), and every line-channel pair's profile is one element of a
flat array, so one pass of array calls serves all blocks. Same results as
``evaluate`` to rounding.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from ...physics.lines import C_KMS
from ._design import solve_normal

__all__ = ["evaluate_stacked"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class _Layout:
    """Padded block layout: ``nb`` blocks of at most ``nc`` channels and ``npar`` columns."""

    chan_idx: np.ndarray   # (nb, nc) window-channel index (0 where padded)
    chan_ok: np.ndarray    # (nb, nc) bool
    col_idx: np.ndarray    # (nb, npar) linear-parameter index (0 where padded)
    col_ok: np.ndarray     # (nb, npar) bool
    a0: np.ndarray         # (nb, nc, npar) baseline part of the design
    lo: np.ndarray         # (E,) lower channel edge of each line-channel pair, Angstrom
    hi: np.ndarray         # (E,) upper edge
    lam: np.ndarray        # (E,) guessed observed centre of the pair's line, Angstrom
    coef: np.ndarray       # (E,) flux factor of the pair's line
    col: np.ndarray        # (E,) free-flux column of the pair's line
    to_a: np.ndarray       # (E, nb * nc * npar) scatter of pairs into the design
    to_c: np.ndarray       # (E, nb * nc) scatter of pairs into channels


_LAYOUTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _layout(setup) -> _Layout:
    lay = _LAYOUTS.get(setup)
    if lay is None:
        lay = _LAYOUTS[setup] = _make_layout(setup)
    return lay


def _make_layout(setup) -> _Layout:
    nb = len(setup.blocks)
    nc = max(blk[0].size for blk in setup.blocks)
    npar = max(blk[1].size for blk in setup.blocks)
    chan_idx = np.zeros((nb, nc), dtype=int)
    chan_ok = np.zeros((nb, nc), dtype=bool)
    col_idx = np.zeros((nb, npar), dtype=int)
    col_ok = np.zeros((nb, npar), dtype=bool)
    a0 = np.zeros((nb, nc, npar))
    lo, hi, lam, coef, col, pos_a, pos_c = [], [], [], [], [], [], []
    for b, (chans, cols, parts, n_lines_b) in enumerate(setup.blocks):
        chan_idx[b, : chans.size] = chans
        chan_ok[b, : chans.size] = True
        col_idx[b, : cols.size] = cols
        col_ok[b, : cols.size] = True
        a0[b, : chans.size, n_lines_b : cols.size] = setup.base[np.ix_(chans, cols[n_lines_b:] - setup.n_free)]
        for m, lsl in parts:
            sl = setup.win_slices[m]
            for k in setup.win_lines[m]:
                rows = np.arange(lsl.start, lsl.stop)
                lo.append(setup.lo[sl])
                hi.append(setup.hi[sl])
                lam.append(np.full(rows.size, setup.lam_obs[k]))
                coef.append(np.full(rows.size, setup.line_coef[k]))
                col.append(np.full(rows.size, setup.line_col[k]))
                pos_c.append(b * nc + rows)
                pos_a.append((b * nc + rows) * npar + setup.line_local[k])
    pos_a, pos_c = np.concatenate(pos_a), np.concatenate(pos_c)
    to_a = np.zeros((pos_a.size, nb * nc * npar))
    to_a[np.arange(pos_a.size), pos_a] = 1.0
    to_c = np.zeros((pos_c.size, nb * nc))
    to_c[np.arange(pos_c.size), pos_c] = 1.0
    return _Layout(chan_idx=chan_idx, chan_ok=chan_ok, col_idx=col_idx, col_ok=col_ok, a0=a0,
                   lo=np.concatenate(lo), hi=np.concatenate(hi), lam=np.concatenate(lam),
                   coef=np.concatenate(coef), col=np.concatenate(col), to_a=to_a, to_c=to_c)


def _pair_profiles(lay, v, s):
    """Profile and its ``v``, ``sigma`` derivatives of every line-channel pair, (B, E) each."""
    mu = lay.lam[None, :] * (1.0 + v[:, None] / C_KMS)
    sw = mu * (s[:, None] / C_KMS)
    inv_s = 1.0 / sw
    zlo = (lay.lo[None, :] - mu) * inv_s
    zhi = (lay.hi[None, :] - mu) * inv_s
    prof = 0.5 * (erf(zhi / _SQRT2) - erf(zlo / _SQRT2))
    plo = _INV_SQRT_2PI * np.exp(-0.5 * zlo * zlo)
    phi = _INV_SQRT_2PI * np.exp(-0.5 * zhi * zhi)
    d_mu = (plo - phi) * inv_s
    d_s = (zlo * plo - zhi * phi) * inv_s
    dpv = d_mu * (lay.lam / C_KMS)[None, :] + d_s * (lay.lam[None, :] * s[:, None] / C_KMS**2)
    dps = d_s * (mu / C_KMS)
    return prof, dpv, dps


def evaluate_stacked(setup, v, s, y, w, active, full=False):
    """Profile chi^2 and reduced Gauss-Newton system, as ``evaluate``.

    Returns ``chi2`` (B,), ``beta`` (B, p), ``g`` (B, 2), ``h`` (B, 2, 2)
    and, with ``full``, ``J^T W J`` over all parameters (B, p + 2, p + 2),
    else None.
    """
    lay = _layout(setup)
    n = v.size
    nb, nc, npar = lay.a0.shape
    prof, dpv, dps = _pair_profiles(lay, v, s)
    a = lay.a0[None] + ((prof * lay.coef) @ lay.to_a).reshape(n, nb, nc, npar)
    wb = w[:, lay.chan_idx] * lay.chan_ok                          # (B, nb, nc)
    yb = y[:, lay.chan_idx] * lay.chan_ok
    act = active[:, lay.col_idx] & lay.col_ok                      # (B, nb, npar)
    aw = a * wb[..., None]
    at_w = aw.swapaxes(-1, -2)                                     # (B, nb, npar, nc)
    m = at_w @ a
    bvec = (at_w @ yb[..., None])[..., 0]
    bb, minv = solve_normal(m, bvec, act, want_inverse=True)
    r = yb - (a @ bb[..., None])[..., 0]                           # (B, nb, nc)
    chi2 = np.sum(wb * r * r, axis=(1, 2))
    beta = _beta_flat(bb, lay, setup.n_par)
    amp = lay.coef * beta[:, lay.col]
    jn = np.stack([(dpv * amp) @ lay.to_c, (dps * amp) @ lay.to_c], axis=-1).reshape(n, nb, nc, 2)
    jnw = jn * wb[..., None]
    jnw_t = jnw.swapaxes(-1, -2)                                   # (B, nb, 2, nc)
    g = np.sum((jnw_t @ r[..., None])[..., 0], axis=1)
    hnl = jnw_t @ a                                                # (B, nb, 2, npar)
    hnn = jnw_t @ jn                                               # (B, nb, 2, 2)
    h = np.sum(hnn - hnl @ minv @ hnl.swapaxes(-1, -2), axis=1)
    return chi2, beta, g, h, (_full_matrix(lay, m, hnl, hnn, beta.shape[1]) if full else None)


def _full_matrix(lay, m, hnl, hnn, p):
    """``J^T W J`` over all parameters (linear ones, then ``v``, ``sigma``) from the block parts."""
    hess = np.zeros((m.shape[0], p + 2, p + 2))
    for b in range(m.shape[1]):
        k = int(np.count_nonzero(lay.col_ok[b]))                   # real columns come first
        c = lay.col_idx[b, :k]
        hess[:, c[:, None], c[None, :]] = m[:, b, :k, :k]
        hess[:, c, p:] = hnl[:, b, :, :k].swapaxes(1, 2)
        hess[:, p:, c] = hnl[:, b, :, :k]
    hess[:, p:, p:] = np.sum(hnn, axis=1)
    return hess


def _beta_flat(bb, lay, p):
    """Block solutions scattered into the ``p`` linear parameters, (B, p)."""
    beta = np.zeros((bb.shape[0], p))
    beta[:, lay.col_idx[lay.col_ok]] = bb[:, lay.col_ok]
    return beta
