"""Per-bin line fluxes with their covariance: the input of the recovery's back end.

The front end (line fits of binned spectra today; line maps of a grism
product later) turns an observer product into a :class:`BinFluxes` table;
the back end (dust correction, :mod:`mockzgrad.recovery.dust`; metallicity,
:mod:`mockzgrad.recovery.metallicity`) consumes only this table.

Fluxes are in any one unit (erg/s/cm^2 for line fits); only ratios matter to
the metallicity methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..physics.lines import LINES

__all__ = ["BinFluxes", "check_bins", "readonly"]


def readonly(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only in place (results are frozen dataclasses)."""
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
        object.__setattr__(self, "flux", readonly(flux))
        object.__setattr__(self, "cov", readonly(cov))

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


def check_bins(bins) -> BinFluxes:
    """``bins`` if it is a :class:`BinFluxes`, else a ConfigError."""
    if not isinstance(bins, BinFluxes):
        raise ConfigError(f"bins: expected a BinFluxes, got {type(bins).__name__}")
    return bins
