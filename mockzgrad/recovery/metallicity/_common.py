"""Shared pieces of the metallicity methods: constants, input checks, the emcee runner."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError
from ...physics.calibrations import Diagnostic, get_diagnostic
from ..summary import PERCENTILES

__all__ = [
    "REASON_NO_DIAGNOSTIC",
    "REASON_OUTSIDE_RANGE",
    "Z_STEP",
    "NII_HA_RANGE",
    "LN10",
    "P_LO",
    "P_HI",
    "QUANTILES",
    "TOL",
    "resolve_diagnostics",
    "logu_array",
    "check_sampler",
    "check_rng",
    "check_mcmc",
    "run_emcee",
    "join",
]

#: Reason given to a bin where no diagnostic is usable (Method I).
REASON_NO_DIAGNOSTIC = "no diagnostic passed the S/N gate"
#: Reason given when a ratio lies more than 1 sigma beyond a calibration's extremes (Method II).
REASON_OUTSIDE_RANGE = "ratio outside calibration range"
#: Default step of the Method I metallicity grid, dex.
Z_STEP = 0.001
#: Support of the log-uniform (Jeffreys) prior on [NII]6585/Halpha when it is a nuisance.
NII_HA_RANGE = (0.005, 0.5)

LN10 = math.log(10.0)
P_LO, P_HI = PERCENTILES
#: Quantiles reported: 15.87%, median, 84.13%, as fractions.
QUANTILES = (P_LO / 100.0, 0.5, P_HI / 100.0)
TOL = 1e-9  # dex; slack on validity-range edges


def resolve_diagnostics(diagnostics) -> tuple[Diagnostic, ...]:
    """Diagnostics by key or object, as a tuple; ConfigError if empty or repeated."""
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


def logu_array(logu, n: int, diags: Sequence[Diagnostic]):
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


def check_rng(rng, sampler):
    """emcee needs an explicit generator: results must not depend on global state."""
    if sampler == "emcee" and not isinstance(rng, np.random.Generator):
        raise ConfigError("rng: sampler='emcee' needs an explicit np.random.Generator")


def check_sampler(sampler):
    if sampler not in ("grid", "emcee"):
        raise ConfigError(f"sampler = {sampler!r}; allowed: 'grid', 'emcee'")


def check_mcmc(n_walkers, n_steps, n_burn, n_dim):
    """emcee settings as ints; the stretch move needs an even number >= 2 n_dim of walkers."""
    n_walkers, n_steps, n_burn = int(n_walkers), int(n_steps), int(n_burn)
    if n_walkers < 2 * n_dim or n_walkers % 2:
        raise ConfigError(f"n_walkers = {n_walkers}; allowed: even and >= {2 * n_dim}")
    if not 0 <= n_burn < n_steps:
        raise ConfigError(f"n_burn = {n_burn}, n_steps = {n_steps}; allowed: 0 <= n_burn < n_steps")
    return n_walkers, n_steps, n_burn


def run_emcee(log_prob, p0, rng, n_steps, n_burn):
    """Run a vectorised emcee sampler seeded from ``rng``; flat chain and log-probabilities.

    Parameters
    ----------
    log_prob : callable
        ``log_prob(theta)`` for ``theta`` of shape (n_walkers, n_dim), returning (n_walkers,).
    p0 : ndarray, shape (n_walkers, n_dim)
        Starting positions.
    rng : numpy.random.Generator
        Seeds emcee's own RandomState (one draw).
    n_steps, n_burn : int
        Steps run and steps discarded.
    """
    import emcee

    n_walkers, n_dim = p0.shape
    seed = int(rng.integers(0, 2**32 - 1))
    state = emcee.State(p0, random_state=np.random.RandomState(seed).get_state())
    sampler = emcee.EnsembleSampler(n_walkers, n_dim, log_prob, vectorize=True)
    sampler.run_mcmc(state, n_steps, progress=False)
    return (sampler.get_chain(discard=n_burn, flat=True),
            sampler.get_log_prob(discard=n_burn, flat=True))


def join(parts: list[str]) -> str:
    """Per-bin remarks as one string."""
    return "; ".join(parts)
