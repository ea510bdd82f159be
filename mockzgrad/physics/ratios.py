"""Line-ratio definitions of the calibration files, evaluated on line fluxes.

A ratio is ``{"label": str, "terms": [{"weight": w, "parts": [{"numerator":
{line: weight}, "denominator": {line: weight}}]}]}`` and means

    log R = sum_j w_j * log10(sum_k N_jk / D_jk),

with ``N`` and ``D`` weighted sums of the fluxes of lines named in
:mod:`mockzgrad.physics.lines` (e.g. R23 = ([OII] + [OIII]) / Hbeta as one
term of two parts).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["ratio_lines", "log_ratio_of_fluxes"]


def ratio_lines(ratio: Mapping) -> set[str]:
    """Every line id a ratio definition uses."""
    out = set()
    for term in ratio.get("terms", ()):
        for part in term["parts"]:
            out |= set(part["numerator"]) | set(part["denominator"])
    return out


def log_ratio_of_fluxes(ratio: Mapping, flux: Mapping[str, np.ndarray]) -> np.ndarray:
    """log10 R of a ratio definition from line fluxes.

    Parameters
    ----------
    ratio : mapping
        Ratio definition (module docstring) with at least one term.
    flux : mapping of str to ndarray
        Flux of every line of :func:`ratio_lines`, any common unit; arrays
        broadcast against each other.

    Returns
    -------
    ndarray
        log10 R, dex; NaN where a summed ratio is not positive and finite.
    """
    total = np.asarray(0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for term in ratio["terms"]:
            s = np.asarray(0.0)
            for part in term["parts"]:
                num = sum(float(w) * flux[line] for line, w in part["numerator"].items())
                den = sum(float(w) * flux[line] for line, w in part["denominator"].items())
                s = s + num / den
            s = np.where(np.isfinite(s) & (s > 0), s, np.nan)
            total = total + float(term["weight"]) * np.log10(s)
    return np.asarray(total, dtype=float)
