"""Observed log ratios of the diagnostics in every bin, their covariance and an S/N gate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ... import validate
from ...errors import ConfigError
from ...physics.calibrations import Diagnostic
from ...physics.lines import BLENDS
from ..fluxes import BinFluxes, check_bins, readonly
from ._common import LN10, join, resolve_diagnostics

__all__ = ["RatioSet", "log_ratios", "GATES"]

#: S/N gates of :func:`log_ratios`.
GATES = ("lines", "ratio")


@dataclass(frozen=True, eq=False)
class RatioSet:
    """Observed log ratios of several diagnostics in every bin.

    Attributes
    ----------
    diagnostics : tuple of Diagnostic
        The diagnostics, the column order.
    log_ratio : ndarray, shape (n_bins, n_diag)
        Observed log10 R, dex; NaN where it cannot be formed.
    cov : ndarray, shape (n_bins, n_diag, n_diag)
        Measurement covariance of the log ratios, dex^2 (first order in the
        flux covariance; the diagonal is ``err**2``). NaN rows for
        diagnostics whose lines are not measured.
    usable : ndarray of bool, shape (n_bins, n_diag)
        The ratio exists and passed the S/N gate.
    reasons : tuple of tuple of str
        ``reasons[j][b]`` says why diagnostic ``j`` is unusable in bin ``b``
        ("" when usable).
    snr_min : float
        S/N threshold of the gate.
    gate : str
        ``"lines"`` or ``"ratio"`` (see :func:`log_ratios`).
    covariance : bool
        Whether off-diagonal flux covariances were propagated.
    """

    diagnostics: tuple[Diagnostic, ...]
    log_ratio: np.ndarray
    cov: np.ndarray
    usable: np.ndarray
    reasons: tuple[tuple[str, ...], ...]
    snr_min: float
    gate: str
    covariance: bool

    def __post_init__(self):
        for name in ("log_ratio", "cov", "usable"):
            readonly(getattr(self, name))

    @property
    def keys(self) -> tuple[str, ...]:
        """Diagnostic keys, the column order."""
        return tuple(d.key for d in self.diagnostics)

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.log_ratio.shape[0]

    @property
    def err(self) -> np.ndarray:
        """1-sigma error of the log ratios, dex, shape (n_bins, n_diag)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diagonal(self.cov, axis1=1, axis2=2))

    def index(self, key: str) -> int:
        """Column of diagnostic ``key``."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise ConfigError(f"diagnostic {key!r} not in this set; have {', '.join(self.keys)}") from None

    def reason(self, key: str) -> tuple[str, ...]:
        """Per-bin reasons why ``key`` is unusable ("" where usable)."""
        return self.reasons[self.index(key)]


def _blend_of(line: str) -> str:
    """The blend a line belongs to (itself if none)."""
    for name, members in BLENDS.items():
        if line in members:
            return name
    return line


def _gate_units(ratio: Mapping) -> list[dict]:
    """Observational units of a ratio: each numerator/denominator sum split into
    blends ([OII] 3727+3730, [OIII] 4960+5008, ...) and single lines."""
    units, seen = [], set()
    for term in ratio["terms"]:
        for part in term["parts"]:
            for side in ("numerator", "denominator"):
                groups: dict[str, dict[str, float]] = {}
                for line, w in part[side].items():
                    groups.setdefault(_blend_of(line), {})[line] = float(w)
                for g in groups.values():
                    key = tuple(sorted(g.items()))
                    if key not in seen:
                        seen.add(key)
                        units.append(g)
    return units


def _ratio_jacobian(ratio: Mapping, bins: BinFluxes) -> np.ndarray:
    """d log10 R / d flux, shape (n_bins, n_lines); NaN where a sum is not positive."""
    flux = np.where(np.isfinite(bins.flux), bins.flux, 0.0)
    jac = np.zeros(flux.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for term in ratio["terms"]:
            s = np.zeros(flux.shape[0])
            ds = np.zeros(flux.shape)
            for part in term["parts"]:
                a = bins._weights(part["numerator"])
                b = bins._weights(part["denominator"])
                num, den = flux @ a, flux @ b
                s = s + num / den
                ds = ds + a[None, :] / den[:, None] - (num / den**2)[:, None] * b[None, :]
            jac = jac + float(term["weight"]) / (LN10 * s)[:, None] * ds
    return jac


def log_ratios(bins: BinFluxes, diagnostics, *, snr_min: float = 2.5, gate: str = "lines",
               covariance: bool = True) -> RatioSet:
    """Observed log ratios, their covariance and an S/N gate.

    Parameters
    ----------
    bins : BinFluxes
        Line fluxes and covariance of every bin.
    diagnostics : sequence of str or Diagnostic
        Diagnostics to evaluate, by key (``"S25_R3"``) or object.
    snr_min : float, optional
        S/N threshold, >= 0. The default 2.5 is the Lee et al. (2026) recipe
        (DESIGN.md, "Recovery").
    gate : {"lines", "ratio"}, optional
        ``"lines"``: every line entering the ratio has flux / err >= snr_min.
        A blended doublet inside one sum ([OII] 3727+3730, [OIII]
        4960+5008, [NII], [SII]) is one observed line: its summed flux and
        error are gated, because an untied, unresolved doublet has
        anti-correlated, individually poorly measured components.
        ``"ratio"``: the ratio itself is detected, |R| / err(R) >= snr_min,
        i.e. sigma(log R) <= 1 / (ln 10 snr_min).
    covariance : bool, optional
        Propagate the full flux covariance (True) or only the flux variances
        (False, lines treated as independent). The covariance between the
        log ratios of different diagnostics that share lines is computed in
        both cases.

    Returns
    -------
    RatioSet
        A diagnostic whose lines are not all in ``bins.names`` is unusable
        in every bin with reason ``"line X not measured"``.

    Notes
    -----
    The error of ``log R = sum_j w_j log10(sum_k N_jk / D_jk)`` is propagated
    with the analytic Jacobian
    ``d log R / d f_l = sum_j w_j / (ln 10 S_j) sum_k (a_jkl / D_jk - N_jk b_jkl / D_jk^2)``
    (``a``, ``b``: weights of line ``l`` in ``N_jk``, ``D_jk``), and
    ``cov(log R) = J cov(f) J^T``.
    """
    bins = check_bins(bins)
    diags = resolve_diagnostics(diagnostics)
    snr_min = validate.number("snr_min", snr_min, lo=0.0)
    validate.choice("gate", gate, GATES)
    n, n_lines = bins.flux.shape
    m = len(diags)
    cov_f = bins.cov if covariance else bins.cov * np.eye(n_lines)
    cov0 = np.where(np.isfinite(cov_f), cov_f, 0.0)
    logr = np.full((n, m), np.nan)
    jac = np.zeros((n, m, n_lines))
    usable = np.zeros((n, m), dtype=bool)
    reasons: list[tuple[str, ...]] = []
    for j, d in enumerate(diags):
        absent = _unavailable(d, bins.names)
        if absent:
            reasons.append((absent,) * n)
            continue
        lr, jj, fail, why = _one_ratio(bins, d, cov_f, cov0, snr_min, gate)
        logr[:, j] = lr
        jac[:, j, :] = np.where(np.isfinite(jj), jj, 0.0)
        usable[:, j] = ~fail
        reasons.append(tuple(join(w) for w in why))
    cov_r = np.einsum("sai,sij,sbj->sab", jac, cov0, jac)
    for j, d in enumerate(diags):
        if _unavailable(d, bins.names):
            cov_r[:, j, :] = np.nan
            cov_r[:, :, j] = np.nan
    return RatioSet(diags, logr, cov_r, usable, tuple(reasons), snr_min, gate, bool(covariance))


def _unavailable(d: Diagnostic, names) -> str:
    """Why ``d`` cannot be formed in any bin ("" if it can)."""
    if not d.usable:
        return f"calibration {d.key} is flagged unusable ({d.status})"
    missing = sorted(d.lines - set(names))
    if missing:
        word = "line" if len(missing) == 1 else "lines"
        return f"{word} {', '.join(missing)} not measured"
    return ""


def _one_ratio(bins: BinFluxes, d: Diagnostic, cov_f, cov0, snr_min: float, gate: str):
    """Log ratio, its Jacobian, the failed-gate mask and per-bin reasons of one diagnostic."""
    n = bins.n_bins
    why: list[list[str]] = [[] for _ in range(n)]
    fail = np.zeros(n, dtype=bool)
    var_f = np.diagonal(cov_f, axis1=1, axis2=2)
    for line in sorted(d.lines):
        i = bins.names.index(line)
        bad = ~(np.isfinite(bins.flux[:, i]) & np.isfinite(var_f[:, i]) & (var_f[:, i] >= 0))
        _fail(fail, bad, why, f"line {line} flux or error not finite")
    if gate == "lines":
        _gate_lines(bins, d, cov0, snr_min, fail, why)
    lr = d.log_ratio_from_fluxes({line: bins.flux[:, bins.names.index(line)]
                                  for line in d.lines})
    lr = np.broadcast_to(lr, (n,)).astype(float)
    jj = _ratio_jacobian(d.ratio, bins)
    sig = np.sqrt(np.maximum(np.einsum("si,sij,sj->s", jj, cov0, jj), 0.0))
    _fail(fail, ~fail & ~np.isfinite(lr), why, "ratio not positive")
    _fail(fail, ~fail & ~np.isfinite(sig), why, "ratio error not finite")
    if gate == "ratio":
        with np.errstate(divide="ignore"):
            rsnr = 1.0 / (LN10 * sig)
        low = ~fail & ~(rsnr >= snr_min)
        _fail(fail, low, why, lambda b: f"ratio S/N = {rsnr[b]:.2f} < {snr_min:g}")
    return lr, jj, fail, why


def _gate_lines(bins: BinFluxes, d: Diagnostic, cov0, snr_min: float, fail, why) -> None:
    """Every observed line or blend of ``d`` must have S/N >= snr_min (updates fail, why)."""
    for unit in _gate_units(d.ratio):
        c = bins._weights(unit)
        f, v = bins._sum(c, cov0)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = f / np.sqrt(v)
        low = ~fail & ~(snr >= snr_min)
        label = "+".join(unit)
        _fail(fail, low, why, lambda b: f"line {label} S/N = {snr[b]:.2f} < {snr_min:g}")


def _fail(fail: np.ndarray, mask: np.ndarray, why, reason) -> None:
    """Mark bins ``mask`` failed with ``reason`` (a string or a function of the bin)."""
    for b in np.flatnonzero(mask):
        why[b].append(reason(b) if callable(reason) else reason)
    fail |= mask
