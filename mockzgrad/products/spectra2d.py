"""The 2D spectra of a slit-stepped cube's pointings: :class:`SlitSpectra` and its FITS extensions.

What an MSA-3D observer reduces into a cube (S1 Sect. 2.1): one rectified
2D spectrum per pointing (``steps_disp x steps_cross``, 63 for MSA-3D),
axes (pointing, channel, detector row along the slit). Pointing ``k`` is row
``k`` of the cube's ``EXPOSURES`` table (its step indices and offsets).

Extensions (written by :meth:`~mockzgrad.products.cube.MockCube.write` when
a cube carries them, read back by :func:`~mockzgrad.products.cube.read_cube`):

``SPEC2D``, ``SPEC2D_VAR``
    float32, shape (n_pointings, n_chan, n_rows): flux per detector pixel,
    erg/s/cm^2, and its variance; before the bar-shadow and path-loss
    corrections. Cards ``ROW_LO`` (arcsec: lower edge of row 0 from the
    slitlet centre along the slit) and ``ROWPIX`` (arcsec: detector pixel).
``SPEC2D_OPEN``
    shape (steps_cross, n_rows): open (unshadowed) fraction of each
    detector row in each cross-dispersion dither (the bar shadow).
``SPEC2D_CHANNELS``
    ``WAVE_LO``, ``WAVE_HI`` (Angstrom: the rectified wavelength grid of a
    source at a shutter's centre, the cube's channels) and ``PATHLOSS``
    (the factor the observer multiplies each channel by; 1 without the
    path-loss correction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

__all__ = ["SPECTRA_EXTENSIONS", "SlitSpectra"]

#: Extension names of the 2D spectra, in the order they are written.
SPECTRA_EXTENSIONS = ("SPEC2D", "SPEC2D_VAR", "SPEC2D_OPEN", "SPEC2D_CHANNELS")


@dataclass(frozen=True, eq=False)
class SlitSpectra:
    """Rectified 2D spectra of every pointing of a slit-stepped observation.

    Attributes
    ----------
    data, variance : ndarray, shape (n_pointings, n_chan, n_rows)
        Flux per detector pixel (erg/s/cm^2) and its variance, (erg/s/cm^2)^2.
    open_fraction : ndarray, shape (steps_cross, n_rows)
        Open fraction of each detector row in each cross-dispersion dither.
    row_lo : float
        Lower edge of detector row 0 along the slit, arcsec from the slitlet centre.
    row_pixel : float
        Detector pixel along the slit, arcsec.
    edges_lo, edges_hi : ndarray, shape (n_chan,)
        Channel edges, observed vacuum Angstrom.
    pathloss : ndarray, shape (n_chan,)
        Path-loss correction factor per channel (1: none).
    """

    data: np.ndarray
    variance: np.ndarray
    open_fraction: np.ndarray
    row_lo: float
    row_pixel: float
    edges_lo: np.ndarray
    edges_hi: np.ndarray
    pathloss: np.ndarray

    @property
    def row_edges(self) -> np.ndarray:
        """Detector-row edges along the slit, arcsec from the slitlet centre, shape (n_rows + 1,)."""
        return self.row_lo + np.arange(self.data.shape[2] + 1) * self.row_pixel

    @property
    def file_bytes(self) -> int:
        """Bytes of the arrays in a file (float32 spectra, float64 tables), headers aside."""
        return 4 * (self.data.size + self.variance.size) + 8 * (self.open_fraction.size + 3 * self.edges_lo.size)

    def to_hdus(self) -> list:
        """The ``SPEC2D``, ``SPEC2D_VAR``, ``SPEC2D_OPEN`` and ``SPEC2D_CHANNELS`` extensions."""
        from astropy.io import fits

        out = []
        for name, arr, unit in (("SPEC2D", self.data, "erg/s/cm2"), ("SPEC2D_VAR", self.variance, "erg2/s2/cm4")):
            hdu = fits.ImageHDU(np.asarray(arr, dtype=np.float32), name=name)
            hdu.header["BUNIT"] = (unit, "per detector pixel")
            hdu.header["ROW_LO"] = (float(self.row_lo), "arcsec, row 0 lower edge from slitlet centre")
            hdu.header["ROWPIX"] = (float(self.row_pixel), "arcsec, detector pixel along the slit")
            hdu.header["COMMENT"] = "axes (pointing = EXPOSURES row, channel, detector row); uncorrected"
            out.append(hdu)
        out.append(fits.ImageHDU(np.asarray(self.open_fraction, dtype=np.float64), name="SPEC2D_OPEN"))
        cols = [fits.Column(name="WAVE_LO", format="D", unit="Angstrom", array=self.edges_lo),
                fits.Column(name="WAVE_HI", format="D", unit="Angstrom", array=self.edges_hi),
                fits.Column(name="PATHLOSS", format="D", array=self.pathloss)]
        out.append(fits.BinTableHDU.from_columns(cols, name="SPEC2D_CHANNELS"))
        return out

    @classmethod
    def from_hdul(cls, hdul, path) -> SlitSpectra | None:
        """The spectra in an open FITS file; None when it has no ``SPEC2D``.

        Raises
        ------
        DataError
            Some but not all of the extensions, or shapes that do not match.
        """
        names = {h.name for h in hdul}
        have = [n for n in SPECTRA_EXTENSIONS if n in names]
        if not have:
            return None
        if len(have) != len(SPECTRA_EXTENSIONS):
            missing = [n for n in SPECTRA_EXTENSIONS if n not in names]
            raise DataError(f"cube file {str(path)!r}: 2D spectra incomplete, missing {', '.join(missing)}")
        data = np.asarray(hdul["SPEC2D"].data, dtype=np.float64)
        var = np.asarray(hdul["SPEC2D_VAR"].data, dtype=np.float64)
        opened = np.asarray(hdul["SPEC2D_OPEN"].data, dtype=np.float64)
        tab = hdul["SPEC2D_CHANNELS"].data
        lo, hi, loss = (np.asarray(tab[c], dtype=np.float64) for c in ("WAVE_LO", "WAVE_HI", "PATHLOSS"))
        if data.ndim != 3 or var.shape != data.shape or lo.size != data.shape[1] or opened.ndim != 2 \
                or opened.shape[1] != data.shape[2]:
            raise DataError(f"cube file {str(path)!r}: 2D spectra of inconsistent shapes: SPEC2D {data.shape}, "
                            f"SPEC2D_VAR {var.shape}, SPEC2D_OPEN {opened.shape}, {lo.size} channels")
        h = hdul["SPEC2D"].header
        if "ROW_LO" not in h or "ROWPIX" not in h:
            raise DataError(f"cube file {str(path)!r}: SPEC2D lacks ROW_LO or ROWPIX (detector rows along the slit)")
        return cls(data=data, variance=var, open_fraction=opened, row_lo=float(h["ROW_LO"]),
                   row_pixel=float(h["ROWPIX"]), edges_lo=lo, edges_hi=hi, pathloss=loss)
