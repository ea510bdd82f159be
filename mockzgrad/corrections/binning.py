"""Grouping of intrinsic gradients, bins in x and running medians.

The mocks of a suite are grouped by intrinsic ``|grad_z|`` (dex/kpc; the
distinct values of the suite, or bins of them) and, within a group, binned in
the resolution ``x = 2 r_eff / psf_fwhm`` (dimensionless). Bins are
``[e_i, e_i+1)``, the last one closed. Automatic x bins start from quantile
edges and merge a bin with its smaller neighbour until every bin holds at
least ``min_per_bin`` mocks (of every subset, when halves are compared on
common edges). A running median carries the median and the 15.87th /
84.13th percentiles (:data:`PERCENTILES`) of the ratio in each bin; its
half 16-84 width is the local scatter of single mocks used for weights and
checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ConfigError
from ..validate import integer

__all__ = [
    "PERCENTILES",
    "GRAD_DECIMALS",
    "readonly_array",
    "RunningMedian",
    "LocalStats",
    "assign_groups",
    "make_grouping",
    "bin_index",
    "auto_edges",
    "running_median",
    "local_stats",
    "local_scatter",
]

#: Lower / upper percentiles, 100 Phi(-1) and 100 Phi(+1) (the "16/84" of the literature).
PERCENTILES = (
    50.0 * math.erfc(1.0 / math.sqrt(2.0)),
    100.0 - 50.0 * math.erfc(1.0 / math.sqrt(2.0)),
)
#: Decimals |grad_z_true| is rounded to before grouping (1e-6 dex/kpc).
GRAD_DECIMALS = 6
_SIGMA_FLOOR = 1e-6  # smallest local scatter, ratio units: keeps weights finite for noiseless mocks
_MIN_PER_SCATTER_BIN = 25  # mocks per x bin, at least, where the local scatter is measured

_MAX_X_BINS = 12
_MAX_DISCRETE_GRADS = 10
_AUTO_GRAD_BINS = 4


def readonly_array(values, dtype=float) -> np.ndarray:
    """A new array of ``values`` that cannot be written (for the fields of frozen results)."""
    arr = np.array(values, dtype=dtype)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class RunningMedian:
    """Running median of the ratio in bins of ``x``.

    Attributes
    ----------
    x_lo, x_hi : ndarray
        Bin edges in ``x = 2 r_eff / psf_fwhm``; a bin is ``[x_lo, x_hi)``,
        the last one closed.
    x_center : ndarray
        Median ``x`` of the mocks in each bin.
    n : ndarray of int
        Mocks in each bin.
    median, p16, p84 : ndarray
        Median and 15.87th / 84.13th percentiles of the ratio; NaN in a bin
        with fewer than ``min_per_bin`` mocks (possible only with explicit
        ``x_bins``).
    """

    x_lo: np.ndarray
    x_hi: np.ndarray
    x_center: np.ndarray
    n: np.ndarray
    median: np.ndarray
    p16: np.ndarray
    p84: np.ndarray

    def __post_init__(self):
        for name in ("x_lo", "x_hi", "x_center", "median", "p16", "p84"):
            object.__setattr__(self, name, readonly_array(getattr(self, name)))
        object.__setattr__(self, "n", readonly_array(self.n, dtype=np.int64))

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.n.size)

    @property
    def scatter(self) -> np.ndarray:
        """Half the 16-84 width of each bin, ``(p84 - p16) / 2``; ratio units."""
        return 0.5 * (self.p84 - self.p16)

    @classmethod
    def empty(cls) -> "RunningMedian":
        """A running median with no bins (curves given as polynomials)."""
        e = np.zeros(0)
        return cls(x_lo=e, x_hi=e, x_center=e, n=np.zeros(0, int), median=e, p16=e, p84=e)


@dataclass(frozen=True, eq=False)
class LocalStats:
    """A running median and its scatter interpolated linearly in ``x`` at given points.

    Attributes
    ----------
    median : ndarray
        Running median of the ratio at each point.
    scatter : ndarray
        Half 16-84 width of the ratio at each point, >= 1e-6.
    """

    median: np.ndarray
    scatter: np.ndarray


# --------------------------------------------------------------------------- grouping in |grad_z|


def assign_groups(abs_grad_true, grouping: Mapping) -> np.ndarray:
    """Group label (dex/kpc) of each mock from its ``|grad_z_true|``.

    Parameters
    ----------
    abs_grad_true : array_like
        ``|grad_z_true|`` of the mocks, dex/kpc.
    grouping : mapping
        ``settings["grouping"]`` of a :class:`~mockzgrad.corrections.curveset.CorrectionCurves`
        (made by :func:`make_grouping`):
        ``{"mode": "discrete"}`` (label = value rounded to 1e-6),
        ``{"mode": "values", "values": [...]}`` (nearest value) or
        ``{"mode": "bins", "edges": [...], "labels": [...]}`` (the label of
        the bin; NaN outside the edges).

    Returns
    -------
    ndarray
        Label per mock, dex/kpc.
    """
    a = np.abs(np.asarray(abs_grad_true, dtype=float))
    mode = grouping.get("mode")
    if mode == "discrete":
        return np.round(a, GRAD_DECIMALS)
    if mode == "values":
        v = np.asarray(grouping["values"], float)
        return v[np.argmin(np.abs(a[:, None] - v[None, :]), axis=1)] if a.size else np.zeros(0)
    if mode == "bins":
        edges = np.asarray(grouping["edges"], float)
        labels = np.asarray(grouping["labels"], float)
        idx = bin_index(a, edges)
        out = np.full(a.shape, np.nan)
        ok = idx >= 0
        out[ok] = labels[idx[ok]]
        return out
    raise ConfigError(f"grouping mode = {mode!r}; allowed 'discrete', 'values', 'bins'")


_GRAD_BINS_ALLOWED = ("None/'auto', 'discrete', an int >= 1, a sequence of |grad_z| values > 0 (dex/kpc) "
                      "or {'edges': [...]}")


def make_grouping(abs_grad_true, grad_bins=None) -> dict:
    """How the mocks are grouped by intrinsic ``|grad_z|``, as stored in the curves' settings.

    Parameters
    ----------
    abs_grad_true : ndarray
        ``|grad_z_true|`` of the usable mocks, dex/kpc; at least one.
    grad_bins : None, "auto", "discrete", int >= 1, sequence or {"edges": sequence}
        ``None`` / ``"auto"``: the distinct values (rounded to 1e-6) when
        there are at most 10, else 4 equal-count bins. ``"discrete"``: the
        distinct values. An int: that many equal-count bins. A sequence:
        those values (> 0); each mock goes to the nearest.
        ``{"edges": [...]}``: bins with those edges (increasing, >= 0).

    Returns
    -------
    dict
        A grouping for :func:`assign_groups` with a ``rule`` text (bins are
        labelled by the median ``|grad_z_true|`` of their mocks, rounded to
        1e-6; an empty bin by its centre).

    Raises
    ------
    ConfigError
        ``grad_bins`` is not one of the forms above.
    """
    abs_g = np.asarray(abs_grad_true, dtype=float)
    if grad_bins is None or (isinstance(grad_bins, str) and grad_bins == "auto"):
        if np.unique(np.round(abs_g, GRAD_DECIMALS)).size <= _MAX_DISCRETE_GRADS:
            return {"mode": "discrete", "rule": f"auto: <= {_MAX_DISCRETE_GRADS} distinct |grad_z_true|"}
        grad_bins = _AUTO_GRAD_BINS
    if isinstance(grad_bins, str):
        if grad_bins != "discrete":
            raise ConfigError(f"grad_bins = {grad_bins!r}; allowed {_GRAD_BINS_ALLOWED}")
        return {"mode": "discrete"}
    if isinstance(grad_bins, (int, np.integer)) and not isinstance(grad_bins, bool):
        n = integer("grad_bins", grad_bins, 1)
        return _bins_grouping(abs_g, _quantile_edges(abs_g, n), f"{n} equal-count bins in |grad_z_true|")
    if isinstance(grad_bins, Mapping):
        return _bins_grouping(abs_g, _grad_edges(grad_bins), "given edges in |grad_z_true|")
    values = np.asarray(grad_bins, dtype=float) if not isinstance(grad_bins, bool) else np.array([])
    if values.ndim != 1 or values.size < 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ConfigError(f"grad_bins = {grad_bins!r}; allowed {_GRAD_BINS_ALLOWED}")
    values = np.unique(np.round(np.abs(values), GRAD_DECIMALS))
    return {"mode": "values", "values": [float(v) for v in values],
            "rule": "each mock assigned to the nearest given |grad_z| value"}


def _grad_edges(grad_bins: Mapping) -> np.ndarray:
    if set(grad_bins) != {"edges"}:
        raise ConfigError(f"grad_bins = {grad_bins!r}; a mapping must be {{'edges': [...]}}")
    edges = np.asarray(grad_bins["edges"], float)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0) \
            or edges[0] < 0:
        raise ConfigError(f"grad_bins edges = {grad_bins['edges']!r}; allowed: >= 2 increasing finite "
                          "values >= 0 (dex/kpc)")
    return edges


def _bins_grouping(abs_g, edges, rule) -> dict:
    idx = bin_index(abs_g, edges)
    labels = []
    for i in range(edges.size - 1):
        sel = abs_g[idx == i]
        labels.append(round(float(np.median(sel)), GRAD_DECIMALS) if sel.size else
                      round(0.5 * float(edges[i] + edges[i + 1]), GRAD_DECIMALS))
    return {"mode": "bins", "edges": [float(e) for e in edges], "labels": labels,
            "rule": rule + "; label = median |grad_z_true| of the bin"}


# --------------------------------------------------------------------------- bins in x


def bin_index(x, edges) -> np.ndarray:
    """Bin of each value for bins ``[e_i, e_i+1)``, the last closed; -1 outside (and for NaN).

    Parameters
    ----------
    x : array_like
    edges : array_like
        Increasing edges; two equal edges make one bin holding exactly that value.

    Returns
    -------
    ndarray of int
        Shape of ``x``.
    """
    x = np.asarray(x, float)
    edges = np.asarray(edges, float)
    nb = edges.size - 1
    if nb < 1:
        return np.full(x.shape, -1)
    if edges[0] == edges[-1]:
        return np.where(x == edges[0], 0, -1)
    idx = np.searchsorted(edges, x, side="right") - 1
    idx = np.where(x == edges[-1], nb - 1, idx)
    return np.where((x < edges[0]) | (x > edges[-1]) | ~np.isfinite(x), -1, idx)


def _quantile_edges(x, n_bins: int) -> np.ndarray:
    """Edges of ``n_bins`` equal-count bins of ``x`` (fewer where quantiles coincide; >= 2 edges)."""
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:
        edges = np.array([x.min(), x.max()])
    return edges


def _merge_edges(edges, subsets, min_per_bin: int):
    """Merge bins as :func:`auto_edges` describes; returns (edges, ok)."""
    edges = list(np.asarray(edges, float))
    while True:
        nb = len(edges) - 1
        counts = np.min([np.bincount(np.clip(bin_index(s, edges), 0, None)[bin_index(s, edges) >= 0],
                                     minlength=nb)[:nb] for s in subsets], axis=0)
        if counts.min() >= min_per_bin:
            return np.asarray(edges), True
        if nb == 1:
            return np.asarray(edges), False
        j = int(np.argmin(counts))
        if j == 0:
            del edges[1]
        elif j == nb - 1:
            del edges[-2]
        elif counts[j - 1] <= counts[j + 1]:
            del edges[j]
        else:
            del edges[j + 1]


def auto_edges(subsets, min_per_bin: int, n_bins: int | None = None):
    """Common x edges for ``subsets``: quantile edges of the pooled values, bins merged until each is full enough.

    The bin with the fewest members (of the worst subset) is merged with its
    smaller neighbour, repeatedly, until every subset has >= ``min_per_bin``
    members in each bin.

    Parameters
    ----------
    subsets : sequence of ndarray
    min_per_bin : int >= 1
    n_bins : int, optional
        Starting number of bins; default ``min(12, n // min_per_bin)`` (at
        least 1) with ``n`` the size of the smallest subset.

    Returns
    -------
    edges : ndarray
    ok : bool
        False when even a single bin cannot hold ``min_per_bin`` of each subset.
    """
    pooled = np.concatenate(subsets)
    n = min(s.size for s in subsets)
    target = n_bins if n_bins is not None else max(1, min(_MAX_X_BINS, n // min_per_bin))
    return _merge_edges(_quantile_edges(pooled, target), subsets, min_per_bin)


def running_median(x, r, edges, min_per_bin: int) -> RunningMedian:
    """Median and 16/84 percentiles of ``r`` in bins of ``x``.

    Parameters
    ----------
    x, r : ndarray
        Resolution and ratio of each mock.
    edges : array_like
        Bin edges in ``x``.
    min_per_bin : int
        Bins with fewer mocks get NaN statistics (their ``x_center`` is
        still the median ``x`` when they hold any).

    Returns
    -------
    RunningMedian
    """
    edges = np.asarray(edges, float)
    idx = bin_index(x, edges)
    nb = edges.size - 1
    xc, med, p16, p84 = (np.full(nb, np.nan) for _ in range(4))
    n = np.zeros(nb, np.int64)
    for i in range(nb):
        sel = idx == i
        n[i] = int(sel.sum())
        if n[i] >= max(min_per_bin, 1):
            xc[i] = np.median(x[sel])
            med[i] = np.median(r[sel])
            p16[i], p84[i] = np.percentile(r[sel], PERCENTILES)
        elif n[i] > 0:
            xc[i] = np.median(x[sel])
    return RunningMedian(x_lo=edges[:-1], x_hi=edges[1:], x_center=xc, n=n, median=med, p16=p16, p84=p84)


def local_stats(x, running: RunningMedian) -> LocalStats | None:
    """Running median and scatter interpolated linearly at ``x`` (flat beyond the outer bins).

    Returns
    -------
    LocalStats or None
        None when no bin has statistics.
    """
    ok = np.isfinite(running.median) & np.isfinite(running.x_center)
    if not ok.any():
        return None
    xc = running.x_center[ok]
    order = np.argsort(xc)
    sig = np.maximum(running.scatter[ok][order], _SIGMA_FLOOR)
    return LocalStats(median=np.interp(x, xc[order], running.median[ok][order]),
                      scatter=np.interp(x, xc[order], sig))


def _scatter_edges(x, min_per_bin: int) -> np.ndarray:
    """x bins for the local scatter used as weights: >= max(min_per_bin, 25) mocks each.

    Wider than the running-median bins so that the scatter, and hence the
    weights and chi^2, are not dominated by the noise of small-sample
    percentiles.
    """
    edges, _ = auto_edges([x], max(min_per_bin, _MIN_PER_SCATTER_BIN))
    return edges


def local_scatter(x, r, at, min_per_bin: int) -> np.ndarray:
    """Scatter of ``r`` about its running median in x bins of >= max(min_per_bin, 25) mocks, at the points ``at``.

    Parameters
    ----------
    x, r : ndarray
        Resolution and value (ratio or residual) of each mock.
    at : ndarray
        Where to evaluate, in ``x``.
    min_per_bin : int

    Returns
    -------
    ndarray
        Half 16-84 width interpolated at ``at``, shape of ``at``; where no
        bin has statistics, the standard deviation of ``r`` everywhere
        (both at least 1e-6).
    """
    stats = local_stats(at, running_median(x, r, _scatter_edges(x, min_per_bin), min_per_bin))
    if stats is None:
        return np.full(np.shape(at), max(float(np.std(r)), _SIGMA_FLOOR))
    return stats.scatter
