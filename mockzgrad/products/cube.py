"""The IFU cube data product, :class:`MockCube`, and its FITS I/O.

A cube is what an observer has: data and variance per spaxel and channel,
the sampling (channel edges, pixel scale) and the PSF/LSF description. The
truth of a mock travels with it (TRUTH extension) for suites and curves;
recovery never reads it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import __version__
from ..errors import DataError
from .grids import SpectralGrid, spatial_offsets

__all__ = ["MockCube", "read_cube", "BUNIT"]


#: Flux unit of a cube pixel: flux in one spaxel and one channel.
BUNIT = "erg/(s cm2)"

#: Sky position of the field centre written to the WCS (arbitrary, deg).
_CRVAL_RA, _CRVAL_DEC = 150.0, 2.0


@dataclass
class MockCube:
    """A mock IFU observation (a :class:`~mockzgrad.products.protocol.Product` of kind ``"ifu"``).

    Attributes
    ----------
    kind : str
        ``"ifu"`` (class attribute, not a field).
    data : ndarray, shape (n_chan, ny, nx)
        Flux per spaxel and channel, erg/s/cm^2 (noisy unless noise is off).
    variance : ndarray, shape (n_chan, ny, nx)
        Variance of ``data``, (erg/s/cm^2)^2.
    edges_lo, edges_hi : ndarray, shape (n_chan,)
        Channel edges, observed vacuum wavelength, Angstrom.
    pixel_scale : float
        Spaxel size, arcsec.
    psf : dict
        PSF description (``PSF_KIND``, ``PSF_FWHM``, ... as in the header).
    lsf_sigma : float
        LSF sigma, km/s.
    truth : dict
        Every model parameter and derived truth (never read by recovery).
    noise_free : ndarray or None
        The cube before noise.
    grid : SpectralGrid or None
        The global channel grid (for a regular FITS WCS).
    config_toml : str
        The configuration that made the cube.
    """

    kind: ClassVar[str] = "ifu"

    data: np.ndarray
    variance: np.ndarray
    edges_lo: np.ndarray
    edges_hi: np.ndarray
    pixel_scale: float
    psf: dict
    lsf_sigma: float
    truth: dict = field(default_factory=dict)
    noise_free: np.ndarray | None = None
    grid: SpectralGrid | None = None
    config_toml: str = ""

    @property
    def wavelengths(self) -> np.ndarray:
        """Channel centres, Angstrom."""
        return 0.5 * (self.edges_lo + self.edges_hi)

    @property
    def shape(self):
        return self.data.shape

    def offsets(self):
        """(x, y) spaxel-centre offsets from the field centre, arcsec (east, north), 1D each."""
        ny, nx = self.data.shape[1:]
        return -spatial_offsets(nx, self.pixel_scale), spatial_offsets(ny, self.pixel_scale)

    # ------------------------------------------------------------------ FITS
    def to_hdulist(self, *, include_noise_free: bool = False):
        """FITS HDUs: primary (truth), DATA, VAR, [NOISEFREE], CHANNELS, CONFIG."""
        from astropy.io import fits

        full = self._full_grid()
        primary = fits.PrimaryHDU()
        h = primary.header
        h["ORIGIN"] = "mockzgrad"
        h["MZVERS"] = (__version__, "mockzgrad version")
        h["BUNIT"] = BUNIT
        for key, value in _flat_truth(self.truth).items():
            _set_header(h, key, value)
        h["HIERARCH lsf_sigma"] = (self.lsf_sigma, "km/s, Gaussian LSF sigma")
        h["HIERARCH pixel_scale"] = (self.pixel_scale, "arcsec")
        for key, value in self.psf.items():
            _set_header(h, key, value)
        wcs_header = self._wcs_header(full)
        hdus = [primary]
        arrays = [("DATA", self.data), ("VAR", self.variance)]
        if include_noise_free and self.noise_free is not None:
            arrays.append(("NOISEFREE", self.noise_free))
        for name, arr in arrays:
            hdu = fits.ImageHDU(self._expand(arr, full).astype(np.float32), name=name)
            hdu.header.update(wcs_header)
            hdu.header["BUNIT"] = BUNIT if name != "VAR" else "erg2/(s2 cm4)"
            for key, value in self.psf.items():
                _set_header(hdu.header, key, value)
            hdus.append(hdu)
        cols = [fits.Column(name="WAVE_LO", format="D", unit="Angstrom", array=self.edges_lo),
                fits.Column(name="WAVE_HI", format="D", unit="Angstrom", array=self.edges_hi)]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="CHANNELS"))
        if self.config_toml:
            hdus.append(fits.ImageHDU(np.frombuffer(self.config_toml.encode(), dtype=np.uint8), name="CONFIG"))
        hdus.append(fits.ImageHDU(np.frombuffer(json.dumps(self.truth).encode(), dtype=np.uint8),
                                  name="TRUTH"))
        return fits.HDUList(hdus)

    def write(self, path, *, overwrite: bool = False, include_noise_free: bool = False) -> None:
        """Write the cube as FITS, atomically (a crash never leaves half a file)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise DataError(f"output {str(path)!r} exists; pass overwrite=True (CLI: --overwrite)")
        hdul = self.to_hdulist(include_noise_free=include_noise_free)
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".fits.part")
        os.close(fd)
        try:
            hdul.writeto(tmp, overwrite=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _full_grid(self):
        if self.grid is None:
            return None
        return np.arange(self.grid.index[0], self.grid.index[-1] + 1)

    def _expand(self, arr, full):
        if full is None or full.size == arr.shape[0]:
            return arr
        out = np.full((full.size,) + arr.shape[1:], np.nan)
        out[self.grid.index - full[0]] = arr
        return out

    def _wcs_header(self, full):
        from astropy.io import fits

        ny, nx = self.data.shape[1:]
        h = fits.Header()
        h["WCSAXES"] = 3
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["CRPIX1"], h["CRPIX2"] = 0.5 * (nx + 1), 0.5 * (ny + 1)
        h["CRVAL1"], h["CRVAL2"] = _CRVAL_RA, _CRVAL_DEC
        h["CDELT1"], h["CDELT2"] = -self.pixel_scale / 3600.0, self.pixel_scale / 3600.0
        h["CUNIT3"] = "Angstrom"
        h["SPECSYS"] = "TOPOCENT"
        h["HIERARCH wave_frame"] = "vacuum, observed"
        g = self.grid
        if g is None:  # generic grid: linear by first channel (reader uses CHANNELS)
            h["CTYPE3"] = "WAVE"
            h["CRPIX3"], h["CRVAL3"] = 1.0, float(self.wavelengths[0])
            h["CDELT3"] = float(self.edges_hi[0] - self.edges_lo[0])
            return h
        k0 = int(full[0])
        if g.kind == "velocity":
            # WAVE-LOG: lambda = CRVAL3 exp(CDELT3 (p - CRPIX3) / CRVAL3); p = 1 at channel k0's centre
            lam0 = float(g.edges_of(k0 + 0.5))
            h["CTYPE3"] = "WAVE-LOG"
            h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, lam0, lam0 * g.step
        else:
            h["CTYPE3"] = "WAVE"
            h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, float(g.edges_of(k0 + 0.5)), g.step
        return h


def _set_header(h, key, value):
    if value is None or isinstance(value, (list, tuple, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]
    h[key if (len(key) <= 8 and key.isupper()) else f"HIERARCH {key}"] = value


def _flat_truth(truth: dict) -> dict:
    out = {}
    for k, v in truth.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def read_cube(path) -> MockCube:
    """Read a cube written by :meth:`MockCube.write` (or any cube with DATA/VAR
    extensions and a spectral WCS).

    Raises
    ------
    DataError
        The file is missing, not FITS, lacks a DATA or VAR extension or a
        spectral axis, or has no finite data.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"cube file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"cube file {str(path)!r} is not a readable FITS file ({exc})") from None
    with hdul:
        names = [h.name for h in hdul]
        for ext in ("DATA", "VAR"):
            if ext not in names:
                raise DataError(f"cube file {str(path)!r} has no {ext} extension (extensions: {names}); "
                                "recovery needs the data and their variance")
        data = np.asarray(hdul["DATA"].data, dtype=np.float64)
        var = np.asarray(hdul["VAR"].data, dtype=np.float64)
        if data.ndim != 3 or var.shape != data.shape:
            raise DataError(f"cube file {str(path)!r}: DATA must be 3D and VAR the same shape; "
                            f"got {data.shape} and {var.shape}")
        hdr = hdul["DATA"].header
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wcs = WCS(hdr)
            except Exception as exc:  # noqa: BLE001 - astropy raises many kinds
                raise DataError(f"cube file {str(path)!r}: unreadable WCS ({exc})") from None
        if not wcs.has_spectral or wcs.naxis != 3:
            raise DataError(f"cube file {str(path)!r}: DATA has no spectral WCS axis (CTYPE3)")
        keep = np.isfinite(data).any(axis=(1, 2))
        if not keep.any():
            raise DataError(f"cube file {str(path)!r}: DATA has no finite values")
        if "CHANNELS" in names:
            tab = hdul["CHANNELS"].data
            lo, hi = np.asarray(tab["WAVE_LO"], float), np.asarray(tab["WAVE_HI"], float)
        else:
            p = np.arange(data.shape[0] + 1) - 0.5
            edges = wcs.spectral.pixel_to_world_values(p)
            edges = np.asarray(edges, float) * (1e10 if wcs.wcs.cunit[2] == "m" else 1.0)
            lo, hi = edges[:-1][keep], edges[1:][keep]
        data, var = data[keep], var[keep]
        pixel_scale = abs(float(hdr.get("CDELT2", np.nan))) * 3600.0
        if not np.isfinite(pixel_scale) or pixel_scale <= 0:
            raise DataError(f"cube file {str(path)!r}: no pixel scale (CDELT2)")
        psf = {k: hdr[k] for k in hdr if k.startswith("PSF_") or k.lower().startswith("psf_")}
        primary = hdul[0].header
        lsf = float(primary.get("LSF_SIGMA", hdr.get("LSF_SIGMA", np.nan)))
        truth = {}
        if "TRUTH" in names:
            truth = json.loads(bytes(hdul["TRUTH"].data).decode())
        config_toml = bytes(hdul["CONFIG"].data).decode() if "CONFIG" in names else ""
        noise_free = None
        if "NOISEFREE" in names:
            noise_free = np.asarray(hdul["NOISEFREE"].data, dtype=np.float64)[keep]
    return MockCube(data=data, variance=var, edges_lo=lo, edges_hi=hi, pixel_scale=pixel_scale,
                    psf=psf, lsf_sigma=lsf, truth=truth, noise_free=noise_free, grid=None,
                    config_toml=config_toml)

