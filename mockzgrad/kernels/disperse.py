"""Slitless dispersion: shift-add wavelength slices along a trace, and its adjoint.

Every pixel ``p`` of wavelength slice ``k`` lands on the detector at
``X = bx[p] + dx[k]`` (along the rows' axis, columns) and
``Y = by[p] + dy[k]`` (rows), detector pixel centres at integers. Its value
is split linearly between the two nearest columns and the two nearest rows
(weights ``(1 - fx, fx)`` x ``(1 - fy, fy)``, ``fx = X - floor(X)``): a tent
interpolation, so the centroid of what lands is exactly ``(X, Y)`` and the
sum is exactly the value (grizli's ``disperse_grism_object`` splits the
same way across the trace; Brammer grizli, MIT, reference only).
Weights that would fall outside the detector frame are dropped (the
caller sizes the frame so that none do).

The operator is linear: ``disperse`` is ``D`` and ``disperse_adjoint`` is
``D^T`` (the same weights, gathering), so ``<D x, y> = <x, D^T y>`` to
round-off.

Kernels: ``disperse_nb`` / ``disperse_ref`` and ``disperse_adjoint_nb`` /
``disperse_adjoint_ref``; plain float64 arrays, nothing checked (the checked
wrappers are :func:`mockzgrad.observation.grism.dispersion.disperse` and
:func:`~mockzgrad.observation.grism.dispersion.disperse_adjoint`). Zero
values are skipped by the compiled kernels. Imports only numpy and numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["disperse_nb", "disperse_ref", "disperse_adjoint_nb", "disperse_adjoint_ref"]


@njit(cache=True)
def disperse_nb(values, bx, by, dx, dy, out):
    """Add every slice of ``values`` to ``out`` along the trace (in place).

    Parameters
    ----------
    values : ndarray, shape (n_w, n_pix)
        Counts per source pixel and wavelength slice (e-/s).
    bx, by : ndarray, shape (n_pix,)
        Detector position of each source pixel at ``dx = dy = 0``, pixels.
    dx, dy : ndarray, shape (n_w,)
        Trace offset of each slice, pixels.
    out : ndarray, shape (ny, nx)
        Detector image, accumulated.
    """
    ny, nx = out.shape
    for k in range(values.shape[0]):
        for p in range(values.shape[1]):
            v = values[k, p]
            if v == 0.0:
                continue
            x = bx[p] + dx[k]
            y = by[p] + dy[k]
            i0 = int(math.floor(x))
            j0 = int(math.floor(y))
            fx = x - i0
            fy = y - j0
            for dj in range(2):
                j = j0 + dj
                if j < 0 or j >= ny:
                    continue
                wy = fy if dj == 1 else 1.0 - fy
                for di in range(2):
                    i = i0 + di
                    if i < 0 or i >= nx:
                        continue
                    wx = fx if di == 1 else 1.0 - fx
                    out[j, i] += v * wx * wy


@njit(cache=True)
def disperse_adjoint_nb(image, bx, by, dx, dy, out):
    """Gather ``image`` back onto the slices: the transpose of :func:`disperse_nb` (in place).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Detector image.
    bx, by, dx, dy
        As in :func:`disperse_nb`.
    out : ndarray, shape (n_w, n_pix)
        Accumulated: ``out[k, p] += sum of weights x image``.
    """
    ny, nx = image.shape
    for k in range(out.shape[0]):
        for p in range(out.shape[1]):
            x = bx[p] + dx[k]
            y = by[p] + dy[k]
            i0 = int(math.floor(x))
            j0 = int(math.floor(y))
            fx = x - i0
            fy = y - j0
            acc = 0.0
            for dj in range(2):
                j = j0 + dj
                if j < 0 or j >= ny:
                    continue
                wy = fy if dj == 1 else 1.0 - fy
                for di in range(2):
                    i = i0 + di
                    if i < 0 or i >= nx:
                        continue
                    wx = fx if di == 1 else 1.0 - fx
                    acc += image[j, i] * wx * wy
            out[k, p] += acc


def bilinear_corners(x, y, shape):
    """The four bilinear corners of positions ``(x, y)`` (pixels) on an image of ``shape``.

    Yields ``(flat, weight, inside)`` per corner, arrays shaped like ``x``:
    flat index ``j * nx + i``, weight ``wx * wy`` and whether the corner
    falls on the image (``flat`` is meaningless where it does not).
    """
    ny, nx = shape
    i0, j0 = np.floor(x), np.floor(y)
    fx, fy = x - i0, y - j0
    i0, j0 = i0.astype(np.int64), j0.astype(np.int64)
    for dj, wy in ((0, 1.0 - fy), (1, fy)):
        for di, wx in ((0, 1.0 - fx), (1, fx)):
            i, j = i0 + di, j0 + dj
            yield j * nx + i, wx * wy, (i >= 0) & (i < nx) & (j >= 0) & (j < ny)


def _corners(bx, by, dx, dy, shape):
    """Flat indices and weights of the four corners of every (slice, pixel); outside -> weight 0."""
    for flat, w, inside in bilinear_corners(bx[None, :] + dx[:, None], by[None, :] + dy[:, None], shape):
        yield np.where(inside, flat, 0), np.where(inside, w, 0.0)


def disperse_ref(values, bx, by, dx, dy, out):
    """Plain-numpy twin of :func:`disperse_nb` (``np.bincount``; same arguments)."""
    for flat, w in _corners(bx, by, dx, dy, out.shape):
        out += np.bincount(flat.ravel(), weights=(values * w).ravel(), minlength=out.size).reshape(out.shape)


def disperse_adjoint_ref(image, bx, by, dx, dy, out):
    """Plain-numpy twin of :func:`disperse_adjoint_nb` (same arguments)."""
    flat_image = image.ravel()
    for flat, w in _corners(bx, by, dx, dy, image.shape):
        out += flat_image[flat] * w
