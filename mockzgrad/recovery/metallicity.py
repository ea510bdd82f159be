"""Gas-phase metallicity of each bin from its emission-line fluxes.

Input is a :class:`BinFluxes` table: line fluxes of ``n_bins`` bins (annuli,
spaxels, Voronoi bins) with their full covariance, dust-corrected or not as
the caller decides (:func:`balmer_decrement_correction` does the usual
Balmer-decrement correction). Every function is vectorised over bins.

Conventions
-----------
- ``z`` is 12 + log(O/H), dex; log ratios are log10 of line-flux ratios, dex,
  defined by each :class:`~mockzgrad.physics.calibrations.Diagnostic`
  (``log R = sum_j w_j log10(sum_k N_jk / D_jk)``).
- Fluxes are in any one unit (erg/s/cm^2 for line fits); only ratios matter,
  except the intrinsic Hbeta flux ``f_hb`` of the line-flux method, returned
  in the input unit.
- A_V is the V-band attenuation, mag; ``A_lambda = A_V k(lambda) / R_V``
  (:mod:`mockzgrad.physics.dust`).
- Errors are the percentiles at 100 Phi(-1) and 100 Phi(+1) (15.87 and
  84.13, "16th/84th") of the posterior, which are exactly mean -+ 1 sigma
  for a Gaussian (:data:`mockzgrad.recovery.gradient.PERCENTILES`).

Methods
-------
:func:`log_ratios`
    Observed log ratio of each diagnostic in each bin, its error from the
    flux covariance (analytic Jacobian of log R with respect to the fluxes),
    the covariance between diagnostics of one bin (R3, O2 and O32 share
    Hbeta, [OIII] and [OII]) and an S/N gate.
:func:`method_one`
    Method I: the one metallicity that best satisfies every usable
    diagnostic, chi^2(Z) = d^T C^-1 d with d_i = log R_obs,i - log R_i(Z),
    posterior ~ exp(-chi^2 / 2) with a flat prior on the intersection of the
    diagnostics' validity ranges, evaluated on a fine Z grid (or sampled with
    emcee).
:func:`method_two`
    Method II: each diagnostic inverted alone; double-valued calibrations
    (R3, R23, ...) pick the branch closest to the Method I solution of the
    other diagnostics. The gradient is then fitted per diagnostic and the
    median taken (:func:`mockzgrad.recovery.gradient.median_gradient_over_diagnostics`).
:func:`line_flux_method`
    The forward-modelling Bayesian method of Wang et al. (2017, ApJ 837, 89;
    also Wang et al. 2022): Z, A_V and the intrinsic Hbeta flux fitted
    jointly to the line fluxes with
    chi^2 = sum_i (f_i - R_i f_Hb)^2 / (sigma_i^2 + f_Hb^2 sigma_Ri^2).

Results are :class:`MetallicityResult` objects; a bin that cannot be measured
has ``valid = False`` and a reason, and NaN is never reported as a valid
metallicity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..physics.calibrations import Diagnostic, get_diagnostic
from ..physics.dust import DEFAULT_R_V, LAWS, a_v_from_balmer_decrement, k_lambda
from ..errors import ConfigError, RecoveryError
from ..physics.lines import BALMER_RATIOS, BLENDS, LINES, NII_DOUBLET_RATIO
from .gradient import PERCENTILES

__all__ = [
    "BinFluxes",
    "RatioSet",
    "MetallicityResult",
    "log_ratios",
    "method_one",
    "method_two",
    "line_flux_method",
    "balmer_decrement_correction",
    "REASON_NO_DIAGNOSTIC",
    "REASON_OUTSIDE_RANGE",
    "Z_STEP",
    "NII_HA_RANGE",
]

#: Reason given to a bin where no diagnostic is usable (Method I).
REASON_NO_DIAGNOSTIC = "no diagnostic passed the S/N gate"
#: Reason given when a ratio lies more than 1 sigma beyond a calibration's extremes (Method II).
REASON_OUTSIDE_RANGE = "ratio outside calibration range"
#: Default step of the Method I metallicity grid, dex.
Z_STEP = 0.001
#: Support of the log-uniform (Jeffreys) prior on [NII]6585/Halpha when it is a nuisance.
NII_HA_RANGE = (0.005, 0.5)

_LN10 = math.log(10.0)
_P_LO, _P_HI = PERCENTILES
_Q = (_P_LO / 100.0, 0.5, _P_HI / 100.0)
_TOL = 1e-9  # dex; slack on validity-range edges
_MAX_CHUNK = 4_000_000  # elements of the largest temporary array per chunk of bins
# line-flux method: grids
_LF_COARSE_DZ = 0.01  # dex
_LF_COARSE_DAV = 0.1  # mag
_LF_FINE_NZ = 81
_LF_FINE_NAV = 41
_LF_BOX_DCHI2 = 25.0  # the fine box holds every coarse node within this of the best
_LF_F_NODES = np.linspace(-6.0, 6.0, 13)  # ln f_Hb nodes, in units of its conditional sigma
_LF_F_SPAN = 1e3  # log-uniform f_Hb prior on [f_ref / span, f_ref * span]
_LF_N_R = 12  # nodes of the [NII]/Halpha nuisance
_LF_IRLS = 3  # reweighting passes for the conditional f_Hb with scatter


# ---------------------------------------------------------------------------
# input
# ---------------------------------------------------------------------------
def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class BinFluxes:
    """Line fluxes of ``n_bins`` bins with their full covariance.

    Attributes
    ----------
    names : tuple of str
        Line identifiers (:data:`mockzgrad.physics.lines.LINES`), the column order.
    flux : ndarray, shape (n_bins, n_lines)
        Line fluxes, any one unit; NaN where a line was not measured in a bin.
        A 1-D array is taken as one bin.
    cov : ndarray, shape (n_bins, n_lines, n_lines)
        Covariance of the fluxes, unit squared (symmetrised on input). A
        2-D array is taken as one bin.
    """

    names: tuple[str, ...]
    flux: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        names = self.names
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ConfigError(f"names = {names!r}: expected a sequence of line ids")
        names = tuple(names)
        bad = [n for n in names if n not in LINES]
        if bad:
            raise ConfigError(
                f"names: unknown line id(s) {', '.join(map(repr, bad))}; allowed: {', '.join(LINES)}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"names = {names!r}: duplicate line ids")
        flux = np.array(self.flux, dtype=float)
        if flux.ndim == 1:
            flux = flux[None, :]
        if flux.ndim != 2 or flux.shape[1] != len(names):
            raise ConfigError(
                f"flux: shape {np.shape(self.flux)}; expected (n_bins, {len(names)}) for names {names}"
            )
        cov = np.array(self.cov, dtype=float)
        if cov.ndim == 2:
            cov = cov[None, :, :]
        if cov.shape != flux.shape + (len(names),):
            raise ConfigError(
                f"cov: shape {np.shape(self.cov)}; expected {flux.shape + (len(names),)}"
            )
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "flux", _readonly(flux))
        object.__setattr__(self, "cov", _readonly(cov))

    @classmethod
    def from_errors(cls, names, flux, err) -> "BinFluxes":
        """Fluxes with independent errors (diagonal covariance).

        Parameters
        ----------
        names : sequence of str
            Line identifiers.
        flux, err : array_like, shape (n_bins, n_lines) or (n_lines,)
            Fluxes and their 1-sigma errors, same unit; err >= 0.
        """
        flux = np.asarray(flux, dtype=float)
        err = np.broadcast_to(np.asarray(err, dtype=float), flux.shape)
        with np.errstate(invalid="ignore"):
            if np.any(err < 0):
                raise ConfigError("err: flux errors must be >= 0")
        cov = np.zeros(flux.shape + (flux.shape[-1],))
        idx = np.arange(flux.shape[-1])
        cov[..., idx, idx] = err**2
        return cls(tuple(names), flux, cov)

    @classmethod
    def from_linefit(cls, fit) -> "BinFluxes":
        """Fluxes and full covariance of a :class:`~mockzgrad.recovery.linefit.LineFitResult`.

        The covariance of the free fluxes is mapped onto every line through
        the tie matrix, ``cov = T C T^T`` (tied lines are fully correlated
        with their parent).
        """
        t = np.asarray(fit.tie_matrix, dtype=float)
        c = np.asarray(fit.covariance, dtype=float)
        cov = np.einsum("li,sij,mj->slm", t, np.nan_to_num(c), t)
        bad = ~np.all(np.isfinite(c), axis=(1, 2))
        cov[bad] = np.nan
        return cls(tuple(fit.line_names), np.asarray(fit.flux, dtype=float), cov)

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.flux.shape[0]

    @property
    def err(self) -> np.ndarray:
        """1-sigma flux errors, shape (n_bins, n_lines)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diagonal(self.cov, axis1=1, axis2=2))

    @property
    def snr(self) -> np.ndarray:
        """flux / err, shape (n_bins, n_lines) (inf where err = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.flux / self.err

    def index(self, name: str) -> int:
        """Column of line ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(
                f"line {name!r} is not in the fluxes; measured: {', '.join(self.names)}"
            ) from None

    def select(self, bins) -> "BinFluxes":
        """The bins ``bins`` (index, slice or boolean mask) as a new table."""
        return BinFluxes(self.names, self.flux[bins], self.cov[bins])

    def _weights(self, weights: Mapping[str, float]) -> np.ndarray:
        c = np.zeros(len(self.names))
        for line, w in weights.items():
            c[self.names.index(line)] += float(w)
        return c

    def _sum(self, c: np.ndarray, cov: np.ndarray | None = None):
        """Flux and variance of the weighted sum ``c . flux``; NaN if a used line is NaN."""
        cov = self.cov if cov is None else cov
        used = c != 0
        total = self.flux[:, used] @ c[used]
        var = np.einsum("i,sij,j->s", c[used], cov[:, used][:, :, used], c[used])
        return total, var


def _resolve_diagnostics(diagnostics) -> tuple[Diagnostic, ...]:
    if isinstance(diagnostics, (str, Diagnostic)):
        diagnostics = [diagnostics]
    if not isinstance(diagnostics, Sequence) or not diagnostics:
        raise ConfigError(
            f"diagnostics = {diagnostics!r}: expected a non-empty sequence of keys such as 'S25_R3'"
        )
    out = []
    for d in diagnostics:
        out.append(d if isinstance(d, Diagnostic) else get_diagnostic(d))
    keys = [d.key for d in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"diagnostics: duplicate keys in {keys}")
    return tuple(out)


def _check_bins(bins) -> BinFluxes:
    if not isinstance(bins, BinFluxes):
        raise ConfigError(f"bins: expected a BinFluxes, got {type(bins).__name__}")
    return bins


def _logu_array(logu, n: int, diags: Sequence[Diagnostic]):
    """log U per bin, shape (n,), or None when no diagnostic needs it."""
    need = [d.key for d in diags if d.needs_logu]
    if not need:
        return None
    if logu is None:
        raise ConfigError(f"logu: required by {', '.join(need)} (log10 of the ionisation parameter)")
    try:
        arr = np.broadcast_to(np.asarray(logu, dtype=float), (n,)).copy()
    except (TypeError, ValueError):
        raise ConfigError(f"logu: expected a number or an array of shape ({n},)") from None
    return arr


def _check_rng(rng, sampler):
    if sampler == "emcee" and not isinstance(rng, np.random.Generator):
        raise ConfigError("rng: sampler='emcee' needs an explicit np.random.Generator")


def _check_sampler(sampler):
    if sampler not in ("grid", "emcee"):
        raise ConfigError(f"sampler = {sampler!r}; allowed: 'grid', 'emcee'")


def _check_mcmc(n_walkers, n_steps, n_burn, n_dim):
    n_walkers, n_steps, n_burn = int(n_walkers), int(n_steps), int(n_burn)
    if n_walkers < 2 * n_dim or n_walkers % 2:
        raise ConfigError(f"n_walkers = {n_walkers}; allowed: even and >= {2 * n_dim}")
    if not 0 <= n_burn < n_steps:
        raise ConfigError(f"n_burn = {n_burn}, n_steps = {n_steps}; allowed: 0 <= n_burn < n_steps")
    return n_walkers, n_steps, n_burn


def _run_emcee(log_prob, p0, rng, n_steps, n_burn):
    """Run a vectorised emcee sampler seeded from ``rng``; flat chain and log-probabilities."""
    import emcee

    n_walkers, n_dim = p0.shape
    seed = int(rng.integers(0, 2**32 - 1))
    state = emcee.State(p0, random_state=np.random.RandomState(seed).get_state())
    sampler = emcee.EnsembleSampler(n_walkers, n_dim, log_prob, vectorize=True)
    sampler.run_mcmc(state, n_steps, progress=False)
    return (sampler.get_chain(discard=n_burn, flat=True),
            sampler.get_log_prob(discard=n_burn, flat=True))


# ---------------------------------------------------------------------------
# log ratios
# ---------------------------------------------------------------------------
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
            _readonly(getattr(self, name))

    @property
    def keys(self) -> tuple[str, ...]:
        """Diagnostic keys, the column order."""
        return tuple(d.key for d in self.diagnostics)

    @property
    def n_bins(self) -> int:
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
            jac = jac + float(term["weight"]) / (_LN10 * s)[:, None] * ds
    return jac


def _join(parts: list[str]) -> str:
    return "; ".join(parts)


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
    bins = _check_bins(bins)
    diags = _resolve_diagnostics(diagnostics)
    try:
        snr_min = float(snr_min)
    except (TypeError, ValueError):
        raise ConfigError(f"snr_min = {snr_min!r}: expected a number >= 0") from None
    if not (math.isfinite(snr_min) and snr_min >= 0):
        raise ConfigError(f"snr_min = {snr_min}; allowed: finite and >= 0")
    if gate not in ("lines", "ratio"):
        raise ConfigError(f"gate = {gate!r}; allowed: 'lines', 'ratio'")
    n, n_lines = bins.flux.shape
    m = len(diags)
    cov_f = bins.cov if covariance else bins.cov * np.eye(n_lines)
    cov0 = np.where(np.isfinite(cov_f), cov_f, 0.0)
    logr = np.full((n, m), np.nan)
    jac = np.zeros((n, m, n_lines))
    usable = np.zeros((n, m), dtype=bool)
    reasons: list[tuple[str, ...]] = []
    measured = set(bins.names)
    for j, d in enumerate(diags):
        if not d.usable:
            reasons.append((f"calibration {d.key} is flagged unusable ({d.status})",) * n)
            continue
        missing = sorted(d.lines - measured)
        if missing:
            word = "line" if len(missing) == 1 else "lines"
            reasons.append((f"{word} {', '.join(missing)} not measured",) * n)
            continue
        why: list[list[str]] = [[] for _ in range(n)]
        fail = np.zeros(n, dtype=bool)
        var_f = np.diagonal(cov_f, axis1=1, axis2=2)
        for line in sorted(d.lines):
            i = bins.names.index(line)
            bad = ~(np.isfinite(bins.flux[:, i]) & np.isfinite(var_f[:, i]) & (var_f[:, i] >= 0))
            for b in np.flatnonzero(bad):
                why[b].append(f"line {line} flux or error not finite")
            fail |= bad
        if gate == "lines":
            for unit in _gate_units(d.ratio):
                c = bins._weights(unit)
                f, v = bins._sum(c, cov0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    snr = f / np.sqrt(v)
                low = ~fail & ~(snr >= snr_min)
                label = "+".join(unit)
                for b in np.flatnonzero(low):
                    why[b].append(f"line {label} S/N = {snr[b]:.2f} < {snr_min:g}")
                fail |= low
        lr = d.log_ratio_from_fluxes({line: bins.flux[:, bins.names.index(line)]
                                      for line in d.lines})
        lr = np.broadcast_to(lr, (n,)).astype(float)
        jj = _ratio_jacobian(d.ratio, bins)
        sig = np.sqrt(np.maximum(np.einsum("si,sij,sj->s", jj, cov0, jj), 0.0))
        nolr = ~fail & ~np.isfinite(lr)
        for b in np.flatnonzero(nolr):
            why[b].append("ratio not positive")
        fail |= nolr
        nosig = ~fail & ~np.isfinite(sig)
        for b in np.flatnonzero(nosig):
            why[b].append("ratio error not finite")
        fail |= nosig
        if gate == "ratio":
            with np.errstate(divide="ignore"):
                rsnr = 1.0 / (_LN10 * sig)
            low = ~fail & ~(rsnr >= snr_min)
            for b in np.flatnonzero(low):
                why[b].append(f"ratio S/N = {rsnr[b]:.2f} < {snr_min:g}")
            fail |= low
        logr[:, j] = lr
        jac[:, j, :] = np.where(np.isfinite(jj), jj, 0.0)
        usable[:, j] = ~fail
        reasons.append(tuple(_join(w) for w in why))
    cov_r = np.einsum("sai,sij,sbj->sab", jac, cov0, jac)
    for j, d in enumerate(diags):
        if not d.usable or (d.lines - measured):
            cov_r[:, j, :] = np.nan
            cov_r[:, :, j] = np.nan
    return RatioSet(diags, logr, cov_r, usable, tuple(reasons), snr_min, gate, bool(covariance))


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
def _opt_array(value, n, dtype=float):
    if value is None:
        return None
    a = np.array(value, dtype=dtype)
    if a.shape != (n,):
        raise RecoveryError(f"internal: per-bin array of shape {a.shape}, expected ({n},)")
    return _readonly(a)


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
    info: Mapping = field(default_factory=dict)

    def __post_init__(self):
        n = np.shape(self.z)[0] if np.ndim(self.z) == 1 else -1
        put = object.__setattr__
        for name in ("z", "z_median", "z_lo", "z_hi", "chi2_min", "a_v", "a_v_median",
                     "a_v_lo", "a_v_hi", "f_hb"):
            put(self, name, _opt_array(getattr(self, name), n))
        put(self, "valid", _opt_array(self.valid, n, bool))
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
            for name in ("a_v", "a_v_median", "a_v_lo", "a_v_hi", "f_hb"):
                v = getattr(self, name)
                if v is not None:
                    rec[name] = num(v[b])
            for name in ("branch", "chosen_by"):
                v = getattr(self, name)
                if v is not None:
                    rec[name] = v[b]
            out.append(rec)
        return out


# ---------------------------------------------------------------------------
# grid helpers
# ---------------------------------------------------------------------------
def _percentiles(x: np.ndarray, logp: np.ndarray, qs=_Q) -> np.ndarray:
    """Quantiles of densities tabulated on grids; shape (len(qs), n).

    ``x``: (G,) or (n, G) ascending; ``logp``: (n, G), -inf outside the
    support. The CDF is the trapezoid integral of the density, inverted by
    linear interpolation. Rows without support give NaN.
    """
    x = np.broadcast_to(x, logp.shape)
    mx = np.max(logp, axis=1, keepdims=True)
    ok = np.isfinite(mx[:, 0])
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.where(np.isfinite(logp), np.exp(logp - np.where(ok[:, None], mx, 0.0)), 0.0)
    seg = 0.5 * (p[:, :-1] + p[:, 1:]) * np.diff(x, axis=1)
    cdf = np.concatenate([np.zeros((p.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    tot = cdf[:, -1:]
    single = ok & (tot[:, 0] <= 0)  # all mass on one node
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = cdf / tot
    out = np.full((len(qs), p.shape[0]), np.nan)
    rows = np.arange(p.shape[0])
    for i, q in enumerate(qs):
        k = np.clip(np.argmax(cdf >= q, axis=1), 1, p.shape[1] - 1)
        c0, c1 = cdf[rows, k - 1], cdf[rows, k]
        x0, x1 = x[rows, k - 1], x[rows, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(c1 > c0, (q - c0) / (c1 - c0), 0.5)
        out[i] = np.where(ok, x0 + np.clip(w, 0.0, 1.0) * (x1 - x0), np.nan)
    if single.any():
        out[:, single] = x[single, np.argmax(logp[single], axis=1)]
    return out


def _refine_minimum(x: np.ndarray, chi2: np.ndarray, k: np.ndarray):
    """Parabola through the minimum node ``k`` and its neighbours: (x_min, chi2_min)."""
    n, g = chi2.shape
    x = np.broadcast_to(x, chi2.shape)
    rows = np.arange(n)
    xb, cb = x[rows, k].copy(), chi2[rows, k].copy()
    if g < 3:
        return xb, cb
    km, kp = np.clip(k - 1, 0, g - 1), np.clip(k + 1, 0, g - 1)
    c0, c2 = chi2[rows, km], chi2[rows, kp]
    inner = (k > 0) & (k < g - 1) & np.isfinite(c0) & np.isfinite(c2) & np.isfinite(cb)
    t0, t2 = x[rows, km] - xb, x[rows, kp] - xb
    with np.errstate(invalid="ignore", divide="ignore"):
        s0, s2 = (c0 - cb) / t0, (c2 - cb) / t2
        a = (s0 - s2) / (t0 - t2)
        bco = s0 - a * t0
        tv = np.clip(-bco / (2.0 * a), t0, t2)
        cv = cb + bco * tv + a * tv * tv
    good = inner & (a > 0) & np.isfinite(tv)
    return np.where(good, xb + tv, xb), np.where(good, np.minimum(cv, cb), cb)


def _default_grid(ranges, step=Z_STEP) -> np.ndarray:
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    grid = np.arange(lo, hi + 0.5 * step, step)
    edges = [v for r in ranges for v in r]
    return np.unique(np.concatenate([grid[grid < hi], edges]))


def _check_grid(grid, name) -> np.ndarray:
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(np.diff(g) <= 0):
        raise ConfigError(f"{name}: expected a 1-D strictly ascending finite array of >= 2 values")
    return g


def _chunks(n: int, per_bin: int):
    size = max(1, _MAX_CHUNK // max(1, per_bin))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


# ---------------------------------------------------------------------------
# Method I
# ---------------------------------------------------------------------------
def _method_one_grid(ratios: RatioSet, usable: np.ndarray, *, z_grid, scatter, covariance, logu):
    """Method I on a grid for an explicit usable mask; a dict of per-bin arrays."""
    diags = ratios.diagnostics
    n, m = ratios.log_ratio.shape
    usable = usable.copy()
    cov = np.array(ratios.cov, dtype=float)
    if not covariance:
        cov = cov * np.eye(m)
    s2 = np.array([(d.sigma_ratio or 0.0) ** 2 if scatter else 0.0 for d in diags])
    cov = cov + np.diag(s2)
    var = np.diagonal(cov, axis1=1, axis2=2)
    notes: list[list[str]] = [[] for _ in range(n)]
    zero = usable & ~(var > 0)
    for b, j in zip(*np.nonzero(zero)):
        notes[b].append(f"{diags[j].key} dropped: zero variance (no error and no scatter)")
    usable &= var > 0
    active = np.flatnonzero(usable.any(axis=0))
    unknown = tuple(diags[j].key for j in active if diags[j].sigma_ratio is None)
    logu_b = _logu_array(logu, n, [diags[j] for j in active])
    if z_grid is None:
        ranges = [diags[j].valid_range for j in active] or [(8.0, 8.0 + Z_STEP)]
        grid = _default_grid(ranges)
    else:
        grid = _check_grid(z_grid, "z_grid")
    g = grid.size
    los = np.array([d.valid_range[0] for d in diags])
    his = np.array([d.valid_range[1] for d in diags])
    has = usable.any(axis=1)
    lo_b = np.max(np.where(usable, los, -np.inf), axis=1)
    hi_b = np.min(np.where(usable, his, np.inf), axis=1)
    disjoint = has & (lo_b > hi_b + _TOL)
    mask = (grid[None, :] >= lo_b[:, None] - _TOL) & (grid[None, :] <= hi_b[:, None] + _TOL)
    if disjoint.any():
        union = np.zeros((int(disjoint.sum()), g), dtype=bool)
        sub = usable[disjoint]
        for j in active:
            inside = (grid >= los[j] - _TOL) & (grid <= his[j] + _TOL)
            union |= sub[:, j:j + 1] & inside[None, :]
        mask[disjoint] = union
        for b in np.flatnonzero(disjoint):
            keys = ", ".join(diags[j].key for j in np.flatnonzero(usable[b]))
            notes[b].append(f"validity ranges of {keys} do not overlap; prior = their union")
    mask &= has[:, None]
    # calibration curves on the grid
    cal = np.zeros((g, m))
    per_bin = {}
    for j in active:
        d = diags[j]
        if d.needs_logu:
            per_bin[j] = d.log_ratio(grid[None, :], policy="ignore", logu=logu_b[:, None])
        else:
            cal[:, j] = d.log_ratio(grid, policy="ignore")
    # inverse covariance of the usable block
    both = usable[:, :, None] & usable[:, None, :]
    cu = np.where(both, np.nan_to_num(cov), 0.0) + np.where(usable, 0.0, 1.0)[:, :, None] * np.eye(m)
    cinv = np.linalg.pinv(cu, rcond=1e-12, hermitian=True) * both
    obs = np.where(usable, ratios.log_ratio, 0.0)
    chi2 = np.empty((n, g))
    with np.errstate(invalid="ignore"):
        for sl in _chunks(n, g * m):
            d = obs[sl, None, :] - cal[None, :, :]
            for j, c in per_bin.items():
                d[:, :, j] = obs[sl, None, j] - c[sl]
            d = np.where(usable[sl, None, :], d, 0.0)
            chi2[sl] = np.einsum("bgi,bij,bgj->bg", d, cinv[sl], d)
    logp = np.where(mask & np.isfinite(chi2), -0.5 * chi2, -np.inf)
    ok = np.isfinite(logp).any(axis=1)
    k = np.argmax(logp, axis=1)
    chi2m = np.where(np.isfinite(logp), chi2, np.inf)
    z_best, chi2_min = _refine_minimum(grid, chi2m, k)
    q = _percentiles(grid, logp)
    edge = ok & ((k == 0) | (k == g - 1) | ~mask[np.arange(n), np.clip(k - 1, 0, g - 1)]
                 | ~mask[np.arange(n), np.clip(k + 1, 0, g - 1)])
    for b in np.flatnonzero(edge):
        notes[b].append("best fit at the edge of the prior range")
    reason = []
    for b in range(n):
        if not has[b]:
            why = [f"{d.key}: {ratios.reasons[j][b] or 'dropped'}" for j, d in enumerate(diags)]
            reason.append(f"{REASON_NO_DIAGNOSTIC} ({_join(why)})")
        elif not ok[b]:
            reason.append("no grid metallicity inside the prior range gives finite calibrated ratios")
        else:
            reason.append("")
    valid = ok & np.isfinite(z_best) & np.all(np.isfinite(q), axis=0)
    nan = np.full(n, np.nan)
    return {
        "z": np.where(valid, z_best, nan), "z_median": np.where(valid, q[1], nan),
        "z_lo": np.where(valid, q[0], nan), "z_hi": np.where(valid, q[2], nan),
        "chi2_min": np.where(valid, chi2_min, nan), "valid": valid, "reason": reason,
        "used": tuple(tuple(diags[j].key for j in np.flatnonzero(usable[b])) if valid[b] else ()
                      for b in range(n)),
        "notes": notes, "usable": usable, "cinv": cinv, "lo_b": lo_b, "hi_b": hi_b,
        "disjoint": disjoint, "grid": grid, "logu": logu_b, "unknown": unknown,
    }


def method_one(ratios: RatioSet, *, z_grid=None, scatter: bool = True, covariance: bool = True,
               logu=None, rng: np.random.Generator | None = None, sampler: str = "grid",
               n_walkers: int = 16, n_steps: int = 1000, n_burn: int = 300) -> MetallicityResult:
    """Method I: one metallicity per bin from all usable diagnostics at once.

    chi^2(Z) = d^T C^-1 d with d_i = log R_obs,i - log R_i(Z) over the
    diagnostics usable in the bin; the posterior is exp(-chi^2 / 2) times a
    flat prior on the intersection of their validity ranges (their union,
    noted per bin, when they do not overlap).

    Parameters
    ----------
    ratios : RatioSet
        Output of :func:`log_ratios`.
    z_grid : array_like, optional
        Metallicity grid, dex, strictly ascending. Default: step
        :data:`Z_STEP` (0.001 dex) over the union of the validity ranges,
        plus every range edge, so that each bin's prior edges are grid nodes.
    scatter : bool, optional
        Add the calibrations' intrinsic scatter, ``diag(sigma_ratio^2)``
        (dex^2), to C. A diagnostic with unknown ``sigma_ratio`` contributes
        0; these are listed in ``info["scatter_unknown"]``.
    covariance : bool, optional
        Use the full measurement covariance of the log ratios (shared lines)
        or only its diagonal. Published Method I (Lee et al. 2026 and most
        papers) ignores the covariance (``covariance=False``); with it the
        errors are calibrated (see the tests). A singular C (e.g. two
        calibrations of the same ratio without scatter) is pseudo-inverted.
    logu : float or array_like, optional
        log10 U per bin (shape ``(n_bins,)`` or scalar), needed by Kewley
        et al. (2019) surfaces.
    rng : numpy.random.Generator, optional
        Required for ``sampler="emcee"``.
    sampler : {"grid", "emcee"}, optional
        ``"grid"``: exact evaluation on ``z_grid``; the best fit is refined
        by a parabola through the minimum and its neighbours; percentiles
        from the trapezoid CDF. ``"emcee"``: the same posterior sampled with
        emcee (Foreman-Mackey et al. 2013) in each bin, walkers started in a
        small ball around the grid best fit; the best fit is the sample of
        highest posterior.
    n_walkers, n_steps, n_burn : int, optional
        emcee settings (16 walkers, 1000 steps, 300 discarded).

    Returns
    -------
    MetallicityResult
        ``method = "I"``. Bins without a usable diagnostic are not valid,
        with reason starting with :data:`REASON_NO_DIAGNOSTIC`.
    """
    if not isinstance(ratios, RatioSet):
        raise ConfigError(f"ratios: expected a RatioSet from log_ratios, got {type(ratios).__name__}")
    _check_sampler(sampler)
    _check_rng(rng, sampler)
    g = _method_one_grid(ratios, ratios.usable, z_grid=z_grid, scatter=scatter,
                         covariance=covariance, logu=logu)
    info = {"sampler": sampler, "scatter": bool(scatter), "covariance": bool(covariance),
            "scatter_unknown": g["unknown"], "z_grid_step": float(np.median(np.diff(g["grid"]))),
            "gate": ratios.gate, "snr_min": ratios.snr_min}
    out = {k: g[k] for k in ("z", "z_median", "z_lo", "z_hi", "chi2_min")}
    if sampler == "emcee":
        n_walkers, n_steps, n_burn = _check_mcmc(n_walkers, n_steps, n_burn, 1)
        out = {k: v.copy() for k, v in out.items()}
        _method_one_emcee(ratios, g, out, rng, n_walkers, n_steps, n_burn, z_grid)
        info.update(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn)
    return MetallicityResult(
        method="I", valid=g["valid"], reason=tuple(g["reason"]),
        diagnostics_used=g["used"], notes=tuple(_join(x) for x in g["notes"]), info=info, **out,
    )


def _method_one_emcee(ratios, g, out, rng, n_walkers, n_steps, n_burn, z_grid):
    diags = ratios.diagnostics
    usable = g["usable"]
    for b in np.flatnonzero(g["valid"]):
        idx = np.flatnonzero(usable[b])
        obs = ratios.log_ratio[b, idx]
        ci = g["cinv"][b][np.ix_(idx, idx)]
        lu = None if g["logu"] is None else g["logu"][b]
        if g["disjoint"][b]:
            intervals = [diags[j].valid_range for j in idx]
        else:
            intervals = [(g["lo_b"][b], g["hi_b"][b])]
        if z_grid is not None:
            glo, ghi = g["grid"][0], g["grid"][-1]
            intervals = [(max(lo, glo), min(hi, ghi)) for lo, hi in intervals]

        def log_prob(theta, idx=idx, obs=obs, ci=ci, lu=lu, intervals=intervals):
            z = theta[:, 0]
            inside = np.zeros(z.shape, dtype=bool)
            for lo, hi in intervals:
                inside |= (z >= lo - _TOL) & (z <= hi + _TOL)
            cal = np.stack([diags[j].log_ratio(z, policy="ignore", logu=lu) for j in idx], axis=-1)
            d = obs[None, :] - cal
            with np.errstate(invalid="ignore"):
                chi2 = np.einsum("wi,ij,wj->w", d, ci, d)
            return np.where(inside & np.isfinite(chi2), -0.5 * chi2, -np.inf)

        z0 = out["z"][b]
        sd = max(0.5 * (out["z_hi"][b] - out["z_lo"][b]), 1e-4)
        lo, hi = next(((lo, hi) for lo, hi in intervals if lo - _TOL <= z0 <= hi + _TOL),
                      intervals[0])
        p0 = np.clip(z0 + 0.1 * sd * rng.standard_normal((n_walkers, 1)), lo, hi)
        chain, lp = _run_emcee(log_prob, p0, rng, n_steps, n_burn)
        lo_q, med, hi_q = np.percentile(chain[:, 0], [_P_LO, 50.0, _P_HI])
        out["z_lo"][b], out["z_median"][b], out["z_hi"][b] = lo_q, med, hi_q
        out["z"][b] = chain[np.argmax(lp), 0]
        out["chi2_min"][b] = -2.0 * np.max(lp)


# ---------------------------------------------------------------------------
# Method II
# ---------------------------------------------------------------------------
def _curve_extremes(d: Diagnostic, logu_rows, n_rows: int, n_tab: int = 2001):
    """(vmin, z_at_min, vmax, z_at_max) of log R(Z) over the validity range, per row."""
    zt = np.linspace(d.valid_range[0], d.valid_range[1], n_tab)
    if logu_rows is None:
        v = np.broadcast_to(d.log_ratio(zt, policy="ignore"), (n_rows, n_tab))
    else:
        v = d.log_ratio(zt[None, :], policy="ignore", logu=logu_rows[:, None])
    v = np.where(np.isfinite(v), v, np.nan)
    kmin = np.nanargmin(v, axis=1)
    kmax = np.nanargmax(v, axis=1)
    vinf = np.where(np.isfinite(v), v, np.inf)
    zmin, vmin = _refine_minimum(zt, vinf, kmin)
    zmax, nvmax = _refine_minimum(zt, np.where(np.isfinite(v), -v, np.inf), kmax)
    return vmin, zmin, -nvmax, zmax


def method_two(ratios: RatioSet, *, logu=None, scatter: bool = True, z_grid=None
               ) -> dict[str, MetallicityResult]:
    """Method II: invert each diagnostic alone.

    Parameters
    ----------
    ratios : RatioSet
        Output of :func:`log_ratios`.
    logu : float or array_like, optional
        log10 U per bin for Kewley et al. (2019) surfaces.
    scatter : bool, optional
        Add the calibration scatter to the error in quadrature: ``sigma_z``
        when known, else ``sigma_ratio`` propagated like the measurement
        error, else nothing (listed in ``info["scatter_unknown"]``).
    z_grid : array_like, optional
        Grid of the Method I reference solutions (default as in
        :func:`method_one`).

    Returns
    -------
    dict of str to MetallicityResult
        One result per diagnostic of ``ratios``, ``method = "II:<key>"``.

    Notes
    -----
    - All roots inside the validity range are found with
      :meth:`~mockzgrad.physics.calibrations.Diagnostic.z_roots`. With several roots
      (double-valued R3, R23, ...) the one closest to the Method I solution
      (best fit; scatter and covariance on) of the *other* usable
      diagnostics of the bin is taken (``chosen_by = "other diagnostics"``);
      if they give none, the one closest to the Method I solution of all
      (``"all"``; when the diagnostic is alone in its bin this choice is
      arbitrary and a note says so). ``branch`` is ``"lower"``/``"upper"``
      (lower/higher metallicity root).
    - A ratio beyond the curve's extreme (no root): Z is the metallicity of
      the nearest extreme (a turnover or a range edge) if the ratio is
      within 1 measurement sigma of it (``branch = "extreme"``), otherwise
      the bin is unusable with reason :data:`REASON_OUTSIDE_RANGE`.
    - Error: ``sigma(log R) / |d log R / dZ|`` at the solution, but never
      more than ``sqrt(2 sigma(log R) / |d^2 log R / dZ^2|)`` (the
      second-order width, finite at a turnover where the slope vanishes).
    """
    if not isinstance(ratios, RatioSet):
        raise ConfigError(f"ratios: expected a RatioSet from log_ratios, got {type(ratios).__name__}")
    diags = ratios.diagnostics
    n = ratios.n_bins
    usable_all = ratios.usable
    logu_b = _logu_array(logu, n, [d for j, d in enumerate(diags) if usable_all[:, j].any()])
    sig_all = ratios.err
    ref_all = None
    results = {}
    for j, d in enumerate(diags):
        u = usable_all[:, j].copy()
        obs = ratios.log_ratio[:, j]
        sig = sig_all[:, j]
        z = np.full(n, np.nan)
        chi2 = np.full(n, np.nan)
        branch = [""] * n
        chosen = [""] * n
        notes: list[list[str]] = [[] for _ in range(n)]
        reason = list(ratios.reasons[j])
        info = {"scatter": bool(scatter), "scatter_unknown": ()}
        if u.any():
            lu = None if logu_b is None or not d.needs_logu else logu_b
            roots = d.z_roots(np.where(u, obs, np.nan), logu=lu)
            nr = np.sum(np.isfinite(roots), axis=1)
            one = u & (nr == 1)
            z[one] = np.nanmax(roots[one], axis=1)
            for b in np.flatnonzero(one):
                branch[b] = "single"
            multi = u & (nr >= 2)
            if multi.any():
                others = usable_all.copy()
                others[:, j] = False
                ref_o = _method_one_grid(ratios, others, z_grid=z_grid, scatter=True,
                                         covariance=True, logu=logu)
                need_all = multi & ~ref_o["valid"]
                if need_all.any() and ref_all is None:
                    ref_all = _method_one_grid(ratios, usable_all, z_grid=z_grid, scatter=True,
                                               covariance=True, logu=logu)
                ref = np.where(ref_o["valid"], ref_o["z"],
                               ref_all["z"] if ref_all is not None else np.nan)
                dist = np.abs(np.where(np.isfinite(roots), roots, np.inf) - ref[:, None])
                pick = np.argmin(dist, axis=1)
                z[multi] = roots[multi, pick[multi]]
                for b in np.flatnonzero(multi):
                    k = int(nr[b])
                    branch[b] = ("lower" if pick[b] == 0 else "upper") if k == 2 else \
                        f"root {pick[b] + 1} of {k}"
                    if ref_o["valid"][b]:
                        chosen[b] = "other diagnostics"
                    else:
                        chosen[b] = "all"
                        if usable_all[b].sum() == 1:
                            notes[b].append("branch ambiguous: no other diagnostic in this bin")
            none = u & (nr == 0)
            if none.any():
                rows = np.flatnonzero(none)
                vmin, zmin, vmax, zmax = _curve_extremes(
                    d, None if lu is None else lu[rows], rows.size)
                above = obs[rows] > vmax
                dist = np.where(above, obs[rows] - vmax, vmin - obs[rows])
                zext = np.where(above, zmax, zmin)
                close = dist <= sig[rows]
                for r, b in enumerate(rows):
                    if close[r]:
                        z[b] = zext[r]
                        branch[b] = "extreme"
                        word = "maximum" if above[r] else "minimum"
                        notes[b].append(f"ratio beyond the calibration {word} by "
                                        f"{dist[r] / sig[b]:.2f} sigma; Z at the extreme")
                    else:
                        u[b] = False
                        reason[b] = REASON_OUTSIDE_RANGE
            # errors
            has = u & np.isfinite(z)
            zz = np.where(has, z, np.mean(d.valid_range))
            luz = lu
            slope = np.abs(d.dlog_ratio_dz(zz, logu=luz))
            h = 1e-4
            curv = np.abs(d.dlog_ratio_dz(zz + h, logu=luz) - d.dlog_ratio_dz(zz - h, logu=luz)) / (2 * h)
            with np.errstate(divide="ignore", invalid="ignore"):
                def prop(s):
                    return np.fmin(s / slope, np.sqrt(2.0 * s / curv))
                err = prop(sig)
                if scatter:
                    if d.sigma_z is not None:
                        err = np.hypot(err, d.sigma_z)
                        info["scatter_source"] = "sigma_z"
                    elif d.sigma_ratio is not None:
                        err = np.hypot(err, prop(np.full(n, d.sigma_ratio)))
                        info["scatter_source"] = "sigma_ratio"
                    else:
                        info["scatter_unknown"] = (d.key,)
                cal = d.log_ratio(zz, policy="ignore", logu=luz)
                chi2 = np.where(has, ((obs - cal) / sig) ** 2, np.nan)
            good = has & np.isfinite(err)
            for b in np.flatnonzero(has & ~good):
                reason[b] = "error not finite (flat calibration)"
            u = good
            z = np.where(u, z, np.nan)
            err = np.where(u, err, np.nan)
        else:
            err = np.full(n, np.nan)
        for b in range(n):
            if u[b]:
                reason[b] = ""
            else:
                branch[b] = ""
                chosen[b] = ""
                if not reason[b]:
                    reason[b] = "not usable"
        results[d.key] = MetallicityResult(
            method=f"II:{d.key}", z=z, z_median=z, z_lo=z - err, z_hi=z + err, valid=u,
            reason=tuple(reason), diagnostics_used=tuple((d.key,) if u[b] else () for b in range(n)),
            chi2_min=np.where(u, chi2, np.nan), notes=tuple(_join(x) for x in notes),
            branch=tuple(branch), chosen_by=tuple(chosen), info=info,
        )
    return results


# ---------------------------------------------------------------------------
# Line-flux method
# ---------------------------------------------------------------------------
@dataclass
class _Unit:
    """An observed line (or blend) and its predicted flux relative to intrinsic Hbeta."""

    label: str
    weights: dict  # line -> weight in the observed sum
    wavelength: float  # Angstrom, mean of the lines
    kind: str  # "balmer", "metal"
    log_const: float = 0.0
    terms: tuple = ()  # ((diagnostic index, sign), ...): log10 ratio = const + sum sign*logR
    var: float = 0.0  # intrinsic scatter of the log ratio, dex^2
    nii: object = None  # blended [NII]: a _Unit predicting NII_6585/Hb, or "nuisance"/float


def _unit_key(weights: Mapping[str, float]):
    return tuple(sorted((k, float(v)) for k, v in weights.items()))


def _build_units(diags, names, balmer, nii_ha):
    """Predicted units from the diagnostics (see :func:`line_flux_method`)."""
    known: dict = {}
    remarks = []

    def add(weights, kind, log_const, terms, var):
        u = _Unit("+".join(weights), dict(weights),
                  float(np.mean([LINES[x].wavelength for x in weights])), kind,
                  log_const, tuple(terms), var)
        known[_unit_key(weights)] = u
        return u

    for line, r in BALMER_RATIOS.items():
        add({line: 1.0}, "balmer", math.log10(r), (), 0.0)
    simple = []
    for j, d in enumerate(diags):
        terms = d.ratio.get("terms", [])
        if not d.usable:
            remarks.append(f"{d.key}: calibration flagged unusable; not used")
            continue
        if len(terms) != 1 or len(terms[0]["parts"]) != 1 or abs(abs(float(terms[0]["weight"])) - 1) > 0:
            remarks.append(f"{d.key}: not a ratio of two lines (or blends); not used")
            continue
        part = terms[0]["parts"][0]
        simple.append((j, dict(part["numerator"]), dict(part["denominator"]),
                       float(terms[0]["weight"])))
    used = set()
    changed = True
    while changed:
        changed = False
        for j, num, den, w in simple:
            if j in used:
                continue
            kn, kd = _unit_key(num), _unit_key(den)
            s2 = (diags[j].sigma_ratio or 0.0) ** 2
            if kd in known and kn not in known:
                base = known[kd]
                add(num, "metal", base.log_const, base.terms + ((j, w),), base.var + s2)
            elif kn in known and kd not in known:
                base = known[kn]
                add(den, "metal", base.log_const, base.terms + ((j, -w),), base.var + s2)
            else:
                continue
            used.add(j)
            changed = True
    for j, num, den, _ in simple:
        if j not in used:
            remarks.append(f"{diags[j].key}: its lines are already predicted by other "
                           "diagnostics (or unconnected to Hbeta); not used")
    units = []
    measured = set(names)
    for u in known.values():
        if not set(u.weights) <= measured:
            continue
        if u.kind == "balmer" and next(iter(u.weights)) not in balmer:
            continue
        units.append(u)
    if nii_ha is not None:
        ha = next((u for u in units if u.label == "Ha"), None)
        if ha is None:
            raise ConfigError("nii_ha: given, but 'Ha' is not among the measured Balmer lines")
        if "NII_6585" in measured:
            raise ConfigError("nii_ha: [NII] 6585 is measured separately, so 'Ha' is not a blend; "
                              "pass nii_ha=None")
        n2 = known.get(_unit_key({"NII_6585": 1.0}))
        ha.nii = n2 if n2 is not None else nii_ha
        ha.label = "Ha+[NII]"
    units.sort(key=lambda u: u.wavelength)
    return units, remarks


def _unit_predictions(units, diags, z, logu_rows):
    """log10 (unit flux / intrinsic Hb) at z (shape S) -> (S + (U,)), and scatter var."""
    cache = {}

    def logr(j):
        if j not in cache:
            d = diags[j]
            lu = None if not d.needs_logu else logu_rows
            cache[j] = d.log_ratio(z, policy="ignore", logu=lu)
        return cache[j]

    def one(u):
        v = np.full(np.shape(z), u.log_const)
        for j, s in u.terms:
            v = v + s * logr(j)
        return v

    logp = np.stack([one(u) for u in units], axis=-1)
    nii = None
    for i, u in enumerate(units):
        if isinstance(u.nii, _Unit):
            nii = (i, one(u.nii), u.nii.var)
    return logp, nii


def line_flux_method(bins: BinFluxes, diagnostics, *, dust_law: str = "calzetti2000",
                     r_v: float | None = None, a_v_range=(0.0, 4.0), fit_dust: bool = True,
                     balmer=("Hb", "Ha", "Hg"), nii_ha=None, scatter: bool = True,
                     likelihood: str = "chi2", sampler: str = "grid",
                     rng: np.random.Generator | None = None, n_walkers: int = 100,
                     n_steps: int = 5000, n_burn: int = 2000, z_grid=None, av_grid=None,
                     logu=None) -> MetallicityResult:
    """Bayesian fit of Z, A_V and the intrinsic Hbeta flux to the line fluxes.

    Wang et al. (2017, ApJ 837, 89; Wang et al. 2022): every observed line
    ``i`` is predicted as ``R_i(Z) f_Hb 10^(-0.4 A_V k_i / R_V)``, with
    ``R_i(Z)`` its flux relative to Hbeta implied by the calibrations, and

    ``chi^2 = sum_i (f_i - a_i f_Hb)^2 / (sigma_i^2 + f_Hb^2 t_i^2)``,
    ``a_i = R_i 10^(-0.4 A_V k_i / R_V)``, ``t_i = a_i ln10 sigma_Ri``

    (``sigma_Ri``: intrinsic scatter of log R_i, dex, so ``t_i`` is the
    scatter in linear units).

    Parameters
    ----------
    bins : BinFluxes
        Observed (not dust-corrected unless ``fit_dust=False``) line fluxes.
        Only the variances are used (lines independent, as published); a
        blend's variance includes the covariance of its members.
    diagnostics : sequence of str or Diagnostic
        Calibrations that predict the lines. Each line's ratio to Hbeta is
        derived from the diagnostics that are a ratio of two lines or blends:
        over Hbeta directly (R3 gives [OIII]5008/Hb, O2 gives [OII]/Hb), over
        Halpha with the Case-B Ha/Hb = 2.86 (S2, N2), or chained through an
        already predicted line (Ne3O2 over [OII], O32 over [OII] or
        [OIII]); the scatters of chained ratios add in quadrature. The first
        diagnostic that predicts a line wins; redundant or composite ones
        (R23, O3N2, Rhat) are not used (``info["remarks"]``).
    dust_law : str, optional
        Attenuation law of :mod:`mockzgrad.physics.dust`.
    r_v : float, optional
        R_V; None = the law's default.
    a_v_range : (float, float), optional
        Flat prior on A_V, mag.
    fit_dust : bool, optional
        False for de-reddened fluxes: A_V fixed at 0.
    balmer : tuple of str, optional
        Balmer lines used as data, with the fixed Case-B ratios of
        :data:`mockzgrad.physics.lines.BALMER_RATIOS` (no scatter). Hbeta is always
        the flux parameter; it is a data point only if listed.
    nii_ha : None, "nuisance" or float, optional
        None: "Ha" is pure Halpha. Otherwise "Ha" is the Halpha+[NII]
        6550,6585 blend (grism data) and [NII]6585/Ha comes from an N2
        diagnostic if one is given, else is this fixed value (e.g. 0.05), or
        with ``"nuisance"`` a free parameter with a Jeffreys (log-uniform)
        prior on :data:`NII_HA_RANGE` (the log-uniform prior needs a lower
        bound); [NII]6550 = [NII]6585 / NII_DOUBLET_RATIO.
    scatter : bool, optional
        Include the calibrations' intrinsic scatter (``sigma_ratio``;
        unknown = 0, listed in ``info``).
    likelihood : {"chi2", "gaussian"}, optional
        ``"chi2"``: posterior ~ exp(-chi^2 / 2) as published. ``"gaussian"``:
        the normalised Gaussian likelihood, which adds
        ``-1/2 sum ln(sigma_i^2 + f_Hb^2 t_i^2)``; it matters only where the
        scatter term is comparable to the measurement errors.
    sampler : {"grid", "emcee"}, optional
        ``"grid"``: f_Hb is marginalised numerically for every (Z, A_V)
        node on 13 log-spaced nodes spanning -+6 conditional sigma around the
        weighted least-squares f_Hb (iteratively reweighted when the scatter
        term is on). Without ``z_grid``/``av_grid`` the (Z, A_V) grid is
        adaptive: a coarse grid (0.01 dex x 0.1 mag, f_Hb profiled) locates
        the region within Delta chi^2 = 25 of the best node, which is then
        covered by a fine 81 x 41 grid per bin (its Z step is in
        ``info["z_step"]``). With ``z_grid`` and/or ``av_grid`` given, that
        exact grid is used for every bin (the other one defaulting to steps
        of 0.001 dex over the Z prior or 0.02 mag over ``a_v_range``). ``"emcee"``: (Z, A_V, ln f_Hb[,
        ln [NII]/Ha]) sampled per bin, the published setting being 100
        walkers, 5000 steps, 2000 burn-in, started around the grid best fit.
    rng : numpy.random.Generator, optional
        Required for ``sampler="emcee"``.
    n_walkers, n_steps, n_burn : int, optional
        emcee settings.
    z_grid, av_grid : array_like, optional
        Explicit grids, dex and mag.
    logu : float or array_like, optional
        log10 U per bin for Kewley et al. (2019) surfaces.

    Returns
    -------
    MetallicityResult
        ``method = "line_flux"`` with ``a_v``, ``a_v_median``, ``a_v_lo``,
        ``a_v_hi`` and ``f_hb`` (best fit). Priors: Z flat on the
        intersection of the used calibrations' ranges; A_V flat on
        ``a_v_range``; f_Hb log-uniform (Jeffreys) on ``[f/1000, 1000 f]``
        around the coarse best fit ``f`` of the bin (wide enough not to
        matter for a detected bin).
    """
    bins = _check_bins(bins)
    diags = _resolve_diagnostics(diagnostics)
    _check_sampler(sampler)
    _check_rng(rng, sampler)
    if dust_law not in LAWS:
        raise ConfigError(f"dust_law = {dust_law!r}; allowed: {', '.join(LAWS)}")
    if likelihood not in ("chi2", "gaussian"):
        raise ConfigError(f"likelihood = {likelihood!r}; allowed: 'chi2', 'gaussian'")
    if isinstance(balmer, str):
        balmer = (balmer,)
    bad = [x for x in balmer if x not in BALMER_RATIOS]
    if bad:
        raise ConfigError(f"balmer: {bad} not Balmer lines; allowed: {', '.join(BALMER_RATIOS)}")
    try:
        a0, a1 = (float(v) for v in a_v_range)
    except (TypeError, ValueError):
        raise ConfigError(f"a_v_range = {a_v_range!r}: expected (low, high) in mag") from None
    if not (math.isfinite(a0) and math.isfinite(a1) and a0 < a1):
        raise ConfigError(f"a_v_range = {a_v_range!r}; allowed: finite with low < high")
    nuisance = False
    if nii_ha is not None:
        if isinstance(nii_ha, str):
            if nii_ha != "nuisance":
                raise ConfigError(f"nii_ha = {nii_ha!r}; allowed: None, 'nuisance' or a number")
            nuisance = True
        elif not (isinstance(nii_ha, (int, float)) and 0 <= nii_ha < 10):
            raise ConfigError(f"nii_ha = {nii_ha!r}; allowed: None, 'nuisance' or a number in [0, 10)")
    units, remarks = _build_units(diags, bins.names, tuple(balmer), nii_ha)
    if isinstance(next((u.nii for u in units if u.nii is not None), None), _Unit):
        nuisance = False  # N2 predicts [NII]/Ha
    n = bins.n_bins
    nu = len(units)
    used_idx = sorted({j for u in units for j, _ in u.terms}
                      | {j for u in units if isinstance(u.nii, _Unit) for j, _ in u.nii.terms})
    used_keys = tuple(diags[j].key for j in used_idx)
    if not any(u.kind == "metal" for u in units):
        raise RecoveryError(
            "line_flux_method: no measured line is predicted by the diagnostics "
            f"{[d.key for d in diags]} (measured: {', '.join(bins.names)})"
        )
    logu_b = _logu_array(logu, n, [diags[j] for j in used_idx])
    # prior on Z
    ranges = [diags[j].valid_range for j in used_idx]
    zlo, zhi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    z_note = ""
    if zlo > zhi:
        zlo, zhi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        z_note = "validity ranges do not overlap; Z prior = their union"

    def z_prior(z):
        if not z_note:
            return (z >= zlo - _TOL) & (z <= zhi + _TOL)
        out = np.zeros(np.shape(z), dtype=bool)
        for lo, hi in ranges:
            out |= (z >= lo - _TOL) & (z <= hi + _TOL)
        return out

    # data
    r_v_eff = DEFAULT_R_V[dust_law] if r_v is None else float(r_v)
    kappa = k_lambda(np.array([u.wavelength for u in units]), dust_law, r_v) / r_v_eff
    y = np.empty((n, nu))
    s2 = np.empty((n, nu))
    for i, u in enumerate(units):
        y[:, i], s2[:, i] = bins._sum(bins._weights(u.weights))
    ok = np.isfinite(y) & np.isfinite(s2) & (s2 > 0)
    y0 = np.where(ok, y, 0.0)
    s20 = np.where(ok, s2, 1.0)
    okf = ok.astype(float)
    metal = np.array([u.kind == "metal" for u in units])
    unit_var = np.array([u.var for u in units]) if scatter else np.zeros(nu)
    unknown = tuple(diags[j].key for j in used_idx if diags[j].sigma_ratio is None)
    gauss = likelihood == "gaussian"
    blend_i = next((i for i, u in enumerate(units) if u.nii is not None), None)
    c_nii = 1.0 + 1.0 / NII_DOUBLET_RATIO
    lr_nodes = np.linspace(math.log(NII_HA_RANGE[0]), math.log(NII_HA_RANGE[1]), _LF_N_R)
    lr_w = np.full(_LF_N_R, 1.0)
    lr_w[[0, -1]] = 0.5
    lr_w = np.log(lr_w / lr_w.sum())  # Jeffreys prior: uniform in ln([NII]/Ha), trapezoid
    r_mid = math.exp(0.5 * (lr_nodes[0] + lr_nodes[-1]))
    # per-bin validity
    n_ok = ok.sum(axis=1)
    reason = []
    for b in range(n):
        if not (ok[b] & metal).any():
            reason.append("no metallicity-sensitive line measured")
        elif n_ok[b] < 2:
            reason.append("fewer than two measured lines")
        else:
            reason.append("")
    live = np.array([r == "" for r in reason])

    # Units with no scatter term (Balmer lines; every unit when scatter=False) enter
    # chi^2 as a quadratic form in f_Hb, precomputed per node; the others are summed
    # explicitly at each f_Hb.
    has_t = [scatter and (u.var > 0 or (isinstance(u.nii, _Unit) and u.nii.var > 0))
             for u in units]
    quad = [i for i in range(nu) if not has_t[i] and not (nuisance and i == blend_i)]
    expl = [i for i in range(nu) if i not in quad]

    def model(zz, av, rows, paired=False):
        """Predicted observed flux per unit f_Hb (a) and its scatter (t), per unit.

        zz: (B, K) metallicities; av: (B, V) A_V, or (B, K) when ``paired``.
        Returns lists over units of arrays (B, K, V) ((B, K) when paired; t is
        None for units without scatter) and the mask of nodes where every
        prediction is finite.
        """
        lu = None if logu_b is None else logu_b[rows][:, None]
        logp, nii = _unit_predictions(units, diags, zz, lu)
        with np.errstate(over="ignore", invalid="ignore"):
            p = 10.0 ** logp  # (B, K, U)
            pn = None if nii is None else c_nii * 10.0 ** nii[1]
        finite = np.all(np.isfinite(p), axis=-1)
        if pn is not None:
            finite &= np.isfinite(pn)
            pn = np.where(np.isfinite(pn), pn, 0.0)
        p = np.where(np.isfinite(p), p, 0.0)
        a_list, t_list = [], []
        for i in range(nu):
            pi = p[..., i]
            ti = pi * (_LN10 * math.sqrt(unit_var[i])) if has_t[i] else None
            if pn is not None and i == nii[0]:  # Ha + [NII] with [NII]/Ha from N2
                if has_t[i]:
                    ti = np.hypot(ti, pn * (_LN10 * math.sqrt(nii[2])))
                pi = pi + pn
            elif i == blend_i and not nuisance:  # Ha + [NII] with a fixed [NII]/Ha
                pi = pi * (1.0 + c_nii * float(nii_ha))
            dust = 10.0 ** (-0.4 * kappa[i] * av)
            if paired:
                a_list.append(pi * dust)
                t_list.append(None if ti is None else ti * dust)
            else:
                a_list.append(pi[:, :, None] * dust[:, None, :])
                t_list.append(None if ti is None else ti[:, :, None] * dust[:, None, :])
        return a_list, t_list, (finite if paired else finite[:, :, None])

    def data(rows, paired=False):
        shape = (-1, 1) if paired else (-1, 1, 1)
        return [tuple(v[rows, i].reshape(shape) for v in (y0, s20, okf)) for i in range(nu)]

    def quad_form(a_list, dat):
        """(q0, q1, q2): chi^2 of the no-scatter units is q0 - 2 f q1 + f^2 q2."""
        q0 = q1 = q2 = 0.0
        for i in quad:
            y, v, w = dat[i]
            a = a_list[i]
            q0 = q0 + w * y * y / v
            q1 = q1 + w * a * y / v
            q2 = q2 + w * a * a / v
        return q0, q1, q2

    def fstar(a_list, t_list, dat, q, r_factor):
        """Conditional best f_Hb (weighted least squares, reweighted for the scatter)."""
        def sums(f):
            num, den = q[1], q[2]
            for i in expl:
                y, v, w = dat[i]
                a = a_list[i] * (r_factor if i == blend_i and nuisance else 1.0)
                if f is not None and t_list[i] is not None:
                    v = v + (np.where(f > 0, f, 0.0) * t_list[i]) ** 2
                num = num + w * a * y / v
                den = den + w * a * a / v
            return num, den

        with np.errstate(divide="ignore", invalid="ignore"):
            num, den = sums(None)
            f = num / den
            if any(t_list[i] is not None for i in expl):
                for _ in range(_LF_IRLS):
                    num, den = sums(f)
                    f = num / den
            return f, 1.0 / np.sqrt(den)

    def loglike(f, a_list, t_list, dat, q, skip=None, r_factor=None):
        """(chi^2, log-likelihood) at f_Hb = f, leaving out unit ``skip``."""
        chi2 = q[0] - 2.0 * f * q[1] + f * f * q[2]
        logdet = 0.0
        for i in expl:
            if i == skip:
                continue
            y, v, w = dat[i]
            a = a_list[i] if r_factor is None or i != blend_i else a_list[i] * r_factor
            if t_list[i] is not None:
                v = v + (f * t_list[i]) ** 2
                if gauss:
                    logdet = logdet + w * np.log(v)
            r = y - a * f
            chi2 = chi2 + w * r * r / v
        return chi2, -0.5 * chi2 - 0.5 * logdet

    def r_factor(lr):
        """Blend flux factor (1 + [NII]/Ha (1 + 1/3.071)) for ln([NII]/Ha) = lr."""
        return 1.0 + c_nii * np.exp(lr)

    def loglike_marg_r(f, a_list, t_list, dat, q):
        """log-likelihood with the nuisance [NII]/Ha integrated over its prior."""
        _, ll_rest = loglike(f, a_list, t_list, dat, q, skip=blend_i)
        y, v, w = dat[blend_i]
        acc = -np.inf
        for lr, lw in zip(lr_nodes, lr_w):
            r = y - a_list[blend_i] * r_factor(lr) * f
            acc = np.logaddexp(acc, -0.5 * w * r * r / v + lw)
        return ll_rest + acc

    r_mid_factor = r_factor(math.log(r_mid))

    def profile(zz, av, rows):
        """Profile log-posterior: f_Hb at its conditional best, Laplace width in ln f_Hb."""
        a_list, t_list, finite = model(zz, av, rows)
        dat = data(rows)
        q = quad_form(a_list, dat)
        f, sf = fstar(a_list, t_list, dat, q, r_mid_factor)
        with np.errstate(divide="ignore", invalid="ignore"):
            fpos = np.where(f > 0, f, np.nan)
            _, ll = loglike(fpos, a_list, t_list, dat, q, r_factor=r_mid_factor)
            lp = ll + np.log(sf / fpos)
        good = finite & np.isfinite(lp)
        return np.where(good, lp, -np.inf), fpos

    def marginal(zz, av, rows, flo, fhi):
        """log posterior of (Z, A_V), f_Hb (and a nuisance [NII]/Ha) integrated out.

        Also the chi^2 and f_Hb at the conditional best f_Hb of every node.
        """
        a_list, t_list, finite = model(zz, av, rows)
        dat = data(rows)
        q = quad_form(a_list, dat)
        f, sf = fstar(a_list, t_list, dat, q, r_mid_factor)
        flo3, fhi3 = flo[:, None, None], fhi[:, None, None]
        lflo, lfhi = np.log(flo3), np.log(fhi3)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fc = np.clip(np.where(f > 0, f, flo3), flo3, fhi3)
            slf = np.clip(np.where(np.isfinite(sf), sf / fc, 3.0), 1e-6, 3.0)
            lfc = np.log(fc)
            chi2c, _ = loglike(fc, a_list, t_list, dat, q, r_factor=r_mid_factor)
            acc = np.full(np.broadcast(fc, finite).shape, -np.inf)
            for uj in _LF_F_NODES:
                lf = lfc + uj * slf
                fj = np.exp(lf)
                if nuisance:
                    ll = loglike_marg_r(fj, a_list, t_list, dat, q)
                else:
                    ll = loglike(fj, a_list, t_list, dat, q)[1]
                acc = np.logaddexp(acc, np.where((lf >= lflo) & (lf <= lfhi), ll, -np.inf))
            lp = acc + np.log(slf)
        good = finite & np.isfinite(lp)
        return np.where(good, lp, -np.inf), np.where(good, chi2c, np.inf), fc

    def av_prior(av):
        if not fit_dust:
            return np.ones(np.shape(av), dtype=bool)
        return (av >= a0 - _TOL) & (av <= a1 + _TOL)

    nan = np.full(n, np.nan)
    z_best, z_med, z_lo, z_hi = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    av_best, av_med, av_lo, av_hi = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    f_best, chi2_min, z_step = nan.copy(), nan.copy(), nan.copy()
    # coarse stage: where is each bin's posterior, and the scale of f_Hb
    zc = np.unique(np.append(np.arange(zlo, zhi, _LF_COARSE_DZ), zhi))
    zc = zc[z_prior(zc)]
    avc = np.unique(np.append(np.arange(a0, a1, _LF_COARSE_DAV), a1)) if fit_dust else np.zeros(1)
    flo, fhi = nan.copy(), nan.copy()
    box = np.full((n, 4), np.nan)
    rows_all = np.flatnonzero(live)
    for sl in _chunks(rows_all.size, zc.size * avc.size * nu * 6):
        rows = rows_all[sl]
        nb = rows.size
        lp, fpos = profile(np.broadcast_to(zc, (nb, zc.size)), np.broadcast_to(avc, (nb, avc.size)),
                           rows)
        flat = lp.reshape(nb, -1)
        kb = np.argmax(flat, axis=1)
        top = flat[np.arange(nb), kb]
        fref = fpos.reshape(nb, -1)[np.arange(nb), kb]
        flo[rows], fhi[rows] = fref / _LF_F_SPAN, fref * _LF_F_SPAN
        sel = lp >= (top - 0.5 * _LF_BOX_DCHI2)[:, None, None]
        anyz, anyv = sel.any(axis=2), sel.any(axis=1)
        iz, iv = np.arange(zc.size), np.arange(avc.size)
        zmin_i = np.where(anyz, iz, zc.size).min(1) - 1
        zmax_i = np.where(anyz, iz, -1).max(1) + 1
        vmin_i = np.where(anyv, iv, avc.size).min(1) - 1
        vmax_i = np.where(anyv, iv, -1).max(1) + 1
        box[rows] = np.stack([zc[np.clip(zmin_i, 0, zc.size - 1)], zc[np.clip(zmax_i, 0, zc.size - 1)],
                              avc[np.clip(vmin_i, 0, avc.size - 1)],
                              avc[np.clip(vmax_i, 0, avc.size - 1)]], axis=1)
        for b in rows[~(np.isfinite(top) & (fref > 0))]:
            reason[b] = "no positive Hbeta flux fits the data"
            live[b] = False
    # fine stage
    explicit = z_grid is not None or av_grid is not None
    if explicit:
        zg = (_check_grid(z_grid, "z_grid") if z_grid is not None
              else np.linspace(zlo, zhi, int(round((zhi - zlo) / Z_STEP)) + 1))
        if not fit_dust:
            ag = np.zeros(1)
        elif av_grid is not None:
            ag = _check_grid(av_grid, "av_grid")
        else:
            ag = np.linspace(a0, a1, int(round((a1 - a0) / 0.02)) + 1)
        nzf, nvf = zg.size, ag.size
    else:
        nzf, nvf = _LF_FINE_NZ, (_LF_FINE_NAV if fit_dust else 1)
    rows_all = np.flatnonzero(live)
    for sl in _chunks(rows_all.size, nzf * nvf * nu * 8):
        rows = rows_all[sl]
        nb = rows.size
        ar = np.arange(nb)
        if explicit:
            zz = np.broadcast_to(zg, (nb, nzf))
            aa = np.broadcast_to(ag, (nb, nvf))
        else:
            zz = box[rows, 0:1] + (box[rows, 1:2] - box[rows, 0:1]) * np.linspace(0.0, 1.0, nzf)
            aa = (box[rows, 2:3] + (box[rows, 3:4] - box[rows, 2:3]) * np.linspace(0.0, 1.0, nvf)
                  if fit_dust else np.zeros((nb, 1)))
        lp, chi2, fc = marginal(zz, aa, rows, flo[rows], fhi[rows])
        prior = z_prior(zz)[:, :, None] & av_prior(aa)[:, None, :]
        lp = np.where(prior, lp, -np.inf)
        chi2 = np.where(prior & np.isfinite(lp), chi2, np.inf)
        with np.errstate(invalid="ignore"):
            pz = np.logaddexp.reduce(lp + _log_trapezoid_weights(aa)[:, None, :], axis=2)
            pv = np.logaddexp.reduce(lp + _log_trapezoid_weights(zz)[:, :, None], axis=1)
        kb = np.argmin(chi2.reshape(nb, -1), axis=1)
        ibz, ibv = np.unravel_index(kb, (nzf, nvf))
        z_best[rows], chi2_min[rows] = _refine_minimum(zz, chi2[ar, :, ibv], ibz)
        z_lo[rows], z_med[rows], z_hi[rows] = _percentiles(zz, pz)
        z_step[rows] = zz[:, 1] - zz[:, 0]
        av_best[rows] = aa[ar, ibv]
        f_best[rows] = fc[ar, ibz, ibv]
        if fit_dust:
            av_lo[rows], av_med[rows], av_hi[rows] = _percentiles(aa, pv)
        else:
            av_lo[rows] = av_med[rows] = av_hi[rows] = 0.0
        for b in rows[~np.isfinite(chi2[ar, ibz, ibv])]:
            reason[b] = "no grid node inside the prior gives finite predicted fluxes"
            live[b] = False
    info = {"sampler": sampler, "dust_law": dust_law, "r_v": r_v_eff, "fit_dust": bool(fit_dust),
            "a_v_range": (a0, a1), "scatter": bool(scatter), "scatter_unknown": unknown,
            "likelihood": likelihood, "units": tuple(u.label for u in units),
            "nii_ha": nii_ha, "remarks": tuple(remarks), "z_prior": (zlo, zhi),
            "z_step": _readonly(z_step)}
    if sampler == "emcee":
        n_dim = 2 + int(fit_dust) + int(nuisance)
        n_walkers, n_steps, n_burn = _check_mcmc(n_walkers, n_steps, n_burn, n_dim)
        info.update(n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn)
        i_f = 1 + int(fit_dust)

        for b in np.flatnonzero(live):
            rows = np.array([b])
            lflo, lfhi = math.log(flo[b]), math.log(fhi[b])

            dat_b = data(rows, paired=True)

            def evaluate(theta, rows=rows, lflo=lflo, lfhi=lfhi, dat=dat_b):
                zw = theta[:, 0]
                avw = theta[:, 1] if fit_dust else np.zeros_like(zw)
                lf = theta[:, i_f]
                inside = z_prior(zw) & av_prior(avw) & (lf >= lflo) & (lf <= lfhi)
                a_list, t_list, finite = model(np.where(inside, zw, zlo)[None, :],
                                               np.where(inside, avw, a0 if fit_dust else 0.0)[None, :],
                                               rows, paired=True)
                rf = None
                if nuisance:
                    lr = theta[:, i_f + 1]
                    inside &= (lr >= lr_nodes[0]) & (lr <= lr_nodes[-1])
                    rf = r_factor(np.clip(lr, lr_nodes[0], lr_nodes[-1]))[None, :]
                q = quad_form(a_list, dat)
                with np.errstate(over="ignore", invalid="ignore"):
                    chi2, ll = loglike(np.exp(np.clip(lf, lflo, lfhi))[None, :], a_list, t_list,
                                       dat, q, r_factor=rf)
                good = inside & finite[0] & np.isfinite(ll[0])
                return np.where(good, chi2[0], np.inf), np.where(good, ll[0], -np.inf)

            def log_prob(theta, evaluate=evaluate):
                return evaluate(theta)[1]

            sd_z = max(0.5 * (z_hi[b] - z_lo[b]), 1e-4)
            start = [np.clip(z_best[b] + 0.1 * sd_z * rng.standard_normal(n_walkers), zlo, zhi)]
            if fit_dust:
                sd_a = max(0.5 * (av_hi[b] - av_lo[b]), 1e-3)
                start.append(np.clip(av_best[b] + 0.1 * sd_a * rng.standard_normal(n_walkers),
                                     a0, a1))
            start.append(np.clip(math.log(f_best[b]) + 1e-3 * rng.standard_normal(n_walkers),
                                 lflo, lfhi))
            if nuisance:
                start.append(math.log(r_mid) + 0.1 * rng.standard_normal(n_walkers))
            chain, lpc = _run_emcee(log_prob, np.stack(start, axis=1), rng, n_steps, n_burn)
            z_lo[b], z_med[b], z_hi[b] = np.percentile(chain[:, 0], [_P_LO, 50.0, _P_HI])
            kbest = int(np.argmax(lpc))
            z_best[b] = chain[kbest, 0]
            if fit_dust:
                av_lo[b], av_med[b], av_hi[b] = np.percentile(chain[:, 1], [_P_LO, 50.0, _P_HI])
                av_best[b] = chain[kbest, 1]
            f_best[b] = math.exp(chain[kbest, i_f])
            chi2_min[b] = evaluate(chain[kbest:kbest + 1])[0][0]
    valid = live & np.isfinite(z_best) & np.isfinite(z_med) & np.isfinite(z_lo) & np.isfinite(z_hi)
    for b in range(n):
        if not valid[b] and not reason[b]:
            reason[b] = "posterior could not be evaluated"

    def keep(v):
        return np.where(valid, v, np.nan)

    return MetallicityResult(
        method="line_flux", z=keep(z_best), z_median=keep(z_med), z_lo=keep(z_lo),
        z_hi=keep(z_hi), valid=valid, reason=tuple(reason),
        diagnostics_used=tuple(used_keys if valid[b] else () for b in range(n)),
        chi2_min=keep(chi2_min), notes=(z_note,) * n, a_v=keep(av_best),
        a_v_median=keep(av_med), a_v_lo=keep(av_lo), a_v_hi=keep(av_hi), f_hb=keep(f_best),
        info=info,
    )


def _log_trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """log of the trapezoid weights of grids ``x`` (n, K); 0 for a single node."""
    if x.shape[1] == 1:
        return np.zeros(x.shape)
    dx = np.diff(x, axis=1)
    w = np.zeros(x.shape)
    w[:, :-1] += 0.5 * dx
    w[:, 1:] += 0.5 * dx
    with np.errstate(divide="ignore"):
        return np.log(w)


# ---------------------------------------------------------------------------
# Balmer decrement
# ---------------------------------------------------------------------------
def balmer_decrement_correction(bins: BinFluxes, *, law: str = "calzetti2000",
                                r_v: float | None = None, pair=("Ha", "Hb"), law_lines: str | None = None,
                                intrinsic: float | None = None, snr_min: float = 4.0,
                                global_a_v: float | None = None, a_v_error: bool = True):
    """Correct line fluxes for dust with the Balmer decrement of each bin.

    Parameters
    ----------
    bins : BinFluxes
        Observed fluxes; both lines of ``pair`` must be measured.
    law : str, optional
        Attenuation law of :mod:`mockzgrad.physics.dust`, used for A_V from the decrement.
    r_v : float, optional
        R_V; None = the law's default.
    law_lines : str, optional
        Law that de-reddens every line with that A_V (default ``law``). The
        Battisti et al. (2022) curve is known only at Halpha and Hbeta, so
        other lines need a stand-in curve here (e.g. ``"cardelli1989"``).
    pair : (str, str), optional
        Balmer lines ``(l1, l2)`` whose ratio F(l1)/F(l2) is used:
        ``("Ha", "Hb")`` or ``("Hg", "Hb")``.
    intrinsic : float, optional
        Intrinsic F(l1)/F(l2); default Case B from
        :data:`mockzgrad.physics.lines.BALMER_RATIOS` (2.86 for Ha/Hb, 0.468 for Hg/Hb).
    snr_min : float, optional
        Both lines need flux/err > snr_min for a per-bin A_V.
    global_a_v : float, optional
        A_V (mag) of the integrated spectrum, used where the bin's own
        decrement is not usable (low S/N, or not steeper than the intrinsic
        one, i.e. it would give A_V <= 0); None: no correction there.
    a_v_error : bool, optional
        Propagate the error of the per-bin A_V (first order, through the
        Jacobian of the corrected fluxes with respect to the two Balmer
        fluxes) into the covariance. False: the correction factors are
        treated as exact, ``cov' = G cov G``. ``global_a_v`` is always
        treated as exact.

    Returns
    -------
    corrected : BinFluxes
        ``flux * 10^(0.4 A_V k(lambda) / R_V)`` and its covariance.
    a_v : ndarray, shape (n_bins,)
        A_V applied, mag (0 where none).
    source : tuple of str
        Per bin ``"bin"``, ``"global"`` or ``"none"``.
    """
    bins = _check_bins(bins)
    if law not in LAWS:
        raise ConfigError(f"law = {law!r}; allowed: {', '.join(LAWS)}")
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ConfigError(f"pair = {pair!r}: expected two line ids such as ('Ha', 'Hb')")
    l1, l2 = pair
    i1, i2 = bins.index(l1), bins.index(l2)
    if intrinsic is None:
        if l1 not in BALMER_RATIOS or l2 not in BALMER_RATIOS:
            raise ConfigError(f"pair = {pair!r}: give `intrinsic` for non-Balmer lines")
        intrinsic = BALMER_RATIOS[l1] / BALMER_RATIOS[l2]
    intrinsic = float(intrinsic)
    if not (math.isfinite(intrinsic) and intrinsic > 0):
        raise ConfigError(f"intrinsic = {intrinsic}; allowed: finite and > 0")
    if global_a_v is not None:
        global_a_v = float(global_a_v)
        if not math.isfinite(global_a_v):
            raise ConfigError(f"global_a_v = {global_a_v}; expected a finite number (mag)")
    r_v_eff = DEFAULT_R_V[law] if r_v is None else float(r_v)
    f1, f2 = bins.flux[:, i1], bins.flux[:, i2]
    snr = bins.snr
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = f1 / f2
    av_bin = a_v_from_balmer_decrement(np.where(np.isfinite(ratio) & (ratio > 0), ratio, intrinsic),
                                       intrinsic=intrinsic, lines=(l1, l2), law=law, r_v=r_v)
    # the decrement must be steeper than the intrinsic one (Ha/Hb above 2.86, Hg/Hb below 0.468)
    use = (snr[:, i1] > snr_min) & (snr[:, i2] > snr_min) & np.isfinite(ratio) & (ratio > 0) & \
        (av_bin > 0)
    fallback = 0.0 if global_a_v is None else global_a_v
    a_v = np.where(use, av_bin, fallback)
    source = tuple("bin" if u else ("global" if global_a_v is not None else "none") for u in use)
    if law_lines is None or law_lines == law:
        kap = k_lambda(np.array([LINES[x].wavelength for x in bins.names]), law, r_v) / r_v_eff
    else:
        if law_lines not in LAWS:
            raise ConfigError(f"law_lines = {law_lines!r}; allowed: {', '.join(LAWS)}")
        kap = k_lambda(np.array([LINES[x].wavelength for x in bins.names]), law_lines) / DEFAULT_R_V[law_lines]
    gain = 10.0 ** (0.4 * a_v[:, None] * kap[None, :])
    flux = bins.flux * gain
    n, nl = flux.shape
    jac = gain[:, :, None] * np.eye(nl)[None]
    if a_v_error:
        k1, k2 = k_lambda([LINES[l1].wavelength, LINES[l2].wavelength], law, r_v)
        c = 2.5 * r_v_eff / (k2 - k1) / _LN10  # dA_V/dln(F1/F2), mag
        with np.errstate(divide="ignore", invalid="ignore"):
            dav = np.zeros((n, nl))
            dav[:, i1] = c / f1
            dav[:, i2] = -c / f2
        dav[~use] = 0.0
        dflux = np.where(np.isfinite(flux), flux, 0.0) * 0.4 * _LN10 * kap[None, :]
        jac = jac + dflux[:, :, None] * dav[:, None, :]
    cov0 = np.where(np.isfinite(bins.cov), bins.cov, 0.0)
    cov = np.einsum("sij,sjk,slk->sil", jac, cov0, jac)
    cov[~np.isfinite(bins.cov)] = np.nan
    return BinFluxes(bins.names, flux, cov), a_v, source
