"""Fitting windows, parameter layout, weights and bounds of a line fit.

Everything here is common to all spectra of one call and is computed once:
the window channels and their baseline design (:func:`prepare_setup`), the
blocks of windows linked by a tied flux, the data and weights on the window
channels, and the bounds of ``v`` and ``sigma`` (:func:`prepare_fit` does
all of it). The parameter vector of a spectrum is the free fluxes, then
``(a, b)`` per window, then ``v`` and ``sigma``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ... import validate
from ...errors import ConfigError
from ...physics.lines import C_KMS, LINES
from ..spectra import channel_edges, contiguous_segments
from .model import LineModel

__all__ = ["FitSetup", "FitProblem", "prepare_setup", "prepare_fit", "data_and_weights", "fit_bounds"]

#: Velocity offset bound, channels either side of the redshift guess.
_V_BOUND_CHANNELS = 2.0
#: Width bound, channels either side of ``sigma_init``.
_SIGMA_BOUND_CHANNELS = 5.0
#: Default lower bound of the width, channels.
_SIGMA_MIN_CHANNELS = 0.5


@dataclass(frozen=True, eq=False)
class FitSetup:
    """Everything about the grid and the model that is common to all spectra.

    ``C`` window channels, ``L`` lines; wavelengths in observed Angstrom.
    """

    idx: np.ndarray            # (C,) window channels, indices into the full grid
    lo: np.ndarray             # (C,) channel edges, Angstrom
    hi: np.ndarray
    base: np.ndarray           # (C, 2 n_win) baseline design
    win_slices: tuple          # per window: slice into the C window channels
    win_lines: tuple           # per window: array of line indices
    lam_obs: np.ndarray        # (L,) guessed observed centres, Angstrom
    line_col: np.ndarray       # (L,) free-flux column of each line
    line_coef: np.ndarray      # (L,) factor on that column
    n_free: int
    n_win: int
    windows: tuple
    tie_matrix: np.ndarray
    free_lines: tuple
    blocks: tuple              # per block of linked windows: (chans, cols, parts, n_line_cols)
    win_edges: tuple           # per window: the n + 1 shared channel edges, or None
    line_local: np.ndarray     # (L,) column of each line inside its block

    @property
    def n_par(self) -> int:
        """Linear parameters: free fluxes and two baseline terms per window."""
        return self.n_free + 2 * self.n_win


@dataclass(frozen=True, eq=False)
class FitProblem:
    """A checked fit request: set-up, data, weights and bounds.

    Attributes
    ----------
    setup : FitSetup
    y, w : numpy.ndarray, shape (n_spec, C)
        Data and inverse-variance weights on the window channels (0 = masked).
    names : tuple of str
        Lines of the model.
    redshift : float
        Redshift guess.
    chan : float
        Channel width at the reference line, km/s.
    s0 : numpy.ndarray, shape (n_spec,)
        Initial ``sigma``, km/s.
    v_bounds : tuple of float
        Allowed velocity offset, km/s.
    s_bounds : numpy.ndarray, shape (n_spec, 2)
        Allowed ``sigma``, km/s.
    """

    setup: FitSetup
    y: np.ndarray
    w: np.ndarray
    names: tuple
    redshift: float
    chan: float
    s0: np.ndarray
    v_bounds: tuple
    s_bounds: np.ndarray


def prepare_fit(spectra, errors, edges_lo, edges_hi, redshift, line_model, *, sigma_init, half_window,
                reference_line, sigma_min) -> FitProblem:
    """Check the inputs of a line fit and compute what all spectra share.

    Parameters are those of :func:`~mockzgrad.recovery.linefit.fit_lines`.
    """
    setup = prepare_setup(edges_lo, edges_hi, redshift, line_model, half_window)
    y, w = data_and_weights(spectra, errors, setup)
    names = line_model.lines
    chan, s0, vb, sb = fit_bounds(setup, y, w, names, sigma_init, sigma_min, reference_line)
    return FitProblem(setup=setup, y=y, w=w, names=names, redshift=float(redshift), chan=chan, s0=s0,
                      v_bounds=vb, s_bounds=sb)


# --------------------------------------------------------------------------
# Windows and parameter layout
# --------------------------------------------------------------------------


def prepare_setup(edges_lo, edges_hi, redshift, line_model, half_window) -> FitSetup:
    """Fitting windows, baseline design and parameter blocks (see the package notes)."""
    if not isinstance(line_model, LineModel):
        raise ConfigError(f"line_model = {line_model!r}: expected a LineModel (see default_line_model)")
    redshift = validate.number("redshift", redshift, lo=-1.0, lo_open=True)
    lo, hi = channel_edges(edges_lo, edges_hi)
    starts, stops = contiguous_segments(lo, hi)
    names = line_model.lines
    lam_obs = np.array([LINES[n].wavelength for n in names]) * (1.0 + redshift)
    chan_of_line, seg_of_line = _locate_lines(lo, hi, starts, stops, names, lam_obs, redshift)
    merged = _merge_windows(starts, stops, seg_of_line, chan_of_line, half_window)

    idx = np.concatenate([np.arange(a, b) for a, b in merged])
    lo_w, hi_w = lo[idx], hi[idx]
    base, win_slices, win_lines, windows = _window_baselines(lo, hi, lo_w, hi_w, merged, chan_of_line, lam_obs)
    free = line_model.free_lines
    roots = [line_model.root(n) for n in names]
    line_col = np.array([free.index(r) for r, _ in roots], dtype=int)
    blocks, line_local = _blocks(win_slices, win_lines, line_col, len(free), idx.size)
    return FitSetup(
        idx=idx,
        lo=lo_w,
        hi=hi_w,
        base=base,
        win_slices=tuple(win_slices),
        win_lines=tuple(win_lines),
        lam_obs=lam_obs,
        line_col=line_col,
        line_coef=np.array([f for _, f in roots]),
        n_free=len(free),
        n_win=len(merged),
        windows=tuple(windows),
        tie_matrix=line_model.tie_matrix,
        free_lines=free,
        blocks=tuple(blocks),
        win_edges=tuple(_shared_edges(lo_w, hi_w, win_slices)),
        line_local=line_local,
    )


def _locate_lines(lo, hi, starts, stops, names, lam_obs, redshift):
    """Channel and segment holding each line's guessed centre."""
    seg_of_line = np.empty(len(names), dtype=int)
    chan_of_line = np.empty(len(names), dtype=int)
    for k, lam in enumerate(lam_obs):
        j = int(np.searchsorted(hi, lam))
        if j >= lo.size or lam < lo[j]:
            ranges = ", ".join(f"[{lo[a]:.1f}, {hi[b - 1]:.1f}]" for a, b in zip(starts, stops))
            raise ConfigError(
                f"line {names[k]!r} at observed {lam:.2f} A (redshift {redshift}) is not covered by "
                f"the channel grid; covered: {ranges} A"
            )
        chan_of_line[k] = j
        seg_of_line[k] = int(np.searchsorted(starts, j, side="right") - 1)
    return chan_of_line, seg_of_line


def _merge_windows(starts, stops, seg_of_line, chan_of_line, half_window) -> list[list[int]]:
    """Channel intervals ``[a, b)`` of the full grid, one per line, merged within a segment."""
    if half_window is None:
        intervals = sorted({(int(starts[s]), int(stops[s])) for s in seg_of_line})
    else:
        w = validate.integer("half_window", half_window, lo=1)
        intervals = sorted(
            (max(int(starts[s]), j - w), min(int(stops[s]), j + w + 1))
            for s, j in zip(seg_of_line, chan_of_line)
        )
    merged: list[list[int]] = []
    for a, b in intervals:
        same_segment = merged and np.searchsorted(starts, a, side="right") == np.searchsorted(
            starts, merged[-1][0], side="right"
        )
        if merged and same_segment and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _window_baselines(lo, hi, lo_w, hi_w, merged, chan_of_line, lam_obs):
    """Baseline design ``(C, 2 n_win)``, window slices, lines and ``(lo, hi, lambda_ref)``."""
    mid = 0.5 * (lo_w + hi_w)
    base = np.zeros((lo_w.size, 2 * len(merged)))
    win_slices, win_lines, windows = [], [], []
    pos = 0
    for m, (a, b) in enumerate(merged):
        sl = slice(pos, pos + (b - a))
        pos += b - a
        members = np.array([k for k in range(lam_obs.size) if a <= chan_of_line[k] < b], dtype=int)
        lam_ref = float(np.mean(lam_obs[members]))
        base[sl, 2 * m] = 1.0
        base[sl, 2 * m + 1] = mid[sl] - lam_ref
        win_slices.append(sl)
        win_lines.append(members)
        windows.append((float(lo[a]), float(hi[b - 1]), lam_ref))
    return base, win_slices, win_lines, windows


def _blocks(win_slices, win_lines, line_col, n_free, n_chan):
    """Blocks of windows linked by a free flux whose lines sit in several windows.

    Blocks share only ``v`` and ``sigma``, so their linear parameters are
    solved one block at a time. Returns per block ``(chans, cols, parts,
    n_line_cols)`` and each line's column inside its block.
    """
    n_win, n_lines = len(win_slices), line_col.size
    win_of_line = np.empty(n_lines, dtype=int)
    for m, members in enumerate(win_lines):
        win_of_line[members] = m
    label = list(range(n_win))
    for j in range(n_free):
        wins = sorted({int(win_of_line[k]) for k in range(n_lines) if line_col[k] == j})
        old, new = {label[m] for m in wins}, min(label[m] for m in wins)
        label = [new if lab in old else lab for lab in label]
    blocks = []
    line_local = np.zeros(n_lines, dtype=int)
    for lab in sorted(set(label)):
        wins = [m for m in range(n_win) if label[m] == lab]
        chans = np.concatenate([np.arange(n_chan)[win_slices[m]] for m in wins])
        fcols = sorted({int(line_col[k]) for m in wins for k in win_lines[m]})
        bcols = [n_free + 2 * m + i for m in wins for i in (0, 1)]
        parts, pos = [], 0
        for m in wins:
            size = win_slices[m].stop - win_slices[m].start
            parts.append((m, slice(pos, pos + size)))
            pos += size
            for k in win_lines[m]:
                line_local[k] = fcols.index(int(line_col[k]))
        blocks.append((chans, np.array(fcols + bcols, dtype=int), tuple(parts), len(fcols)))
    return blocks, line_local


def _shared_edges(lo_w, hi_w, win_slices):
    """Per window: the ``n + 1`` edges when its channels touch (one CDF per edge), else None."""
    out = []
    for sl in win_slices:
        touching = np.array_equal(hi_w[sl][:-1], lo_w[sl][1:])
        out.append(np.concatenate([lo_w[sl], hi_w[sl][-1:]]) if touching else None)
    return out


# --------------------------------------------------------------------------
# Data, weights and bounds
# --------------------------------------------------------------------------


def data_and_weights(spectra, errors, setup):
    """Data and inverse-variance weights on the window channels (0 = masked)."""
    y = np.asarray(spectra, dtype=float)
    e = np.asarray(errors, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if e.ndim == 1:
        e = e[None, :]
    if y.ndim != 2 or e.shape != y.shape:
        raise ConfigError(
            f"spectra, errors: shapes {np.shape(spectra)}, {np.shape(errors)}; expected equal "
            "(n_spec, n_chan) arrays"
        )
    y = y[:, setup.idx]
    e = e[:, setup.idx]
    ok = np.isfinite(y) & np.isfinite(e) & (e > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ok, 1.0 / np.where(ok, e, 1.0) ** 2, 0.0)
    return np.where(ok, y, 0.0), w


def _channel_kms(setup, k):
    """Width, km/s, of the channel holding line ``k``'s guessed centre."""
    j = int(np.clip(np.searchsorted(setup.hi, setup.lam_obs[k]), 0, setup.lo.size - 1))
    return C_KMS * (setup.hi[j] - setup.lo[j]) / setup.lam_obs[k]


def _reference_line(setup, stack, reference_line, names) -> int:
    """Index of the reference line: given, or the brightest line of the stack."""
    if reference_line is not None:
        if reference_line not in names:
            raise ConfigError(f"reference_line = {reference_line!r} is not in line_model.lines = {names!r}")
        return names.index(reference_line)
    mid = 0.5 * (setup.lo + setup.hi)
    dlam = setup.hi - setup.lo
    sums = np.full(len(names), -np.inf)
    for sl, members in zip(setup.win_slices, setup.win_lines):
        level = np.median(stack[sl])
        for k in members:
            near = np.abs(mid[sl] - setup.lam_obs[k]) <= 2.5 * dlam[sl]
            sums[k] = np.sum(stack[sl][near] - level)
    return int(np.argmax(sums))


def _reference_and_sigma(setup, y, w, reference_line, names):
    """Reference line (brightest in the stack) and a moment estimate of sigma, km/s."""
    stack = np.sum(np.where(w > 0.0, y, 0.0), axis=0)
    k_ref = _reference_line(setup, stack, reference_line, names)
    chan = _channel_kms(setup, k_ref)
    mid = 0.5 * (setup.lo + setup.hi)
    dlam = setup.hi - setup.lo

    # second moment of the stacked line, window grown to +-3 sigma
    m = next(i for i, mem in enumerate(setup.win_lines) if k_ref in mem)
    sl = setup.win_slices[m]
    lam0 = setup.lam_obs[k_ref]
    sigma = 1.5 * chan
    for _ in range(3):
        half = np.clip(3.0 * sigma / chan, 3.0, 15.0)
        near = np.abs(mid[sl] - lam0) <= half * dlam[sl]
        far = ~near
        level = np.median(stack[sl][far]) if np.count_nonzero(far) >= 3 else 0.0
        f = np.clip(stack[sl][near] - level, 0.0, None)
        x = mid[sl][near]
        if not np.sum(f) > 0.0:
            return k_ref, chan, 2.0 * chan
        m1 = np.sum(f * x) / np.sum(f)
        var = np.sum(f * (x - m1) ** 2) / np.sum(f) - np.mean(dlam[sl][near] ** 2) / 12.0
        sigma = C_KMS * math.sqrt(max(var, (0.3 * np.mean(dlam[sl])) ** 2)) / lam0
    return k_ref, chan, float(np.clip(sigma, 0.5 * chan, 6.0 * chan))


def fit_bounds(setup, y, w, names, sigma_init, sigma_min, reference_line):
    """Channel width at the reference line, initial ``sigma`` and the bounds.

    Returns ``chan`` (km/s), ``s0`` (n_spec,), the velocity bounds
    ``(-v_hi, v_hi)`` and the ``sigma`` bounds (n_spec, 2), km/s.
    """
    n_spec = y.shape[0]
    k_ref, chan, sig_mom = _reference_and_sigma(setup, y, w, reference_line, names)
    if sigma_init is None:
        s0 = np.full(n_spec, sig_mom)
    else:
        s0 = np.broadcast_to(np.asarray(sigma_init, dtype=float), (n_spec,)).copy()
        if not np.all(np.isfinite(s0) & (s0 > 0.0)):
            raise ConfigError(f"sigma_init = {sigma_init!r}; allowed: finite and > 0 km/s")
    if sigma_min is None:
        sigma_min = _SIGMA_MIN_CHANNELS * chan
    else:
        sigma_min = validate.positive("sigma_min", sigma_min, "km/s")
    s_lo = np.maximum(s0 - _SIGMA_BOUND_CHANNELS * chan, sigma_min)
    s_hi = np.maximum(s0 + _SIGMA_BOUND_CHANNELS * chan, s_lo * (1.0 + 1e-9))
    v_hi = _V_BOUND_CHANNELS * chan
    return chan, s0, (-v_hi, v_hi), np.stack([s_lo, s_hi], axis=1)
