"""Slitless trace geometry: where light of wavelength lambda from a sky position lands.

This module is the calibration an observer has (the forward model and the
extraction share it); it knows nothing of the source model. One
:class:`GrismDispersion` describes one exposure (grism, filter, position
angle) on a detector frame sampled at the map pixel scale.

Conventions
-----------
* Direct-image grid: ``n_direct x n_direct`` pixels of ``pixel_scale``
  arcsec, axes ``(row, col)``, north = +row, east = -col, the field centre
  at pixel ``(n_direct - 1) / 2`` on both axes (as
  :mod:`mockzgrad.source.scene`).
* Detector frame of an exposure: ``shape = (ny, nx)`` pixels of the same
  scale; +x (columns) points along the dispersion (increasing wavelength),
  at position angle ``pa_disp`` (deg east of north), and +y (rows) at
  ``pa_disp + 90`` deg, so the frame is the sky rotated, never mirrored
  (``pa_disp = 270``: the direct image itself). Pixel centres are at
  integer coordinates, 0-based.
* A source at sky offset (east, north) (arcsec) lands at
  ``x = xref + u / pixel_scale + dx(lambda)``,
  ``y = yref + v / pixel_scale + dy(lambda)``, with
  ``u = east sin(pa_disp) + north cos(pa_disp)``,
  ``v = east cos(pa_disp) - north sin(pa_disp)``.
* Trace (first order, linear): ``dx = (lambda - wave_ref - wave_offset) /
  dispersion``, ``dy = dx tan(tilt)``; ``lambda(x) = wave_ref + wave_offset
  + dx dispersion``. ``wave_offset`` (A) is the zero-point error the forward
  model injects; the observer's calibration (the header) has 0.
* Sensitivity ``S(lambda)``, (e-/s) per (erg/s/cm^2): counts = F_lambda
  S(lambda) dlambda. Smooth approximation: ``sens_peak`` on the filter's
  range ``[sens_lo, sens_hi]`` with raised-cosine edges ``sens_taper`` wide
  inside it, zero outside (a shape assumption, not a measured curve).

Header keywords (:meth:`GrismDispersion.to_header`): ``GRISM``, ``FILTER``,
``PA``, ``PA_DISP``, ``DISP``, ``WAVE_REF``, ``TILT``, ``SENSPEAK``,
``SENS_LO``, ``SENS_HI``, ``SENSTAPR``, ``XREF``, ``YREF``, ``NDIRECT``,
``PIXSCALE``; :meth:`GrismDispersion.from_header` reads them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ... import validate
from ...errors import DataError
from ...kernels.disperse import disperse_adjoint_nb, disperse_adjoint_ref, disperse_nb, disperse_ref

__all__ = ["GrismDispersion", "make_frame", "disperse", "disperse_adjoint", "read_grismconf", "HEADER_KEYS"]

#: Header keyword -> attribute of :class:`GrismDispersion`.
HEADER_KEYS = {
    "GRISM": "grism", "FILTER": "filter", "PA": "pa", "PA_DISP": "pa_disp", "DISP": "dispersion",
    "WAVE_REF": "wave_ref", "TILT": "tilt", "SENSPEAK": "sens_peak", "SENS_LO": "sens_lo",
    "SENS_HI": "sens_hi", "SENSTAPR": "sens_taper", "XREF": "xref", "YREF": "yref",
    "NDIRECT": "n_direct", "PIXSCALE": "pixel_scale",
}


@dataclass(frozen=True, kw_only=True)
class GrismDispersion:
    """Trace geometry and sensitivity of one exposure on its detector frame.

    Attributes
    ----------
    grism, filter : str
        Names (e.g. ``"GR150R"``, ``"F150W"``).
    pa : float
        Position angle of the aperture (telescope), deg east of north.
    pa_disp : float
        Position angle of the dispersion direction (increasing wavelength), deg east of north.
    dispersion : float
        Angstrom per frame pixel (the native dispersion rescaled to ``pixel_scale``); > 0.
    wave_ref : float
        Wavelength that lands at ``dx = 0`` (the direct-image position), Angstrom.
    tilt : float
        Trace tilt from the frame's x axis, deg.
    sens_peak : float
        Peak sensitivity, (e-/s) per (erg/s/cm^2); > 0.
    sens_lo, sens_hi : float
        Wavelength range where S > 0, Angstrom.
    sens_taper : float
        Width of the raised-cosine edges, Angstrom; >= 0.
    xref, yref : float
        Frame position (pixels, 0-based) of the direct-image field centre at ``dx = dy = 0``.
    shape : tuple of int
        Frame shape ``(ny, nx)``.
    n_direct : int
        Side of the direct-image grid, pixels.
    pixel_scale : float
        Pixel size of the direct image and of the frame, arcsec.
    wave_offset : float
        Wavelength zero-point error, Angstrom (forward model only; 0 in headers).
    """

    grism: str
    filter: str
    pa: float
    pa_disp: float
    dispersion: float
    wave_ref: float
    tilt: float
    sens_peak: float
    sens_lo: float
    sens_hi: float
    sens_taper: float
    xref: float = 0.0
    yref: float = 0.0
    shape: tuple = (1, 1)
    n_direct: int = 1
    pixel_scale: float = 1.0
    wave_offset: float = 0.0

    def __post_init__(self):
        validate.number("grism dispersion", self.dispersion, 0.0, None, lo_open=True, unit="Angstrom/pixel")
        validate.number("grism sens_peak", self.sens_peak, 0.0, None, lo_open=True)
        validate.number("grism pixel_scale", self.pixel_scale, 0.0, None, lo_open=True, unit="arcsec")
        if not self.sens_hi > self.sens_lo:
            raise DataError(f"grism sensitivity range [{self.sens_lo}, {self.sens_hi}] A is empty")

    # ---------------------------------------------------------------- trace
    def dx(self, wave) -> np.ndarray:
        """Trace offset along the dispersion, pixels, at wavelength ``wave`` (Angstrom)."""
        return (np.asarray(wave, float) - self.wave_ref - self.wave_offset) / self.dispersion

    def dy(self, wave) -> np.ndarray:
        """Trace offset across the dispersion, pixels (``dx tan(tilt)``)."""
        return self.dx(wave) * math.tan(math.radians(self.tilt))

    def wavelength(self, dx) -> np.ndarray:
        """Wavelength (Angstrom) at trace offset ``dx`` (pixels): lambda(x)."""
        return self.wave_ref + self.wave_offset + np.asarray(dx, float) * self.dispersion

    def sensitivity(self, wave) -> np.ndarray:
        """S(lambda), (e-/s) per (erg/s/cm^2), at ``wave`` (Angstrom); 0 outside the filter."""
        w = np.asarray(wave, float)
        lo, hi, t = self.sens_lo, self.sens_hi, self.sens_taper
        shape = ((w >= lo) & (w <= hi)).astype(float)
        if t > 0:
            rise = np.clip((w - lo) / t, 0.0, 1.0)
            fall = np.clip((hi - w) / t, 0.0, 1.0)
            shape = shape * 0.5 * (1.0 - np.cos(np.pi * np.minimum(rise, fall)))
        return self.sens_peak * shape

    def covers(self, wave: float) -> bool:
        """Whether ``wave`` (Angstrom) has S > 0."""
        return bool(self.sensitivity(wave) > 0)

    # ---------------------------------------------------------------- geometry
    def sky_to_frame(self, east, north) -> tuple[np.ndarray, np.ndarray]:
        """Frame position (x, y), pixels, of sky offsets (arcsec) at ``dx = dy = 0``."""
        s, c = math.sin(math.radians(self.pa_disp)), math.cos(math.radians(self.pa_disp))
        east, north = np.asarray(east, float), np.asarray(north, float)
        u = east * s + north * c
        v = east * c - north * s
        return self.xref + u / self.pixel_scale, self.yref + v / self.pixel_scale

    def direct_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Frame position (x, y) of every direct-image pixel at ``dx = dy = 0``, each (n_direct, n_direct)."""
        off = (np.arange(self.n_direct) - 0.5 * (self.n_direct - 1)) * self.pixel_scale
        east, north = np.meshgrid(-off, off)
        return self.sky_to_frame(east, north)

    def position(self, east, north, wave) -> tuple[np.ndarray, np.ndarray]:
        """Frame position (x, y), pixels, where light of ``wave`` (A) from (east, north) (arcsec) lands."""
        x, y = self.sky_to_frame(east, north)
        return x + self.dx(wave), y + self.dy(wave)

    # ---------------------------------------------------------------- header
    def observer(self) -> "GrismDispersion":
        """The calibration an observer has: this model without the injected zero-point error."""
        return replace(self, wave_offset=0.0)

    def to_header(self) -> dict:
        """FITS keywords of the observer's calibration (``wave_offset`` left out)."""
        out = {key: getattr(self, attr) for key, attr in HEADER_KEYS.items()}
        out["NDIRECT"] = int(self.n_direct)
        return out

    @classmethod
    def from_header(cls, header, shape) -> "GrismDispersion":
        """Rebuild from :meth:`to_header` keywords and the frame ``shape`` (ny, nx).

        Raises
        ------
        DataError
            A keyword is missing.
        """
        missing = [k for k in HEADER_KEYS if k not in header]
        if missing:
            raise DataError(f"grism exposure header lacks {', '.join(missing)}; needs {', '.join(HEADER_KEYS)}")
        kw = {attr: header[key] for key, attr in HEADER_KEYS.items()}
        for attr in kw:
            if attr not in ("grism", "filter"):
                kw[attr] = float(kw[attr])
        kw["n_direct"] = int(kw["n_direct"])
        return cls(shape=tuple(int(s) for s in shape), **kw)


def make_frame(model: GrismDispersion, n_direct: int, pixel_scale: float, wave_lo: float, wave_hi: float,
               margin: int = 2) -> GrismDispersion:
    """Size the detector frame so that every direct-image pixel at every wavelength of [wave_lo, wave_hi] lands inside.

    Parameters
    ----------
    model : GrismDispersion
        Trace and sensitivity (its frame fields are replaced).
    n_direct : int
        Side of the direct-image grid, pixels; >= 1.
    pixel_scale : float
        Pixel size, arcsec.
    wave_lo, wave_hi : float
        Wavelength range to hold, Angstrom (typically the sensitivity range).
    margin : int
        Extra pixels on every side (the linear split needs one).

    Returns
    -------
    GrismDispersion
        With ``xref``, ``yref`` (integers plus the centre's fraction), ``shape``, ``n_direct``, ``pixel_scale``.
    """
    m = replace(model, xref=0.0, yref=0.0, n_direct=int(n_direct), pixel_scale=float(pixel_scale))
    bx, by = m.direct_positions()
    waves = np.array([wave_lo, wave_hi])
    # trace offsets at both ends of the range; a zero-point error must fit in ``margin``
    dxs, dys = m.dx(waves), m.dy(waves)
    xs = np.concatenate([bx.ravel() + d for d in dxs])
    ys = np.concatenate([by.ravel() + d for d in dys])
    x0, y0 = math.floor(xs.min()) - margin, math.floor(ys.min()) - margin
    nx = int(math.ceil(xs.max())) - x0 + margin + 1
    ny = int(math.ceil(ys.max())) - y0 + margin + 1
    return replace(m, xref=float(-x0), yref=float(-y0), shape=(ny, nx))


def _trace_arrays(model: GrismDispersion, waves: np.ndarray):
    bx, by = model.direct_positions()
    waves = np.ascontiguousarray(waves, dtype=np.float64)
    return (np.ascontiguousarray(bx.ravel()), np.ascontiguousarray(by.ravel()),
            np.ascontiguousarray(model.dx(waves)), np.ascontiguousarray(model.dy(waves)))


def disperse(slices, waves, model: GrismDispersion, *, use_numba: bool = True) -> np.ndarray:
    """The dispersion operator D: flux slices on the direct grid -> counts on the exposure frame.

    Parameters
    ----------
    slices : ndarray, shape (n_w, n_direct, n_direct)
        Flux per pixel in each wavelength slice, erg/s/cm^2 (F_lambda dlambda).
    waves : ndarray, shape (n_w,)
        Wavelength of each slice, Angstrom (all the slice's flux is placed there).
    model : GrismDispersion
        With its frame (:func:`make_frame`).
    use_numba : bool
        Compiled kernel (False: its numpy twin).

    Returns
    -------
    ndarray, shape model.shape
        Count rate per frame pixel, e-/s: sum over slices of flux x S(lambda), split linearly along and across
        the trace.
    """
    slices = np.asarray(slices, dtype=np.float64)
    waves = np.asarray(waves, dtype=np.float64)
    n = model.n_direct
    if slices.shape != (waves.size, n, n):
        raise DataError(f"disperse: slices of shape {slices.shape}; expected {(waves.size, n, n)}")
    sens = model.sensitivity(waves)
    keep = sens > 0
    values = np.ascontiguousarray(slices[keep].reshape(int(keep.sum()), n * n) * sens[keep, None])
    out = np.zeros(model.shape, dtype=np.float64)
    bx, by, dx, dy = _trace_arrays(model, waves[keep])
    (disperse_nb if use_numba else disperse_ref)(values, bx, by, dx, dy, out)
    return out


def disperse_adjoint(image, waves, model: GrismDispersion, *, use_numba: bool = True) -> np.ndarray:
    """The transpose D^T of :func:`disperse`: a frame image -> slices on the direct grid.

    Parameters
    ----------
    image : ndarray, shape model.shape
        Values per frame pixel (e.g. e-/s, or residual / variance).
    waves : ndarray, shape (n_w,)
        Slice wavelengths, Angstrom.
    model : GrismDispersion
    use_numba : bool

    Returns
    -------
    ndarray, shape (n_w, n_direct, n_direct)
        ``<disperse(x), image> = <x, disperse_adjoint(image)>`` to round-off.
    """
    image = np.ascontiguousarray(image, dtype=np.float64)
    waves = np.asarray(waves, dtype=np.float64)
    if image.shape != tuple(model.shape):
        raise DataError(f"disperse_adjoint: image of shape {image.shape}; expected {tuple(model.shape)}")
    n = model.n_direct
    sens = model.sensitivity(waves)
    bx, by, dx, dy = _trace_arrays(model, waves)
    out = np.zeros((waves.size, n * n), dtype=np.float64)
    (disperse_adjoint_nb if use_numba else disperse_adjoint_ref)(image, bx, by, dx, dy, out)
    return (out * sens[:, None]).reshape(waves.size, n, n)


def _poly2d(coeffs, x0: float, y0: float) -> float:
    """GRISMCONF field polynomial: c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2 + ..."""
    out, k, order = 0.0, 0, 0
    while k < len(coeffs):
        for j in range(order + 1):
            if k < len(coeffs):
                out += coeffs[k] * x0 ** (order - j) * y0**j
                k += 1
        order += 1
    return out


def read_grismconf(path, *, order: str = "+1", x0: float = 0.0, y0: float = 0.0) -> dict:
    """Linear trace of a user GRISMCONF file (Pirzkal & Ryan 2017, WFC3 ISR 2017-01), read by our own parser.

    The trace is ``x(t) = sum_k DISPX_<order>_k t^k``, ``y(t)``, ``lambda(t)`` likewise
    (each coefficient a polynomial in the direct-image position ``(x0, y0)``, native
    pixels). It is sampled on t in [0, 1] and fitted with the linear model of
    :class:`GrismDispersion`.

    Parameters
    ----------
    path : str or path-like
        The .conf file.
    order : str
        Spectral order; only ``"+1"`` is modelled.
    x0, y0 : float
        Direct-image position at which the field polynomials are evaluated, native pixels.

    Returns
    -------
    dict
        ``dispersion`` (A per native pixel), ``direction`` (+1: wavelength grows along +x, -1:
        along -x, i.e. the dispersion points 180 deg from the frame's x axis), ``tilt`` (deg),
        ``wave_ref`` (A at dx = 0),
        ``dy0`` (cross-trace offset at dx = 0, native pixels; not modelled),
        ``wave_min``, ``wave_max`` (A over t in [0, 1]).

    Raises
    ------
    DataError
        Missing file, a missing ``DISPX/DISPY/DISPL_<order>_0`` or ``_1`` keyword, or a
        trace that does not move along x.
    """
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"grism conf {str(path)!r}: cannot read ({exc.strerror or exc})") from None
    table = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            try:
                table[parts[0]] = [float(v) for v in parts[1:]]
            except ValueError:
                continue  # file names (SENSITIVITY_*) and other text
    polys = {}
    for axis in ("DISPX", "DISPY", "DISPL"):
        keys = sorted((k for k in table if k.startswith(f"{axis}_{order}_")), key=lambda k: int(k.rsplit("_", 1)[1]))
        for need in (f"{axis}_{order}_0", f"{axis}_{order}_1"):
            if need not in table:
                raise DataError(f"grism conf {str(path)!r} lacks {need}; a first-order trace needs "
                                f"{axis}_{order}_0 and {axis}_{order}_1")
        polys[axis] = [_poly2d(table[k], x0, y0) for k in keys]
    t = np.linspace(0.0, 1.0, 101)
    x, y, lam = (np.polyval(polys[a][::-1], t) for a in ("DISPX", "DISPY", "DISPL"))
    if np.ptp(x) <= 0:
        raise DataError(f"grism conf {str(path)!r}: DISPX_{order} does not move along x over t in [0, 1]")
    slope, intercept = np.polyfit(x, lam, 1)  # lambda = slope dx + intercept
    tilt_slope, dy0 = np.polyfit(x, y, 1)
    return {"dispersion": float(abs(slope)), "direction": 1 if slope > 0 else -1, "tilt": float(math.degrees(math.atan(tilt_slope))),
            "wave_ref": float(intercept), "dy0": float(dy0), "wave_min": float(lam.min()), "wave_max": float(lam.max())}
