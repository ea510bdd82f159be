"""Compiled kernels and their plain-numpy reference twins.

Each kernel family lives in its own module (``render``: line profiles into a
cube; ``blur``: separable PSF blur; ``noise``: Gaussian noise from a numpy Generator). A kernel ``name_nb`` is numba-compiled, its twin ``name_ref`` is plain
numpy; both take plain arrays and floats in documented units and check
nothing. Kernels import only numpy, numba and the standard library; the
public wrappers that check their inputs and pick one of the twins live in
the layer that calls them (:mod:`mockzgrad.source.render`).
"""

from .blur import blur_separable_nb, blur_separable_ref
from .noise import add_noise_nb, add_noise_ref
from .render import (
    C_KMS,
    bin_subpixels_nb,
    bin_subpixels_ref,
    normal_cdf_nb,
    normal_cdf_ref,
    render_lines_nb,
    render_lines_ref,
)

__all__ = [
    "add_noise_nb",
    "add_noise_ref",
    "blur_separable_nb",
    "blur_separable_ref",
    "C_KMS",
    "render_lines_nb",
    "render_lines_ref",
    "bin_subpixels_nb",
    "bin_subpixels_ref",
    "normal_cdf_nb",
    "normal_cdf_ref",
]
