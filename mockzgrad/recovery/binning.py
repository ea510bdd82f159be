"""Grouping spaxels into bins: elliptical annuli, spaxels, Voronoi bins, sectors.

Every scheme returns a :class:`Binning`: a label map (``-1`` = spaxel not
used), one deprojected radius per bin in physical kpc, and a record of what
was left out and why. Conventions follow :mod:`mockzgrad.recovery.geometry`:
maps are indexed ``[y, x]``, offsets ``x`` (east) and ``y`` (north) are in
arcsec, and the semi-major axis ``a`` of a spaxel is its elliptical radius
``hypot(x_maj, y_min / q)`` in arcsec (deprojected radius / angular scale).

Gating line: the S/N of a set of spaxels on the gating line (the brightest
line map unless a recipe says otherwise) is ``sum(flux) / sqrt(sum(err^2))``
over its spaxels, the S/N of their summed spectrum. Spaxels whose gating
flux or error is not finite, or whose error is negative, are never used.

Radius of a bin:

- annuli (``annuli``, ``fixed_annuli``, ``grown_annuli``): the mean of the
  inner and outer semi-major axes, converted to kpc (on the major axis the
  deprojected radius equals the semi-major axis); ``inner`` / ``outer`` are
  those semi-major axes in kpc;
- spaxels and Voronoi bins: the flux-weighted mean deprojected radius of
  their spaxels (weights = gating flux clipped at 0; the plain mean when no
  weight is positive); ``inner`` / ``outer`` are NaN.

A recipe names its scheme (``binning.scheme``); :data:`BINNING_SCHEMES`
maps each name to a function, and :func:`recipe_binning` applies the
recipe's scheme and, when asked, its azimuthal sectors. A new scheme is one
function added to that registry.

Bins are drawn on a ring model of the gating map for the schemes in
:data:`RING_MODEL_SCHEMES` (:func:`gate_model`: the mean of the map in
one-pixel elliptical rings). Voronoi bins drawn on the noisy map select its
upward fluctuations (a spaxel enters at S/N >= 1 and bins accrete until they
reach the target), so the binned gating flux comes out high; on the ring
model a spaxel's selection hardly depends on its own noise.
:attr:`Binning.drawn_on` records which map the bins were drawn on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DataError, RecoveryError
from ..validate import choice, integer, positive
from .geometry import Geometry, disk_azimuth, elliptical_radius

__all__ = [
    "Binning",
    "Exclusion",
    "BINNING_KINDS",
    "ANNULAR_KINDS",
    "gate_snr",
    "elliptical_annuli",
    "fixed_annuli",
    "grown_annuli",
    "spaxels",
    "voronoi",
    "azimuthal_sectors",
    "radial_cut",
    "keep_bins",
    "BINNING_SCHEMES",
    "CUTS_SPAXELS_BY_RADIUS",
    "binning_scheme",
    "recipe_binning",
    "gate_model",
    "RING_MODEL_SCHEMES",
]

#: Values of :attr:`Binning.kind` (the recipe's ``binning.scheme`` names).
BINNING_KINDS = ("annuli", "fixed_annuli", "grown_annuli", "spaxels", "voronoi")

#: Kinds whose bins are elliptical annuli (``inner`` / ``outer`` defined).
ANNULAR_KINDS = ("annuli", "fixed_annuli", "grown_annuli")


class Exclusion(NamedTuple):
    """A bin or region left out, and why."""

    region: str
    reason: str


@dataclass(frozen=True, eq=False)
class Binning:
    """Spaxels grouped into bins.

    Attributes
    ----------
    labels : numpy.ndarray of int, shape (ny, nx)
        Bin index of each spaxel, 0 .. n_bins - 1; -1 = not used.
    radius_kpc : numpy.ndarray, shape (n_bins,)
        Radius of each bin, deprojected physical kpc (see the module notes).
    inner, outer : numpy.ndarray, shape (n_bins,)
        Inner and outer semi-major axes of annular bins, kpc; NaN otherwise.
    kind : str
        One of :data:`BINNING_KINDS`.
    n_spaxels : numpy.ndarray of int, shape (n_bins,)
        Spaxels in each bin.
    snr : numpy.ndarray, shape (n_bins,)
        Gating-line S/N of each bin (NaN when no gating map was given).
    excluded : tuple of Exclusion
        Bins or regions left out, with the reason (e.g. an annulus below the
        outer S/N threshold).
    left_out : str
        What this scheme leaves out by construction, in words.
    sector : numpy.ndarray of shape (n_bins, 2) or None
        Azimuth range of each bin, deg from the major axis, folded to
        [0, 90] (after :func:`azimuthal_sectors`).
    parent : numpy.ndarray of int, shape (n_bins,), or None
        Index of the base bin each sector came from.
    kpc_per_arcsec : float
        Angular scale the radii were computed with, proper kpc per arcsec.
    weights : numpy.ndarray of shape (ny, nx) or None
        Per-spaxel weights of the flux-weighted radii (gating flux clipped
        at 0) for spaxel and Voronoi bins; None for annuli.
    drawn_on : str
        The map the bins were drawn on: ``"gating map"`` (its spaxels) or
        ``"ring model"`` (:func:`gate_model` of the gating map).
    """

    labels: np.ndarray
    radius_kpc: np.ndarray
    inner: np.ndarray
    outer: np.ndarray
    kind: str
    n_spaxels: np.ndarray
    snr: np.ndarray
    excluded: tuple = ()
    left_out: str = ""
    sector: np.ndarray | None = None
    parent: np.ndarray | None = None
    kpc_per_arcsec: float = float("nan")
    weights: np.ndarray | None = None
    drawn_on: str = "gating map"

    def __post_init__(self):
        if self.kind not in BINNING_KINDS:
            raise ConfigError(f"Binning.kind = {self.kind!r}; allowed: {', '.join(BINNING_KINDS)}")
        labels = np.asarray(self.labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ConfigError(f"Binning.labels: shape {labels.shape}, dtype {labels.dtype}; "
                              "expected an integer (ny, nx) map")
        n = np.asarray(self.radius_kpc).shape[0]
        for name in ("inner", "outer", "n_spaxels", "snr"):
            if np.asarray(getattr(self, name)).shape != (n,):
                raise ConfigError(f"Binning.{name}: shape {np.shape(getattr(self, name))}; expected ({n},)")
        if labels.size and (labels.max(initial=-1) >= n or labels.min(initial=-1) < -1):
            raise ConfigError(f"Binning.labels: values in [{labels.min()}, {labels.max()}]; allowed [-1, {n - 1}]")
        if self.sector is not None and np.asarray(self.sector).shape != (n, 2):
            raise ConfigError(f"Binning.sector: shape {np.shape(self.sector)}; expected ({n}, 2)")
        if self.parent is not None and np.asarray(self.parent).shape != (n,):
            raise ConfigError(f"Binning.parent: shape {np.shape(self.parent)}; expected ({n},)")
        if self.weights is not None and np.shape(self.weights) != labels.shape:
            raise ConfigError(f"Binning.weights: shape {np.shape(self.weights)}; expected {labels.shape}")
        object.__setattr__(self, "kpc_per_arcsec", float(self.kpc_per_arcsec))
        for name in ("labels", "radius_kpc", "inner", "outer", "n_spaxels", "snr", "sector", "parent", "weights"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.array(arr)
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)
        object.__setattr__(self, "excluded", tuple(Exclusion(*e) for e in self.excluded))

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.radius_kpc.shape[0])

    @property
    def annular(self) -> bool:
        """True for elliptical annuli (``inner`` / ``outer`` defined)."""
        return self.kind in ANNULAR_KINDS

    def to_dict(self) -> dict:
        """JSON-serialisable summary (without the label map)."""
        return {
            "kind": self.kind,
            "n_bins": self.n_bins,
            "radius_kpc": self.radius_kpc.tolist(),
            "inner": self.inner.tolist(),
            "outer": self.outer.tolist(),
            "n_spaxels": self.n_spaxels.tolist(),
            "snr": self.snr.tolist(),
            "sector": None if self.sector is None else self.sector.tolist(),
            "parent": None if self.parent is None else self.parent.tolist(),
            "excluded": [list(e) for e in self.excluded],
            "left_out": self.left_out,
            "kpc_per_arcsec": self.kpc_per_arcsec,
            "drawn_on": self.drawn_on,
        }


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _grid(x, y, shape=None):
    """2-D offset maps: 1-D x (per column) and y (per row) are meshed; 2-D maps are checked."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1 and y.ndim == 1:
        x, y = np.meshgrid(x, y)
    else:
        x, y = np.broadcast_arrays(x, y)
    if x.ndim != 2:
        raise DataError(f"x, y: shapes {x.shape}; expected 1-D offsets per column / row or (ny, nx) maps")
    if shape is not None and x.shape != tuple(shape):
        raise DataError(f"x, y: map shape {x.shape}; expected {tuple(shape)} (the gating map's)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("x, y: offsets must be finite (arcsec)")
    return x, y


def _gate(gate_map, gate_err, shape=None):
    f = np.asarray(gate_map, dtype=np.float64)
    e = np.asarray(gate_err, dtype=np.float64)
    if f.ndim != 2 or e.shape != f.shape:
        raise DataError(f"gate_map {f.shape} and gate_err {e.shape}: expected the same (ny, nx) shape")
    if shape is not None and f.shape != tuple(shape):
        raise DataError(f"gate_map: shape {f.shape}; expected {tuple(shape)}")
    valid = np.isfinite(f) & np.isfinite(e) & (e >= 0.0)
    return f, e, valid


def _pixel_size(x, y) -> float:
    """Spacing of a regular offset grid, arcsec."""
    steps = []
    if x.shape[1] > 1:
        steps.append(np.abs(np.diff(x, axis=1)).max())
    if x.shape[0] > 1:
        steps.append(np.abs(np.diff(y, axis=0)).max())
    step = max(steps) if steps else 0.0
    if not step > 0.0:
        raise DataError("x, y: cannot infer the pixel size from a single spaxel; give min_width_arcsec")
    return float(step)


def gate_model(gate_map, radius_arcsec, ring_width: float) -> np.ndarray:
    """Smooth model of a gating map: the mean of its finite pixels in elliptical rings.

    Every pixel gets the mean flux of the ring of semi-major axis
    ``[k w, (k + 1) w)`` it falls in (``w = ring_width``), over the map's
    finite pixels; non-finite pixels stay NaN. A ring averages tens to
    hundreds of pixels, so the model of a pixel hardly depends on that
    pixel's noise, and bins drawn on it do not select noise peaks.

    Parameters
    ----------
    gate_map : ndarray, shape (ny, nx)
        Gating-line flux map (NaN where not measured).
    radius_arcsec : ndarray, shape (ny, nx)
        Elliptical radius (semi-major axis) of every pixel, arcsec.
    ring_width : float
        Ring width in semi-major axis, arcsec; > 0.

    Returns
    -------
    ndarray, shape (ny, nx)
    """
    f = np.asarray(gate_map, dtype=float)
    ok = np.isfinite(f) & np.isfinite(radius_arcsec)
    ring = np.where(ok, np.floor(np.where(ok, radius_arcsec, 0.0) / ring_width), 0).astype(np.int64)
    n = np.bincount(ring[ok], minlength=ring.max() + 1)
    total = np.bincount(ring[ok], weights=f[ok], minlength=ring.max() + 1)
    mean = total / np.maximum(n, 1)
    return np.where(ok, mean[ring], np.nan)


def gate_snr(flux, err) -> float:
    """S/N of a sum of spaxels: ``sum(flux) / sqrt(sum(err^2))``.

    Parameters
    ----------
    flux, err : array_like
        Gating-line flux and 1-sigma error of the spaxels (any unit, the same).

    Returns
    -------
    float
        NaN for no spaxel; +-inf for zero error and non-zero flux.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(err, dtype=np.float64)
    if f.size == 0:
        return float("nan")
    return float(_snr(f.sum(), (e * e).sum()))


def _snr(fsum, vsum):
    fsum = np.asarray(fsum, dtype=np.float64)
    vsum = np.asarray(vsum, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(vsum > 0, fsum / np.sqrt(np.where(vsum > 0, vsum, 1.0)),
                       np.where(fsum > 0, np.inf, np.where(fsum < 0, -np.inf, np.nan)))
    return out


def _relabel(labels, keep, size):
    """Renumber labels: old bin ``keep[i]`` becomes ``i``; every other bin becomes -1."""
    remap = np.full(size + 1, -1, dtype=np.int64)  # last entry maps the -1 label
    remap[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep))
    return remap[np.where(labels >= 0, labels, size)]


def _bin_sums(labels, values, n):
    sel = labels >= 0
    return np.bincount(labels[sel], weights=values[sel], minlength=n)[:n]


def _bin_snr(labels, n, f, e):
    return _snr(_bin_sums(labels, np.where(labels >= 0, f, 0.0), n),
                _bin_sums(labels, np.where(labels >= 0, e * e, 0.0), n))


def _weighted_radius(labels, n, r_kpc, weights):
    """Flux-weighted mean radius per bin (weights clipped at 0; plain mean if none positive)."""
    w = np.clip(np.where(np.isfinite(weights), weights, 0.0), 0.0, None)
    wsum = _bin_sums(labels, w, n)
    wr = _bin_sums(labels, w * r_kpc, n)
    cnt = _bin_sums(labels, np.ones_like(r_kpc), n)
    rs = _bin_sums(labels, r_kpc, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(wsum > 0, wr / np.where(wsum > 0, wsum, 1.0), rs / np.maximum(cnt, 1.0))


def _kpc(kpc_per_arcsec) -> float:
    return positive("kpc_per_arcsec", kpc_per_arcsec, "kpc/arcsec")


def _radius(x, y, geometry, radius_map):
    """Elliptical radius of each spaxel, arcsec: from the geometry, or ``radius_map`` when given (lensing:
    the source-plane radius of each spaxel's ray-traced centre, :mod:`mockzgrad.recovery.lensing`)."""
    if radius_map is None:
        return elliptical_radius(x, y, geometry)
    r = np.asarray(radius_map, dtype=np.float64)
    if r.shape != x.shape:
        raise DataError(f"radius_map: shape {r.shape}; expected {x.shape} (the gating map's)")
    return r


def _annuli(a, valid, edges):
    """Label spaxels by annulus ``edges[k] <= a < edges[k+1]``; return labels, count per annulus."""
    n = len(edges) - 1
    idx = np.searchsorted(edges, a, side="right") - 1
    labels = np.where(valid & (idx >= 0) & (idx < n), idx, -1).astype(np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=n)[:n]
    return labels, counts


def _finish_annuli(kind, labels, edges, keep, kpc_per_arcsec, f, e, excluded, left_out):
    """Keep annuli ``keep`` (indices into edges), renumber, and build the Binning."""
    keep = np.asarray(keep, dtype=np.int64)
    new = _relabel(labels, keep, len(edges) - 1)
    inner = np.asarray(edges, dtype=np.float64)[keep] * kpc_per_arcsec
    outer = np.asarray(edges, dtype=np.float64)[keep + 1] * kpc_per_arcsec
    n = keep.size
    snr = _bin_snr(new, n, f, e) if f is not None else np.full(n, np.nan)
    return Binning(labels=new, radius_kpc=0.5 * (inner + outer), inner=inner, outer=outer, kind=kind,
                   n_spaxels=np.bincount(new[new >= 0], minlength=n)[:n], snr=snr,
                   excluded=tuple(excluded), left_out=left_out, kpc_per_arcsec=kpc_per_arcsec)


def _annulus_name(k, edges):
    return f"annulus {k} (a = {edges[k]:.4g}-{edges[k + 1]:.4g} arcsec)"


def _invalid_record(valid, extra=None):
    n_bad = int((~valid).sum() if extra is None else (~valid & extra).sum())
    if n_bad:
        return [Exclusion(f"{n_bad} spaxels", "gating flux or error not finite (or error < 0)")]
    return []


# ---------------------------------------------------------------------------
# annuli
# ---------------------------------------------------------------------------

def elliptical_annuli(x, y, geometry: Geometry, kpc_per_arcsec: float, *, width_arcsec: float,
                      gate_map, gate_err, snr_outer: float = 3.0, radius_map=None) -> Binning:
    """Elliptical annuli of constant width, out to the last one with enough S/N (default scheme).

    Annulus ``k`` holds the spaxels whose semi-major axis ``a`` (arcsec)
    satisfies ``k w <= a < (k + 1) w``; the first is the central ellipse.
    Scanning outward, the outermost annulus kept is the last one before the
    first annulus whose integrated gating-line S/N is below ``snr_outer``
    (Lee et al. 2026: integrated brightest-line S/N >= 3); that annulus and
    all beyond it are left out, with the reason. Annuli that contain no
    spaxel centre (possible when ``w`` is below a pixel) are skipped and
    recorded, without ending the scan. Annuli clipped by the field edge are
    kept.

    Parameters
    ----------
    x, y : array_like
        Spaxel-centre offsets, arcsec east / north: 1-D per column and per
        row (as :meth:`MockCube.offsets` gives them) or (ny, nx) maps.
    geometry : Geometry
        Centre, axis ratio and PA.
    kpc_per_arcsec : float
        Proper kpc per arcsec; > 0.
    width_arcsec : float
        Width of each annulus along the semi-major axis, arcsec; > 0. The
        Lee et al. (2026) choice is the PSF HWHM. For a non-circular PSF
        the ``annuli`` scheme takes half the FWHM of the PSF's profile
        along the galaxy's major axis (the direction the width is
        measured in; :func:`mockzgrad.recovery.psf_matching.fwhm_along`,
        the convention of ``x_resolution``).
    gate_map, gate_err : array_like, shape (ny, nx)
        Gating-line flux map and its 1-sigma error (same unit).
    snr_outer : float
        S/N threshold of the outermost annulus; > 0. Default 3.
    radius_map : array_like, shape (ny, nx), or None
        Elliptical radius of each spaxel, arcsec, used instead of the one
        from ``geometry`` (lensing: source-plane radii; the bins stay
        image-plane spaxels). Every scheme takes it.

    Returns
    -------
    Binning
        ``kind = "annuli"``.
    """
    f, e, valid = _gate(gate_map, gate_err)
    x, y = _grid(x, y, f.shape)
    scale = _kpc(kpc_per_arcsec)
    w = positive("width_arcsec", width_arcsec, "arcsec")
    thr = positive("snr_outer", snr_outer)
    a = _radius(x, y, geometry, radius_map)
    left_out = (f"spaxels from the first annulus whose gating-line S/N < snr_outer = {thr:g} outward, "
                "and spaxels with a non-finite gating flux or error")
    excluded = _invalid_record(valid)
    if not valid.any():
        return _finish_annuli("annuli", np.full(f.shape, -1, np.int64), np.array([0.0, w]), [], scale, f, e,
                              excluded + [Exclusion("all spaxels", "no valid gating-line pixel")], left_out)
    n = int(math.floor(a[valid].max() / w)) + 1
    edges = w * np.arange(n + 1, dtype=np.float64)
    labels, counts = _annuli(a, valid, edges)
    snr = _bin_snr(labels, n, f, e)
    keep = []
    for k in range(n):
        if counts[k] == 0:
            excluded.append(Exclusion(_annulus_name(k, edges), "no spaxel centre inside"))
            continue
        if not snr[k] >= thr:
            n_sp = int(counts[k:].sum())
            region = (_annulus_name(k, edges) if k == n - 1 else
                      f"annuli {k}-{n - 1} (a = {edges[k]:.4g}-{edges[n]:.4g} arcsec, {n_sp} spaxels)")
            excluded.append(Exclusion(region, f"gating-line S/N of annulus {k} = {snr[k]:.3g} "
                                              f"< snr_outer = {thr:g}"))
            break
        keep.append(k)
    if not keep:
        excluded.append(Exclusion("all annuli", "the central annulus is below snr_outer"))
    return _finish_annuli("annuli", labels, edges, keep, scale, f, e, excluded, left_out)


def fixed_annuli(x, y, geometry: Geometry, kpc_per_arcsec: float, *, n_annuli: int = 3,
                 width_arcsec: float = 0.5, gate_map=None, gate_err=None, radius_map=None) -> Binning:
    """A fixed number of elliptical annuli of fixed width (KURVS-like: three of 0.5 arcsec).

    Annulus ``k`` holds the spaxels with ``k w <= a < (k + 1) w`` (``a``
    the semi-major axis, arcsec), ``k = 0 .. n_annuli - 1``; there is no
    S/N cut (Li et al. 2025). Spaxels beyond ``n_annuli w`` are left out;
    an annulus without spaxel centres is dropped and recorded.

    Parameters
    ----------
    x, y, geometry, kpc_per_arcsec
        As in :func:`elliptical_annuli`.
    n_annuli : int
        Number of annuli; >= 1.
    width_arcsec : float
        Width of each annulus along the semi-major axis, arcsec; > 0.
    gate_map, gate_err : array_like or None
        Optional gating-line map and error: spaxels where they are not
        finite are left out and the bins' S/N is reported.

    Returns
    -------
    Binning
        ``kind = "fixed_annuli"``.
    """
    integer("n_annuli", n_annuli, 1)
    w = positive("width_arcsec", width_arcsec, "arcsec")
    scale = _kpc(kpc_per_arcsec)
    if (gate_map is None) != (gate_err is None):
        raise ConfigError("gate_map and gate_err go together; give both or neither")
    if gate_map is not None:
        f, e, valid = _gate(gate_map, gate_err)
        x, y = _grid(x, y, f.shape)
    else:
        x, y = _grid(x, y)
        f = e = None
        valid = np.ones(x.shape, dtype=bool)
    a = _radius(x, y, geometry, radius_map)
    edges = w * np.arange(int(n_annuli) + 1, dtype=np.float64)
    labels, counts = _annuli(a, valid, edges)
    excluded = _invalid_record(valid)
    beyond = int((valid & (a >= edges[-1])).sum())
    if beyond:
        excluded.append(Exclusion(f"{beyond} spaxels with a >= {edges[-1]:.4g} arcsec",
                                  f"outside the {int(n_annuli)} fixed annuli"))
    keep = []
    for k in range(int(n_annuli)):
        if counts[k] == 0:
            excluded.append(Exclusion(_annulus_name(k, edges), "no spaxel centre inside"))
        else:
            keep.append(k)
    left_out = f"spaxels beyond {int(n_annuli)} annuli of {w:g} arcsec (a >= {edges[-1]:.4g} arcsec)"
    return _finish_annuli("fixed_annuli", labels, edges, keep, scale, f, e, excluded, left_out)


def grown_annuli(x, y, geometry: Geometry, kpc_per_arcsec: float, *, gate_map, gate_err,
                 target_snr: float = 15.0, min_width_arcsec: float | None = None, radius_map=None) -> Binning:
    """Annuli grown outward from the centre until each reaches a target S/N (Wang et al. 2017).

    Outer edges lie on a grid of step ``min_width_arcsec`` in semi-major
    axis: starting at ``a = 0``, each annulus is widened one step at a time
    until its gating-line S/N is >= ``target_snr``, then the next one starts
    at its outer edge. The last annulus, which reaches the edge of the data
    without the target S/N, is left out with the reason.

    Parameters
    ----------
    x, y, geometry, kpc_per_arcsec
        As in :func:`elliptical_annuli`.
    gate_map, gate_err : array_like, shape (ny, nx)
        Gating-line flux map and its 1-sigma error.
    target_snr : float
        S/N each annulus must reach; > 0.
    min_width_arcsec : float or None
        Growth step and smallest width, arcsec; > 0. None = the pixel size
        of the offset grid.

    Returns
    -------
    Binning
        ``kind = "grown_annuli"``.
    """
    f, e, valid = _gate(gate_map, gate_err)
    x, y = _grid(x, y, f.shape)
    scale = _kpc(kpc_per_arcsec)
    target = positive("target_snr", target_snr)
    step = _pixel_size(x, y) if min_width_arcsec is None else positive("min_width_arcsec", min_width_arcsec,
                                                                           "arcsec")
    a = _radius(x, y, geometry, radius_map)
    excluded = _invalid_record(valid)
    left_out = (f"the outermost spaxels, whose annulus reaches the edge of the data below target_snr = {target:g}, "
                "and spaxels with a non-finite gating flux or error")
    if not valid.any():
        excluded.append(Exclusion("all spaxels", "no valid gating-line pixel"))
        return _finish_annuli("grown_annuli", np.full(f.shape, -1, np.int64), np.array([0.0, step]), [],
                              scale, f, e, excluded, left_out)
    n_ring = int(math.floor(a[valid].max() / step)) + 1
    ring = np.where(valid, np.floor(a / step).astype(np.int64), -1)
    fs = np.bincount(ring[valid], weights=f[valid], minlength=n_ring)
    vs = np.bincount(ring[valid], weights=(e * e)[valid], minlength=n_ring)
    cnt = np.bincount(ring[valid], minlength=n_ring)
    edges_idx = [0]
    fsum = vsum = 0.0
    nsum = 0
    for j in range(n_ring):
        fsum += fs[j]
        vsum += vs[j]
        nsum += cnt[j]
        if nsum > 0 and _snr(fsum, vsum) >= target:
            edges_idx.append(j + 1)
            fsum = vsum = 0.0
            nsum = 0
    if nsum > 0:
        lo_a, hi_a = edges_idx[-1] * step, n_ring * step
        excluded.append(Exclusion(f"outermost annulus (a = {lo_a:.4g}-{hi_a:.4g} arcsec, {nsum} spaxels)",
                                  f"reaches the edge of the data at gating-line S/N {float(_snr(fsum, vsum)):.3g} "
                                  f"< target_snr = {target:g}"))
    if len(edges_idx) == 1:
        excluded.append(Exclusion("all annuli", f"the whole map does not reach target_snr = {target:g}"))
        return _finish_annuli("grown_annuli", np.full(f.shape, -1, np.int64), np.array([0.0, step]), [],
                              scale, f, e, excluded, left_out)
    edges = step * np.asarray(edges_idx, dtype=np.float64)
    labels, _ = _annuli(a, valid, edges)
    return _finish_annuli("grown_annuli", labels, edges, np.arange(len(edges) - 1), scale, f, e,
                          excluded, left_out)


# ---------------------------------------------------------------------------
# spaxels and Voronoi bins
# ---------------------------------------------------------------------------

def _point_bins(kind, labels, n, r_kpc, f, e, excluded, left_out, scale):
    weights = np.clip(np.where(np.isfinite(f), f, 0.0), 0.0, None)
    radius = _weighted_radius(labels, n, r_kpc, weights)
    nan = np.full(n, np.nan)
    return Binning(labels=labels, radius_kpc=radius, inner=nan, outer=nan.copy(), kind=kind,
                   n_spaxels=np.bincount(labels[labels >= 0], minlength=n)[:n],
                   snr=_bin_snr(labels, n, f, e), excluded=tuple(excluded), left_out=left_out,
                   kpc_per_arcsec=scale, weights=weights)


def spaxels(x, y, geometry: Geometry, kpc_per_arcsec: float, *, gate_map, gate_err, snr_min: float = 10.0,
            r_min_kpc: float = 0.5, r_max_kpc: float | None = None, min_spaxels: int = 20,
            radius_map=None) -> Binning:
    """Each spaxel its own bin, after S/N and radial cuts (e.g. Ju et al., MSA-3D).

    A spaxel is kept when its gating-line S/N is >= ``snr_min`` and its
    deprojected radius ``r`` satisfies ``r_min_kpc <= r`` (and
    ``r <= r_max_kpc`` when given). Bins are numbered in row-major order of
    the kept spaxels. When fewer than ``min_spaxels`` pass, no error is
    raised: the result has no bins (every label -1) and an
    :class:`Exclusion` saying why, and the caller reports "no gradient".

    Parameters
    ----------
    x, y, geometry, kpc_per_arcsec
        As in :func:`elliptical_annuli`.
    gate_map, gate_err : array_like, shape (ny, nx)
        Gating-line flux map and its 1-sigma error.
    snr_min : float
        Smallest gating-line S/N of a spaxel; >= 0.
    r_min_kpc : float
        Smallest deprojected radius, kpc; >= 0.
    r_max_kpc : float or None
        Largest deprojected radius, kpc; > r_min_kpc. None = no limit.
    min_spaxels : int
        Fewest spaxels for a usable result; >= 1.

    Returns
    -------
    Binning
        ``kind = "spaxels"``; radius = the spaxel's deprojected radius.
    """
    f, e, valid = _gate(gate_map, gate_err)
    x, y = _grid(x, y, f.shape)
    scale = _kpc(kpc_per_arcsec)
    smin = positive("snr_min", snr_min, allow_zero=True)
    rmin = positive("r_min_kpc", r_min_kpc, "kpc", allow_zero=True)
    rmax = None
    if r_max_kpc is not None:
        rmax = positive("r_max_kpc", r_max_kpc, "kpc")
        if rmax <= rmin:
            raise ConfigError(f"r_max_kpc = {rmax} kpc; allowed > r_min_kpc = {rmin} kpc")
    integer("min_spaxels", min_spaxels, 1)
    r = _radius(x, y, geometry, radius_map) * scale
    snr = _snr(np.where(valid, f, 0.0), np.where(valid, e * e, 0.0))
    excluded = _invalid_record(valid)
    keep = valid.copy()
    low = keep & ~(snr >= smin)
    if low.any():
        excluded.append(Exclusion(f"{int(low.sum())} spaxels", f"gating-line S/N < snr_min = {smin:g}"))
    keep &= ~low
    inner = keep & (r < rmin)
    if inner.any():
        excluded.append(Exclusion(f"{int(inner.sum())} spaxels", f"r < r_min_kpc = {rmin:g} kpc"))
    keep &= ~inner
    if rmax is not None:
        outer = keep & (r > rmax)
        if outer.any():
            excluded.append(Exclusion(f"{int(outer.sum())} spaxels", f"r > r_max_kpc = {rmax:g} kpc"))
        keep &= ~outer
    left_out = (f"spaxels with gating-line S/N < {smin:g}, r < {rmin:g} kpc"
                + (f", r > {rmax:g} kpc" if rmax is not None else "")
                + f"; everything when fewer than {int(min_spaxels)} spaxels remain")
    n_keep = int(keep.sum())
    if n_keep < min_spaxels:
        excluded.append(Exclusion(f"all {n_keep} remaining spaxels",
                                  f"fewer than min_spaxels = {int(min_spaxels)} pass the cuts: no gradient"))
        keep[:] = False
        n_keep = 0
    labels = np.full(f.shape, -1, dtype=np.int64)
    labels[keep] = np.arange(n_keep)
    return _point_bins("spaxels", labels, n_keep, r, f, e, excluded, left_out, scale)


def voronoi(x, y, geometry: Geometry, kpc_per_arcsec: float, *, gate_map, gate_err, target_snr: float = 10.0,
            min_snr: float = 1.0, radius_map=None) -> Binning:
    """Voronoi bins of near-constant gating-line S/N (Cappellari & Copin 2003, vorbin).

    Only spaxels with gating-line S/N >= ``min_snr`` (default 1) and a
    positive error enter :func:`vorbin.voronoi_2d_binning` (as Cappellari &
    Copin 2003, Sect. 2.1 advise: pixels without signal only add noise).
    vorbin runs with its defaults (CVT, weighted Voronoi tessellation),
    quietly and without plots; its output is discarded. Its two refusals
    are handled: when every spaxel already exceeds ``target_snr`` each is
    its own bin; when all spaxels together do not reach it there are no
    bins and an :class:`Exclusion` says why.

    Parameters
    ----------
    x, y, geometry, kpc_per_arcsec
        As in :func:`elliptical_annuli`.
    gate_map, gate_err : array_like, shape (ny, nx)
        Gating-line flux map and its 1-sigma error.
    target_snr : float
        Target S/N of each bin; > 0.
    min_snr : float
        Smallest S/N of a spaxel entering the binning; >= 0.

    Returns
    -------
    Binning
        ``kind = "voronoi"``; radius = flux-weighted mean deprojected radius.
    """
    f, e, valid = _gate(gate_map, gate_err)
    x, y = _grid(x, y, f.shape)
    scale = _kpc(kpc_per_arcsec)
    target = positive("target_snr", target_snr)
    smin = positive("min_snr", min_snr, allow_zero=True)
    r = _radius(x, y, geometry, radius_map) * scale
    excluded = _invalid_record(valid)
    usable = valid & (e > 0.0)
    zero_err = valid & ~usable
    if zero_err.any():
        excluded.append(Exclusion(f"{int(zero_err.sum())} spaxels", "gating error = 0 (vorbin needs noise > 0)"))
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(usable, f / np.where(usable, e, 1.0), -np.inf)
    low = usable & ~(snr >= smin)
    if low.any():
        excluded.append(Exclusion(f"{int(low.sum())} spaxels", f"gating-line S/N < min_snr = {smin:g}"))
    acc = usable & ~low
    left_out = f"spaxels with gating-line S/N < {smin:g} or a non-finite / zero gating error"
    labels = np.full(f.shape, -1, dtype=np.int64)
    if not acc.any():
        excluded.append(Exclusion("all spaxels", f"no spaxel has gating-line S/N >= {smin:g}"))
        return _point_bins("voronoi", labels, 0, r, f, e, excluded, left_out, scale)
    xs, ys, sig, noi = x[acc], y[acc], f[acc], e[acc]
    if sig.sum() / math.sqrt(float((noi * noi).sum())) < target:
        excluded.append(Exclusion(f"all {int(acc.sum())} accepted spaxels",
                                  f"their summed gating-line S/N is below target_snr = {target:g}"))
        return _point_bins("voronoi", labels, 0, r, f, e, excluded, left_out, scale)
    if np.min(sig / noi) > target:  # vorbin refuses: every spaxel is its own bin
        bin_num = np.arange(sig.size)
    else:
        bin_num = _run_vorbin(xs, ys, sig, noi, target, _pixel_size(x, y))
    if bin_num is None:
        excluded.append(Exclusion(f"all {int(acc.sum())} accepted spaxels",
                                  f"vorbin's accretion formed no bin reaching 0.8 x target_snr = {target:g} "
                                  "(the S/N is spread over spaxels too far apart to join)"))
        return _point_bins("voronoi", labels, 0, r, f, e, excluded, left_out, scale)
    # renumber compactly in order of first appearance
    uniq, inv = np.unique(bin_num, return_inverse=True)
    labels[acc] = inv.ravel()
    return _point_bins("voronoi", labels, uniq.size, r, f, e, excluded, left_out, scale)


def _run_vorbin(xs, ys, sig, noi, target, pixelsize):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # vorbin's deprecation notice, on import and call
        from vorbin.voronoi_2d_binning import voronoi_2d_binning

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out = voronoi_2d_binning(xs, ys, sig, noi, target, plot=False, quiet=True,
                                         pixelsize=pixelsize)
        except IndexError as exc:
            # vorbin 3.x: no accreted bin reached 0.8 x target, so its reassignment step indexes an empty
            # list of good bins: no Voronoi bin exists (the caller records why)
            if "size 0" in str(exc):
                return None
            raise RecoveryError(f"voronoi: vorbin failed ({exc})") from None
        except (ValueError, AssertionError) as exc:
            raise RecoveryError(f"voronoi: vorbin failed ({exc})") from None
    return np.asarray(out[0], dtype=np.int64)


# ---------------------------------------------------------------------------
# sectors
# ---------------------------------------------------------------------------

def azimuthal_sectors(base: Binning, x, y, geometry: Geometry, edges_deg=(0.0, 30.0, 60.0, 90.0), *,
                      kpc_per_arcsec: float | None = None, gate_map=None, gate_err=None,
                      source_xy=None) -> Binning:
    """Split every bin of a base scheme into sectors of azimuth from the major axis.

    The azimuth is :func:`~mockzgrad.recovery.geometry.disk_azimuth` (in the
    disk plane, folded to [0, 90] deg, so each sector joins the four
    symmetric quadrants). A lensed recovery gives ``source_xy``, the
    ray-traced source-plane centre of every spaxel, and the azimuth (and
    the radius of non-annular sectors) is measured there, from the
    source-plane geometry's major axis; the sectors stay sets of
    image-plane spaxels. Sector ``s`` holds azimuths in
    ``[edges[s], edges[s+1])``, the last one including 90. Sectors of a bin
    are consecutive bins in the output; ``parent`` gives the base bin and
    ``sector`` the azimuth range. Empty sectors are dropped and recorded.

    Radius: annular bases keep the annulus' radius (mean of its inner and
    outer semi-major axes), ``inner`` and ``outer``; other bases get the
    flux-weighted mean deprojected radius of the sector's spaxels, with the
    base's ``weights`` and ``kpc_per_arcsec`` unless given here.

    Parameters
    ----------
    base : Binning
        The scheme to split.
    x, y, geometry
        As in :func:`elliptical_annuli`.
    edges_deg : sequence of float
        Increasing azimuth edges, deg, from 0 to 90.
    kpc_per_arcsec : float or None
        Proper kpc per arcsec; None = ``base.kpc_per_arcsec``.
    gate_map, gate_err : array_like or None
        Gating-line map (weights, clipped at 0, for the radius of
        non-annular sectors; None = ``base.weights``) and its error; with
        both, the sectors' S/N is reported.
    source_xy : (array_like, array_like) or None
        Lensed: source-plane offsets (arcsec, east, north) of every spaxel
        centre, each of shape (ny, nx)
        (:func:`mockzgrad.recovery.lensing.source_coords`); ``geometry``
        is then the source-plane geometry. None: the azimuth at (x, y).

    Returns
    -------
    Binning
        Same ``kind`` as ``base``, with ``sector`` and ``parent`` set; its
        ``snr`` is NaN unless ``gate_map`` and ``gate_err`` are given.
    """
    if not isinstance(base, Binning):
        raise ConfigError(f"base = {base!r}: expected a Binning")
    if base.sector is not None:
        raise ConfigError("base is already split into sectors")
    ed = np.asarray(edges_deg, dtype=np.float64)
    if ed.ndim != 1 or ed.size < 2 or not np.all(np.diff(ed) > 0) or ed[0] != 0.0 or ed[-1] != 90.0:
        raise ConfigError(f"edges_deg = {edges_deg!r}; allowed increasing values from 0 to 90 deg")
    x, y = _grid(x, y, base.labels.shape)
    if source_xy is not None:  # lensed: azimuth and radius at each spaxel's ray-traced centre
        x, y = _grid(*source_xy, base.labels.shape)
    phi = disk_azimuth(x, y, geometry)
    n_sec = ed.size - 1
    sec = np.clip(np.searchsorted(ed, phi, side="right") - 1, 0, n_sec - 1)
    lab = base.labels
    combo = np.where(lab >= 0, lab * n_sec + sec, -1)
    n_combo = base.n_bins * n_sec
    counts = np.bincount(combo[combo >= 0], minlength=n_combo)[:n_combo]
    keep = np.flatnonzero(counts > 0)
    excluded = list(base.excluded) + _empty_sectors(counts, n_sec, ed)
    labels = _relabel(combo, keep, n_combo)
    parent = keep // n_sec
    s_idx = keep % n_sec
    n = keep.size
    w = base.weights
    if gate_map is not None:
        w = np.asarray(gate_map, dtype=np.float64)
        if w.shape != lab.shape:
            raise DataError(f"gate_map: shape {w.shape}; expected {lab.shape}")
    scale = base.kpc_per_arcsec if kpc_per_arcsec is None else _kpc(kpc_per_arcsec)
    snr = np.full(n, np.nan)
    if gate_map is not None and gate_err is not None:
        f, e, _ = _gate(gate_map, gate_err, lab.shape)
        snr = _bin_snr(labels, n, f, e)
    radius, inner, outer = _sector_radii(base, parent, labels, n, (x, y, geometry), scale, w)
    return Binning(labels=labels, radius_kpc=radius, inner=inner, outer=outer, kind=base.kind,
                   n_spaxels=counts[keep], snr=snr, excluded=tuple(excluded),
                   left_out=base.left_out, sector=np.column_stack([ed[s_idx], ed[s_idx + 1]]),
                   parent=parent, kpc_per_arcsec=scale, drawn_on=base.drawn_on,
                   weights=None if (w is None or base.annular) else np.clip(np.nan_to_num(w), 0.0, None))


def _empty_sectors(counts, n_sec, ed) -> list:
    """Exclusion records of the sectors without spaxels."""
    empty = np.flatnonzero(counts == 0)
    if empty.size > 10:  # e.g. single-spaxel bases: one record, not thousands
        return [Exclusion(f"{empty.size} sectors of {np.unique(empty // n_sec).size} bins",
                          "no spaxel in these sectors")]
    out = []
    for c in empty:
        b, s = divmod(int(c), n_sec)
        out.append(Exclusion(f"bin {b}, sector {ed[s]:g}-{ed[s + 1]:g} deg", "no spaxel in this sector"))
    return out


def _sector_radii(base, parent, labels, n, where, scale, w):
    """Radius, inner and outer semi-major axis (kpc) of each sector.

    Annular bases keep their annulus' values; other bases get the weighted
    mean deprojected radius of the sector's spaxels (``where`` is
    ``(x, y, geometry)``).
    """
    if base.annular:
        return base.radius_kpc[parent], base.inner[parent], base.outer[parent]
    if not scale > 0.0:
        raise ConfigError(f"azimuthal_sectors: base.kind = {base.kind!r} is not annular and its "
                          "kpc_per_arcsec is unknown; give kpc_per_arcsec for the sectors' radii")
    x, y, geometry = where
    r = elliptical_radius(x, y, geometry) * scale
    radius = _weighted_radius(labels, n, r, np.ones_like(r) if w is None else w)
    return radius, np.full(n, np.nan), np.full(n, np.nan)


# ---------------------------------------------------------------------------
# radial range
# ---------------------------------------------------------------------------

def radial_cut(bins: Binning, r_min_kpc: float, r_max_kpc: float | None):
    """Leave out bins whose radius lies outside ``[r_min_kpc, r_max_kpc]``, relabelling the rest.

    Parameters
    ----------
    bins : Binning
    r_min_kpc : float
        Smallest bin radius kept, deprojected kpc.
    r_max_kpc : float or None
        Largest bin radius kept, kpc; None = no limit.

    Returns
    -------
    kept : Binning
        ``bins`` itself when every bin is kept; otherwise the kept bins,
        renumbered in their order.
    dropped : tuple of (int, str)
        Index in ``bins`` of each bin left out, and why.
    """
    radius = np.asarray(bins.radius_kpc, dtype=float)
    keep = radius >= r_min_kpc
    if r_max_kpc is not None:
        keep &= radius <= r_max_kpc
    if keep.all():
        return bins, ()
    dropped = tuple((int(i), f"radius {radius[i]:.2f} kpc outside the fitted range [{r_min_kpc}, {r_max_kpc}] kpc")
                    for i in np.flatnonzero(~keep))
    return keep_bins(bins, keep), dropped


def keep_bins(bins: Binning, keep) -> Binning:
    """The bins where ``keep`` (bool, one per bin) is True, renumbered in their order (labels of the rest -1)."""
    keep = np.asarray(keep, dtype=bool)
    radius = np.asarray(bins.radius_kpc, dtype=float)
    new_index = np.full(radius.size, -1)
    new_index[keep] = np.arange(int(keep.sum()))
    labels = np.asarray(bins.labels)
    changes = {"labels": np.where(labels >= 0, new_index[np.maximum(labels, 0)], -1)}
    for name in ("radius_kpc", "inner", "outer", "n_spaxels", "sector", "snr", "parent"):
        val = getattr(bins, name, None)
        if val is not None and np.ndim(val) >= 1 and np.shape(val)[0] == radius.size:
            changes[name] = np.asarray(val)[keep]
    return dataclasses.replace(bins, **changes)


# ---------------------------------------------------------------------------
# the recipe's schemes
# ---------------------------------------------------------------------------

def _recipe_annuli(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err,
                   radius_map=None) -> Binning:
    # width = PSF HWHM (Lee et al. 2026); below a spaxel each ring holds the
    # spaxels whose centres fall in it and empty rings are skipped
    return elliptical_annuli(x, y, geometry, kpc_per_arcsec, width_arcsec=0.5 * psf_fwhm,
                             snr_outer=recipe.snr_outer, gate_map=gate_map, gate_err=gate_err, radius_map=radius_map)


def _recipe_fixed_annuli(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err,
                   radius_map=None) -> Binning:
    return fixed_annuli(x, y, geometry, kpc_per_arcsec, n_annuli=recipe.n_annuli,
                        width_arcsec=recipe.width_arcsec, gate_map=gate_map, gate_err=gate_err,
                        radius_map=radius_map)


def _recipe_grown_annuli(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err,
                   radius_map=None) -> Binning:
    return grown_annuli(x, y, geometry, kpc_per_arcsec, target_snr=recipe.target_snr, gate_map=gate_map,
                        gate_err=gate_err, radius_map=radius_map)


def _recipe_spaxels(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err,
                   radius_map=None) -> Binning:
    return spaxels(x, y, geometry, kpc_per_arcsec, snr_min=recipe.snr_min, r_min_kpc=recipe.r_min_kpc,
                   r_max_kpc=recipe.r_max_kpc, min_spaxels=recipe.min_spaxels, gate_map=gate_map,
                   gate_err=gate_err, radius_map=radius_map)


def _recipe_voronoi(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err,
                   radius_map=None) -> Binning:
    return voronoi(x, y, geometry, kpc_per_arcsec, target_snr=recipe.target_snr, gate_map=gate_map,
                   gate_err=gate_err, radius_map=radius_map)


#: The recipe's ``binning.scheme`` names -> function
#: ``(x, y, geometry, kpc_per_arcsec, recipe, *, psf_fwhm, gate_map, gate_err, radius_map=None) -> Binning``
#: (``recipe`` a :class:`~mockzgrad.config.BinningRecipe`, ``psf_fwhm`` in arcsec).
BINNING_SCHEMES = {
    "annuli": _recipe_annuli,
    "fixed_annuli": _recipe_fixed_annuli,
    "grown_annuli": _recipe_grown_annuli,
    "spaxels": _recipe_spaxels,
    "voronoi": _recipe_voronoi,
}

#: Schemes whose bins :func:`recipe_binning` draws on the gating map's ring
#: model (:func:`gate_model`) rather than its noisy spaxels.
RING_MODEL_SCHEMES = frozenset({"voronoi"})

#: Schemes that apply the recipe's ``r_min_kpc`` to each spaxel themselves
#: (their bins' radii are then not cut again at ``r_min_kpc``).
CUTS_SPAXELS_BY_RADIUS = frozenset({"spaxels"})


def binning_scheme(name: str):
    """The function of scheme ``name`` in :data:`BINNING_SCHEMES`.

    Raises
    ------
    ConfigError
        ``name`` is not registered (the message lists the registered names).
    """
    return BINNING_SCHEMES[choice("binning.scheme", name, tuple(BINNING_SCHEMES))]


def recipe_binning(x, y, geometry: Geometry, kpc_per_arcsec: float, recipe, *, psf_fwhm: float,
                   gate_map, gate_err, radius_map=None, source_xy=None, gate_is_model: bool = False) -> Binning:
    """Bins of a recipe: its scheme, then azimuthal sectors when ``recipe.sectors``.

    Schemes in :data:`RING_MODEL_SCHEMES` draw their bins on
    :func:`gate_model` of ``gate_map`` (rings one spaxel wide in the
    elliptical radius, or in ``radius_map`` when given); their target S/N
    is then that of the model, and ``Binning.snr`` too.

    Parameters
    ----------
    x, y, geometry, kpc_per_arcsec
        As in :func:`elliptical_annuli`.
    recipe : mockzgrad.config.BinningRecipe
        ``scheme`` (a key of :data:`BINNING_SCHEMES`), its parameters and ``sectors``.
    psf_fwhm : float
        PSF FWHM of the data binned, arcsec (sets the ``annuli`` width); for
        a non-circular PSF its FWHM along the galaxy's major axis.
    gate_map, gate_err : array_like, shape (ny, nx)
        Gating-line flux map and its 1-sigma error.
    radius_map : array_like, shape (ny, nx), or None
        Elliptical radius per spaxel, arcsec, instead of the geometry's
        (lensing: source-plane radii).
    source_xy : (array_like, array_like) or None
        Lensed: source-plane offsets of every spaxel centre, arcsec; sectors
        take their azimuth there (:func:`azimuthal_sectors`).
    gate_is_model : bool
        ``gate_map`` already is a ring model (the line-map front end's); it is
        used as given and recorded as such.

    Returns
    -------
    Binning
        Before the radial range (:func:`radial_cut`); ``drawn_on`` says
        which map the bins were drawn on.
    """
    make = binning_scheme(recipe.scheme)
    extra = {} if radius_map is None else {"radius_map": radius_map}
    drawn_on = "ring model" if gate_is_model else "gating map"
    if recipe.scheme in RING_MODEL_SCHEMES and not gate_is_model:
        xg, yg = _grid(x, y, np.shape(gate_map))
        gate_map = gate_model(gate_map, _radius(xg, yg, geometry, radius_map), _pixel_size(xg, yg))
        drawn_on = "ring model"
    bins = make(x, y, geometry, kpc_per_arcsec, recipe, psf_fwhm=psf_fwhm, gate_map=gate_map, gate_err=gate_err,
                **extra)
    if drawn_on != bins.drawn_on:
        note = Exclusion("bins", "drawn on the ring model of the gating-line map (its mean in one-spaxel "
                                 "elliptical rings), not on its noisy spaxels; bin S/N is the model's")
        bins = dataclasses.replace(bins, drawn_on=drawn_on, excluded=bins.excluded + (note,))
    if recipe.sectors:
        bins = azimuthal_sectors(bins, x, y, geometry, source_xy=source_xy)
    return bins
