"""The MSA-3D cube build: 2D spectra of the pointings -> a cube on ``cube_pixel`` spaxels.

As barisiciv/msa3d (BSD-3, reference only; S1 Sect. 2.1) does it:

1. bar-shadow correction: each detector row is divided by its open
   fraction; rows less than :data:`MIN_OPEN_FRACTION` open (under a wall)
   are masked (NaN);
2. for each dispersion step, the ``steps_cross`` dithers go onto a common
   sky grid of ``detector_pixel / 4`` sub-rows (each row repeated over its
   four sub-rows, shifted by its dither offset rounded to a sub-row: 0.075" =
   3 sub-rows) and are combined, ``median`` or ``mean``, ignoring masked
   rows, so the dithers fill the walls;
3. the step columns (one per dispersion step, ``step_disp`` apart) are
   stacked, and the result interpolated (bilinear; constant beyond the
   outermost samples) to ``cube_pixel`` x ``cube_pixel`` spaxels, as many as
   fit in the sampled area, symmetric about the field centre.

Units: a row value is the flux through ``shutter_open[0] x detector_pixel``
of sky; the cube holds flux per spaxel (value x cube_pixel^2 / that area).

Variance: through the same linear operator for ``mean`` (detector rows are
uncorrelated, so a sub-row has var = sum of var / n^2 over its valid
dithers; neighbouring sub-rows share the dithers whose same detector row
covers both, and that covariance enters the interpolation between them;
step columns are independent; covariance between spaxels is not carried). For
``median`` the documented approximation var(median) = F(n) var(mean), F the
ratio for n independent Gaussian samples (:func:`median_variance_factor`:
1.47 for n = 7, pi / 2 for large n), with the covariance of neighbouring
sub-rows scaled by sqrt(F F'); the dithers are not identically distributed
(walls, partly open rows), so this is an approximation (~8 % high; tested within 15 %).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_OPEN_FRACTION", "SUB_ROWS", "CubeGeometry", "cube_geometry", "build_msa3d_cube"]

#: Detector rows with a smaller open fraction are masked (bar shadow).
MIN_OPEN_FRACTION = 0.5
#: Sub-rows per detector row of the combination grid (native / 4, msa3d).
SUB_ROWS = 4


@dataclass(frozen=True, eq=False)
class CubeGeometry:
    """Where the build puts things, arcsec from the field centre.

    Attributes
    ----------
    sub_offset : ndarray of int, shape (steps_cross,)
        Sub-row offset of each dither's first row.
    sub_centres : ndarray, shape (n_sub,)
        Sub-row centres along the slit.
    x_steps : ndarray, shape (steps_disp,)
        Step-column centres along dispersion.
    x_cube, y_cube : ndarray
        Spaxel centres of the cube (symmetric about 0).
    half_x : float
        Half-width of the sampled area along dispersion.
    """

    sub_offset: np.ndarray
    sub_centres: np.ndarray
    x_steps: np.ndarray
    x_cube: np.ndarray
    y_cube: np.ndarray
    half_x: float


def _centred_axis(half: float, pixel: float) -> np.ndarray:
    """Centres of the most spaxels fitting in ``[-half, half]``, symmetric about 0 (at least one)."""
    n = max(int(math.floor(2.0 * half / pixel + 1e-9)), 1)
    return (np.arange(n) - 0.5 * (n - 1)) * pixel


def cube_geometry(ss, x_steps: np.ndarray, y_steps: np.ndarray, row_edges: np.ndarray,
                  open_fraction: np.ndarray) -> CubeGeometry:
    """Sub-row grid and cube spaxels for a set-up.

    ``row_edges``: detector rows from the slitlet centre, arcsec;
    ``open_fraction``: shape (steps_cross, n_rows). The cube spans the
    sub-rows between the first and the last one some dither sees.
    """
    sub = ss.detector_pixel / SUB_ROWS
    n_rows = row_edges.size - 1
    offset = np.rint((y_steps - y_steps[0]) / sub).astype(np.int64)
    n_sub = n_rows * SUB_ROWS + int(offset.max())
    y0 = y_steps[0] + row_edges[0]
    sub_centres = y0 + (np.arange(n_sub) + 0.5) * sub
    half_x = float(np.abs(x_steps).max() + 0.5 * min(ss.step_disp, ss.shutter_open[0]))
    seen = np.zeros(n_sub, dtype=bool)
    for j, s0 in enumerate(offset):
        seen[s0:s0 + n_rows * SUB_ROWS] |= np.repeat(open_fraction[j] >= MIN_OPEN_FRACTION, SUB_ROWS)
    k = np.flatnonzero(seen)
    half_y = float(min(-sub_centres[k[0]], sub_centres[k[-1]]) + 0.5 * sub) if k.size else 0.0
    return CubeGeometry(sub_offset=offset, sub_centres=sub_centres, x_steps=x_steps,
                        x_cube=_centred_axis(half_x, ss.cube_pixel), y_cube=_centred_axis(half_y, ss.cube_pixel),
                        half_x=half_x)


def _interp_matrix(x_out: np.ndarray, x_in: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights, shape (n_out, n_in); constant beyond the ends."""
    w = np.zeros((x_out.size, x_in.size))
    if x_in.size == 1:
        w[:, 0] = 1.0
        return w
    pos = np.interp(x_out, x_in, np.arange(x_in.size, dtype=float))
    lo = np.clip(np.floor(pos).astype(np.int64), 0, x_in.size - 2)
    t = pos - lo
    w[np.arange(x_out.size), lo] = 1.0 - t
    w[np.arange(x_out.size), lo + 1] += t
    return w


#: var(median) / var(mean) of n independent Gaussian samples, n = 1..10 (Monte Carlo, 2e6 draws each,
#: +- 0.002; n = 1, 2: exactly 1); pi / 2 beyond.
_MEDIAN_FACTOR = np.array([1.0, 1.0, 1.0, 1.344, 1.194, 1.432, 1.292, 1.474, 1.349, 1.493, 1.381])


def median_variance_factor(n: np.ndarray) -> np.ndarray:
    """var(median) / var(mean) for ``n`` Gaussian samples (1 for n <= 2; pi / 2 for n > 10)."""
    n = np.asarray(n)
    return np.where(n < _MEDIAN_FACTOR.size, _MEDIAN_FACTOR[np.minimum(n, _MEDIAN_FACTOR.size - 1)], 0.5 * math.pi)


def _nanmedian(stack: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN (= numpy.nanmedian; NaN where n = 0), by one sort."""
    srt = np.sort(stack, axis=0)  # NaN last
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[None], axis=0)[0]
    return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def _combine(stack: np.ndarray, var: np.ndarray, row_id: np.ndarray,
             how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine dithers (axis 0), ignoring NaN; variance and next-sub-row covariance as in the module notes.

    ``row_id[j, k]``: detector row of dither ``j`` under sub-row ``k`` (-1: none).
    Returns the value and variance, shape (n_chan, n_sub), and the covariance
    of sub-rows ``k`` and ``k + 1``, shape (n_chan, n_sub - 1): the dithers
    whose same detector row covers both.
    """
    ok = np.isfinite(stack)
    n = np.sum(ok, axis=0)
    nn = np.where(n > 0, n, np.nan)
    with warnings.catch_warnings():  # all-NaN sub-rows (walls with one dither) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        value = _nanmedian(stack, n) if how == "median" else np.nanmean(stack, axis=0)
        v = np.nansum(var, axis=0) / nn**2
    same = (row_id[:, :-1] == row_id[:, 1:]) & (row_id[:, :-1] >= 0)
    shared = same[:, None, :] & ok[:, :, :-1] & ok[:, :, 1:]
    cov = np.sum(np.where(shared, var[:, :, :-1], 0.0), axis=0) / (nn[:, :-1] * nn[:, 1:])
    if how == "median":
        f = median_variance_factor(n)
        v = f * v
        cov = np.sqrt(f[:, :-1] * f[:, 1:]) * cov
    return value, v, cov


def _on_sub_rows(exp: np.ndarray, var: np.ndarray, geom: CubeGeometry):
    """Rows of every dither of one step repeated onto the sub-row grid, shape (steps_cross, n_chan, n_sub),
    and the detector row under each sub-row, shape (steps_cross, n_sub) (-1: none)."""
    n_cross, n_chan, n_rows = exp.shape
    n_sub = geom.sub_centres.size
    out = np.full((n_cross, n_chan, n_sub), np.nan)
    vout = np.full_like(out, np.nan)
    row_id = np.full((n_cross, n_sub), -1, dtype=np.int64)
    for j in range(n_cross):
        s0 = geom.sub_offset[j]
        out[j, :, s0:s0 + n_rows * SUB_ROWS] = np.repeat(exp[j], SUB_ROWS, axis=1)
        vout[j, :, s0:s0 + n_rows * SUB_ROWS] = np.repeat(var[j], SUB_ROWS, axis=1)
        row_id[j, s0:s0 + n_rows * SUB_ROWS] = np.repeat(np.arange(n_rows), SUB_ROWS)
    return out, vout, row_id


def build_msa3d_cube(exposures: np.ndarray, variance: np.ndarray, open_fraction: np.ndarray, ss,
                     geom: CubeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Build the cube from the 2D spectra of every pointing (module notes).

    Parameters
    ----------
    exposures, variance : ndarray, shape (steps_disp, steps_cross, n_chan, n_rows)
        Flux per detector pixel (erg/s/cm^2) and its variance.
    open_fraction : ndarray, shape (steps_cross, n_rows)
        Open fraction of each detector row of each dither.
    ss : SlitstepConfig
    geom : CubeGeometry

    Returns
    -------
    cube, cube_variance : ndarray, shape (n_chan, ny, nx)
        Flux per spaxel and its variance; NaN where no dither saw the sky.
    """
    good = open_fraction >= MIN_OPEN_FRACTION
    a = np.where(good, open_fraction, np.nan)[None, :, None, :]
    rows = exposures / a
    rvar = variance / a**2
    columns, cvar, ccov = [], [], []
    for i in range(exposures.shape[0]):
        stack, vstack, row_id = _on_sub_rows(rows[i], rvar[i], geom)
        value, v, cov = _combine(stack, vstack, row_id, ss.combine)
        columns.append(value)
        cvar.append(v)
        ccov.append(cov)
    native = np.stack(columns, axis=-1)  # (n_chan, n_sub, steps_disp)
    nvar = np.stack(cvar, axis=-1)
    ncov = np.nan_to_num(np.stack(ccov, axis=-1))  # (n_chan, n_sub - 1, steps_disp)
    scale = ss.cube_pixel**2 / (ss.shutter_open[0] * ss.detector_pixel)
    wy = _interp_matrix(geom.y_cube, geom.sub_centres)
    wx = _interp_matrix(geom.x_cube, geom.x_steps)
    bad = np.isnan(native) | np.isnan(nvar)
    cube = scale * np.einsum("yk,ckx,jx->cyj", wy, np.where(bad, 0.0, native), wx, optimize=True)
    cube_var = scale**2 * np.einsum("yk,ckx,jx->cyj", wy**2, np.where(bad, 0.0, nvar), wx**2, optimize=True)
    # adjacent sub-rows share detector rows: the cross term of each interpolation pair
    cube_var += scale**2 * np.einsum("yk,ckx,jx->cyj", 2.0 * wy[:, :-1] * wy[:, 1:], ncov, wx**2, optimize=True)
    touched = np.einsum("yk,ckx,jx->cyj", (wy > 0).astype(float), bad.astype(float), (wx > 0).astype(float),
                        optimize=True) > 0
    cube[touched] = np.nan
    cube_var[touched] = np.nan
    return cube, cube_var
