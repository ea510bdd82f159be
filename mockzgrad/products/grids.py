"""Spatial and spectral sampling of a cube.

Spectral grid: a global grid of channels (constant width in velocity, i.e.
uniform in log lambda, or constant width in Angstrom) from which only the
channels within a window around each redshifted line are kept, unless the
full grid is asked for. Channel ``k`` of the global grid has edges
``lambda_k`` and ``lambda_(k+1)``; the kept channels carry their global
index so a FITS writer can place them on a regular WCS.

Spatial grid: spaxel centres at offsets ``x`` (east) and ``y`` (north) in
arcsec from the field centre. Array axes are ``(ny, nx)`` with north = +row
and east = -column (RA increases to the left, as on the sky).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..physics.lines import C_KMS

__all__ = ["SpectralGrid", "spectral_grid", "spatial_offsets"]


@dataclass(frozen=True)
class SpectralGrid:
    """Channels of a cube (observed frame, vacuum).

    Attributes
    ----------
    kind : {"velocity", "linear"}
    start : float
        Lower edge of global channel 0, Angstrom.
    step : float
        Channel step: d(ln lambda) for ``velocity``, Angstrom for ``linear``.
    index : ndarray of int, shape (n_chan,)
        Global index of each kept channel (ascending).
    """

    kind: str
    start: float
    step: float
    index: np.ndarray

    def edges_of(self, k) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        if self.kind == "velocity":
            return self.start * np.exp(self.step * k)
        return self.start + self.step * k

    @property
    def n_chan(self) -> int:
        return int(self.index.size)

    @property
    def edges_lo(self) -> np.ndarray:
        """Lower channel edges, Angstrom."""
        return self.edges_of(self.index)

    @property
    def edges_hi(self) -> np.ndarray:
        """Upper channel edges, Angstrom."""
        return self.edges_of(self.index + 1)

    @property
    def centres(self) -> np.ndarray:
        """Channel centres, Angstrom (geometric mean for velocity grids)."""
        return self.edges_of(self.index + 0.5)

    @property
    def channel_width_kms(self) -> np.ndarray:
        """Channel widths in km/s at each channel centre."""
        return C_KMS * (self.edges_hi - self.edges_lo) / self.centres

    @property
    def contiguous(self) -> bool:
        return bool(np.all(np.diff(self.index) == 1))

    def channel_of(self, wavelength: float) -> int:
        """Global index of the channel containing ``wavelength`` (Angstrom)."""
        if self.kind == "velocity":
            return int(math.floor(math.log(wavelength / self.start) / self.step))
        return int(math.floor((wavelength - self.start) / self.step))


def spectral_grid(line_waves_obs, *, kind: str, channel_width_kms: float | None = None,
                  dispersion: float | None = None, window_kms: float, full: bool = False,
                  wave_min: float | None = None, wave_max: float | None = None,
                  anchor: float | None = None) -> SpectralGrid:
    """Build the spectral grid for a set of observed line wavelengths.

    Parameters
    ----------
    line_waves_obs : array_like
        Observed wavelengths of the lines at zero velocity, Angstrom.
    kind : {"velocity", "linear"}
    channel_width_kms : float
        Channel width, km/s (``velocity``): d ln(lambda) = width / c.
    dispersion : float
        Channel width, Angstrom (``linear``).
    window_kms : float
        Half-width of the kept window around each line, km/s.
    full : bool
        Keep every channel between ``wave_min`` and ``wave_max``.
    anchor : float, optional
        Wavelength placed at the centre of a channel (default: the first
        line), Angstrom.
    """
    waves = np.sort(np.asarray(line_waves_obs, dtype=float))
    anchor = float(waves[-1] if anchor is None else anchor)
    if kind == "velocity":
        step = channel_width_kms / C_KMS
        start = anchor * math.exp(-0.5 * step)
        to_idx = lambda w: np.floor(np.log(np.asarray(w) / start) / step)  # noqa: E731
    elif kind == "linear":
        step = float(dispersion)
        start = anchor - 0.5 * step
        to_idx = lambda w: np.floor((np.asarray(w) - start) / step)  # noqa: E731
    else:
        raise ConfigError(f"instrument.spectral.grid = {kind!r}; allowed: 'velocity', 'linear'")
    half = window_kms / C_KMS
    lo = waves * (1.0 - half)
    hi = waves * (1.0 + half)
    if full:
        wmin = lo.min() if wave_min is None else wave_min
        wmax = hi.max() if wave_max is None else wave_max
        index = np.arange(int(to_idx(wmin)), int(to_idx(wmax)) + 1)
    else:
        parts = [np.arange(int(to_idx(a)), int(to_idx(b)) + 1) for a, b in zip(lo, hi)]
        index = np.unique(np.concatenate(parts))
    if index.size > 200000:
        raise ConfigError(f"instrument.spectral: {index.size} channels requested; at most 200000 allowed")
    return SpectralGrid(kind, float(start), float(step), index.astype(np.int64))


def spatial_offsets(n: int, pixel_scale: float) -> np.ndarray:
    """Pixel-centre offsets (arcsec) along one axis, centred on the field centre."""
    return (np.arange(n) - 0.5 * (n - 1)) * pixel_scale
