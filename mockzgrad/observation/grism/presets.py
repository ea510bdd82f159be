"""From ``[instrument.grism]`` and its preset(s) to one :class:`GrismDispersion` per exposure.

The preset files (``mockzgrad/instruments/{niriss_gr150,wfc3_g102,wfc3_g141}.toml``)
hold the native dispersion (A per native pixel), native pixel scale, trace
tilt, dispersion angle and filter ranges, each with its source; they are read
and checked by :func:`mockzgrad.config.grism.grism_preset`. Here the native
dispersion is rescaled to the map pixel scale:
``dispersion_map = dispersion_native x dispersion_scale x pixel_scale / native_pixel_scale``
(e.g. NIRISS 47.8 A per 0.0653" pixel -> 21.96 A per 0.03" map pixel).
"""

from __future__ import annotations

from ...config.grism import ExposureConfig, GrismConfig
from .dispersion import GrismDispersion, read_grismconf

__all__ = ["exposure_dispersion", "filter_range"]


def filter_range(gcfg: GrismConfig, name: str) -> tuple[float, float]:
    """Wavelength range (Angstrom) of filter ``name`` of the configured preset(s)."""
    f = gcfg.preset_table()["filters"][name]
    return float(f["wave_min"]), float(f["wave_max"])


def exposure_dispersion(gcfg: GrismConfig, exp: ExposureConfig, pixel_scale: float) -> GrismDispersion:
    """The nominal trace and sensitivity of one exposure on the map grid (no frame yet).

    Parameters
    ----------
    gcfg : GrismConfig
    exp : ExposureConfig
    pixel_scale : float
        Map pixel scale, arcsec (``instrument.pixel_scale``).

    Returns
    -------
    GrismDispersion
        ``wave_ref`` is the filter's central wavelength (or the GRISMCONF trace's
        wavelength at dx = 0, ``instrument.grism.conf``); size its frame with
        :func:`~mockzgrad.observation.grism.dispersion.make_frame`.
    """
    table = gcfg.preset_table()
    gr, f = table["grisms"][exp.grism], table["filters"][exp.filter]
    lo, hi = float(f["wave_min"]), float(f["wave_max"])
    native, tilt, wave_ref, turn = float(gr["dispersion"]), float(gr.get("tilt", 0.0)), 0.5 * (lo + hi), 0.0
    if exp.grism in gcfg.conf:  # the user's GRISMCONF trace replaces the preset's
        c = read_grismconf(gcfg.conf[exp.grism])
        native, tilt, wave_ref = c["dispersion"], c["tilt"], c["wave_ref"]
        turn = 0.0 if c["direction"] > 0 else 180.0
    disp = native * gcfg.dispersion_scale * pixel_scale / float(gr["pixel_scale"])
    return GrismDispersion(
        grism=exp.grism, filter=exp.filter, pa=float(exp.pa),
        pa_disp=float((exp.pa + float(gr.get("dispersion_angle", 0.0)) + turn) % 360.0),
        dispersion=disp, wave_ref=wave_ref, tilt=tilt,
        sens_peak=float(gcfg.sensitivity_peak or 1.0), sens_lo=lo, sens_hi=hi,
        sens_taper=min(float(f.get("taper", 0.0)), 0.5 * (hi - lo)), pixel_scale=pixel_scale)
