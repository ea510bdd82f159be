"""The IFU cube data product, :class:`MockCube`, and its FITS I/O.

A cube is what an observer has: data and variance per spaxel and channel,
the sampling (channel edges, pixel scale) and the PSF/LSF description. The
truth of a mock travels with it (TRUTH extension) for suites and curves;
recovery never reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .. import __version__
from ..errors import DataError
from .fitsutil import celestial_header, flat_truth, json_hdu, set_header, text_hdu
from .grids import SpectralGrid, spatial_offsets
from .readers import read_cube_fields
from .readers.units import CHANNEL_FLUX, CUBE_UNITS, channel_flux_factor, squared_unit_string

__all__ = ["MockCube", "read_cube", "BUNIT"]


#: Flux unit of a cube pixel in memory (and of a line-map pixel): flux in one spaxel (and one channel).
BUNIT = CHANNEL_FLUX



@dataclass
class MockCube:
    """A mock IFU observation (a :class:`~mockzgrad.products.protocol.Product` of kind ``"ifu"``).

    Attributes
    ----------
    kind : str
        ``"ifu"`` (class attribute, not a field).
    data : ndarray, shape (n_chan, ny, nx)
        Flux per spaxel and channel, erg/s/cm^2 (noisy unless noise is off).
        The FITS file holds a flux density or surface brightness instead
        (``unit``); reading converts back.
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
    unit : {"flam", "MJy/sr"}
        Pixel unit of the FITS file (:data:`~mockzgrad.products.readers.units.CUBE_UNITS`):
        ``"flam"``, 1e-20 erg/s/cm^2/Angstrom (ESO cubes); ``"MJy/sr"``, surface
        brightness (JWST ``*_s3d.fits``).
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
    unit: str = "flam"
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
    def to_hdulist(self, *, include_noise_free: bool = False, compress: bool = False):
        """FITS HDUs: primary (truth), DATA, VAR, [NOISEFREE], CHANNELS, CONFIG.

        DATA (and NOISEFREE) hold a flux density or surface brightness in the
        unit ``BUNIT`` (``self.unit``), VAR its square; channels between the
        stored windows are NaN on the regular WCS grid (listed in CHANNELS).

        Parameters
        ----------
        include_noise_free : bool
            Add the NOISEFREE extension.
        compress : bool
            Tile-compress the arrays (lossless GZIP, one tile per channel):
            NaN gap channels then cost almost nothing. Caveat: astropy's
            ``HDU.copy()`` of a compressed HDU drops the lossless setting, so a
            file edited that way is re-quantized (lossy) when written again.
        """
        from astropy.io import fits

        full = self._full_grid()
        bunit = self.file_bunit
        factor = self.pixel_factor()[:, None, None]
        primary = fits.PrimaryHDU()
        h = primary.header
        h["ORIGIN"] = "mockzgrad"
        h["MZVERS"] = (__version__, "mockzgrad version")
        h["BUNIT"] = bunit
        for key, value in flat_truth(self.truth).items():
            set_header(h, key, value)
        h["HIERARCH lsf_sigma"] = (self.lsf_sigma, "km/s, Gaussian LSF sigma")
        h["HIERARCH pixel_scale"] = (self.pixel_scale, "arcsec")
        for key, value in self.psf.items():
            set_header(h, key, value)
        wcs_header = self._wcs_header(full)
        hdus = [primary]
        # scaled one at a time (one temporary at a time; none when the factor is 1)
        arrays = [("DATA", self.data, 1, bunit), ("VAR", self.variance, 2, squared_unit_string(bunit))]
        if include_noise_free and self.noise_free is not None:
            arrays.append(("NOISEFREE", self.noise_free, 1, bunit))
        for name, arr, power, unit in arrays:
            arr = _stored(self._expand(_divided(arr, factor, power), full))
            if compress:
                hdu = fits.CompImageHDU(arr, name=name, compression_type="GZIP_2", quantize_level=0.0,
                                        tile_shape=(1,) + arr.shape[1:])
            else:
                hdu = fits.ImageHDU(arr, name=name)
            hdu.header.update(wcs_header)
            hdu.header["BUNIT"] = unit
            if self.unit == "MJy/sr":
                hdu.header["PIXAR_SR"] = (self.omega_sr, "spaxel solid angle, sr")
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

    @property
    def file_bunit(self) -> str:
        """BUNIT of the file's DATA extension (FITS spelling of ``unit``)."""
        if self.unit not in CUBE_UNITS:
            raise DataError(f"cube unit = {self.unit!r}; allowed: {', '.join(map(repr, CUBE_UNITS))}")
        return CUBE_UNITS[self.unit]

    @property
    def omega_sr(self) -> float:
        """Spaxel solid angle, sr."""
        return (self.pixel_scale * np.pi / 180.0 / 3600.0) ** 2

    def pixel_factor(self) -> np.ndarray:
        """Per channel: flux per spaxel and channel (erg/s/cm^2) = file pixel x factor."""
        return channel_flux_factor(self.file_bunit, self.edges_lo, self.edges_hi, self.omega_sr)

    def file_channels(self) -> int:
        """Channels of the file's regular WCS grid (the stored ones and the NaN gaps between them)."""
        full = self._full_grid()
        return self.data.shape[0] if full is None else int(full.size)

    def write(self, path, *, overwrite: bool = False, include_noise_free: bool = False,
              compress: bool = False) -> None:
        """Write the cube as FITS, atomically (a crash never leaves half a file); see :meth:`to_hdulist`."""
        from ..fileio import atomic_write, check_output_path

        check_output_path(path, overwrite)
        hdul = self.to_hdulist(include_noise_free=include_noise_free, compress=compress)
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


def _divided(arr: np.ndarray, factor: np.ndarray, power: int) -> np.ndarray:
    """``arr / factor**power``; ``arr`` itself (no copy) where every factor is 1."""
    if np.all(factor == 1.0):
        return arr
    return arr / factor**power if power != 1 else arr / factor


def _stored(arr: np.ndarray) -> np.ndarray:
    """``arr`` as float32, or float64 when its values exceed float32's range (no silent inf)."""
    with np.errstate(invalid="ignore"):
        big = np.max(np.abs(arr), where=np.isfinite(arr), initial=0.0)
    return arr.astype(np.float32 if big < 1e38 else np.float64)


def read_cube(path, *, layout: str | None = None) -> MockCube:
    """Read an IFU cube file: mockzgrad's own layout, a JWST ``*_s3d.fits`` or an ESO KMOS/MUSE cube.

    The layout is detected from the file (:mod:`mockzgrad.products.readers`
    documents the layouts and the header keywords each relies on).

    Raises
    ------
    DataError
        The file is missing, not FITS, of no known layout, lacks the data or
        their errors or a spectral axis, or has no finite data.
    """
    return MockCube(**read_cube_fields(path, layout=layout))
