"""Gaussian noise added to a cube: the deviates of a numpy Generator, drawn in numba.

Conventions
-----------
* ``cube`` and ``out`` have shape ``(n_chan, n_pix)`` (a cube's spatial axes
  flattened, C order); ``sigma`` holds one value per channel (a scalar sigma
  repeated).
* The deviates are ``gen.standard_normal()`` taken one by one in C order,
  which is the stream ``gen.standard_normal(out=array)`` gives for an array
  of that shape: numba implements ``Generator.standard_normal`` with numpy's
  algorithm (the ziggurat) on the generator's own bit generator, whose state
  advances as it would in numpy. ``out = cube + z * sigma`` is what
  ``z *= sigma; z += cube`` computes (no fused multiply-add), so the noisy
  cube is the same to the bit (tested against numpy for many seeds and
  sizes).

Kernels
-------
``add_noise_nb`` (numba, one thread: the stream is sequential) and its
plain-numpy twin ``add_noise_ref``. No input checking: the public wrapper is
:func:`mockzgrad.observation.noise.add_noise`. This module imports only
numpy, numba and the standard library.

Speed: numpy's ``standard_normal`` took ~10 ns per deviate on the project's
loaded 2-core VM, the compiled loop ~4 ns, and the scale and add are fused
into the same pass (a flagship cube: 587 k deviates).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["add_noise_nb", "add_noise_ref"]


@njit(cache=True)
def add_noise_nb(cube, sigma, gen, out):
    """Write ``cube + sigma * z`` to ``out``, ``z`` standard normal deviates of ``gen`` in C order.

    Parameters
    ----------
    cube : ndarray of float64, shape (n_chan, n_pix)
        Noise-free values, any unit.
    sigma : ndarray of float64, shape (n_chan,)
        Noise sigma of each channel, the unit of ``cube``.
    gen : numpy.random.Generator
        Advanced by ``n_chan * n_pix`` standard normal draws.
    out : ndarray of float64, shape (n_chan, n_pix)
        Overwritten; may be ``cube`` itself.
    """
    n_chan, n_pix = cube.shape
    for k in range(n_chan):
        s = sigma[k]
        for i in range(n_pix):
            out[k, i] = cube[k, i] + gen.standard_normal() * s
    return out


def add_noise_ref(cube, sigma, gen, out):
    """Plain-numpy twin of :func:`add_noise_nb` (same arguments, same result)."""
    z = np.empty(cube.shape)
    gen.standard_normal(out=z)
    z *= sigma[:, None]
    z += cube
    out[...] = z
    return out
