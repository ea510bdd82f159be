"""The observer's lens model of a lensed mock: the ``LENS`` file.

An observer of a lensed galaxy has a lens model (e.g. the HFF cluster
models: alpha_x, alpha_y, kappa, gamma1, gamma2, mu maps; STScI HFF readme),
never the true lens. :class:`ObserverLens` is that model sampled on the data
grid (the cube's spaxel centres), written from ``lensing.observer_model``
("truth", "scaled" by 1 + eps, or maps from a file) and never from the
mock's truth. Recovery (:mod:`mockzgrad.recovery.lensing`) reads it.

FITS layout: primary HDU with the provenance keywords, image extensions
ALPHA_X, ALPHA_Y (arcsec, east and north components of the deflection),
KAPPA, GAMMA1, GAMMA2 (x east, y north frame) and MU (signed), each
``(ny, nx)`` on the cube's spaxel grid (north = +row, east = -column).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .grids import spatial_offsets

__all__ = ["LENS_EXTENSIONS", "ObserverLens", "observer_lens", "read_lens", "lens_path_for", "lens_truth",
           "source_radius_map", "radius_map_truth", "round_significant"]

#: Image extensions of a LENS file, in order.
LENS_EXTENSIONS = ("ALPHA_X", "ALPHA_Y", "KAPPA", "GAMMA1", "GAMMA2", "MU")


@dataclass(frozen=True, eq=False)
class ObserverLens:
    """A lens model sampled on a data grid.

    Attributes
    ----------
    maps : dict
        ``LENS_EXTENSIONS`` name -> ndarray (ny, nx): deflection (arcsec),
        convergence, shear and magnification at each spaxel centre.
    pixel_scale : float
        Spaxel size, arcsec.
    provenance : dict
        Where the model comes from (``observer_model``, ``kind``, ``eps``, files).
    """

    maps: dict
    pixel_scale: float
    provenance: dict = field(default_factory=dict)
    kind = "lens"

    @property
    def shape(self) -> tuple[int, int]:
        return np.shape(self.maps["ALPHA_X"])

    def offsets(self):
        """(x, y) spaxel-centre offsets, arcsec (east, north), 1-D each (as :meth:`MockCube.offsets`)."""
        ny, nx = self.shape
        return -spatial_offsets(nx, self.pixel_scale), spatial_offsets(ny, self.pixel_scale)

    def ray_shoot(self) -> tuple[np.ndarray, np.ndarray]:
        """Source-plane offsets beta = theta - alpha of every spaxel centre, arcsec, (ny, nx) each."""
        x, y = np.meshgrid(*self.offsets())
        return x - self.maps["ALPHA_X"], y - self.maps["ALPHA_Y"]

    def check_matches(self, shape, pixel_scale: float, what: str = "the data") -> None:
        """DataError when this model's grid is not that of the data."""
        if tuple(shape) != tuple(self.shape) or not np.isclose(pixel_scale, self.pixel_scale, rtol=1e-9):
            raise DataError(f"lens model grid {self.shape} at {self.pixel_scale} arcsec does not match {what} "
                            f"{tuple(shape)} at {pixel_scale} arcsec")

    def to_hdulist(self):
        from astropy.io import fits

        primary = fits.PrimaryHDU()
        h = primary.header
        h["HIERARCH product"] = "lens model (observer)"
        h["HIERARCH pixel_scale"] = (float(self.pixel_scale), "arcsec")
        for k, v in self.provenance.items():
            if isinstance(v, (bool, int, float, str)):
                h[f"HIERARCH {k}"] = v
        h["HIERARCH provenance"] = json.dumps(self.provenance)
        hdus = [primary]
        for name in LENS_EXTENSIONS:
            hdu = fits.ImageHDU(np.asarray(self.maps[name], dtype=np.float64), name=name)
            hdu.header["BUNIT"] = "arcsec" if name.startswith("ALPHA") else ""
            hdus.append(hdu)
        return fits.HDUList(hdus)

    def write(self, path, *, overwrite: bool = False) -> None:
        """Write the LENS file, atomically."""
        from ..fileio import atomic_write, check_output_path

        check_output_path(path, overwrite)
        hdul = self.to_hdulist()
        atomic_write(path, lambda tmp: hdul.writeto(tmp, overwrite=True), overwrite=overwrite)


def _grid(n, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Spaxel-centre offsets (x east, y north; arcsec) of an ``n x n`` or ``n = (ny, nx)`` grid, (ny, nx) each."""
    ny, nx = (n, n) if np.ndim(n) == 0 else (int(n[0]), int(n[1]))
    return np.meshgrid(-spatial_offsets(nx, pixel_scale), spatial_offsets(ny, pixel_scale))


def sample_lens(lens, n, pixel_scale: float, provenance: dict) -> ObserverLens:
    """Sample a :class:`mockzgrad.physics.lensing.Lens` on an ``n x n`` (or ``n = (ny, nx)``) spaxel grid."""
    x, y = _grid(n, pixel_scale)
    ax, ay = lens.alpha(x, y)
    k, g1, g2 = lens.convergence_shear(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = 1.0 / ((1.0 - k) ** 2 - g1 * g1 - g2 * g2)
    maps = dict(zip(LENS_EXTENSIONS, (ax, ay, k, g1, g2, mu)))
    maps = {name: np.broadcast_to(np.asarray(v, dtype=float), x.shape).copy() for name, v in maps.items()}
    return ObserverLens(maps, float(pixel_scale), dict(provenance))


def observer_lens(cfg, n, pixel_scale: float) -> ObserverLens | None:
    """The observer's lens model of a configuration on its ``n x n`` (or ``n = (ny, nx)``) data grid
    (None when unlensed).

    Built from ``cfg.lensing.observer_model``, never from the mock's truth.
    """
    from ..config import lens_from_config

    lcfg = cfg.lensing
    if lcfg is None:
        return None
    lens = lens_from_config(lcfg, cfg.galaxy.redshift, cfg.cosmology.to_astropy(), observer=True)
    prov = {"observer_model": lcfg.observer_model, "lens_kind": lcfg.kind,
            "observer_eps": lcfg.observer_eps if lcfg.observer_model == "scaled" else 0.0}
    if lcfg.observer_model == "file":
        prov["alpha_files"] = f"{lcfg.observer_alpha_x_file}, {lcfg.observer_alpha_y_file}"
    return sample_lens(lens, n, pixel_scale, prov)


def read_lens(path) -> ObserverLens:
    """Read a LENS file written by :meth:`ObserverLens.write`.

    Raises
    ------
    DataError
        Unreadable file, a missing extension, or maps of different shapes.
    """
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            names = [h.name for h in hdul]
            missing = [e for e in LENS_EXTENSIONS if e not in names]
            if missing:
                raise DataError(f"{path}: not a lens model file (missing {', '.join(missing)}); "
                                "`mockzgrad cube` writes one beside a lensed cube")
            maps = {e: np.asarray(hdul[e].data, dtype=float) for e in LENS_EXTENSIONS}
            h = hdul[0].header
            scale = float(h["PIXEL_SCALE"]) if "PIXEL_SCALE" in h else float(h.get("HIERARCH pixel_scale"))
            prov = json.loads(h.get("HIERARCH provenance", "{}"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read lens model ({exc})") from None
    shapes = {e: m.shape for e, m in maps.items()}
    if len(set(shapes.values())) != 1:
        raise DataError(f"{path}: lens maps have different shapes {shapes}")
    return ObserverLens(maps, scale, prov)


def lens_path_for(cube_path) -> str:
    """Name of the LENS file written beside a cube: ``<stem>_lens.fits`` (``lensed.fits`` -> ``lensed_lens.fits``)."""
    s = str(cube_path)
    stem = s[:-5] if s.lower().endswith(".fits") else s
    return f"{stem}_lens.fits"


#: Significant digits of the true source-plane radius map kept in a product's truth (JSON).
RADIUS_MAP_DIGITS = 5


def source_radius_map(model, lens, n, pixel_scale: float, traced=None) -> np.ndarray:
    """True source-plane deprojected radius (kpc) of every spaxel centre of an ``n x n`` (or ``(ny, nx)``) grid.

    Each spaxel centre theta is ray-traced to beta = theta - alpha(theta) with
    the true lens and its radius in the galaxy's disk is taken there
    (:meth:`mockzgrad.source.galaxy.GalaxyModel.disk_coords`; rows north, columns west, as the data).
    ``traced``: those (beta_x, beta_y) when already known.
    """
    if traced is None:
        traced = lens.ray_shoot(*_grid(n, pixel_scale))
    return np.asarray(model.disk_coords(*traced)[0], dtype=float)


def lens_truth(model, lens, psf_fwhm: float, n, pixel_scale: float, flux_magnification: float,
               trace=None) -> dict:
    """Truth keys of a lensed mock: :func:`mockzgrad.physics.lensing.lensing_truth` on the product's grid and
    ``source_radius_map_kpc``, the true source-plane radius map (:func:`source_radius_map`) as nested lists
    (rows of the data grid) rounded to :data:`RADIUS_MAP_DIGITS` significant digits.

    Parameters
    ----------
    model : mockzgrad.source.galaxy.GalaxyModel
        The galaxy, at its source-plane position.
    lens : mockzgrad.physics.lensing.Lens
        The true lens.
    psf_fwhm : float
        Image-plane PSF FWHM, arcsec.
    n : int or (int, int)
        The product's grid, ``n x n`` or ``(ny, nx)`` spaxels.
    pixel_scale : float
        Spaxel size, arcsec.
    flux_magnification : float
        Lensed over intrinsic line flux (NaN when unknown).
    trace : mockzgrad.physics.lensing.GridTrace, optional
        The lens already evaluated on this ``n x n`` grid (data orientation); None traces it here.
    """
    from ..physics.lensing import lensing_truth

    ny, nx = (n, n) if np.ndim(n) == 0 else (int(n[0]), int(n[1]))
    square = spatial_offsets(max(ny, nx), pixel_scale)  # image search over the enclosing square
    truth = lensing_truth(lens, (model.x_offset, model.y_offset), model.r_eff_arcsec, psf_fwhm, square,
                          flux_magnification, trace=None if trace is None else trace.mirrored())
    truth["source_radius_map_kpc"] = radius_map_truth(model, lens, (ny, nx), pixel_scale,
                                                      traced=None if trace is None else (trace.beta_x, trace.beta_y))
    return truth


def radius_map_truth(model, lens, n, pixel_scale: float, traced=None) -> list:
    """:func:`source_radius_map` as nested lists (rows), :data:`RADIUS_MAP_DIGITS` significant digits (JSON)."""
    return round_significant(source_radius_map(model, lens, n, pixel_scale, traced), RADIUS_MAP_DIGITS).tolist()


def round_significant(values, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits, vectorised: the float that ``f"{v:.{digits}g}"``
    spells (an integer times an exact power of ten, so the result is the correctly rounded decimal);
    zeros and non-finite values pass through."""
    v = np.asarray(values, dtype=float)
    out = v.copy()
    ok = np.isfinite(v) & (v != 0.0)
    k = (digits - 1 - np.floor(np.log10(np.abs(v[ok])))).astype(int)  # decimal places kept
    up, down = k >= 0, k < 0
    w = v[ok]
    res = np.empty_like(w)
    p_up = 10.0 ** k[up]
    res[up] = np.round(w[up] * p_up) / p_up
    p_down = 10.0 ** (-k[down])
    res[down] = np.round(w[down] / p_down) * p_down
    out[ok] = res
    return out
