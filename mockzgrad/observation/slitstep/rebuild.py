"""The cube rebuilt from a slit-stepped product's stored 2D spectra (what an observer reduces).

The product's ``spectra`` (:class:`~mockzgrad.products.spectra2d.SlitSpectra`,
uncorrected, one per pointing) and ``exposures`` (the observing log: step
indices and offsets of each pointing) hold everything the MSA-3D build
(:mod:`.build`) needs besides the set-up (``[instrument.slitstep]`` of the
product's configuration): the path-loss factors are applied per channel and
the build run again, so the rebuilt cube equals the product's cube.
"""

from __future__ import annotations

import numpy as np

from ...config import SlitstepConfig
from ...config.toml_io import parse_toml
from ...errors import DataError
from .build import build_msa3d_cube, cube_geometry

__all__ = ["cube_from_spectra", "rebuild_cube"]


def _stepped(spectra, exposures: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spectra and variance on axes (steps_disp, steps_cross, n_chan, n_rows), and the step offsets."""
    i = np.asarray(exposures["step_disp"], dtype=np.int64)
    j = np.asarray(exposures["step_cross"], dtype=np.int64)
    if i.size != spectra.data.shape[0]:
        raise DataError(f"{spectra.data.shape[0]} 2D spectra but {i.size} rows in the EXPOSURES log")
    shape = (int(i.max()) + 1, int(j.max()) + 1) + spectra.data.shape[1:]
    data, var = np.full(shape, np.nan), np.full(shape, np.nan)
    data[i, j], var[i, j] = spectra.data, spectra.variance
    x_steps, y_steps = np.full(shape[0], np.nan), np.full(shape[1], np.nan)
    x_steps[i], y_steps[j] = exposures["x_offset"], exposures["y_offset"]
    if np.isnan(data).all(axis=(2, 3)).any():
        raise DataError("the EXPOSURES log does not hold every (step_disp, step_cross) pointing once")
    return data, var, x_steps, y_steps


def cube_from_spectra(spectra, exposures: dict, ss: SlitstepConfig) -> tuple[np.ndarray, np.ndarray]:
    """Build the cube from 2D spectra and their observing log (the MSA-3D build of :mod:`.build`).

    Parameters
    ----------
    spectra : SlitSpectra
        Uncorrected 2D spectra, one per pointing.
    exposures : dict
        Observing log (``step_disp``, ``step_cross``, ``x_offset``,
        ``y_offset`` per pointing, arcsec), rows in the order of the spectra.
    ss : SlitstepConfig
        The set-up (combination, cube pixel, shutter width, step).

    Returns
    -------
    cube, cube_variance : ndarray, shape (n_chan, ny, nx)
        Flux per spaxel (erg/s/cm^2) and its variance.
    """
    data, var, x_steps, y_steps = _stepped(spectra, exposures)
    loss = np.asarray(spectra.pathloss, dtype=float)[None, None, :, None]
    geom = cube_geometry(ss, x_steps, y_steps, spectra.row_edges, spectra.open_fraction)
    return build_msa3d_cube(data * loss, var * loss**2, spectra.open_fraction, ss, geom)


def rebuild_cube(product) -> tuple[np.ndarray, np.ndarray]:
    """The cube and its variance rebuilt from a slit-stepped product's 2D spectra.

    Parameters
    ----------
    product : MockCube
        With ``spectra``, ``exposures`` and ``config_toml`` (as written by
        the slit-stepping mode with ``store_spectra = true``, or read back by
        :func:`~mockzgrad.products.cube.read_cube`).

    Raises
    ------
    DataError
        No 2D spectra, no observing log or no ``[instrument.slitstep]`` configuration.
    """
    if product.spectra is None or not product.exposures:
        raise DataError("the product holds no 2D spectra (SPEC2D) or no observing log (EXPOSURES); "
                        "made with instrument.slitstep.store_spectra = false, or not a slit-stepped cube")
    ss = parse_toml(product.config_toml, "the product's CONFIG").get("instrument", {}).get("slitstep")
    if not ss:
        raise DataError("the product's CONFIG has no [instrument.slitstep] table: the set-up is unknown")
    return cube_from_spectra(product.spectra, product.exposures, SlitstepConfig(**ss))
