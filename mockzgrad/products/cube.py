"""The IFU cube data product, :class:`MockCube`, and its FITS I/O.

A cube is what an observer has: data and variance per spaxel and channel,
the sampling (channel edges, pixel scale) and the PSF/LSF description. The
truth of a mock travels with it (TRUTH extension) for suites and curves;
recovery never reads it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import __version__
from ..errors import DataError
from .fitsutil import celestial_header, flat_truth, json_hdu, set_header, text_hdu
from .grids import SpectralGrid, spatial_offsets

__all__ = ["MockCube", "read_cube", "BUNIT"]


#: Flux unit of a cube pixel: flux in one spaxel and one channel.
BUNIT = "erg/(s cm2)"



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
    psf_image : ndarray or None
        The effective PSF as an image (``PSF`` extension, ``PSF_KIND =
        "image"``), unit sum, axes (y, x); e.g. the slit-stepping mode's
        telescope PSF x shutter boxcar x resampling. None for an IFU cube.
    psf_image_pixel : float or None
        Pixel of ``psf_image``, arcsec.
    catalog : dict
        Observer's catalogue values for the target (e.g. imaging ``pa`` in
        deg and ``axis_ratio``; ``CATALOG`` extension, JSON); not the truth.
    exposures : dict
        Observing log, one row per pointing (``EXPOSURES`` binary table):
        column name -> list of values, all of one length (the slit-stepping
        mode: step indices, offsets in arcsec, shutters, exposure time in
        s). Empty for an IFU cube.
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
    psf_image: np.ndarray | None = None
    psf_image_pixel: float | None = None
    catalog: dict = field(default_factory=dict)
    exposures: dict = field(default_factory=dict)

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
        for key, value in flat_truth(self.truth).items():
            set_header(h, key, value)
        h["HIERARCH lsf_sigma"] = (self.lsf_sigma, "km/s, Gaussian LSF sigma")
        h["HIERARCH pixel_scale"] = (self.pixel_scale, "arcsec")
        for key, value in self.psf.items():
            set_header(h, key, value)
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
                set_header(hdu.header, key, value)
            hdus.append(hdu)
        cols = [fits.Column(name="WAVE_LO", format="D", unit="Angstrom", array=self.edges_lo),
                fits.Column(name="WAVE_HI", format="D", unit="Angstrom", array=self.edges_hi)]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="CHANNELS"))
        hdus.extend(self._extra_hdus())
        if self.config_toml:
            hdus.append(text_hdu("CONFIG", self.config_toml))
        hdus.append(json_hdu("TRUTH", self.truth))
        return fits.HDUList(hdus)

    def write(self, path, *, overwrite: bool = False, include_noise_free: bool = False) -> None:
        """Write the cube as FITS, atomically (a crash never leaves half a file)."""
        from ..fileio import atomic_write, check_output_path

        check_output_path(path, overwrite)
        hdul = self.to_hdulist(include_noise_free=include_noise_free)
        atomic_write(path, lambda tmp: hdul.writeto(tmp, overwrite=True), overwrite=overwrite)

    def _extra_hdus(self) -> list:
        """``PSF`` (effective PSF image), ``CATALOG`` (observer's catalogue, JSON) and ``EXPOSURES``, when present."""
        from astropy.io import fits

        out = []
        if self.psf_image is not None:
            hdu = fits.ImageHDU(np.asarray(self.psf_image, dtype=np.float64), name="PSF")
            hdu.header["PSF_KIND"] = "image"
            hdu.header["PSF_PIXS"] = (float(self.psf_image_pixel), "arcsec")
            out.append(hdu)
        if self.catalog:
            out.append(json_hdu("CATALOG", self.catalog))
        if self.exposures:
            out.append(fits.BinTableHDU.from_columns(
                [fits.Column(name=k.upper(), array=np.asarray(v), format="K" if np.asarray(v).dtype.kind in "iu"
                             else "D") for k, v in self.exposures.items()], name="EXPOSURES"))
        return out

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
        ny, nx = self.data.shape[1:]
        h = celestial_header((ny, nx), self.pixel_scale, naxis=3)
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
        with warnings.catch_warnings():  # astropy's "may have been truncated": reported below if it matters
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"cube file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"cube file {str(path)!r} is not a readable FITS file ({exc})") from None
    with hdul:
        with warnings.catch_warnings():  # astropy's "may have been truncated": reported below if it matters
            warnings.simplefilter("ignore")
            names = [h.name for h in hdul]
        for ext in ("DATA", "VAR"):
            if ext not in names:
                raise DataError(f"cube file {str(path)!r} has no {ext} extension (extensions: {names}); "
                                "recovery needs the data and their variance")
        try:
            with warnings.catch_warnings():  # astropy's "may have been truncated": the error says it
                warnings.simplefilter("ignore")
                data = np.asarray(hdul["DATA"].data, dtype=np.float64)
                var = np.asarray(hdul["VAR"].data, dtype=np.float64)
        except (ValueError, OSError, TypeError) as exc:  # a truncated file cannot be reshaped
            with warnings.catch_warnings():  # closing it warns "may have been truncated" again
                warnings.simplefilter("ignore")
                hdul.close()
            raise DataError(f"cube file {str(path)!r}: DATA/VAR cannot be read, the file is truncated or "
                            f"damaged ({' '.join(str(exc).split())})") from None
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
            keep = _channels_by_wavelength(keep, _pixel_edges(wcs, data.shape[0]), lo, hi, path)
        else:
            keep &= ~_zero_channels(data, var)  # gaps filled with 0 instead of NaN
            p = np.arange(data.shape[0] + 1) - 0.5
            edges = wcs.spectral.pixel_to_world_values(p)
            edges = np.asarray(edges, float) * (1e10 if wcs.wcs.cunit[2] == "m" else 1.0)
            lo, hi = edges[:-1][keep], edges[1:][keep]
        data, var = data[keep], var[keep]
        if not np.any(np.nan_to_num(data) != 0):
            raise DataError(f"cube file {str(path)!r}: DATA is zero (or NaN) everywhere; nothing to measure")
        pixel_scale = abs(float(hdr.get("CDELT2", np.nan))) * 3600.0
        if not np.isfinite(pixel_scale) or pixel_scale <= 0:
            raise DataError(f"cube file {str(path)!r}: no pixel scale (CDELT2)")
        psf = {k: hdr[k] for k in hdr if k.startswith("PSF_") or k.lower().startswith("psf_")}
        primary = hdul[0].header
        lsf = float(primary.get("LSF_SIGMA", hdr.get("LSF_SIGMA", np.nan)))
        truth = {}
        if "TRUTH" in names:
            truth = _read_truth(hdul["TRUTH"], path)
        config_toml = bytes(hdul["CONFIG"].data).decode() if "CONFIG" in names else ""
        noise_free = None
        psf_image = np.asarray(hdul["PSF"].data, dtype=np.float64) if "PSF" in names else None
        psf_image_pixel = float(hdul["PSF"].header["PSF_PIXS"]) if "PSF" in names else None
        catalog = json.loads(bytes(hdul["CATALOG"].data).decode()) if "CATALOG" in names else {}
        exposures = {}
        if "EXPOSURES" in names:
            tab = hdul["EXPOSURES"].data
            exposures = {c.lower(): np.asarray(tab[c]).tolist() for c in tab.columns.names}
        if "NOISEFREE" in names:
            noise_free = np.asarray(hdul["NOISEFREE"].data, dtype=np.float64)[keep]
    return MockCube(data=data, variance=var, edges_lo=lo, edges_hi=hi, pixel_scale=pixel_scale,
                    psf=psf, lsf_sigma=lsf, truth=truth, noise_free=noise_free, grid=None,
                    config_toml=config_toml, psf_image=psf_image, psf_image_pixel=psf_image_pixel,
                    catalog=catalog, exposures=exposures)



def _pixel_edges(wcs, n: int) -> np.ndarray:
    """Wavelength edges of the ``n`` channels of a spectral WCS, Angstrom."""
    edges = wcs.spectral.pixel_to_world_values(np.arange(n + 1) - 0.5)
    return np.asarray(edges, float) * (1e10 if wcs.wcs.cunit[2] == "m" else 1.0)


def _channels_by_wavelength(keep, edges, lo, hi, path) -> np.ndarray:
    """The channels the CHANNELS table lists, found by wavelength when the gaps are not NaN.

    A cube written by :meth:`MockCube.write` has NaN in its gap channels; when
    a tool replaced them (by 0), the non-NaN channels outnumber the listed
    ones and each listed channel is matched to the WCS channel of its centre.
    """
    if keep.sum() == lo.size:
        return keep
    centres, mid = 0.5 * (edges[:-1] + edges[1:]), 0.5 * (lo + hi)
    idx = np.clip(np.searchsorted(centres, mid), 1, centres.size - 1)
    idx = np.where(np.abs(centres[idx - 1] - mid) <= np.abs(centres[idx] - mid), idx - 1, idx)
    off = np.abs(centres[idx] - mid) > 0.01 * np.abs(hi - lo)
    if off.any() or np.unique(idx).size != idx.size:
        raise DataError(f"cube file {str(path)!r}: {int(keep.sum())} channels hold data but CHANNELS lists "
                        f"{lo.size} that do not fall on the WCS channels; the cube's gaps or its WCS were "
                        "changed after writing")
    out = np.zeros_like(keep)
    out[idx] = True
    return out


def _zero_channels(data, var) -> np.ndarray:
    """Channels that hold only 0 in DATA and 0 or NaN in VAR: gaps written as zeros."""
    zero_data = np.all(np.nan_to_num(data) == 0, axis=(1, 2))
    zero_var = np.all(np.nan_to_num(var) == 0, axis=(1, 2))
    return zero_data & zero_var


def _read_truth(hdu, path) -> dict:
    """The TRUTH extension as a dict; one that is not JSON is ignored with a warning.

    Recovery never reads the truth; suites and curves do, and they find it empty.
    """
    from ..errors import MockzgradWarning

    try:
        truth = json.loads(bytes(hdu.data).decode("utf-8"))
        if isinstance(truth, dict):
            return truth
        problem = f"JSON of type {type(truth).__name__}, not an object"
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        problem = f"not JSON ({type(exc).__name__})"
    warnings.warn(f"cube file {str(path)!r}: TRUTH extension is {problem}; truth ignored",
                  MockzgradWarning, stacklevel=3)
    return {}
