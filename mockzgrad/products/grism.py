"""Slitless grism exposures, the raw product of the grism mode: :class:`GrismMock` and its FITS I/O.

What an observer has after reduction of a slitless field, cut to one
galaxy: per exposure a 2D spectrum (count rate, e-/s, background
subtracted) with its variance and the dispersion calibration
(:class:`~mockzgrad.observation.grism.dispersion.GrismDispersion` header
keywords), plus direct images in the imaging filters on the direct grid.
The extraction (:mod:`mockzgrad.recovery.grism_extract`) turns it into
:class:`~mockzgrad.products.linemaps.LineMaps`.

FITS layout (written atomically by :meth:`GrismMock.write`)
----------------------------------------------------------
* primary: ``KIND = 'grism'``, ``NEXP``, ``pixel_scale`` (arcsec), the truth
  flattened (``HIERARCH`` keys);
* per exposure ``i = 1..NEXP``: ``SCI`` (EXTVER i, e-/s), ``VAR`` (EXTVER
  i, (e-/s)^2), optionally ``NOISEFREE`` (EXTVER i, e-/s); headers carry
  ``EXPNAME``, ``EXPTIME`` (s), the PSF keywords (``PSF_KIND``, ``PSF_FWHM``,
  ...) and the dispersion keywords ``GRISM``,
  ``FILTER``, ``PA``, ``PA_DISP``, ``DISP``, ``WAVE_REF``, ``TILT``,
  ``SENSPEAK``, ``SENS_LO``, ``SENS_HI``, ``SENSTAPR``, ``XREF``, ``YREF``,
  ``NDIRECT``, ``PIXSCALE`` (see
  :mod:`mockzgrad.observation.grism.dispersion`);
* ``DIRECT_<filter>``: direct image, flux per pixel in erg/s/cm^2 (the
  scene through the filter's normalised throughput shape), celestial WCS,
  ``FILTER``, PSF keywords;
* ``CONFIG`` (TOML of the mock) and ``TRUTH`` (JSON; never read by recovery).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import __version__
from ..errors import DataError
from .fitsutil import celestial_header, flat_truth, json_hdu, set_header, text_hdu

__all__ = ["GrismExposure", "GrismMock", "read_grism", "SCI_BUNIT", "DIRECT_BUNIT"]

#: Unit of a 2D spectrum pixel.
SCI_BUNIT = "electron/s"
#: Unit of a direct-image pixel.
DIRECT_BUNIT = "erg/(s cm2)"



@dataclass
class GrismExposure:
    """One slitless exposure.

    Attributes
    ----------
    name : str
        Label of the exposure (``instrument.grism.exposures`` key).
    sci : ndarray, shape (ny, nx)
        Count rate, e-/s, background subtracted.
    var : ndarray, shape (ny, nx)
        Variance of ``sci``, (e-/s)^2.
    header : dict
        Dispersion keywords (``GrismDispersion.to_header()``, the observer's calibration).
    exptime : float
        Exposure time, s.
    noise_free : ndarray or None
        ``sci`` before noise, e-/s.
    """

    name: str
    sci: np.ndarray
    var: np.ndarray
    header: dict
    exptime: float
    noise_free: np.ndarray | None = None

    @property
    def shape(self):
        return self.sci.shape


@dataclass
class GrismMock:
    """A mock slitless observation (a :class:`~mockzgrad.products.protocol.Product` of kind ``"grism"``).

    Attributes
    ----------
    exposures : list of GrismExposure
    direct : dict
        Filter name -> direct image, shape (n_direct, n_direct), erg/s/cm^2 per pixel.
    pixel_scale : float
        Pixel size of the direct grid and of the exposure frames, arcsec.
    psf : dict
        PSF keywords (what the observer knows of the PSF).
    truth : dict
        The mock's true parameters (never read by recovery).
    config_toml : str
        The configuration that made it.
    catalogue_redshift : float or None
        The source catalogue's redshift (an observer product: the starting guess of the grism
        redshift fit, primary keyword ``ZCAT``); None: not known.
    """

    kind: ClassVar[str] = "grism"

    exposures: list
    direct: dict
    pixel_scale: float
    psf: dict
    truth: dict = field(default_factory=dict)
    config_toml: str = ""
    catalogue_redshift: float | None = None

    @property
    def n_direct(self) -> int:
        """Side of the direct grid, pixels."""
        return int(self.exposures[0].header["NDIRECT"]) if self.exposures else 0

    def offsets(self):
        """(x, y) direct-grid pixel-centre offsets from the field centre, arcsec (east, north), 1D each."""
        off = (np.arange(self.n_direct) - 0.5 * (self.n_direct - 1)) * self.pixel_scale
        return -off, off

    # ------------------------------------------------------------------ FITS
    def to_hdulist(self, *, include_noise_free: bool = True):
        """FITS HDUs: primary, SCI/VAR[/NOISEFREE] per exposure, DIRECT_<filter>, CONFIG, TRUTH."""
        from astropy.io import fits

        primary = fits.PrimaryHDU()
        h = primary.header
        h["ORIGIN"] = "mockzgrad"
        h["MZVERS"] = (__version__, "mockzgrad version")
        h["KIND"] = "grism"
        h["NEXP"] = len(self.exposures)
        h["HIERARCH pixel_scale"] = (self.pixel_scale, "arcsec")
        if self.catalogue_redshift is not None:
            h["ZCAT"] = (float(self.catalogue_redshift), "catalogue redshift (grism z fit's guess)")
        for key, value in flat_truth(self.truth).items():
            set_header(h, key, value)
        hdus = [primary]
        for i, exp in enumerate(self.exposures, start=1):
            arrays = [("SCI", exp.sci, SCI_BUNIT), ("VAR", exp.var, "electron2/s2")]
            if include_noise_free and exp.noise_free is not None:
                arrays.append(("NOISEFREE", exp.noise_free, SCI_BUNIT))
            for name, arr, unit in arrays:
                hdu = fits.ImageHDU(np.asarray(arr, dtype=np.float64), name=name, ver=i)
                hdu.header["BUNIT"] = unit
                hdu.header["EXPNAME"] = exp.name
                hdu.header["EXPTIME"] = (float(exp.exptime), "s")
                for key, value in exp.header.items():
                    hdu.header[key] = value
                for key, value in self.psf.items():
                    set_header(hdu.header, key, value)
                hdus.append(hdu)
        for filt, image in self.direct.items():
            hdu = fits.ImageHDU(np.asarray(image, dtype=np.float64), name=f"DIRECT_{filt}")
            hdu.header.update(celestial_header(image.shape, self.pixel_scale))
            hdu.header["BUNIT"] = DIRECT_BUNIT
            hdu.header["FILTER"] = filt
            for key, value in self.psf.items():
                set_header(hdu.header, key, value)
            hdus.append(hdu)
        if self.config_toml:
            hdus.append(text_hdu("CONFIG", self.config_toml))
        hdus.append(json_hdu("TRUTH", self.truth))
        return fits.HDUList(hdus)

    def write(self, path, *, overwrite: bool = False, include_noise_free: bool = True) -> None:
        """Write as FITS, atomically (temporary file in the same folder, then renamed)."""
        from ..fileio import atomic_write

        hdul = self.to_hdulist(include_noise_free=include_noise_free)
        atomic_write(path, lambda tmp: hdul.writeto(tmp, overwrite=True), overwrite=overwrite)


_DISP_KEYS = ("GRISM", "FILTER", "PA", "PA_DISP", "DISP", "WAVE_REF", "TILT", "SENSPEAK", "SENS_LO",
              "SENS_HI", "SENSTAPR", "XREF", "YREF", "NDIRECT", "PIXSCALE")


def _exposure(hdul, names, i: int, where: str) -> GrismExposure:
    sci_hdu = hdul["SCI", i]
    if ("VAR", i) not in names:
        raise DataError(f"{where}: exposure {i} has SCI but no VAR extension; the extraction needs the variance")
    hdr = sci_hdu.header
    missing = [k for k in _DISP_KEYS if k not in hdr]
    if missing:
        raise DataError(f"{where}: exposure {i} SCI header lacks {', '.join(missing)}")
    sci = np.asarray(sci_hdu.data, dtype=np.float64)
    var = np.asarray(hdul["VAR", i].data, dtype=np.float64)
    if sci.ndim != 2 or var.shape != sci.shape:
        raise DataError(f"{where}: exposure {i}: SCI must be 2D and VAR the same shape; got {sci.shape}, {var.shape}")
    nf = np.asarray(hdul["NOISEFREE", i].data, dtype=np.float64) if ("NOISEFREE", i) in names else None
    return GrismExposure(name=str(hdr.get("EXPNAME", f"exp{i}")), sci=sci, var=var,
                         header={k: hdr[k] for k in _DISP_KEYS}, exptime=float(hdr.get("EXPTIME", np.nan)),
                         noise_free=nf)


def read_grism(path) -> GrismMock:
    """Read a file written by :meth:`GrismMock.write`.

    Raises
    ------
    DataError
        Missing or unreadable file, no SCI extension, an exposure without VAR
        or without its dispersion keywords.
    """
    from astropy.io import fits

    path = Path(path)
    where = f"grism file {str(path)!r}"
    try:
        hdul = fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"{where} does not exist") from None
    except OSError as exc:
        raise DataError(f"{where} is not a readable FITS file ({exc})") from None
    with hdul:
        names = {(h.name, h.ver) for h in hdul}
        vers = sorted(v for n, v in names if n == "SCI")
        if not vers:
            raise DataError(f"{where} has no SCI extension (extensions: {sorted(n for n, _ in names)})")
        exposures = [_exposure(hdul, names, i, where) for i in vers]
        direct = {h.header.get("FILTER", h.name[7:]): np.asarray(h.data, dtype=np.float64)
                  for h in hdul if h.name.startswith("DIRECT_")}
        primary = hdul[0].header
        pixel_scale = float(primary.get("PIXEL_SCALE", exposures[0].header["PIXSCALE"]))
        zcat = float(primary["ZCAT"]) if "ZCAT" in primary else None
        sci = hdul["SCI", vers[0]].header
        psf = {k: sci[k] for k in sci if k.startswith("PSF_")}
        hnames = [h.name for h in hdul]
        truth = json.loads(bytes(hdul["TRUTH"].data).decode()) if "TRUTH" in hnames else {}
        config_toml = bytes(hdul["CONFIG"].data).decode() if "CONFIG" in hnames else ""
    return GrismMock(exposures=exposures, direct=direct, pixel_scale=pixel_scale, psf=psf, truth=truth,
                     config_toml=config_toml, catalogue_redshift=zcat)
