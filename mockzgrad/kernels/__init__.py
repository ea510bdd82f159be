"""Compiled kernels and their plain-numpy reference twins.

Each kernel family lives in its own module (``render``: line profiles into a
cube). A kernel ``name_nb`` is numba-compiled, its twin ``name_ref`` is plain
numpy; both take plain arrays and floats in documented units. Public
wrappers without a suffix check their inputs and pick one of the two.
"""

from .render import (
    bin_subpixels,
    bin_subpixels_nb,
    bin_subpixels_ref,
    normal_cdf_nb,
    normal_cdf_ref,
    render_lines,
    render_lines_nb,
    render_lines_ref,
)

__all__ = [
    "render_lines",
    "render_lines_nb",
    "render_lines_ref",
    "bin_subpixels",
    "bin_subpixels_nb",
    "bin_subpixels_ref",
    "normal_cdf_nb",
    "normal_cdf_ref",
]
