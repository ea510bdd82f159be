"""Render emission lines into an IFU cube: channel-integrated Gaussian profiles.

Every sub-pixel of the oversampled sky model emits each line as a Gaussian in
wavelength, centred on the Doppler-shifted line wavelength and as wide as its
line-of-sight velocity dispersion. The flux that falls into a spectral channel
is the Gaussian integrated over that channel (an erf difference), so the cube
does not depend on the channel sampling beyond round-off. Sub-pixels are
summed into detector pixels (``os x os`` blocks).

Conventions
-----------
* Cube axes are ``(n_chan, ny, nx)``; sub-pixel images are ``(ny*os, nx*os)``
  and detector pixel ``(iy, ix)`` collects sub-pixels
  ``[iy*os:(iy+1)*os, ix*os:(ix+1)*os]``.
* Wavelengths are observed-frame, Angstrom; velocities km/s, positive away
  from the observer (redshift).
* Doppler shift ``lambda_c = line_wave * (1 + v / c)`` and Gaussian width
  ``s = lambda_c * sigma / c`` with ``c = 299792.458 km/s`` (first order in
  ``v / c``, as in the rest of mockzgrad).
* Channels are given by their lower and upper edges, so a grid may have gaps
  (only windows around the lines). Channels are sorted and do not overlap;
  linear-lambda and constant-velocity (log-lambda) grids are both fine.
* A profile is truncated at ``n_sigma`` standard deviations: only channels
  overlapping ``[lambda_c - n_sigma s, lambda_c + n_sigma s]`` receive flux,
  and the profile is not renormalised (the lost fraction is
  ``erfc(n_sigma / sqrt(2))``, 2.0e-9 for ``n_sigma = 6``).

Kernels
-------
``render_lines_nb`` (numba, parallel over detector rows) and its plain-numpy
twin ``render_lines_ref``; ``bin_subpixels_nb`` / ``bin_subpixels_ref``. The
kernels do not check their inputs; the public wrappers that do, and pick a
kernel, are :func:`mockzgrad.source.render.render_lines` and
:func:`mockzgrad.source.render.bin_subpixels`. This module imports only
numpy, numba and the standard library.

Speed and accuracy
------------------
The numba kernel works on chunks of up to 64 sub-pixels of one sub-pixel row
and one line at a time; for each channel in the chunk's window it evaluates
the profile for all the chunk's sub-pixels in one branch-free loop that LLVM
turns into SIMD code. ``math.erf`` is a scalar library call (17 ns, ~0.2 s
for a flagship cube), so the standard normal CDF ``Phi`` is computed from
polynomials instead: ``Phi(x) = erfc(y) / 2`` (or ``1 -``
that) with ``y = |x| / sqrt(2)``, ``erfc(y) = t Q(t) exp(-y^2)``,
``t = 1 / (1 + 0.3 y)``, ``Q`` a degree-16 polynomial in ``t``, ``exp(-y^2)``
as ``E(-y^2/64)^64`` with ``E`` a degree-10 polynomial; beyond 9 standard
deviations ``Phi`` is held at its 9-sigma value (1.1e-19 from 0 or 1). The
absolute error of ``Phi`` is below 1e-14 everywhere (measured 3.6e-15
against ``scipy.special.ndtr``), so channel fractions agree with the exact
erf difference to ~1e-14 of the line flux. Where consecutive channels touch
(``edges_hi[k] == edges_lo[k+1]``) the CDF value at the shared edge is
reused, which halves the evaluations and makes the sum over channels
telescope: flux is conserved to round-off. Rows of detector pixels are
distributed over threads (each owns its rows of the cube, and sums within a
row run in a fixed order), so the result does not depend on the number of
threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "C_KMS",
    "render_lines_nb",
    "render_lines_ref",
    "bin_subpixels_nb",
    "bin_subpixels_ref",
    "normal_cdf_nb",
    "normal_cdf_ref",
]

#: Speed of light, km/s (exact; the same value as ``mockzgrad.physics.lines.C_KMS``,
#: repeated here because kernels import nothing from the package).
C_KMS = 299792.458

# --------------------------------------------------------------------------
# Standard normal CDF, branch-free (vectorisable) polynomial form
# --------------------------------------------------------------------------
# erfc(y) = t * Q(s) * exp(-y^2) for 0 <= y <= _YMAX, with t = 1 / (1 + _P y)
# and s = _SA t + _SB in [-1, 1]. Q: Chebyshev least-squares fit (degree 16,
# 800 Chebyshev nodes in t) of scipy.special.erfcx(y) / t, converted to
# monomials in s; max relative error 3e-15. exp(z) for -_YMAX^2/64 <= z <= 0:
# 1 + z R(z), R a degree-9 Chebyshev fit of expm1(z)/z, then squared six
# times. tests/test_kernels_render.py checks Phi against scipy.special.ndtr.

_P = 0.3
_YMAX = 6.363961030678928  # 9 / sqrt(2): Phi is clamped beyond 9 sigma
_SA = 3.047565601757848  # s = _SA * t + _SB maps t in [1/(1 + _P _YMAX), 1] to [-1, 1]
_SB = -2.047565601757848
_INV_SQRT2 = 0.7071067811865476
(_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8, _Q9, _Q10, _Q11, _Q12, _Q13, _Q14, _Q15, _Q16) = (
    0.4492407773976468,
    0.30585857560293883,
    0.15967157795298245,
    0.063438735847914,
    0.018356871109661534,
    0.0033723465327846285,
    0.0001673037929879708,
    -9.054322097404588e-05,
    -1.8517959772407446e-05,
    2.0193914043541494e-06,
    9.58102268129281e-07,
    -6.226221719914042e-08,
    -4.820273025809776e-08,
    3.823637245658022e-09,
    2.4524900397271212e-09,
    -2.5589446796308324e-10,
    -1.0512895251550385e-10,
)
(_E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10) = (
    0.9999999999999996,
    0.4999999999998765,
    0.16666666666003746,
    0.04166666653123136,
    0.008333331938339286,
    0.0013888806589651256,
    0.00019838313635774885,
    2.4735645676889372e-05,
    2.666022488449641e-06,
    2.0629048057810965e-07,
)

_CHUNK = 64  # sub-pixels handled together (one SIMD loop per channel)
_INV_S_MAX = 1e300  # caps 1/s for absurdly small widths (keeps 0 * inf out)


@njit(cache=True, fastmath={"contract"}, inline="always")
def normal_cdf_nb(x):
    """Standard normal CDF, ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``.

    Branch-free polynomial form used inside the render kernel (see the module
    notes); absolute error < 1e-14.

    Parameters
    ----------
    x : float
        Argument, standard deviations; any non-NaN value (held at +-9 beyond
        +-9).

    Returns
    -------
    float
        Phi(x), in [0, 1].
    """
    y = min(abs(x) * _INV_SQRT2, _YMAX)
    t = 1.0 / (1.0 + _P * y)
    s = t * _SA + _SB
    q = _Q16
    q = q * s + _Q15
    q = q * s + _Q14
    q = q * s + _Q13
    q = q * s + _Q12
    q = q * s + _Q11
    q = q * s + _Q10
    q = q * s + _Q9
    q = q * s + _Q8
    q = q * s + _Q7
    q = q * s + _Q6
    q = q * s + _Q5
    q = q * s + _Q4
    q = q * s + _Q3
    q = q * s + _Q2
    q = q * s + _Q1
    q = q * s + _Q0
    z = y * y * (-1.0 / 64.0)
    w = _E10
    w = w * z + _E9
    w = w * z + _E8
    w = w * z + _E7
    w = w * z + _E6
    w = w * z + _E5
    w = w * z + _E4
    w = w * z + _E3
    w = w * z + _E2
    w = w * z + _E1
    w = w * z + 1.0  # exp(-y^2 / 64)
    w = w * w
    w = w * w
    w = w * w
    w = w * w
    w = w * w
    w = w * w  # exp(-y^2)
    h = 0.5 * t * q * w  # erfc(y) / 2
    return h if x < 0.0 else 1.0 - h


#: Element-wise ``math.erf`` and ``math.erfc`` on arrays (float64 results via ``_ufunc_float``).
_ERF = np.frompyfunc(math.erf, 1, 1)
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _ufunc_float(ufunc, x):
    return np.asarray(ufunc(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def normal_cdf_ref(x):
    """Plain twin of :func:`normal_cdf_nb`: ``erfc(-x / sqrt 2) / 2`` with ``math.erfc``, element-wise.

    Parameters
    ----------
    x : float or array_like
        Argument, standard deviations.

    Returns
    -------
    numpy.ndarray
        Phi(x), float64, the shape of ``x``; accurate in both tails (no
        cancellation against 1).
    """
    return 0.5 * _ufunc_float(_ERFC, -np.asarray(x, dtype=np.float64) * _INV_SQRT2)


# --------------------------------------------------------------------------
# Line rendering
# --------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _first_channel_above(edges_hi, lam):
    """Index of the first channel whose upper edge exceeds ``lam`` (n_chan if none)."""
    a = 0
    b = edges_hi.shape[0]
    while a < b:
        m = (a + b) >> 1
        if edges_hi[m] > lam:
            b = m
        else:
            a = m + 1
    return a


@njit(parallel=True, cache=True, fastmath={"contract"}, error_model="numpy")
def render_lines_nb(flux_sub, vlos_sub, sigma_sub, line_wave, edges_lo, edges_hi, os, n_sigma, out):
    """Add channel-integrated Gaussian line profiles to a cube (numba kernel).

    Parallel over detector rows; each thread owns its rows of ``out``. No
    input checking: use :func:`mockzgrad.source.render.render_lines`.

    Parameters
    ----------
    flux_sub : ndarray of float64, shape (n_lines, ny*os, nx*os)
        Flux of each line in each sub-pixel, any flux unit (e.g. erg/s/cm^2),
        ratios and dust included; finite.
    vlos_sub : ndarray of float64, shape (ny*os, nx*os)
        Line-of-sight velocity of each sub-pixel, km/s; positive = redshift;
        |v| < c.
    sigma_sub : ndarray of float64, shape (ny*os, nx*os)
        Gaussian line-of-sight velocity dispersion of each sub-pixel, km/s;
        >= 0 (0 puts all flux in the channel with ``lo <= lambda_c < hi``).
    line_wave : ndarray of float64, shape (n_lines,)
        Observed-frame wavelength of each line at zero velocity, Angstrom; > 0.
    edges_lo, edges_hi : ndarray of float64, shape (n_chan,)
        Lower and upper wavelength edge of each channel, Angstrom; sorted,
        ``edges_lo[k] < edges_hi[k] <= edges_lo[k+1]``.
    os : int
        Sub-pixels per detector pixel along each axis; >= 1.
    n_sigma : float
        Profile truncation, standard deviations; > 0 (inf: no truncation).
    out : ndarray of float64, shape (n_chan, ny, nx)
        Cube, flux per channel in the unit of ``flux_sub``; added to in place.
    """
    n_lines = flux_sub.shape[0]
    nsx = flux_sub.shape[2]
    ny = flux_sub.shape[1] // os
    nx = nsx // os
    n_chan = edges_lo.shape[0]
    inv_c = 1.0 / C_KMS
    # contiguous[k]: channel k starts where channel k-1 ends (shared edge).
    contiguous = np.zeros(n_chan, dtype=np.bool_)
    for k in range(1, n_chan):
        contiguous[k] = edges_lo[k] == edges_hi[k - 1]

    for iy in prange(ny):
        # Spectra of this row's sub-pixel columns, summed over its os sub-rows;
        # a channel's row is zeroed when first touched, and only touched
        # channels are binned (full-band grids touch few channels).
        acc = np.empty((n_chan, nsx))
        touched = np.zeros(n_chan, dtype=np.bool_)
        lc_c = np.empty(_CHUNK)  # line centre, Angstrom
        is_c = np.empty(_CHUNK)  # 1 / width, 1/Angstrom
        f_c = np.empty(_CHUNK)  # flux (0: skip)
        lmin_c = np.empty(_CHUNK)  # truncation window, Angstrom
        lmax_c = np.empty(_CHUNK)
        plo_c = np.empty(_CHUNK)  # Phi at the current channel's lower edge
        for sy in range(iy * os, (iy + 1) * os):
            for li in range(n_lines):
                lw = line_wave[li]
                for c0 in range(0, nsx, _CHUNK):
                    c1 = min(c0 + _CHUNK, nsx)
                    n = c1 - c0
                    fl = flux_sub[li, sy, c0:c1]
                    vl = vlos_sub[sy, c0:c1]
                    sg = sigma_sub[sy, c0:c1]
                    n_unresolved = 0
                    for j in range(n):
                        f = fl[j]
                        lc = lw * (1.0 + vl[j] * inv_c)
                        s = lc * sg[j] * inv_c
                        ok = (f != 0.0) & (s > 0.0)
                        half = n_sigma * s if ok else 0.0  # no inf * 0
                        lc_c[j] = lc
                        lmin_c[j] = lc - half if ok else np.inf
                        lmax_c[j] = lc + half if ok else -np.inf
                        is_c[j] = min(1.0 / s, _INV_S_MAX) if ok else 0.0
                        f_c[j] = f if ok else 0.0
                        n_unresolved += (f != 0.0) & (not s > 0.0)
                    if n_unresolved > 0:
                        # Zero width: all the flux in the channel holding lc.
                        for j in range(n):
                            lc = lc_c[j]
                            if fl[j] != 0.0 and not lc * sg[j] * inv_c > 0.0:
                                k = _first_channel_above(edges_hi, lc)
                                if k < n_chan and edges_lo[k] <= lc:
                                    if not touched[k]:
                                        acc[k, :] = 0.0
                                        touched[k] = True
                                    acc[k, c0 + j] += fl[j]
                    wmin = np.inf
                    wmax = -np.inf
                    for j in range(n):
                        wmin = min(wmin, lmin_c[j])
                        wmax = max(wmax, lmax_c[j])
                    if wmin > wmax:  # no resolved sub-pixel with flux in this chunk
                        continue
                    k0 = _first_channel_above(edges_hi, wmin)
                    for k in range(k0, n_chan):
                        lo = edges_lo[k]
                        if lo >= wmax:
                            break
                        hi = edges_hi[k]
                        if not touched[k]:
                            acc[k, :] = 0.0
                            touched[k] = True
                        if k == k0 or not contiguous[k]:
                            for j in range(n):
                                plo_c[j] = normal_cdf_nb((lo - lc_c[j]) * is_c[j])
                        row = acc[k, c0:c1]
                        for j in range(n):  # the hot, SIMD loop
                            p_hi = normal_cdf_nb((hi - lc_c[j]) * is_c[j])
                            d = f_c[j] * (p_hi - plo_c[j])
                            inside = (hi > lmin_c[j]) & (lo < lmax_c[j])
                            row[j] += d if inside else 0.0
                            plo_c[j] = p_hi
        for k in range(n_chan):
            if touched[k]:
                row = acc[k]
                for ix in range(nx):
                    tot = 0.0
                    for j in range(ix * os, (ix + 1) * os):
                        tot += row[j]
                    out[k, iy, ix] += tot


def render_lines_ref(flux_sub, vlos_sub, sigma_sub, line_wave, edges_lo, edges_hi, os, n_sigma, out):
    """Plain-numpy twin of :func:`render_lines_nb` (same arguments, same result).

    Vectorised over sub-pixels with the exact ``math.erf`` (element-wise);
    loops over lines and channels. Slow and obvious, for tests.
    """
    nsy, nsx = vlos_sub.shape
    ny, nx = nsy // os, nsx // os
    sqrt2 = math.sqrt(2.0)
    for li in range(flux_sub.shape[0]):
        lc = line_wave[li] * (1.0 + vlos_sub / C_KMS)
        s = lc * sigma_sub / C_KMS
        resolved = s > 0.0
        s_safe = np.where(resolved, s, 1.0)
        for k in range(edges_lo.size):
            lo, hi = edges_lo[k], edges_hi[k]
            frac = 0.5 * (_ufunc_float(_ERF, (hi - lc) / (sqrt2 * s_safe))
                          - _ufunc_float(_ERF, (lo - lc) / (sqrt2 * s_safe)))
            inside = (hi > lc - n_sigma * s_safe) & (lo < lc + n_sigma * s_safe)
            frac = np.where(inside, frac, 0.0)
            frac = np.where(resolved, frac, ((lo <= lc) & (lc < hi)).astype(float))
            img = flux_sub[li] * frac
            out[k] += img.reshape(ny, os, nx, os).sum(axis=(1, 3))


# --------------------------------------------------------------------------
# Sub-pixel binning
# --------------------------------------------------------------------------


@njit(cache=True)
def bin_subpixels_nb(img_sub, os):
    """Sum ``os x os`` blocks of a sub-pixel image (numba kernel).

    Parameters
    ----------
    img_sub : ndarray of float64, shape (ny*os, nx*os)
        Any additive quantity per sub-pixel (flux, flux-weighted velocity).
    os : int
        Block size; >= 1.

    Returns
    -------
    ndarray of float64, shape (ny, nx)
        Block sums: pixel ``(iy, ix)`` holds
        ``img_sub[iy*os:(iy+1)*os, ix*os:(ix+1)*os].sum()``.
    """
    ny = img_sub.shape[0] // os
    nx = img_sub.shape[1] // os
    res = np.zeros((ny, nx))
    for sy in range(ny * os):
        iy = sy // os
        for sx in range(nx * os):
            res[iy, sx // os] += img_sub[sy, sx]
    return res


def bin_subpixels_ref(img_sub, os):
    """Plain-numpy twin of :func:`bin_subpixels_nb`."""
    nsy, nsx = img_sub.shape
    return img_sub.reshape(nsy // os, os, nsx // os, os).sum(axis=(1, 3))
