"""Vectorised emission-line fitting of many spectra at once.

Every spectrum (one per bin: annulus, spaxel or Voronoi bin) is fitted with
the same model:

* each line is a Gaussian integrated over each spectral channel (an erf
  difference, as the cube renderer does). Line ``k`` with rest vacuum
  wavelength ``lambda_k`` is centred at
  ``mu_k = lambda_k (1 + redshift) (1 + v / c)`` and has the width
  ``s_k = mu_k sigma / c`` (Angstrom); ``v`` and ``sigma`` (km/s) are shared
  by all lines. ``sigma`` is the observed width, i.e. it includes the
  instrumental broadening;
* a first-order polynomial baseline ``a_m + b_m (lambda - lambda_ref,m)`` in
  every fitting window ``m`` (``lambda_ref,m`` is the mean guessed observed
  wavelength of the lines in the window);
* tied lines (fixed doublet ratios) share the flux parameter of their parent.

Fitting windows
---------------
The channel grid may have gaps (a cube that stores only windows near the
lines). Contiguous *segments* are runs of channels with
``edges_lo[i + 1] == edges_hi[i]`` (to 1e-6 of a channel). With
``half_window=None`` (default) every segment that contains the guessed
centre of at least one line is one fitting window. With an integer
``half_window = W`` every line gets the channels within ``+-W`` channels of
the channel holding its guessed centre, cut at the ends of its segment, and
overlapping or touching per-line windows are merged; use this on a
contiguous grid. Channels outside every window are ignored. A line's profile
is evaluated only inside its own window: flux that would fall into a gap or
another window is not modelled (it is ~0 for windows a few sigma wide).

Bounds
------
"One channel" is the local channel width, in km/s, at the *reference line*
(by default the line with the largest baseline-subtracted flux in the stack
of all spectra). The velocity offset is free within ``+-2`` channels of the
redshift guess; ``sigma`` within ``+-5`` channels of ``sigma_init``, and
never below ``sigma_min`` (default half a channel).

Method (variable projection)
----------------------------
Given ``(v, sigma)`` the model is linear in the line fluxes and baseline
coefficients, which are solved exactly (batched weighted normal equations).
The profile chi^2 is evaluated for all spectra at once on a coarse
``(v, sigma)`` grid (one shared design matrix per grid point, so the normal
matrices of all spectra are one matrix product); each spectrum then starts
from its best grid point and is refined with vectorised Levenberg-Marquardt
steps on ``(v, sigma)``. The curvature matrix is the reduced
(Schur-complement) Gauss-Newton matrix of variable projection (Kaufman 1975,
BIT 15, 49; Golub & Pereyra 2003, Inverse Problems 19, R1) with a BFGS
secant correction, and each step is followed by a one-point parabolic line
search: at low S/N the Gauss-Newton matrix alone misjudges the curvature and
converges slowly. Bounds are handled by an active set (a parameter on a
bound whose descent direction points outwards is held). Iteration stops when
the Newton step would lower chi^2 by less than 1e-10; a spectrum not
converged after ``max_iter`` iterations is flagged ``success = False``.
The covariance of all parameters is ``(J^T W J)^-1`` with the Jacobian ``J``
at the optimum with respect to every parameter (fluxes, baselines, ``v``,
``sigma``); errors are not rescaled by the reduced chi^2.

Channels whose flux or error is not finite, or whose error is not positive,
get weight zero. A spectrum without enough valid channels to constrain its
parameters is flagged ``success = False`` and reports NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
from scipy.special import erf

from ..errors import ConfigError
from ..physics.lines import BLENDS, C_KMS, LINES, NII_DOUBLET_RATIO, OIII_DOUBLET_RATIO, get_line

__all__ = [
    "LineModel",
    "LineFitResult",
    "default_line_model",
    "fit_lines",
    "fit_lines_curve_fit",
    "rms_error_spectrum",
]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LN10 = math.log(10.0)
#: Velocity offset bound, channels either side of the redshift guess.
_V_BOUND_CHANNELS = 2.0
#: Width bound, channels either side of ``sigma_init``.
_SIGMA_BOUND_CHANNELS = 5.0
#: Default lower bound of the width, channels.
_SIGMA_MIN_CHANNELS = 0.5
#: A line column is unconstrained if less than this fraction of its profile
#: (at the start point) falls on valid channels.
_MIN_COVERAGE = 1e-3
#: Convergence: the Newton step on (v, sigma) would lower chi^2 by less than
#: this, i.e. (v, sigma) are within ~1e-5 of their errors of the minimum.
_CHI2_TOL = 1e-9
#: Spectra fitted together; bounds the memory of the batched design matrices.
_CHUNK = 1024


# --------------------------------------------------------------------------
# Line model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LineModel:
    """Which lines to fit and which line fluxes are tied to others.

    Parameters
    ----------
    lines : tuple of str
        Line identifiers from :data:`mockzgrad.physics.lines.LINES`, e.g.
        ``("Hb", "OIII_4960", "OIII_5008")``.
    ties : mapping of str to (str, float), optional
        ``{line: (parent, ratio)}`` fixes ``flux[line] = ratio * flux[parent]``;
        ratio > 0. Chains (a parent that is itself tied) are resolved; cycles
        are refused. E.g. ``{"OIII_4960": ("OIII_5008", 1 / 2.98)}``.
    """

    lines: tuple[str, ...]
    ties: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        lines = tuple(self.lines) if not isinstance(self.lines, str) else (self.lines,)
        if not lines:
            raise ConfigError("line_model.lines = (): at least one line is needed")
        for name in lines:
            get_line(name)
        if len(set(lines)) != len(lines):
            raise ConfigError(f"line_model.lines = {lines!r}: a line is listed twice")
        ties = {}
        for child, spec in dict(self.ties).items():
            try:
                parent, ratio = spec
                ratio = float(ratio)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"line_model.ties[{child!r}] = {spec!r}: expected (parent line, ratio)"
                ) from None
            if child not in lines or parent not in lines:
                raise ConfigError(
                    f"line_model.ties[{child!r}] = ({parent!r}, {ratio}): both lines must be "
                    f"in line_model.lines = {lines!r}"
                )
            if child == parent or not (math.isfinite(ratio) and ratio > 0.0):
                raise ConfigError(
                    f"line_model.ties[{child!r}] = ({parent!r}, {ratio}): the parent must be "
                    "another line and the ratio finite and > 0"
                )
            ties[child] = (parent, ratio)
        for child in ties:  # refuse cycles
            seen = {child}
            node = child
            while node in ties:
                node = ties[node][0]
                if node in seen:
                    raise ConfigError(f"line_model.ties: cycle through {child!r}")
                seen.add(node)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "ties", MappingProxyType(ties))

    def __hash__(self):
        return hash((self.lines, tuple(sorted(self.ties.items()))))

    @property
    def free_lines(self) -> tuple[str, ...]:
        """Lines whose flux is a free parameter (not tied), in ``lines`` order."""
        return tuple(name for name in self.lines if name not in self.ties)

    def root(self, name: str) -> tuple[str, float]:
        """Free line that ``name`` is tied to and the flux factor, ``(free, factor)``."""
        factor = 1.0
        while name in self.ties:
            name, ratio = self.ties[name]
            factor *= ratio
        return name, factor

    @property
    def tie_matrix(self) -> np.ndarray:
        """``(n_lines, n_free)`` matrix ``T`` with ``flux = T @ free_flux``."""
        free = self.free_lines
        t = np.zeros((len(self.lines), len(free)))
        for i, name in enumerate(self.lines):
            root, factor = self.root(name)
            t[i, free.index(root)] = factor
        return t


def default_line_model(
    lines: Sequence[str],
    *,
    oiii_ratio: float = OIII_DOUBLET_RATIO,
    nii_ratio: float = NII_DOUBLET_RATIO,
    oii_ratio: float | None = None,
) -> LineModel:
    """Build a :class:`LineModel` with the standard doublet ties.

    Parameters
    ----------
    lines : sequence of str
        Line identifiers; blend names of :data:`mockzgrad.physics.lines.BLENDS`
        (``"OII"``, ``"OIII"``, ``"NII"``, ``"SII"``) expand to their members.
    oiii_ratio : float, optional
        ``F(OIII_5008) / F(OIII_4960)``, > 0; applied when both lines are present.
    nii_ratio : float, optional
        ``F(NII_6585) / F(NII_6550)``, > 0; applied when both lines are present.
    oii_ratio : float or None, optional
        ``F(OII_3730) / F(OII_3727)``, > 0. ``None`` (default) leaves the
        [OII] doublet untied: it is blended at R ~ 1000 and its ratio depends
        on density. When tied, ``OII_3727`` is the free line and the doublet
        sum is :meth:`LineFitResult.line_flux` of ``"OII"``.

    Returns
    -------
    LineModel
    """
    expanded: list[str] = []
    for name in lines:
        for member in BLENDS.get(name, (name,)):
            if member not in expanded:
                expanded.append(member)
    ties: dict[str, tuple[str, float]] = {}
    for child, parent, ratio, field_name in (
        ("OIII_4960", "OIII_5008", oiii_ratio, "oiii_ratio"),
        ("NII_6550", "NII_6585", nii_ratio, "nii_ratio"),
        ("OII_3730", "OII_3727", oii_ratio, "oii_ratio"),
    ):
        if ratio is None or child not in expanded or parent not in expanded:
            continue
        if not (math.isfinite(ratio) and ratio > 0.0):
            raise ConfigError(f"{field_name} = {ratio}; allowed: finite and > 0")
        # the child/parent flux factor: OII is parent 3727, others parent = strong line
        ties[child] = (parent, ratio if child == "OII_3730" else 1.0 / ratio)
    return LineModel(tuple(expanded), ties)


# --------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LineFitResult:
    """Line fits of ``n_spec`` spectra.

    Attributes
    ----------
    line_names : tuple of str
        All lines of the model, the column order of ``flux``.
    free_lines : tuple of str
        Lines with a free flux, the order of ``covariance``.
    tie_matrix : ndarray, shape (n_lines, n_free)
        ``flux = free_flux @ tie_matrix.T``.
    flux, flux_err, snr : ndarray, shape (n_spec, n_lines)
        Line fluxes (the unit of the spectra times one channel, i.e.
        erg/s/cm^2 for channel-integrated spectra), their 1-sigma errors and
        ``flux / flux_err``. Tied lines are ``ratio * parent``. NaN where the
        line is unconstrained or the fit failed.
    velocity, velocity_err : ndarray, shape (n_spec,)
        Velocity offset from ``redshift``, km/s.
    sigma, sigma_err : ndarray, shape (n_spec,)
        Observed line-of-sight velocity dispersion (instrumental width
        included), km/s.
    chi2 : ndarray, shape (n_spec,)
        Minimum chi^2.
    dof : ndarray of int, shape (n_spec,)
        Valid channels minus constrained parameters (``v`` and ``sigma`` included).
    success : ndarray of bool, shape (n_spec,)
        Fit converged with enough valid channels.
    covariance : ndarray, shape (n_spec, n_free, n_free)
        Covariance of the free line fluxes (marginalised over the baseline,
        ``v`` and ``sigma``).
    baseline : ndarray, shape (n_spec, n_windows, 2)
        ``(a, b)`` per window: flux per channel at ``lambda_ref`` and its
        slope per Angstrom.
    windows : tuple of (float, float, float)
        ``(lambda_lo, lambda_hi, lambda_ref)`` of each fitting window,
        observed Angstrom.
    redshift : float
        Redshift guess that ``velocity`` is measured from.
    channel_kms : float
        Channel width at the reference line, km/s (unit of the bounds).
    sigma_bounds : ndarray, shape (n_spec, 2)
        Allowed ``sigma`` range, km/s.
    velocity_bounds : tuple of float
        Allowed ``velocity`` range, km/s.
    method : str
        ``"varpro"`` (:func:`fit_lines`) or ``"curve_fit"``.
    """

    line_names: tuple[str, ...]
    free_lines: tuple[str, ...]
    tie_matrix: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    snr: np.ndarray
    velocity: np.ndarray
    velocity_err: np.ndarray
    sigma: np.ndarray
    sigma_err: np.ndarray
    chi2: np.ndarray
    dof: np.ndarray
    success: np.ndarray
    covariance: np.ndarray
    baseline: np.ndarray
    windows: tuple[tuple[float, float, float], ...]
    redshift: float
    channel_kms: float
    sigma_bounds: np.ndarray
    velocity_bounds: tuple[float, float]
    method: str

    def __post_init__(self):
        for name in (
            "tie_matrix", "flux", "flux_err", "snr", "velocity", "velocity_err", "sigma",
            "sigma_err", "chi2", "dof", "success", "covariance", "baseline", "sigma_bounds",
        ):
            getattr(self, name).flags.writeable = False

    @property
    def n_spec(self) -> int:
        """Number of spectra."""
        return self.flux.shape[0]

    @property
    def redshift_fit(self) -> np.ndarray:
        """Fitted redshift ``(1 + redshift) (1 + v / c) - 1`` of each spectrum."""
        return (1.0 + self.redshift) * (1.0 + self.velocity / C_KMS) - 1.0

    def _coefficients(self, lines) -> np.ndarray:
        """Coefficients on the free fluxes of the sum of ``lines``."""
        if isinstance(lines, str):
            lines = BLENDS.get(lines, (lines,))
        c = np.zeros(len(self.free_lines))
        for name in lines:
            if name not in self.line_names:
                raise ConfigError(f"line {name!r} was not fitted; fitted: {', '.join(self.line_names)}")
            c += self.tie_matrix[self.line_names.index(name)]
        return c

    def line_flux(self, lines) -> tuple[np.ndarray, np.ndarray]:
        """Summed flux of several lines and its error (covariances included).

        Parameters
        ----------
        lines : str or sequence of str
            A line, a blend name (``"OII"``, ``"OIII"``, ``"NII"``, ``"SII"``)
            or several lines to add.

        Returns
        -------
        flux, err : ndarray, shape (n_spec,)
        """
        c = self._coefficients(lines)
        free = self.flux[:, [self.line_names.index(n) for n in self.free_lines]]
        used = c != 0
        total = np.sum(free[:, used] * c[used], axis=1)
        var = np.einsum("i,sij,j->s", c[used], self.covariance[:, used][:, :, used], c[used])
        return total, np.sqrt(var)

    def ratio(self, num_lines, den_lines) -> tuple[np.ndarray, np.ndarray]:
        """``log10`` of a flux ratio and its 1-sigma error.

        The numerator and denominator are sums of lines; their covariance
        (shared lines, ties, blends) is propagated to first order:
        ``sigma_log = sqrt(V_N/N^2 + V_D/D^2 - 2 C_ND/(N D)) / ln 10``.

        Parameters
        ----------
        num_lines, den_lines : str or sequence of str
            Lines (or blend names) summed in the numerator and denominator.

        Returns
        -------
        log_ratio, err : ndarray, shape (n_spec,)
            NaN where either sum is not positive or not finite.
        """
        cn = self._coefficients(num_lines)
        cd = self._coefficients(den_lines)
        free = self.flux[:, [self.line_names.index(n) for n in self.free_lines]]
        free0 = np.where(np.isfinite(free), free, 0.0)
        cov0 = np.where(np.isfinite(self.covariance), self.covariance, 0.0)
        num = free0 @ cn
        den = free0 @ cd
        vn = np.einsum("i,sij,j->s", cn, cov0, cn)
        vd = np.einsum("i,sij,j->s", cd, cov0, cd)
        cnd = np.einsum("i,sij,j->s", cn, cov0, cd)
        bad = ~(np.all(np.isfinite(free[:, (cn != 0) | (cd != 0)]), axis=1) & (num > 0) & (den > 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log10(num / den)
            var = vn / num**2 + vd / den**2 - 2.0 * cnd / (num * den)
            err = np.sqrt(np.maximum(var, 0.0)) / _LN10
        log_ratio[bad] = np.nan
        err[bad] = np.nan
        return log_ratio, err

    def as_dict(self, i: int) -> dict:
        """Results of spectrum ``i`` as a flat, JSON-serialisable dict.

        Keys: ``flux_<line>``, ``flux_err_<line>``, ``snr_<line>`` for every
        line, and ``velocity``, ``velocity_err``, ``sigma``, ``sigma_err``
        (km/s), ``chi2``, ``dof``, ``success``.
        """
        i = int(i)
        out: dict = {}
        for j, name in enumerate(self.line_names):
            out[f"flux_{name}"] = float(self.flux[i, j])
            out[f"flux_err_{name}"] = float(self.flux_err[i, j])
            out[f"snr_{name}"] = float(self.snr[i, j])
        for name in ("velocity", "velocity_err", "sigma", "sigma_err", "chi2"):
            out[name] = float(getattr(self, name)[i])
        out["dof"] = int(self.dof[i])
        out["success"] = bool(self.success[i])
        return out


# --------------------------------------------------------------------------
# Set-up: windows, lines, bounds
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Setup:
    """Everything about the grid and the model that is common to all spectra."""

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


def _as_edges(edges_lo, edges_hi):
    lo = np.asarray(edges_lo, dtype=float)
    hi = np.asarray(edges_hi, dtype=float)
    if lo.ndim != 1 or lo.shape != hi.shape or lo.size < 2:
        raise ConfigError(
            f"edges_lo, edges_hi: shapes {lo.shape}, {hi.shape}; expected two equal 1-D arrays "
            "of >= 2 channels"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ConfigError("edges_lo, edges_hi: edges must be finite with edges_hi > edges_lo, Angstrom")
    width = hi - lo
    if np.any(lo[1:] < hi[:-1] - 1e-6 * width[:-1]):
        raise ConfigError("edges_lo, edges_hi: channels must increase in wavelength without overlapping")
    return lo, hi


def _segments(lo, hi):
    """Start/stop indices of contiguous runs of channels."""
    gap = lo[1:] - hi[:-1] > 1e-6 * (hi - lo)[:-1]
    starts = np.concatenate([[0], np.nonzero(gap)[0] + 1])
    stops = np.concatenate([starts[1:], [lo.size]])
    return starts, stops


def _prepare(edges_lo, edges_hi, redshift, line_model, half_window) -> _Setup:
    if not isinstance(line_model, LineModel):
        raise ConfigError(f"line_model = {line_model!r}: expected a LineModel (see default_line_model)")
    redshift = float(redshift)
    if not (math.isfinite(redshift) and redshift > -1.0):
        raise ConfigError(f"redshift = {redshift}; allowed: finite and > -1")
    lo, hi = _as_edges(edges_lo, edges_hi)
    starts, stops = _segments(lo, hi)
    names = line_model.lines
    lam_obs = np.array([LINES[n].wavelength for n in names]) * (1.0 + redshift)

    # channel and segment of each line centre
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

    # intervals [a, b) of the full grid, one per line, then merged
    if half_window is None:
        intervals = sorted({(int(starts[s]), int(stops[s])) for s in seg_of_line})
    else:
        w = int(half_window)
        if w < 1 or w != half_window:
            raise ConfigError(f"half_window = {half_window!r}; allowed: an integer >= 1 (channels) or None")
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

    idx = np.concatenate([np.arange(a, b) for a, b in merged])
    n_win = len(merged)
    n_chan = idx.size
    lo_w, hi_w = lo[idx], hi[idx]
    mid = 0.5 * (lo_w + hi_w)
    base = np.zeros((idx.size, 2 * n_win))
    win_slices, win_lines, windows = [], [], []
    pos = 0
    for m, (a, b) in enumerate(merged):
        sl = slice(pos, pos + (b - a))
        pos += b - a
        members = np.array([k for k in range(len(names)) if a <= chan_of_line[k] < b], dtype=int)
        lam_ref = float(np.mean(lam_obs[members]))
        base[sl, 2 * m] = 1.0
        base[sl, 2 * m + 1] = mid[sl] - lam_ref
        win_slices.append(sl)
        win_lines.append(members)
        windows.append((float(lo[a]), float(hi[b - 1]), lam_ref))

    free = line_model.free_lines
    roots = [line_model.root(n) for n in names]
    line_col = np.array([free.index(r) for r, _ in roots], dtype=int)
    # blocks: windows linked by a free flux whose lines sit in several windows
    win_of_line = np.empty(len(names), dtype=int)
    for m, members in enumerate(win_lines):
        win_of_line[members] = m
    label = list(range(n_win))
    for j in range(len(free)):
        wins = sorted({int(win_of_line[k]) for k in range(len(names)) if line_col[k] == j})
        old, new = {label[m] for m in wins}, min(label[m] for m in wins)
        label = [new if lab in old else lab for lab in label]
    blocks = []
    line_local = np.zeros(len(names), dtype=int)
    for lab in sorted(set(label)):
        wins = [m for m in range(n_win) if label[m] == lab]
        chans = np.concatenate([np.arange(n_chan)[win_slices[m]] for m in wins])
        fcols = sorted({int(line_col[k]) for m in wins for k in win_lines[m]})
        bcols = [len(free) + 2 * m + i for m in wins for i in (0, 1)]
        parts, pos = [], 0
        for m in wins:
            size = win_slices[m].stop - win_slices[m].start
            parts.append((m, slice(pos, pos + size)))
            pos += size
            for k in win_lines[m]:
                line_local[k] = fcols.index(int(line_col[k]))
        blocks.append((chans, np.array(fcols + bcols, dtype=int), tuple(parts), len(fcols)))
    win_edges = []
    for sl in win_slices:
        touching = np.array_equal(hi_w[sl][:-1], lo_w[sl][1:])
        win_edges.append(np.concatenate([lo_w[sl], hi_w[sl][-1:]]) if touching else None)
    return _Setup(
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
        n_win=n_win,
        windows=tuple(windows),
        tie_matrix=line_model.tie_matrix,
        free_lines=free,
        blocks=tuple(blocks),
        win_edges=tuple(win_edges),
        line_local=line_local,
    )


def _weights(spectra, errors, setup):
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


def _reference_and_sigma(setup, y, w, reference_line, names):
    """Reference line (brightest in the stack) and a moment estimate of sigma, km/s."""
    stack = np.sum(np.where(w > 0.0, y, 0.0), axis=0)
    mid = 0.5 * (setup.lo + setup.hi)
    dlam = setup.hi - setup.lo
    sums = np.full(len(names), -np.inf)
    for sl, members in zip(setup.win_slices, setup.win_lines):
        level = np.median(stack[sl])
        for k in members:
            near = np.abs(mid[sl] - setup.lam_obs[k]) <= 2.5 * dlam[sl]
            sums[k] = np.sum(stack[sl][near] - level)
    if reference_line is None:
        k_ref = int(np.argmax(sums))
    else:
        if reference_line not in names:
            raise ConfigError(f"reference_line = {reference_line!r} is not in line_model.lines = {names!r}")
        k_ref = names.index(reference_line)
    chan = _channel_kms(setup, k_ref)

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


def _bounds(setup, y, w, names, sigma_init, sigma_min, reference_line):
    n_spec = y.shape[0]
    k_ref, chan, sig_mom = _reference_and_sigma(setup, y, w, reference_line, names)
    if sigma_init is None:
        s0 = np.full(n_spec, sig_mom)
    else:
        s0 = np.broadcast_to(np.asarray(sigma_init, dtype=float), (n_spec,)).copy()
        if not np.all(np.isfinite(s0) & (s0 > 0.0)):
            raise ConfigError(f"sigma_init = {sigma_init!r}; allowed: finite and > 0 km/s")
    sigma_min = _SIGMA_MIN_CHANNELS * chan if sigma_min is None else float(sigma_min)
    if not (math.isfinite(sigma_min) and sigma_min > 0.0):
        raise ConfigError(f"sigma_min = {sigma_min}; allowed: finite and > 0 km/s")
    s_lo = np.maximum(s0 - _SIGMA_BOUND_CHANNELS * chan, sigma_min)
    s_hi = np.maximum(s0 + _SIGMA_BOUND_CHANNELS * chan, s_lo * (1.0 + 1e-9))
    v_hi = _V_BOUND_CHANNELS * chan
    return chan, s0, (-v_hi, v_hi), np.stack([s_lo, s_hi], axis=1)


# --------------------------------------------------------------------------
# Model evaluation (batched)
# --------------------------------------------------------------------------


def _profiles(setup, v, s, deriv):
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


def _block_design(setup, blk, profs, n_batch):
    """Design matrix ``(B, C_b, p_b)`` of one block from the line profiles."""
    chans, cols, parts, n_lines_b = blk
    a = np.zeros((n_batch, chans.size, cols.size))
    a[:, :, n_lines_b:] = setup.base[np.ix_(chans, cols[n_lines_b:] - setup.n_free)]
    for m, lsl in parts:
        prof = profs[m][0]
        for j, k in enumerate(setup.win_lines[m]):
            a[:, lsl, setup.line_local[k]] += setup.line_coef[k] * prof[:, :, j]
    return a


def _block_nonlinear(setup, blk, profs, beta_b):
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


def _solve_normal(m, b, active, want_inverse=False):
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


def _projected_norm2(m, b, active):
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


def _evaluate(setup, v, s, y, w, active, full=False):
    """Profile chi^2 and the reduced Gauss-Newton system at ``(v, s)`` per spectrum.

    The linear parameters are solved block by block (blocks share only
    ``v`` and ``sigma``). Returns ``chi2`` (B,), ``beta`` (B, p), the
    gradient-like vector ``g = J_n^T W r`` (B, 2) and the Schur complement
    ``h`` (B, 2, 2) of the Gauss-Newton matrix on ``(v, sigma)``; with
    ``full`` also ``J^T W J`` over all parameters (B, p + 2, p + 2).
    """
    n = v.size
    p = setup.n_free + 2 * setup.n_win
    profs = _profiles(setup, v, s, deriv=True)
    chi2 = np.zeros(n)
    beta = np.zeros((n, p))
    g = np.zeros((n, 2))
    h = np.zeros((n, 2, 2))
    hess = np.zeros((n, p + 2, p + 2)) if full else None
    for blk in setup.blocks:
        chans, cols = blk[0], blk[1]
        a = _block_design(setup, blk, profs, n)
        yb, wb = y[:, chans], w[:, chans]
        aw = a * wb[:, :, None]
        m = np.matmul(aw.transpose(0, 2, 1), a)
        bvec = np.matmul(yb[:, None, :], aw)[:, 0, :]
        bb, minv = _solve_normal(m, bvec, active[:, cols], want_inverse=True)
        r = yb - np.matmul(a, bb[:, :, None])[:, :, 0]
        chi2 += np.sum(wb * r * r, axis=1)
        jn = _block_nonlinear(setup, blk, profs, bb)
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


def _grid_chi2(setup, y, w, active, v_grid, s_grid):
    """Profile chi^2 of all spectra at every (v, s) grid point, shape (G, S).

    The grid is common to all spectra, so the design matrix of each grid
    point is shared and the weighted normal matrices of all spectra are one
    matrix product. chi^2 is a sum over independent blocks (windows not
    linked by a tie), each solved on its own small set of columns.
    """
    vv, ss = np.meshgrid(v_grid, s_grid, indexing="ij")
    vv, ss = vv.ravel(), ss.ravel()
    profs = _profiles(setup, vv, ss, deriv=False)
    n_spec = y.shape[0]
    wy = w * y
    out = np.zeros((vv.size, n_spec))
    nf = setup.n_free
    for blk in setup.blocks:
        chans, cols = blk[0], blk[1]
        a_b = _block_design(setup, blk, profs, vv.size)       # (G, Cb, pb)
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
            quad = _projected_norm2(m, b, act_b)
            out[g0 : g0 + ng] += yy[None, :] - quad
    return out, vv, ss


def _active_columns(setup, w, s0):
    """Which linear parameters each spectrum constrains, (S, p) bool."""
    n_spec = w.shape[0]
    valid = w > 0.0
    profs = _profiles(setup, np.zeros(1), np.array([float(np.median(s0))]), deriv=False)
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


# --------------------------------------------------------------------------
# Public fitting functions
# --------------------------------------------------------------------------


def fit_lines(
    spectra,
    errors,
    edges_lo,
    edges_hi,
    redshift: float,
    line_model: LineModel,
    *,
    sigma_init=None,
    half_window: int | None = None,
    reference_line: str | None = None,
    sigma_min: float | None = None,
    n_grid: tuple[int, int] = (9, 13),
    max_iter: int = 40,
) -> LineFitResult:
    """Fit the line model to many spectra at once (variable projection).

    Parameters
    ----------
    spectra : array_like, shape (n_spec, n_chan) or (n_chan,)
        Flux in each channel (channel-integrated, e.g. erg/s/cm^2 per
        channel). Non-finite values are masked.
    errors : array_like, same shape as ``spectra``
        1-sigma error of each channel, same unit; non-finite or <= 0 masks
        the channel.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Lower and upper channel edges, observed vacuum Angstrom, increasing;
        gaps between channels are allowed (see the module notes on windows).
    redshift : float
        Redshift guess, > -1; ``velocity`` is measured from it.
    line_model : LineModel
        Lines and ties (see :func:`default_line_model`).
    sigma_init : float or array_like of shape (n_spec,), optional
        Initial observed width, km/s, > 0; ``sigma`` is bounded to
        ``sigma_init +- 5`` channels. Default: the second moment of the
        reference line in the stack of all spectra.
    half_window : int or None, optional
        ``None``: each contiguous segment of the grid holding a line is a
        fitting window. An integer ``W >= 1``: ``+-W`` channels around each
        line (merged when they overlap).
    reference_line : str or None, optional
        Line whose local channel width (km/s) defines "one channel" for the
        bounds. Default: the brightest line of the stack.
    sigma_min : float or None, optional
        Lower bound of ``sigma``, km/s; > 0 (e.g. the LSF sigma). Default:
        half a channel. Spectrographs sample the LSF with >= 2 channels per
        FWHM, so a narrower observed line is unphysical; it is where fits to
        noise collapse into a spike inside one channel, a degenerate model
        (the velocity and width are then unconstrained).
    n_grid : (int, int), optional
        Points of the coarse grid in ``v`` and ``sigma``; each >= 2.
    max_iter : int, optional
        Maximum Levenberg-Marquardt iterations.

    Returns
    -------
    LineFitResult
    """
    setup = _prepare(edges_lo, edges_hi, redshift, line_model, half_window)
    y, w = _weights(spectra, errors, setup)
    names = line_model.lines
    chan, s0, vb, sb = _bounds(setup, y, w, names, sigma_init, sigma_min, reference_line)
    nv, ns = (int(n) for n in n_grid)
    if nv < 2 or ns < 2:
        raise ConfigError(f"n_grid = {n_grid!r}; allowed: two integers >= 2")

    n_spec = y.shape[0]
    res = _empty_results(n_spec, setup)
    act_all = _active_columns(setup, w, s0)
    for c0 in range(0, n_spec, _CHUNK):
        sel = slice(c0, min(n_spec, c0 + _CHUNK))
        _fit_block(setup, y[sel], w[sel], act_all[sel], vb, sb[sel], (nv, ns), max_iter, res, sel)
    return _result(setup, names, res, redshift, chan, vb, sb, "varpro")


def _empty_results(n_spec, setup):
    p = setup.n_free + 2 * setup.n_win
    return {
        "beta": np.full((n_spec, p), np.nan),
        "cov": np.full((n_spec, p + 2, p + 2), np.nan),
        "v": np.full(n_spec, np.nan),
        "s": np.full(n_spec, np.nan),
        "chi2": np.full(n_spec, np.nan),
        "dof": np.zeros(n_spec, dtype=int),
        "success": np.zeros(n_spec, dtype=bool),
        "active": np.zeros((n_spec, p), dtype=bool),
    }


def _bfgs(b, step, dy):
    """BFGS update of batched 2x2 curvature matrices ``b`` (kept if ``step.dy <= 0``)."""
    sy = np.sum(step * dy, axis=1)
    bs = np.matmul(b, step[:, :, None])[:, :, 0]
    sbs = np.sum(step * bs, axis=1)
    ok = (sy > 1e-12 * np.sqrt(np.sum(step**2, 1) * np.sum(dy**2, 1))) & (sbs > 0.0)
    sy = np.where(ok, sy, 1.0)
    sbs = np.where(ok, sbs, 1.0)
    new = (
        b
        - bs[:, :, None] * bs[:, None, :] / sbs[:, None, None]
        + dy[:, :, None] * dy[:, None, :] / sy[:, None, None]
    )
    return np.where(ok[:, None, None], new, b)


def _solve2(h, g):
    """Solve batched 2x2 systems ``h x = g``; 0 where singular."""
    det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    ok = np.isfinite(det) & (np.abs(det) > 1e-300)
    det = np.where(ok, det, 1.0)
    x = np.stack(
        [h[:, 1, 1] * g[:, 0] - h[:, 0, 1] * g[:, 1], h[:, 0, 0] * g[:, 1] - h[:, 1, 0] * g[:, 0]], axis=1
    ) / det[:, None]
    return np.where(ok[:, None] & np.isfinite(x), x, 0.0)


def _fit_block(setup, y, w, active, vb, sb, n_grid, max_iter, res, sel):
    """Fit the spectra ``sel`` (one chunk) and store the results in ``res``."""
    n_valid = np.count_nonzero(w > 0.0, axis=1)
    n_par = np.count_nonzero(active, axis=1) + 2
    ok = (n_valid >= n_par) & np.any(active[:, : setup.n_free], axis=1)
    if not np.any(ok):
        return
    y, w, active, sb = y[ok], w[ok], active[ok], sb[ok]

    # coarse grid common to all spectra, points outside a spectrum's bounds ignored
    v_grid = np.linspace(vb[0], vb[1], n_grid[0])
    s_grid = np.linspace(sb[:, 0].min(), sb[:, 1].max(), n_grid[1])
    chi2_grid, vv, ss = _grid_chi2(setup, y, w, active, v_grid, s_grid)
    inside = (ss[:, None] >= sb[None, :, 0]) & (ss[:, None] <= sb[None, :, 1])
    chi2_grid = np.where(inside & np.isfinite(chi2_grid), chi2_grid, np.inf)
    best = np.argmin(chi2_grid, axis=0)
    v = vv[best].copy()
    s = np.where(np.isfinite(chi2_grid[best, np.arange(y.shape[0])]), ss[best], 0.5 * (sb[:, 0] + sb[:, 1]))
    s = np.clip(s, sb[:, 0], sb[:, 1])

    # Levenberg-Marquardt on (v, s); curvature: reduced Gauss-Newton + BFGS
    lo = np.stack([np.full(v.size, vb[0]), sb[:, 0]], axis=1)
    hi = np.stack([np.full(v.size, vb[1]), sb[:, 1]], axis=1)
    theta = np.stack([v, s], axis=1)
    chi2, _, g, h, _ = _evaluate(setup, theta[:, 0], theta[:, 1], y, w, active)
    lam = np.full(v.size, 1e-3)
    todo = np.ones(v.size, dtype=bool)
    converged = np.zeros(v.size, dtype=bool)
    for _ in range(max_iter):
        i = np.nonzero(todo)[0]
        # active set: a parameter on a bound whose descent direction points
        # outwards is held there; the Newton system is solved for the others
        pinned = ((theta[i] <= lo[i]) & (g[i] < 0.0)) | ((theta[i] >= hi[i]) & (g[i] > 0.0))
        keep = ~pinned
        gi = np.where(keep, g[i], 0.0)
        hk = h[i] * (keep[:, :, None] & keep[:, None, :]) + np.eye(2) * pinned[:, :, None]
        # converged when the Gauss-Newton step would lower chi^2 by a
        # negligible amount (a parameter change << its error)
        dec = np.sum(gi * _solve2(hk, gi), axis=1)
        # relative to the reduced chi^2: where the model cannot match the
        # data exactly (a rotating disk's line is not one Gaussian at S/N 1e4)
        # chi^2 is large and rounding alone exceeds an absolute tolerance
        n_dof = np.maximum(np.count_nonzero(w[i] > 0.0, axis=1) - 2, 1)
        tol = _CHI2_TOL * np.maximum(1.0, chi2[i] / n_dof)
        done = ~(np.abs(dec) > tol) | (lam[i] > 1e12)
        converged[i[done]] = True
        todo[i[done]] = False
        keep, gi, hk = keep[~done], gi[~done], hk[~done]
        i = i[~done]
        if i.size == 0:
            break
        hd = hk + lam[i, None, None] * (hk * np.eye(2))
        trial = np.clip(theta[i] + _solve2(hd, gi), lo[i], hi[i])
        c_t, _, g_t, h_t, _ = _evaluate(setup, trial[:, 0], trial[:, 1], y[i], w[i], active[i])
        # At low S/N the Gauss-Newton matrix misjudges the curvature of the
        # profile chi^2, so steps fall short or overshoot. A parabola through
        # chi^2(0), its slope -2 g.delta and chi^2(1) along the step gives
        # the step length alpha to try next (a one-point line search).
        delta = trial - theta[i]
        slope = -2.0 * np.sum(g[i] * delta, axis=1)
        curv = c_t - chi2[i] - slope
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(curv > 0.0, -slope / (2.0 * curv), 4.0)
        alpha = np.clip(np.where(np.isfinite(alpha), alpha, 1.0), 0.1, 10.0)
        ext = (slope < 0.0) & (np.abs(alpha - 1.0) > 0.3)
        if np.any(ext):
            j = np.nonzero(ext)[0]
            t2 = np.clip(theta[i[j]] + alpha[j, None] * delta[j], lo[i[j]], hi[i[j]])
            c2, _, g2, h2, _ = _evaluate(setup, t2[:, 0], t2[:, 1], y[i[j]], w[i[j]], active[i[j]])
            take = c2 < c_t[j]
            k = j[take]
            trial[k], c_t[k], g_t[k], h_t[k] = t2[take], c2[take], g2[take], h2[take]
        better = c_t <= chi2[i]
        acc = i[better]
        # secant (BFGS) correction: the curvature matrix is made to reproduce
        # the change of the gradient over the step just taken
        h_t = _bfgs(h_t, trial - theta[i], g[i] - g_t)
        theta[acc], chi2[acc], g[acc], h[acc] = trial[better], c_t[better], g_t[better], h_t[better]
        lam[acc] = np.maximum(lam[acc] * 0.1, 1e-12)
        rej = i[~better]
        lam[rej] = lam[rej] * 10.0

    # covariance of all parameters from the full Jacobian at the optimum
    chi2, beta, _, _, hess = _evaluate(setup, theta[:, 0], theta[:, 1], y, w, active, full=True)
    act_full = np.concatenate([active, np.ones((active.shape[0], 2), dtype=bool)], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # degenerate fits give inf: flagged below
        _, cov = _solve_normal(hess, np.zeros(hess.shape[:2]), act_full, want_inverse=True)
    cov = np.where(act_full[:, :, None] & act_full[:, None, :], cov, np.nan)

    rows = np.arange(sel.start, sel.stop)[ok]
    var = np.einsum("sii->si", cov)
    var_ok = np.where(act_full, np.isfinite(var) & (var > 0.0), True)
    good = converged & np.isfinite(chi2) & np.all(var_ok, axis=1)
    beta = np.where(active, beta, np.nan)
    res["beta"][rows] = beta
    res["cov"][rows] = cov
    res["v"][rows] = theta[:, 0]
    res["s"][rows] = theta[:, 1]
    res["chi2"][rows] = chi2
    res["dof"][rows] = np.count_nonzero(w > 0.0, axis=1) - np.count_nonzero(act_full, axis=1)
    res["success"][rows] = good
    res["active"][rows] = active


def _result(setup, names, res, redshift, chan, vb, sb, method):
    nf = setup.n_free
    ok = res["success"]
    free = np.where(ok[:, None], res["beta"][:, :nf], np.nan)
    cov = np.where(ok[:, None, None], res["cov"][:, :nf, :nf], np.nan)
    t = setup.tie_matrix
    # each line is coef x one free flux (no matrix product: NaN * 0 is NaN)
    flux = free[:, setup.line_col] * setup.line_coef
    err = np.sqrt(np.einsum("sii->si", cov))[:, setup.line_col] * setup.line_coef
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / err
    n_spec = flux.shape[0]
    with np.errstate(invalid="ignore"):
        v_err = np.sqrt(res["cov"][:, -2, -2])
        s_err = np.sqrt(res["cov"][:, -1, -1])
    base = res["beta"][:, nf:].reshape(n_spec, setup.n_win, 2)

    def nan_if_bad(x):
        return np.where(ok, x, np.nan)

    return LineFitResult(
        line_names=tuple(names),
        free_lines=setup.free_lines,
        tie_matrix=t.copy(),
        flux=flux,
        flux_err=err,
        snr=snr,
        velocity=nan_if_bad(res["v"]),
        velocity_err=nan_if_bad(v_err),
        sigma=nan_if_bad(res["s"]),
        sigma_err=nan_if_bad(s_err),
        chi2=nan_if_bad(res["chi2"]),
        dof=res["dof"].copy(),
        success=ok.copy(),
        covariance=cov,
        baseline=np.where(ok[:, None, None], base, np.nan),
        windows=setup.windows,
        redshift=float(redshift),
        channel_kms=float(chan),
        sigma_bounds=np.asarray(sb, dtype=float).copy(),
        velocity_bounds=(float(vb[0]), float(vb[1])),
        method=method,
    )


def fit_lines_curve_fit(
    spectra,
    errors,
    edges_lo,
    edges_hi,
    redshift: float,
    line_model: LineModel,
    *,
    sigma_init=None,
    half_window: int | None = None,
    reference_line: str | None = None,
    sigma_min: float | None = None,
) -> LineFitResult:
    """The same model fitted one spectrum at a time with ``scipy.optimize.curve_fit``.

    This is what a typical observer script does: a loop over spectra, each
    fitted by bounded non-linear least squares (``method="trf"``) from
    data-driven starting values (``v = 0``, ``sigma = sigma_init``, line
    fluxes from the baseline-subtracted flux near each line, baseline from
    the window median), with ``absolute_sigma=True``. Windows, bounds and
    ``sigma_init`` are those of :func:`fit_lines`; parameters are the same.
    It is slow and serves as a benchmark and an independent check.

    Parameters
    ----------
    spectra, errors, edges_lo, edges_hi, redshift, line_model
        As in :func:`fit_lines`.
    sigma_init, half_window, reference_line, sigma_min
        As in :func:`fit_lines`.

    Returns
    -------
    LineFitResult
        With ``method = "curve_fit"``; ``success`` is False where
        ``curve_fit`` raised or the covariance is not finite.
    """
    from scipy.optimize import curve_fit

    setup = _prepare(edges_lo, edges_hi, redshift, line_model, half_window)
    y_all, w_all = _weights(spectra, errors, setup)
    names = line_model.lines
    chan, s0, vb, sb = _bounds(setup, y_all, w_all, names, sigma_init, sigma_min, reference_line)
    n_spec = y_all.shape[0]
    nf, nw = setup.n_free, setup.n_win
    p = nf + 2 * nw
    res = _empty_results(n_spec, setup)
    act_all = _active_columns(setup, w_all, s0)
    mid = 0.5 * (setup.lo + setup.hi)
    dlam = setup.hi - setup.lo
    win_of_chan = np.empty(setup.lo.size, dtype=int)
    for m, sl in enumerate(setup.win_slices):
        win_of_chan[sl] = m
    win_of_line = np.empty(len(names), dtype=int)
    for m, members in enumerate(setup.win_lines):
        win_of_line[members] = m
    lam_ref = np.array([wd[2] for wd in setup.windows])

    def model(chan_idx, *params):
        # params: free fluxes, (a, b) per window, v, sigma -- on channels chan_idx
        prm = np.asarray(params)
        chan_idx = np.asarray(chan_idx).astype(int)  # curve_fit passes xdata as float
        v, sig = prm[-2], prm[-1]
        lo_c, hi_c = setup.lo[chan_idx], setup.hi[chan_idx]
        wc = win_of_chan[chan_idx]
        out = prm[nf + 2 * wc] + prm[nf + 2 * wc + 1] * (mid[chan_idx] - lam_ref[wc])
        for k in range(len(names)):
            mu = setup.lam_obs[k] * (1.0 + v / C_KMS)
            sw = mu * sig / C_KMS
            frac = 0.5 * (erf((hi_c - mu) / (_SQRT2 * sw)) - erf((lo_c - mu) / (_SQRT2 * sw)))
            amp = setup.line_coef[k] * prm[setup.line_col[k]]
            out = out + np.where(wc == win_of_line[k], amp * frac, 0.0)
        return out

    for i in range(n_spec):
        valid = w_all[i] > 0.0
        act = act_all[i]
        n_par = np.count_nonzero(act) + 2
        if np.count_nonzero(valid) < n_par or not np.any(act[:nf]):
            continue
        chans = np.nonzero(valid)[0]
        y = y_all[i, chans]
        e = 1.0 / np.sqrt(w_all[i, chans])
        # starting values
        p0 = np.zeros(p + 2)
        for m, sl in enumerate(setup.win_slices):
            vals = y_all[i, sl][valid[sl]]
            p0[nf + 2 * m] = np.median(vals) if vals.size else 0.0
        for k in range(len(names)):
            if setup.line_coef[k] != 1.0:
                continue
            near = valid & (np.abs(mid - setup.lam_obs[k]) <= 2.5 * s0[i] / C_KMS * setup.lam_obs[k] + dlam)
            near &= win_of_chan == win_of_line[k]
            p0[setup.line_col[k]] = np.sum(y_all[i, near] - p0[nf + 2 * win_of_chan[near]])
        p0[-2], p0[-1] = 0.0, s0[i]
        lower = np.full(p + 2, -np.inf)
        upper = np.full(p + 2, np.inf)
        lower[-2:], upper[-2:] = (vb[0], sb[i, 0]), (vb[1], sb[i, 1])
        p0[-1] = np.clip(p0[-1], sb[i, 0], sb[i, 1])
        # parameters a spectrum cannot constrain are held at zero
        free_par = np.concatenate([act, [True, True]])

        def fmodel(x, *q, _free=free_par):
            full = np.zeros(p + 2)
            full[_free] = q
            return model(x, *full)

        try:
            popt, pcov = curve_fit(
                fmodel, chans, y, p0=p0[free_par], sigma=e, absolute_sigma=True,
                bounds=(lower[free_par], upper[free_par]), method="trf",
                x_scale="jac", ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=2000,
            )
        except (RuntimeError, ValueError):
            continue
        full = np.full(p + 2, np.nan)
        full[free_par] = popt
        cov = np.full((p + 2, p + 2), np.nan)
        cov[np.ix_(free_par, free_par)] = pcov
        r = (y - fmodel(chans, *popt)) / e
        res["beta"][i] = full[:p]
        res["cov"][i] = cov
        res["v"][i], res["s"][i] = full[-2], full[-1]
        res["chi2"][i] = float(r @ r)
        res["dof"][i] = chans.size - np.count_nonzero(free_par)
        res["success"][i] = bool(np.all(np.isfinite(np.diag(pcov)) & (np.diag(pcov) > 0.0)))
        res["active"][i] = act
    return _result(setup, names, res, redshift, chan, vb, sb, "curve_fit")


# --------------------------------------------------------------------------
# Error spectrum from the RMS in a moving window
# --------------------------------------------------------------------------


def rms_error_spectrum(
    spectra,
    edges_lo,
    edges_hi,
    line_waves_obs,
    *,
    mask_kms: float = 500.0,
    window: int = 160,
    min_channels: int = 10,
) -> np.ndarray:
    """Error spectrum from the scatter of line-free channels in a moving window.

    For every channel, the channels of a window of ``window`` channels
    centred on it (shifted to stay inside the contiguous segment of the grid
    it belongs to; a segment shorter than ``window`` is used whole) are
    taken; channels within ``+-mask_kms`` of any line, and non-finite ones,
    are dropped; a straight line is fitted to the rest and the error is the
    RMS of the residuals with ``n - 2`` degrees of freedom, so a sloping
    continuum does not inflate it.

    Parameters
    ----------
    spectra : array_like, shape (n_spec, n_chan) or (n_chan,)
        Flux per channel.
    edges_lo, edges_hi : array_like, shape (n_chan,)
        Channel edges, observed Angstrom (gaps allowed).
    line_waves_obs : array_like of float
        Observed wavelengths of the lines to mask, Angstrom.
    mask_kms : float, optional
        Half-width of the masked region around each line, km/s; >= 0.
    window : int, optional
        Width of the moving window, channels; >= 3.
    min_channels : int, optional
        Fewest unmasked channels for an estimate; >= 3. Below it: NaN.

    Returns
    -------
    ndarray, same shape as ``spectra``
        1-sigma error per channel, in the unit of ``spectra``.
    """
    lo, hi = _as_edges(edges_lo, edges_hi)
    y = np.asarray(spectra, dtype=float)
    one = y.ndim == 1
    y = np.atleast_2d(y)
    if y.ndim != 2 or y.shape[1] != lo.size:
        raise ConfigError(f"spectra: shape {np.shape(spectra)}; expected (n_spec, {lo.size}) or ({lo.size},)")
    window, min_channels = int(window), int(min_channels)
    if window < 3:
        raise ConfigError(f"window = {window}; allowed: >= 3 channels")
    if min_channels < 3:
        raise ConfigError(f"min_channels = {min_channels}; allowed: >= 3")
    mask_kms = float(mask_kms)
    if not (math.isfinite(mask_kms) and mask_kms >= 0.0):
        raise ConfigError(f"mask_kms = {mask_kms}; allowed: >= 0 km/s")
    lines = np.atleast_1d(np.asarray(line_waves_obs, dtype=float))
    mid = 0.5 * (lo + hi)
    near_line = np.zeros(lo.size, dtype=bool)
    for lam in lines:
        near_line |= np.abs(mid - lam) <= lam * mask_kms / C_KMS
    valid = np.isfinite(y) & ~near_line[None, :]

    out = np.full(y.shape, np.nan)
    starts, stops = _segments(lo, hi)
    for a, b in zip(starts, stops):
        n = b - a
        seg = y[:, a:b]
        ok = valid[:, a:b].astype(float)
        ys = np.where(ok > 0, seg, 0.0)
        # subtract the segment mean to reduce cancellation in the sums
        cnt = ok.sum(axis=1, keepdims=True)
        ys = np.where(ok > 0, ys - ys.sum(axis=1, keepdims=True) / np.maximum(cnt, 1.0), 0.0)
        x = np.arange(n, dtype=float) - 0.5 * (n - 1)

        def csum(q):
            return np.concatenate([np.zeros((q.shape[0], 1)), np.cumsum(q, axis=1)], axis=1)

        c1, cx, cxx = csum(ok), csum(ok * x), csum(ok * x * x)
        cy, cxy, cyy = csum(ys), csum(ys * x), csum(ys * ys)
        wlen = min(window, n)
        j = np.arange(n)
        start = np.clip(j - wlen // 2, 0, n - wlen)
        stop = start + wlen

        def win(c):
            return c[:, stop] - c[:, start]

        s1, sx, sxx, sy, sxy, syy = (win(c) for c in (c1, cx, cxx, cy, cxy, cyy))
        with np.errstate(divide="ignore", invalid="ignore"):
            vxx = sxx - sx * sx / s1
            vxy = sxy - sx * sy / s1
            vyy = syy - sy * sy / s1
            rss = vyy - np.where(vxx > 0, vxy * vxy / vxx, 0.0)
            var = np.maximum(rss, 0.0) / (s1 - 2.0)
        out[:, a:b] = np.where(s1 >= min_channels, np.sqrt(var), np.nan)
    return out[0] if one else out
