"""The result type shared by every metallicity method."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ...errors import RecoveryError
from ..fluxes import readonly

__all__ = ["MetallicityResult"]


def _opt_array(value, n, dtype=float):
    """A per-bin array made read-only, or None."""
    if value is None:
        return None
    a = np.array(value, dtype=dtype)
    if a.shape != (n,):
        raise RecoveryError(f"internal: per-bin array of shape {a.shape}, expected ({n},)")
    return readonly(a)


@dataclass(frozen=True, eq=False)
class MetallicityResult:
    """Metallicity of every bin from one method.

    Attributes
    ----------
    method : str
        ``"I"``, ``"II:<key>"`` or ``"line_flux"``.
    z : ndarray, shape (n_bins,)
        Best fit (minimum chi^2), 12+log(O/H), dex; NaN where not valid.
    z_median, z_lo, z_hi : ndarray, shape (n_bins,)
        Posterior median and 15.87/84.13 percentiles, dex. Method II: the
        root and root -+ its propagated error.
    valid : ndarray of bool, shape (n_bins,)
        A metallicity was measured; z, z_median, z_lo, z_hi are finite.
    reason : tuple of str
        Why a bin is not valid ("" where valid).
    diagnostics_used : tuple of tuple of str
        Keys of the diagnostics that entered each bin.
    chi2_min : ndarray, shape (n_bins,)
        Minimum chi^2 (Method II: ((log R_obs - log R(z)) / sigma)^2, 0 at a root).
    notes : tuple of str
        Per-bin remarks that do not invalidate the bin ("" if none).
    a_v, a_v_median, a_v_lo, a_v_hi : ndarray or None
        Line-flux method: best-fit, median and 15.87/84.13 percentiles of A_V, mag.
    f_hb : ndarray or None
        Line-flux method: best-fit intrinsic (dust-free) Hbeta flux, input unit.
    branch : tuple of str or None
        Method II: ``"single"`` (one root), ``"lower"``/``"upper"`` (branch of
        a double-valued calibration), ``"extreme"`` (ratio just beyond the
        curve's extreme, within 1 sigma), "" where not valid.
    chosen_by : tuple of str or None
        Method II: what decided the branch: ``"other diagnostics"``, ``"all"``
        or "".
    branch_prob : ndarray or None
        Method I: probability of the chosen branch given the Z(r) trend of
        the bins that break the degeneracy (1 where one branch is allowed,
        NaN where not valid or undecided;
        :mod:`~mockzgrad.recovery.metallicity.branches`).
    degenerate : ndarray of bool or None
        Method I: the bin's own data do not fix its Z (several branches fit,
        or one double-valued calibration alone) while other bins' data do;
        the recovery leaves it out of the gradient fit.
    info : mapping
        Settings and method-level remarks (e.g. diagnostics whose scatter is
        unknown).
    """

    method: str
    z: np.ndarray
    z_median: np.ndarray
    z_lo: np.ndarray
    z_hi: np.ndarray
    valid: np.ndarray
    reason: tuple[str, ...]
    diagnostics_used: tuple[tuple[str, ...], ...]
    chi2_min: np.ndarray
    notes: tuple[str, ...] = ()
    a_v: np.ndarray | None = None
    a_v_median: np.ndarray | None = None
    a_v_lo: np.ndarray | None = None
    a_v_hi: np.ndarray | None = None
    f_hb: np.ndarray | None = None
    branch: tuple[str, ...] | None = None
    chosen_by: tuple[str, ...] | None = None
    branch_prob: np.ndarray | None = None
    degenerate: np.ndarray | None = None
    info: Mapping = field(default_factory=dict)

    def __post_init__(self):
        n = np.shape(self.z)[0] if np.ndim(self.z) == 1 else -1
        put = object.__setattr__
        for name in ("z", "z_median", "z_lo", "z_hi", "chi2_min", "a_v", "a_v_median",
                     "a_v_lo", "a_v_hi", "f_hb", "branch_prob"):
            put(self, name, _opt_array(getattr(self, name), n))
        put(self, "valid", _opt_array(self.valid, n, bool))
        put(self, "degenerate", _opt_array(self.degenerate, n, bool))
        if not self.notes:
            put(self, "notes", ("",) * n)
        for name in ("reason", "diagnostics_used", "notes", "branch", "chosen_by"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(tuple(x) if name == "diagnostics_used" else x for x in v)
                if len(v) != n:
                    raise RecoveryError(f"internal: {name} has {len(v)} entries for {n} bins")
                put(self, name, v)
        put(self, "info", MappingProxyType(dict(self.info)))
        finite = np.isfinite(self.z) & np.isfinite(self.z_median) & np.isfinite(self.z_lo) & \
            np.isfinite(self.z_hi)
        if np.any(self.valid & ~finite):
            raise RecoveryError("internal: a bin flagged valid has a non-finite metallicity")

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.z.shape[0]

    @property
    def z_err(self) -> np.ndarray:
        """Symmetrised 1-sigma error (z_hi - z_lo) / 2, dex."""
        return 0.5 * (self.z_hi - self.z_lo)

    def to_records(self) -> list[dict]:
        """One JSON-serialisable dict per bin; NaN and infinities become None."""

        def num(x):
            x = float(x)
            return x if math.isfinite(x) else None

        out = []
        for b in range(self.n_bins):
            rec = {
                "bin": b,
                "method": self.method,
                "valid": bool(self.valid[b]),
                "reason": self.reason[b],
                "z": num(self.z[b]),
                "z_median": num(self.z_median[b]),
                "z_lo": num(self.z_lo[b]),
                "z_hi": num(self.z_hi[b]),
                "z_err": num(self.z_err[b]),
                "chi2_min": num(self.chi2_min[b]),
                "diagnostics_used": list(self.diagnostics_used[b]),
                "notes": self.notes[b],
            }
            for name in ("a_v", "a_v_median", "a_v_lo", "a_v_hi", "f_hb", "branch_prob"):
                v = getattr(self, name)
                if v is not None:
                    rec[name] = num(v[b])
            for name in ("branch", "chosen_by"):
                v = getattr(self, name)
                if v is not None:
                    rec[name] = v[b]
            if self.degenerate is not None:
                rec["degenerate"] = bool(self.degenerate[b])
            out.append(rec)
        return out
