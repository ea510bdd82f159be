"""Noise: Gaussian, constant sigma per pixel and channel, set absolutely or
by the target S/N of DESIGN.md.

S/N definition (used by suites): the mean, over spaxels whose centres lie
inside the r_eff ellipse, of noise-free signal / sigma in the channel where
the spatially integrated ``snr_line`` peaks.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..kernels.noise import add_noise_nb, add_noise_ref
from ..physics.lines import C_KMS

__all__ = ["ellipse_mask", "peak_channel", "sigma_for_snr", "measured_snr", "add_noise", "line_window",
           "line_scales", "channel_sigma"]


def ellipse_mask(x_arcsec, y_arcsec, *, a_arcsec: float, axis_ratio: float, pa: float,
                 x_offset: float = 0.0, y_offset: float = 0.0) -> np.ndarray:
    """Spaxels whose centres lie inside an ellipse.

    Parameters
    ----------
    x_arcsec, y_arcsec : ndarray
        Spaxel-centre offsets, arcsec (east, north), broadcastable to (ny, nx).
    a_arcsec : float
        Semi-major axis, arcsec.
    axis_ratio : float
        b/a; (0, 1].
    pa : float
        Major-axis position angle, deg east of north.
    """
    t = math.radians(pa)
    dx = np.asarray(x_arcsec) - x_offset
    dy = np.asarray(y_arcsec) - y_offset
    x_maj = dx * math.sin(t) + dy * math.cos(t)
    y_min = -dx * math.cos(t) + dy * math.sin(t)
    return (x_maj / a_arcsec) ** 2 + (y_min / (a_arcsec * max(axis_ratio, 1e-3))) ** 2 <= 1.0


def peak_channel(cube, centres, line_wave_obs: float, *, search_kms: float = 1000.0) -> int:
    """Channel (index into the cube) where the integrated spectrum peaks near a line.

    Parameters
    ----------
    cube : ndarray, shape (n_chan, ny, nx)
        Noise-free cube.
    centres : ndarray, shape (n_chan,)
        Channel centres, Angstrom.
    line_wave_obs : float
        Observed wavelength of the line, Angstrom.
    search_kms : float
        Half-width of the search window, km/s.
    """
    near = np.abs(centres / line_wave_obs - 1.0) * C_KMS <= search_kms
    if not near.any():
        raise ConfigError(f"noise.snr_line at {line_wave_obs:.1f} A is not covered by the spectral grid")
    spectrum = cube.sum(axis=(1, 2))
    idx = np.flatnonzero(near)
    return int(idx[np.argmax(spectrum[idx])])


def sigma_for_snr(signal_map, mask, snr: float) -> float:
    """Noise sigma giving mean(signal/sigma) = snr over ``mask``."""
    if not mask.any():
        raise ConfigError("noise.snr: the r_eff ellipse contains no spaxel centre; "
                          "use a smaller pixel_scale or give noise.sigma")
    mean_signal = float(signal_map[mask].mean())
    if not mean_signal > 0:
        raise ConfigError("noise.snr: the signal in the S/N channel is not positive inside r_eff")
    return mean_signal / snr


def measured_snr(signal_map, mask, sigma: float) -> float:
    """Mean of signal/sigma over ``mask`` (the DESIGN.md S/N)."""
    return float(np.mean(signal_map[mask]) / sigma)


def add_noise(cube, sigma, rng: np.random.Generator, *, use_numba: bool = True) -> np.ndarray:
    """Return ``cube`` plus Gaussian noise of constant ``sigma`` (or one sigma per channel).

    The unit normal deviates are ``rng.standard_normal`` in C order of the
    cube, scaled and added: the result is ``cube + z * sigma`` to the bit of
    ``z = rng.standard_normal(cube.shape); z *= sigma; z += cube``. The
    compiled kernel (:func:`mockzgrad.kernels.noise.add_noise_nb`) draws the
    same deviates from the same generator ~2.5x faster than numpy and adds
    them in the same pass. ``sigma`` of shape (n_chan,) scales each channel
    (per-window depth, :func:`channel_sigma`); the deviates are the same as
    for a scalar sigma, so two depths of one seed share them.

    Parameters
    ----------
    cube : array_like
        Noise-free values, any unit; shape (n_chan, ny, nx) when ``sigma``
        is per channel.
    sigma : float or array_like, shape (n_chan,)
        Noise sigma, the unit of ``cube``.
    rng : numpy.random.Generator
        Advanced by ``cube.size`` standard normal draws.
    use_numba : bool
        Use the compiled kernel (False: its numpy twin).

    Returns
    -------
    ndarray of float64, the shape of ``cube``
    """
    shape = np.shape(cube)
    cube = np.ascontiguousarray(cube, dtype=np.float64)  # (a 0-d cube becomes 1-d here)
    if np.ndim(sigma) == 0:
        flat, sig = cube.reshape(1, -1), np.full(1, sigma, dtype=np.float64)
    else:
        sig = np.ascontiguousarray(sigma, dtype=np.float64)
        flat = cube.reshape(sig.size, -1)
    out = np.empty(flat.shape)
    kernel = add_noise_nb if use_numba and isinstance(rng, np.random.Generator) else add_noise_ref
    kernel(flat, sig, rng, out)
    return out.reshape(shape)


def line_window(windows: dict, line: str, wave_obs: float) -> str | None:
    """Name of the first ``noise.windows`` entry covering ``line`` (by name or observed wavelength), or None."""
    for name, w in windows.items():
        if line in w.get("lines", ()) or ("wave_min" in w and w["wave_min"] <= wave_obs <= w["wave_max"]):
            return name
    return None


def line_scales(windows: dict, line_waves: dict, snr_line: str, sigma_ref: float) -> dict:
    """Noise sigma (erg/s/cm^2 per channel) of each line under per-window depths.

    Parameters
    ----------
    windows : dict
        ``noise.windows`` (:class:`~mockzgrad.config.NoiseConfig`).
    line_waves : dict
        Line name -> observed wavelength, Angstrom.
    snr_line : str
        The line whose sigma is ``sigma_ref``.
    sigma_ref : float
        Sigma at ``snr_line`` (given, or set by the target S/N).

    Returns
    -------
    dict
        Line name -> sigma: a window's ``sigma``, else ``sigma_ref`` x the
        line's ``scale`` / the ``snr_line`` scale (scale 1 outside windows).
    """
    def scale(line):
        name = line_window(windows, line, line_waves[line])
        return 1.0 if name is None else windows[name].get("scale")

    ref = scale(snr_line)
    if ref is None:
        raise ConfigError(f"noise.windows.{line_window(windows, snr_line, line_waves[snr_line])}.sigma: the window "
                          f"holds noise.snr_line = {snr_line!r}, whose sigma noise.snr / noise.sigma set; give scale")
    out = {}
    for line in line_waves:
        s = scale(line)
        out[line] = windows[line_window(windows, line, line_waves[line])]["sigma"] if s is None \
            else sigma_ref * s / ref
    return out


def channel_sigma(centres, line_waves: dict, sigmas: dict) -> np.ndarray:
    """Sigma per channel: each channel takes the sigma of its nearest line (in ln wavelength).

    Parameters
    ----------
    centres : ndarray, shape (n_chan,)
        Channel centres, Angstrom.
    line_waves, sigmas : dict
        Line name -> observed wavelength (Angstrom) and -> sigma (:func:`line_scales`).
    """
    names = list(line_waves)
    waves = np.log([line_waves[n] for n in names])
    nearest = np.argmin(np.abs(np.log(np.asarray(centres, dtype=float))[:, None] - waves[None, :]), axis=1)
    return np.array([sigmas[n] for n in names])[nearest]
