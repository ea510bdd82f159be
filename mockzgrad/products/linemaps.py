"""Line maps, the observer product of slitless (grism) spectroscopy: :class:`LineMaps`.

A grism observation ends, after extraction
(:mod:`mockzgrad.recovery.grism_extract`), as one flux map per emission line
(or per blend of lines the grism cannot separate) with its variance, all on
one pixel grid. Recovery (``FRONT_ENDS["linemaps"]``) sums maps and
variances per bin instead of fitting spectra.

FITS layout (written atomically by :meth:`LineMaps.write`)
---------------------------------------------------------
* primary: ``KIND = 'linemaps'``, ``redshift`` (the grism redshift the maps
  were extracted at), ``pixel_scale`` (arcsec), ``BUNIT``, the truth
  flattened (``HIERARCH`` keys);
* ``FLUX_<line>`` and ``VAR_<line>`` per map (``<line>`` a line id of
  :data:`mockzgrad.physics.lines.LINES`): flux per pixel in erg/s/cm^2 and
  its variance, a celestial WCS, ``LINE``, ``BLEND`` (the comma-separated
  line ids summed in the map, e.g. ``Ha,NII_6550,NII_6585``) and the map's
  PSF keywords (``PSF_KIND``, ``PSF_FWHM``, ...;
  :meth:`mockzgrad.observation.psf.PSF.to_header`);
* ``COV_<line>`` per map and ``COVOFF`` (optional, together): the covariance
  of every pixel with its neighbours at the offsets ``COVOFF`` (int,
  ``(n_offsets, 2)`` rows ``(dy, dx)``), shape ``(n_offsets, ny, nx)``;
* ``PROVENANCE`` (JSON: extraction method, exposures, ...), ``CONFIG``
  (TOML of the mock, optional) and ``TRUTH`` (JSON; never read by recovery).

Pixels: extracted, drizzled or interlaced maps have correlated noise between
neighbouring pixels; a ``VAR`` map holds only the per-pixel variance, the
optional ``COV_`` stencils the covariances with the nearby pixels (the joint
extraction writes them; bin errors use them when present).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import __version__
from ..errors import DataError
from ..physics.lines import LINES
from .cube import BUNIT
from .fitsutil import celestial_header, flat_truth, json_hdu, set_header, text_hdu
from .grids import spatial_offsets

__all__ = ["LineMaps", "read_linemaps", "is_linemaps_file", "HALPHA_BLEND"]

#: The Halpha + [NII] 6550, 6585 blend a grism cannot resolve (R ~ 100-200).
HALPHA_BLEND = ("Ha", "NII_6550", "NII_6585")

_UPPER = {n.upper(): n for n in LINES}


def _check_line(where: str, name) -> str:
    if not isinstance(name, str) or name not in LINES:
        raise DataError(f"{where} = {name!r} is not a known line; allowed: {', '.join(LINES)}")
    return name


@dataclass
class LineMaps:
    """Line flux maps with variance on one pixel grid (a product of kind ``"linemaps"``).

    Attributes
    ----------
    kind : str
        ``"linemaps"`` (class attribute, not a field).
    names : tuple of str
        Map names, line ids of :data:`mockzgrad.physics.lines.LINES`; a blend
        is named after its brightest line (``"Ha"`` for Ha+[NII]).
    flux : ndarray, shape (n_maps, ny, nx)
        Line flux per pixel, erg/s/cm^2; NaN where not covered.
    variance : ndarray, shape (n_maps, ny, nx)
        Variance of ``flux``, (erg/s/cm^2)^2; > 0 where finite.
    pixel_scale : float
        Pixel size, arcsec; > 0.
    psfs : dict
        Map name -> PSF keywords of that map (``PSF_KIND``, ``PSF_FWHM`` in
        arcsec, ...); every map needs one.
    redshift : float
        Grism redshift the maps were extracted at; > 0.
    blends : dict
        Map name -> tuple of the line ids summed in it, for maps that are
        blends (e.g. ``{"Ha": ("Ha", "NII_6550", "NII_6585")}``); maps not
        listed hold one line.
    provenance : dict
        How the maps were made (extraction method, exposures, version); JSON-able.
    truth : dict
        The mock's true parameters (suites only; recovery never reads it).
    config_toml : str
        The configuration of the mock, if any.
    covariance : ndarray, shape (n_maps, n_offsets, ny, nx), or None
        ``covariance[m, k, y, x] = Cov(flux[m, y, x], flux[m, y + dy_k, x + dx_k])``, 0 where the
        neighbour has no value; the offset ``(0, 0)`` entry is the variance. None: not known.
    cov_offsets : ndarray of int, shape (n_offsets, 2), or None
        The ``(dy, dx)`` of ``covariance``; it includes ``(0, 0)`` and ``-o`` for every ``o``.
    """

    kind: ClassVar[str] = "linemaps"

    names: tuple
    flux: np.ndarray
    variance: np.ndarray
    pixel_scale: float
    psfs: dict
    redshift: float
    blends: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)
    config_toml: str = ""
    covariance: np.ndarray | None = None
    cov_offsets: np.ndarray | None = None

    def __post_init__(self):
        self.names = tuple(_check_line("linemaps.names", n) for n in self.names)
        if len(set(self.names)) != len(self.names):
            raise DataError(f"linemaps.names = {list(self.names)}: duplicate map names")
        self.flux = np.asarray(self.flux, dtype=float)
        self.variance = np.asarray(self.variance, dtype=float)
        if self.flux.ndim != 3 or self.flux.shape[0] != len(self.names) or self.variance.shape != self.flux.shape:
            raise DataError(f"linemaps: flux {self.flux.shape} and variance {self.variance.shape}; expected "
                            f"({len(self.names)}, ny, nx) each, one map per name")
        if not (np.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise DataError(f"linemaps.pixel_scale = {self.pixel_scale!r} arcsec; allowed > 0")
        if not (np.isfinite(self.redshift) and self.redshift > 0):
            raise DataError(f"linemaps.redshift = {self.redshift!r}; allowed > 0")
        missing = [n for n in self.names if n not in self.psfs]
        if missing:
            raise DataError(f"linemaps.psfs: no PSF keywords for map(s) {', '.join(missing)}")
        self.blends = {_check_line("linemaps.blends", k): tuple(_check_line(f"linemaps.blends[{k}]", c) for c in v)
                       for k, v in self.blends.items()}
        unknown = [k for k in self.blends if k not in self.names]
        if unknown:
            raise DataError(f"linemaps.blends: {', '.join(unknown)} is not a map; maps: {', '.join(self.names)}")
        self._check_covariance()

    def _check_covariance(self):
        if (self.covariance is None) != (self.cov_offsets is None):
            raise DataError("linemaps: covariance and cov_offsets go together (both or neither)")
        if self.covariance is None:
            return
        self.covariance = np.asarray(self.covariance, dtype=float)
        self.cov_offsets = np.asarray(self.cov_offsets, dtype=int)
        k = len(self.cov_offsets)
        pairs = {tuple(o) for o in self.cov_offsets.tolist()}
        if (self.cov_offsets.ndim != 2 or self.cov_offsets.shape[1] != 2 or (0, 0) not in pairs
                or any((-a, -b) not in pairs for a, b in pairs)):
            raise DataError(f"linemaps.cov_offsets: shape {self.cov_offsets.shape}; expected (n_offsets, 2) rows "
                            "(dy, dx) including (0, 0) and the negative of each")
        if self.covariance.shape != (len(self.names), k, *self.flux.shape[1:]):
            raise DataError(f"linemaps.covariance: shape {self.covariance.shape}; expected "
                            f"{(len(self.names), k, *self.flux.shape[1:])}")

    # ------------------------------------------------------------------ access
    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of every map."""
        return self.flux.shape[1:]

    @property
    def psf(self) -> dict:
        """PSF keywords of the reddest map (the broadest PSF of a diffraction-limited instrument)."""
        reddest = max(self.names, key=lambda n: LINES[n].wavelength)
        return dict(self.psfs[reddest])

    def components(self, name: str) -> tuple[str, ...]:
        """Line ids summed in map ``name``."""
        return self.blends.get(name, (name,))

    def index(self, name: str) -> int:
        """Position of map ``name``."""
        if name not in self.names:
            raise DataError(f"line map {name!r} is not in the product; maps: {', '.join(self.names)}")
        return self.names.index(name)

    def offsets(self):
        """(x, y) pixel-centre offsets from the field centre, arcsec (east, north), 1-D each."""
        ny, nx = self.shape
        return -spatial_offsets(nx, self.pixel_scale), spatial_offsets(ny, self.pixel_scale)

    # ------------------------------------------------------------------ FITS
    def to_hdulist(self):
        """FITS HDUs: primary, FLUX_/VAR_ per map, PROVENANCE, [CONFIG], TRUTH."""
        from astropy.io import fits

        primary = fits.PrimaryHDU()
        h = primary.header
        h["ORIGIN"] = "mockzgrad"
        h["MZVERS"] = (__version__, "mockzgrad version")
        h["KIND"] = (self.kind, "observer product kind")
        h["BUNIT"] = BUNIT
        for key, value in flat_truth(self.truth).items():
            if key not in ("redshift", "pixel_scale"):
                set_header(h, key, value)
        h["HIERARCH redshift"] = (float(self.redshift), "grism redshift of the extraction")
        h["HIERARCH pixel_scale"] = (float(self.pixel_scale), "arcsec")
        hdus = [primary]
        wcs = celestial_header(self.shape, self.pixel_scale)
        for i, name in enumerate(self.names):
            for ext, arr, unit in (("FLUX", self.flux[i], BUNIT), ("VAR", self.variance[i], "erg2/(s2 cm4)")):
                hdu = fits.ImageHDU(arr.astype(np.float64), name=f"{ext}_{name}")
                hdu.header.update(wcs)
                hdu.header["BUNIT"] = unit
                hdu.header["LINE"] = name
                hdu.header["BLEND"] = ",".join(self.components(name))
                for key, value in self.psfs[name].items():
                    set_header(hdu.header, key, value)
                hdus.append(hdu)
        if self.covariance is not None:
            hdus.append(fits.ImageHDU(self.cov_offsets.astype(np.int32), name="COVOFF"))
            for i, name in enumerate(self.names):
                hdu = fits.ImageHDU(self.covariance[i].astype(np.float64), name=f"COV_{name}")
                hdu.header["BUNIT"] = "erg2/(s2 cm4)"
                hdu.header["LINE"] = name
                hdus.append(hdu)
        hdus.append(json_hdu("PROVENANCE", self.provenance))
        if self.config_toml:
            hdus.append(text_hdu("CONFIG", self.config_toml))
        hdus.append(json_hdu("TRUTH", self.truth))
        return fits.HDUList(hdus)

    def write(self, path, *, overwrite: bool = False) -> None:
        """Write the maps as FITS, atomically (temporary file in the same folder, then renamed)."""
        from ..fileio import atomic_write

        hdul = self.to_hdulist()
        atomic_write(path, lambda tmp: hdul.writeto(tmp, overwrite=True), overwrite=overwrite)


def _json_ext(hdul, name: str) -> dict:
    names = [h.name for h in hdul]
    return json.loads(bytes(hdul[name].data).decode()) if name in names else {}


def is_linemaps_file(hdul) -> bool:
    """Whether an open FITS file holds line maps (``KIND = 'linemaps'`` or a ``FLUX_<line>`` extension)."""
    import warnings

    if str(hdul[0].header.get("KIND", "")).lower() == "linemaps":
        return True
    with warnings.catch_warnings():
        # a truncated file warns here; the reader of its kind reports it as one line
        warnings.simplefilter("ignore")
        return any(h.name.startswith("FLUX_") for h in hdul[1:])


def _open(path):
    from astropy.io import fits

    try:
        return fits.open(path, memmap=False)
    except FileNotFoundError:
        raise DataError(f"line-map file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"line-map file {str(path)!r} is not a readable FITS file ({exc})") from None


def _psf_keys(header) -> dict:
    return {k: header[k] for k in header if k.upper().startswith("PSF_")}


def read_linemaps(path) -> LineMaps:
    """Read line maps written by :meth:`LineMaps.write`.

    Raises
    ------
    DataError
        Missing or unreadable file, no ``FLUX_<line>`` extension, a map
        without its ``VAR_<line>`` (recovery needs the variance), maps of
        different shapes, or no pixel scale / redshift.
    """
    path = Path(path)
    with _open(path) as hdul:
        ext = {h.name: h for h in hdul[1:]}
        names = [n[5:] for n in ext if n.startswith("FLUX_")]  # EXTNAMEs are upper case
        if not names:
            raise DataError(f"line-map file {str(path)!r} has no FLUX_<line> extension "
                            f"(extensions: {list(ext)})")
        flux, var, psfs, blends, lines = [], [], {}, {}, []
        for n in names:
            h = ext[f"FLUX_{n}"].header
            line = _check_line(f"line-map file {str(path)!r}: extension FLUX_{n}", h.get("LINE", _UPPER.get(n, n)))
            if f"VAR_{n}" not in ext:
                raise DataError(f"line-map file {str(path)!r}: map {n} has no VAR_{n} extension; "
                                "recovery needs the variance of every map")
            flux.append(np.asarray(ext[f"FLUX_{n}"].data, dtype=np.float64))
            var.append(np.asarray(ext[f"VAR_{n}"].data, dtype=np.float64))
            psfs[line] = _psf_keys(h)
            lines.append(line)
            parts = tuple(p for p in str(h.get("BLEND", line)).split(",") if p)
            if parts != (line,):
                blends[line] = parts
        if len({a.shape for a in flux + var}) != 1:
            raise DataError(f"line-map file {str(path)!r}: maps have different shapes "
                            f"{sorted({a.shape for a in flux + var})}")
        primary = hdul[0].header
        pixel_scale = float(primary.get("PIXEL_SCALE", abs(float(ext[f"FLUX_{names[0]}"].header.get(
            "CDELT2", np.nan))) * 3600.0))
        redshift = float(primary.get("REDSHIFT", np.nan))
        truth, provenance = _json_ext(hdul, "TRUTH"), _json_ext(hdul, "PROVENANCE")
        config_toml = bytes(hdul["CONFIG"].data).decode() if "CONFIG" in ext else ""
        cov = offsets = None
        if "COVOFF" in ext and all(f"COV_{n}" in ext for n in names):
            offsets = np.asarray(ext["COVOFF"].data, dtype=int)
            cov = np.stack([np.asarray(ext[f"COV_{n}"].data, dtype=np.float64) for n in names])
    return LineMaps(names=tuple(lines), flux=np.stack(flux), variance=np.stack(var), pixel_scale=pixel_scale,
                    psfs=psfs, redshift=redshift, blends=blends, provenance=provenance, truth=truth,
                    config_toml=config_toml, covariance=cov, cov_offsets=offsets)
