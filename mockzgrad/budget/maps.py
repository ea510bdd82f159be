"""Steps (a) and (b) of the budget: line maps without the spectral dimension, summed in the pipeline's annuli.

The maps come from the real observation (:func:`mockzgrad.observation.observe`)
of the mock with the spectral dimension switched off through configuration
(no LSF, sigma0 = 5 km/s, 20 km/s channels, no noise) so that every line
is a narrow, separated peak; each line's map is its channels summed. The
annuli (edges and geometry) are those the pipeline chose on the
noise-free cube (step c), so steps (a)-(c) share their bins; the per-bin
fluxes go through the pipeline's back end
(:func:`mockzgrad.recovery.backend.measure_gradient`) with the errors the
pipeline measured in step (c).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import MockzgradError
from ..physics.lines import C_KMS, LINES
from ..recovery.backend import measure_gradient
from ..recovery.fluxes import BinFluxes
from ..recovery.geometry import Geometry, elliptical_radius
from ..recovery.gradient import fit_gradient

__all__ = ["MAP_SWITCHES", "BudgetError", "line_maps", "annulus_labels", "annulus_fluxes",
           "maps_gradient", "true_z_gradient"]

#: Configuration that removes the spectral dimension's effects (steps a, b): LSF off, narrow lines, fine channels.
MAP_SWITCHES = {"instrument.lsf_sigma": 0.0, "galaxy.sigma0": 5.0, "instrument.spectral.grid": "velocity",
                "instrument.spectral.channel_width": 20.0, "instrument.spectral.preset": None,
                "instrument.spectral.full_grid": False, "instrument.spectral.window": None}


class BudgetError(MockzgradError):
    """A budget step cannot be measured for this mock (the reason says why)."""


def line_maps(cube, redshift: float, names) -> dict:
    """Each line's flux map: the cube's channels within half the distance to the nearest other line.

    Parameters
    ----------
    cube : MockCube
        A noise-free cube with narrow, separated lines (:data:`MAP_SWITCHES`).
    redshift : float
    names : sequence of str
        The rendered lines.

    Raises
    ------
    BudgetError
        Two lines closer than 120 km/s: their maps cannot be separated (at
        sigma0 = 5 km/s without LSF, a doublet 225 km/s apart such as [OII]
        separates while |v_los| stays below ~ 90 km/s).
    """
    data = np.asarray(cube.noise_free if cube.noise_free is not None else cube.data, dtype=float)
    centres = 0.5 * (np.asarray(cube.edges_lo) + np.asarray(cube.edges_hi))
    waves = {n: LINES[n].wavelength * (1.0 + redshift) for n in names}
    out = {}
    for n in names:
        others = [abs(w - waves[n]) / waves[n] * C_KMS for m, w in waves.items() if m != n]
        half = min([0.5 * d for d in others] + [1500.0])
        if half < 60.0:
            raise BudgetError(f"lines {n} and its neighbour are {2 * half:.0f} km/s apart: "
                              "their maps cannot be separated for steps (a)-(b)")
        sel = np.abs(centres - waves[n]) / waves[n] * C_KMS <= half
        out[n] = data[sel].sum(axis=0)
    return out


def _geometry(d: dict) -> Geometry:
    names = {f.name for f in dataclasses.fields(Geometry)}
    return Geometry(**{k: (math.nan if v is None else v) for k, v in d.items() if k in names})


def annulus_labels(cube, result) -> np.ndarray:
    """Annulus index of each spaxel of ``cube`` (-1: none) from a recovery's geometry and annulus edges.

    Parameters
    ----------
    cube : MockCube
        Its spaxel offsets (:meth:`~mockzgrad.products.cube.MockCube.offsets`).
    result : RecoveryResult
        Its ``geometry`` and the bins' ``inner_kpc``/``outer_kpc``.
    """
    if not result.bins:
        raise BudgetError(f"the reference recovery has no bins ({result.reason}): no steps (a)-(b)")
    x, y = cube.offsets()
    a_kpc = elliptical_radius(x[None, :], y[:, None], _geometry(result.geometry)) * result.kpc_per_arcsec
    labels = np.full((y.size, x.size), -1, dtype=np.int64)
    for k, b in enumerate(result.bins):
        if "inner_kpc" not in b:
            raise BudgetError(f"bin {k} is not an annulus (binning scheme without annuli): no steps (a)-(b)")
        labels[(a_kpc >= b["inner_kpc"]) & (a_kpc < b["outer_kpc"])] = k
    return labels


def annulus_fluxes(maps: dict, labels: np.ndarray, result) -> BinFluxes:
    """Maps summed per annulus; errors from the reference recovery's bins (same bins, same errors)."""
    names = [n for n in result.bins[0]["fluxes"] if n in maps]
    n = len(result.bins)
    flux = np.zeros((n, len(names)))
    cov = np.zeros((n, len(names), len(names)))
    for j, name in enumerate(names):
        flux[:, j] = np.bincount(labels[labels >= 0], weights=maps[name][labels >= 0], minlength=n)[:n]
        cov[:, j, j] = [b["flux_errors"][name] ** 2 for b in result.bins]
    return BinFluxes(names=tuple(names), flux=flux, cov=cov)


def maps_gradient(maps: dict, labels: np.ndarray, result, recipe, rng) -> dict:
    """The back end on annulus sums of line maps: gradient of each method, dex/kpc (NaN when none)."""
    fluxes = annulus_fluxes(maps, labels, result)
    radius = np.array([b["radius_kpc"] for b in result.bins])
    back = measure_gradient(fluxes, radius, recipe, rng=rng)
    return {g.label: _grad(g.to_dict()) for g in back.gradients}


def _grad(d: dict) -> float:
    v = d.get("grad_z")
    return math.nan if v is None else float(v)


def true_z_gradient(model, cube, weight_map: np.ndarray, labels: np.ndarray, result, *,
                    assigned: bool = True) -> float:
    """Gradient of the true Z map averaged per annulus (weights: a line's flux), dex/kpc.

    ``assigned``: at the radius the pipeline assigns to each annulus (step a1);
    else at the annulus' flux-weighted mean true radius, which for a linear
    profile returns the intrinsic gradient exactly (every effect off).
    The fit is :func:`mockzgrad.recovery.gradient.fit_gradient` with equal errors;
    ``model`` is the mock's :class:`~mockzgrad.source.galaxy.GalaxyModel` (the truth)
    and ``cube`` gives the spaxel offsets.
    """
    x, y = np.meshgrid(*cube.offsets())
    r_true, _ = model.disk_coords(x, y)
    z_true = model.metallicity(r_true)
    n = len(result.bins)
    ok = labels >= 0
    w = np.clip(weight_map, 0.0, None)
    wsum = np.bincount(labels[ok], weights=w[ok], minlength=n)[:n]
    z_bin = np.bincount(labels[ok], weights=(w * z_true)[ok], minlength=n)[:n] / wsum
    if assigned:
        r_bin = np.array([b["radius_kpc"] for b in result.bins])
    else:
        r_bin = np.bincount(labels[ok], weights=(w * r_true)[ok], minlength=n)[:n] / wsum
    use = wsum > 0
    fit = fit_gradient(r_bin[use], z_bin[use], np.full(int(use.sum()), 0.01))
    return float(fit.grad_z)
