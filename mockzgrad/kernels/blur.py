"""Separable blur of a padded cube by a symmetric 1-D kernel along both spatial axes, cropped.

A PSF that is the outer product of one 1-D kernel with itself (a circular
Gaussian) is applied as two 1-D convolutions instead of a 2-D FFT: along x
over the rows the second pass needs, then along y, writing only the kept
field. Work per channel: (n + 2h) n + n^2 outputs of 2h + 1 taps each;
a channel whose read region is all 0 (between lines) is written as 0
without the passes (the same result: the taps are finite).

Conventions
-----------
* Cube axes ``(n_chan, n_ext, n_ext)``; the kept field is
  ``[pad:pad + n, pad:pad + n]`` on both spatial axes and the kernel
  half-width ``h`` (``taps`` has ``2h + 1`` entries, centre at ``h``)
  satisfies ``h <= pad`` and ``pad + n + h <= n_ext``: every output pixel
  sees only rendered pixels, nothing wraps or is cut.
* ``taps`` is symmetric (convolution = correlation); its sum is the flux
  gain of each pass (1 for a normalised kernel).

Kernels
-------
``blur_separable_nb`` (numba, parallel over channels) and its plain-numpy
twin ``blur_separable_ref``. No input checking: the checked entry point is
:func:`mockzgrad.observation.psf.convolve.blur_separable`. This module
imports only numpy, numba and the standard library.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["blur_separable_nb", "blur_separable_ref"]


@njit(cache=True)
def _all_zero(img, a, b):
    """True if ``img[a:b, a:b]`` (the part of a channel a blur of the kept field reads) is all 0."""
    for i in range(a, b):
        row = img[i]
        for j in range(a, b):
            if row[j] != 0.0:
                return False
    return True


@njit(cache=True, fastmath={"contract"}, inline="always")
def _row_pass(src, taps, h, n, dst):
    """``dst[j] = sum_k taps[k] src[j + k]`` for j < n, ``src`` holding n + 2h pixels (symmetric taps:
    the centre tap first, then the pairs k, 2h - k in turn, two pairs per sweep). Each tap pair reads
    two 1-D slices, which lets LLVM vectorise the sweep (indexing one row at computed offsets did not)."""
    wc = taps[h]
    for j in range(n):
        dst[j] = wc * src[h + j]
    k = 0
    while k + 1 < h:
        w0 = taps[k]
        w1 = taps[k + 1]
        a0 = src[k:k + n]
        b0 = src[2 * h - k:2 * h - k + n]
        a1 = src[k + 1:k + 1 + n]
        b1 = src[2 * h - k - 1:2 * h - k - 1 + n]
        for j in range(n):
            dst[j] = (dst[j] + w0 * (a0[j] + b0[j])) + w1 * (a1[j] + b1[j])
        k += 2
    if k < h:
        w = taps[k]
        a = src[k:k + n]
        b = src[2 * h - k:2 * h - k + n]
        for j in range(n):
            dst[j] += w * (a[j] + b[j])


@njit(parallel=True, cache=True, fastmath={"contract"})
def blur_separable_nb(cube, taps, pad, n, out):
    """Blur ``cube`` by ``taps`` along x then y and write the kept field to ``out`` (numba kernel).

    Parameters
    ----------
    cube : ndarray of float64, shape (n_chan, n_ext, n_ext)
        Padded cube, any additive unit.
    taps : ndarray of float64, shape (2h + 1,)
        Symmetric 1-D kernel, centre at index h (only ``taps[:h + 1]`` is read).
    pad : int
        First kept pixel on each spatial axis; >= h.
    n : int
        Side of the kept field; ``pad + n + h <= n_ext``.
    out : ndarray of float64, shape (n_chan, n, n)
        Overwritten with the blurred kept field.
    """
    n_chan = cube.shape[0]
    m = taps.size
    h = m // 2
    rows = n + 2 * h
    wc = taps[h]
    for c in prange(n_chan):
        if _all_zero(cube[c], pad - h, pad + n + h):  # e.g. a channel between lines: the blur is 0
            out[c] = 0.0
            continue
        tmp = np.empty((rows, n))
        for r in range(rows):  # along x; symmetric taps: pairs k, m - 1 - k share one product
            src = cube[c, pad - h + r]
            _row_pass(src[pad - h:pad + n + h], taps, h, n, tmp[r])
        for i in range(n):  # along y, only the kept rows
            dst = out[c, i]
            mid = tmp[i + h]
            for j in range(n):
                dst[j] = wc * mid[j]
            k = 0
            while k + 1 < h:  # two tap pairs per sweep: the same sums in the same order, half the stores
                w0 = taps[k]
                w1 = taps[k + 1]
                lo0 = tmp[i + k]
                hi0 = tmp[i + 2 * h - k]
                lo1 = tmp[i + k + 1]
                hi1 = tmp[i + 2 * h - k - 1]
                for j in range(n):
                    dst[j] = (dst[j] + w0 * (lo0[j] + hi0[j])) + w1 * (lo1[j] + hi1[j])
                k += 2
            if k < h:
                w = taps[k]
                lo = tmp[i + k]
                hi = tmp[i + 2 * h - k]
                for j in range(n):
                    dst[j] += w * (lo[j] + hi[j])
    return out


def blur_separable_ref(cube, taps, pad, n, out):
    """Plain-numpy twin of :func:`blur_separable_nb` (shifted sums, same parameters)."""
    m = taps.size
    h = m // 2
    rows = cube[:, pad - h:pad + n + h, :]
    tmp = np.zeros((cube.shape[0], n + 2 * h, n))
    for k in range(m):
        tmp += taps[k] * rows[:, :, pad - h + k:pad - h + k + n]
    out[...] = 0.0
    for k in range(m):
        out += taps[k] * tmp[:, k:k + n, :]
    return out
