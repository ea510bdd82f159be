"""Configuration of a gravitational lens in front of the galaxy (``[lensing]``) and of its recipe part.

A configuration without a ``[lensing]`` table is unlensed (``MockConfig.lensing``
is None; a table with ``kind = "none"`` is the same and is not written
back). The lens acts on the source model, so every observation mode sees
the lensed scene. Facts: Wang et al. 2017 (S3, Sect. 3, 4.2), Wang et al.
2022 (S4, Sect. 3.3), the STScI Hubble Frontier Fields lens-model readme
(deflection maps normalised to D_ls/D_s = 1 or to one z_s) and Raney et al.
2020 (team-to-team magnification scatter ~40 % at mu = 3), as collected in
``reference/instruments.md``, section C.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ._checks import bool_field, check_fields, choice_field, integer_field, number_field

__all__ = ["LENS_KINDS", "OBSERVER_MODELS", "LensingConfig", "LensingRecipe", "lens_from_config", "map_scale"]

#: ``lensing.kind``.
LENS_KINDS = ("none", "constant", "sie", "sie_shear", "deflection_fits")
#: ``lensing.observer_model``: the lens model written for the observer.
OBSERVER_MODELS = ("truth", "scaled", "file")


@dataclass(frozen=True, kw_only=True)
class LensingConfig:
    """A lens between the observer and the galaxy (``[lensing]``).

    Parameters
    ----------
    kind : {"none", "constant", "sie", "sie_shear", "deflection_fits"}
    kappa, gamma1, gamma2 : float
        ``constant``: uniform convergence and shear (x east, y north frame).
    theta_e : float
        ``sie``, ``sie_shear``: Einstein radius (intermediate-axis
        convention) for a source at ``galaxy.redshift``, arcsec; (0, 100].
    q : float
        SIE axis ratio; (0, 1].
    pa : float
        SIE major-axis position angle, deg east of north; [0, 180].
    centre_x, centre_y : float
        Lens centre, arcsec east / north of the field centre.
    gamma_ext : float
        ``sie_shear``: external shear; [0, 1).
    phi_ext : float
        Direction images are stretched along by the external shear, deg
        east of north; [0, 180].
    alpha_x_file, alpha_y_file : str
        ``deflection_fits``: FITS maps of the deflection
        (:func:`mockzgrad.physics.lensing.read_deflection_maps`).
    alpha_unit : {"arcsec", "pixels"}
    alpha_redshift : float or None
        Source redshift the maps are normalised to; None: D_ls/D_s = 1
        (then ``z_lens`` is required).
    z_lens : float or None
        Lens redshift; < galaxy.redshift.
    source_offset_x, source_offset_y : float
        Shift of the galaxy in the source plane, arcsec (east, north),
        added to ``galaxy.x_offset``, ``galaxy.y_offset``.
    image_at_centre : bool
        Place the galaxy where the lens maps the field centre: its
        source-plane centre is beta(0, 0) = -alpha(0, 0) plus the offsets
        above, so an image of the galaxy's centre lies at the field centre
        (with a cluster-scale lens off the field, ``centre_x``,
        ``centre_y`` then set the magnification there). False (default):
        the offsets alone place it.
    oversample_near_critical : int
        Sub-pixels per spaxel per axis where ``|mu| > 20``; [1, 64].
    field : {"all_images", "main_image"}
        What the automatic field (no ``instrument.fov``) holds
        ``instrument.fov_flux_fraction`` of: the flux of every image
        (default; a cluster-scale lens's counter-images lie tens of arcsec
        away, so the field gets huge, and a one-line hint says so when it
        is over 3 times the main image's) or of the image nearest the field
        centre only (the region of lensed light holding the lit point
        nearest it); ``"main_image"`` warns naming the images of the
        source centre left out. No effect when ``instrument.fov`` is given.
    observer_model : {"truth", "scaled", "file"}
        The lens model given to the observer (the LENS file): the true one,
        the true deflection times ``1 + observer_eps``, or the maps
        ``observer_alpha_x_file``, ``observer_alpha_y_file``.
    observer_eps : float
        Relative deflection error of the ``"scaled"`` observer model; (-1, 1).
    observer_alpha_x_file, observer_alpha_y_file : str or None
        ``observer_model = "file"``: FITS deflection maps of the observer's
        lens model, read like ``alpha_x_file``, ``alpha_y_file``.
    """

    kind: str = choice_field("none", LENS_KINDS)
    kappa: float = number_field(0.0, -1.0, 1.0, hi_open=True)
    gamma1: float = number_field(0.0, -1.0, 1.0)
    gamma2: float = number_field(0.0, -1.0, 1.0)
    theta_e: float = number_field(1.0, 0.0, 100.0, lo_open=True, unit="arcsec")
    q: float = number_field(1.0, 0.0, 1.0, lo_open=True)
    pa: float = number_field(0.0, 0.0, 180.0, unit="deg")
    centre_x: float = number_field(0.0, -100.0, 100.0, unit="arcsec")
    centre_y: float = number_field(0.0, -100.0, 100.0, unit="arcsec")
    gamma_ext: float = number_field(0.0, 0.0, 1.0, hi_open=True)
    phi_ext: float = number_field(0.0, 0.0, 180.0, unit="deg")
    alpha_x_file: str | None = None
    alpha_y_file: str | None = None
    alpha_unit: str = choice_field("arcsec", ("arcsec", "pixels"))
    alpha_redshift: float | None = number_field(None, 0.0, 30.0, lo_open=True)
    z_lens: float | None = number_field(None, 0.0, 30.0, lo_open=True)
    source_offset_x: float = number_field(0.0, -100.0, 100.0, unit="arcsec")
    source_offset_y: float = number_field(0.0, -100.0, 100.0, unit="arcsec")
    image_at_centre: bool = bool_field(False)
    oversample_near_critical: int = integer_field(8, 1, 64)
    field: str = choice_field("all_images", ("all_images", "main_image"))
    observer_model: str = choice_field("truth", OBSERVER_MODELS)
    observer_eps: float = number_field(0.0, -1.0, 1.0, lo_open=True, hi_open=True)
    observer_alpha_x_file: str | None = None
    observer_alpha_y_file: str | None = None

    def __post_init__(self):
        p = "lensing"
        check_fields(self, p)
        if self.kind == "deflection_fits":
            if not (self.alpha_x_file and self.alpha_y_file):
                raise ConfigError(f"{p}.kind = 'deflection_fits' needs {p}.alpha_x_file and {p}.alpha_y_file")
            if self.alpha_redshift is None and self.z_lens is None:
                raise ConfigError(f"{p}.kind = 'deflection_fits' with D_ls/D_s = 1 maps (no "
                                  f"{p}.alpha_redshift) needs {p}.z_lens")
        if self.observer_model == "file" and not (self.observer_alpha_x_file and self.observer_alpha_y_file):
            raise ConfigError(f"{p}.observer_model = 'file' needs {p}.observer_alpha_x_file and "
                              f"{p}.observer_alpha_y_file")

    @property
    def lensed(self) -> bool:
        return self.kind != "none"

    def check_source(self, redshift: float) -> None:
        """ConfigError when the lens is not in front of a source at ``redshift`` (galaxy.redshift)."""
        if self.z_lens is not None and not self.z_lens < redshift:
            raise ConfigError(f"lensing.z_lens = {self.z_lens} must be < galaxy.redshift = {redshift} "
                              "(the lens lies in front of the galaxy)")
        if self.alpha_redshift is not None and self.z_lens is not None and not self.z_lens < self.alpha_redshift:
            raise ConfigError(f"lensing.z_lens = {self.z_lens} must be < lensing.alpha_redshift = "
                              f"{self.alpha_redshift}")


@dataclass(frozen=True, kw_only=True)
class LensingRecipe:
    """Source-plane recovery of a lensed galaxy (recipe table ``[lensing]``).

    Parameters
    ----------
    use : bool
        Trace every spaxel to the source plane with the observer's lens
        model (``recover(..., lens=...)``, ``--lens``): geometry fitted to
        the ray-traced reference-line map, radii measured in the source
        plane (Wang et al. 2022, Sect. 3.3; Wang et al. 2017, Sect. 4.2).
    """

    use: bool = bool_field(False)

    def __post_init__(self):
        check_fields(self, "lensing")


def _true_lens(cfg: LensingConfig, z_source: float, cosmology):
    from ..physics import lensing as pl

    if cfg.kind == "constant":
        return pl.ConstantLens(cfg.kappa, cfg.gamma1, cfg.gamma2, cfg.centre_x, cfg.centre_y)
    sie = pl.SIELens(cfg.theta_e, cfg.q, cfg.pa, cfg.centre_x, cfg.centre_y) \
        if cfg.kind in ("sie", "sie_shear") else None
    if cfg.kind == "sie":
        return sie
    if cfg.kind == "sie_shear":
        return pl.CompositeLens((sie, pl.ExternalShear(cfg.gamma_ext, cfg.phi_ext, cfg.centre_x, cfg.centre_y)))
    return pl.read_deflection_maps(cfg.alpha_x_file, cfg.alpha_y_file, unit=cfg.alpha_unit,
                                   scale=map_scale(cfg, z_source, cosmology))


def map_scale(cfg: LensingConfig, z_source: float, cosmology) -> float:
    """Factor from the maps' normalisation to D_ls/D_s of a source at ``z_source``."""
    from ..physics.lensing import distance_ratio

    if cfg.alpha_redshift is not None and cfg.z_lens is None:
        return 1.0  # maps normalised at the source redshift itself (checked by lens_from_config)
    norm = 1.0 if cfg.alpha_redshift is None else distance_ratio(cfg.z_lens, cfg.alpha_redshift, cosmology)
    return distance_ratio(cfg.z_lens, z_source, cosmology) / norm


def lens_from_config(cfg: LensingConfig, z_source: float, cosmology=None, *, observer: bool = False):
    """The lens a configuration describes (None when unlensed).

    Parameters
    ----------
    cfg : LensingConfig or None
    z_source : float
        The galaxy's redshift.
    cosmology : astropy.cosmology.Cosmology, optional
        For D_ls/D_s of deflection maps (default: flat LambdaCDM, H0 = 70, Om0 = 0.3).
    observer : bool
        The observer's model (``observer_model``) instead of the true lens.

    Returns
    -------
    mockzgrad.physics.lensing.Lens or None
    """
    from ..physics import lensing as pl
    from ..physics.cosmology import default_cosmology

    if cfg is None or not cfg.lensed:
        return None
    cosmology = cosmology or default_cosmology()
    if cfg.kind == "deflection_fits" and cfg.alpha_redshift is not None and cfg.z_lens is None:
        if cfg.alpha_redshift != z_source:
            raise ConfigError(f"lensing.alpha_redshift = {cfg.alpha_redshift} differs from galaxy.redshift = "
                              f"{z_source}: give lensing.z_lens to rescale the maps")
    if observer and cfg.observer_model == "file":
        return pl.read_deflection_maps(cfg.observer_alpha_x_file, cfg.observer_alpha_y_file,
                                       unit=cfg.alpha_unit, scale=map_scale(cfg, z_source, cosmology)
                                       if cfg.z_lens is not None else 1.0)
    lens = _true_lens(cfg, z_source, cosmology)
    if observer and cfg.observer_model == "scaled":
        return pl.ScaledLens(lens, 1.0 + cfg.observer_eps)
    return lens
