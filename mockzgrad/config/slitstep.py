"""Configuration of the slit-stepping (MSA-3D-like) mode, ``[instrument.slitstep]``.

Every field left out takes its value from ``preset`` (default
``"nirspec_msa_g140h"``, the file ``mockzgrad/instruments/nirspec_msa_g140h.toml``
whose comments give each number's source: Ju et al., MSA-3D, Sect. 2.1-2.2;
Ferruit et al. 2022 and JDox for the shutter geometry). Conventions: the
dispersion direction is the cube's column axis (x, +column = west), the slit
runs along the rows (y, north); all lengths in arcsec on the sky.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from importlib import resources

from .. import validate
from ..errors import ConfigError, FieldOfViewWarning
from ..physics.lines import C_KMS
from .toml_io import parse_toml

__all__ = ["COMBINE_MODES", "DEFAULT_SLITSTEP_PRESET", "SlitstepConfig"]

#: How the cross-dispersion exposures of one dispersion step are combined, ``combine``.
COMBINE_MODES = ("median", "mean")
#: Preset that fills the fields left out.
DEFAULT_SLITSTEP_PRESET = "nirspec_msa_g140h"


@functools.lru_cache(maxsize=None)
def _preset(name: str) -> dict:
    names = sorted(p.name[:-5] for p in resources.files("mockzgrad.instruments").iterdir()
                   if p.name.endswith(".toml"))
    if name not in names:
        raise ConfigError(f"instrument.slitstep.preset = {name!r}; allowed: {', '.join(names)}")
    text = resources.files("mockzgrad.instruments").joinpath(f"{name}.toml").read_text()
    data = parse_toml(text, f"instrument preset {name}")
    if "slitstep" not in data:
        raise ConfigError(f"instrument.slitstep.preset = {name!r} has no [slitstep] table "
                          "(a spectral-grid preset, not a slit-stepping one)")
    return dict(data["slitstep"])


def _pair(field: str, value, lo: float, hi: float, unit: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{field} = {value!r}; expected two numbers [dispersion, cross-dispersion] {unit}")
    return tuple(validate.number(f"{field}[{k}]", v, lo, hi, lo_open=True, unit=unit) for k, v in enumerate(value))


def _gaps(field: str, value, band: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{field} = {value!r}; expected a list of [lo, hi] wavelength intervals, Angstrom")
    out = []
    for k, gap in enumerate(value):
        lo, hi = _pair(f"{field}[{k}]", gap, 0.0, 3e5, "Angstrom")
        if hi <= lo:
            raise ConfigError(f"{field}[{k}] = {list(gap)!r}; expected lo < hi, Angstrom")
        out.append([lo, hi])
    # kept as lists: config_to_dict turns the outer tuple into a list, the TOML round trip gives lists
    return tuple(sorted(out))


@dataclass(frozen=True, kw_only=True)
class SlitstepConfig:
    """NIRSpec-MSA-like slit stepping: shutters, steps, dithers, detector and cube.

    Parameters
    ----------
    preset : str
        Slit-stepping preset in ``mockzgrad/instruments/`` filling every field
        left out (default ``"nirspec_msa_g140h"``).
    shutter_open : [float, float]
        Open area of one shutter, arcsec, [along dispersion, along the slit];
        (0, 5] each.
    shutter_pitch : [float, float]
        Shutter pitch, arcsec; >= ``shutter_open`` (the difference is the wall).
    n_shutters : int
        Shutters in the slitlet (stacked along the slit); [1, 20].
    steps_disp : int
        Pointings along dispersion; [1, 50].
    step_disp : float
        Step along dispersion, arcsec; (0, 5]. A step wider than the shutter's
        open width leaves strips unsampled (warning).
    steps_cross : int
        Dithers along the slit; [1, 50].
    step_cross : float
        Dither step along the slit, arcsec; (0, 5].
    detector_pixel : float
        Detector pixel on the sky along the slit and along dispersion, arcsec; (0, 1].
    dispersion : float
        Detector pixel along dispersion, Angstrom per pixel; (0, 100].
    resolving_power : float
        Grating resolving power lambda / FWHM; sets the Gaussian grating LSF,
        sigma = c / (R 2 sqrt(2 ln 2)); (10, 1e5].
    band : [float, float]
        Observed band, Angstrom; lo < hi.
    gaps : list of [float, float]
        Wavelength intervals without data (detector gap), Angstrom.
    cube_pixel : float
        Spaxel of the reconstructed cube, arcsec; (0, shutter open width].
    combine : {"median", "mean"}
        How the cross-dispersion exposures of a dispersion step are combined.
    exptime_per_position : float
        Exposure time of one pointing (one of the ``steps_disp x
        steps_cross``), s; (0, 1e7]. The preset's 1166 s x 63 = 20.4 h is
        S1's total; S1's "117 min per position" is the effective time at one
        sky position, :attr:`exptime_effective`. Recorded (truth, EXPOSURES);
        the noise level comes from ``noise.snr`` or ``noise.sigma``.
    pathloss_correct : bool
        The observer's path-loss correction: divide each exposure by the
        fraction of a point source at the shutter centre that the open area
        transmits at each wavelength (the PSF grows with wavelength), as the
        MSA-3D post-processing corrects it per shutter position (S1; msa3d).
        False: the losses stay in the cube.
    catalog_pa_error, catalog_axis_ratio_error : float
        Offsets added to the true PA (deg) and b/a of the catalogue-like
        imaging geometry the mock writes for the observer; [-90, 90] and [-1, 1].
    """

    preset: str = DEFAULT_SLITSTEP_PRESET
    shutter_open: Sequence[float] | None = None
    shutter_pitch: Sequence[float] | None = None
    n_shutters: int | None = None
    steps_disp: int | None = None
    step_disp: float | None = None
    steps_cross: int | None = None
    step_cross: float | None = None
    detector_pixel: float | None = None
    dispersion: float | None = None
    resolving_power: float | None = None
    band: Sequence[float] | None = None
    gaps: Sequence[Sequence[float]] | None = None
    cube_pixel: float | None = None
    combine: str | None = None
    exptime_per_position: float | None = None
    pathloss_correct: bool = False
    catalog_pa_error: float = 0.0
    catalog_axis_ratio_error: float = 0.0

    def __post_init__(self):
        p = "instrument.slitstep"
        validate.text(f"{p}.preset", self.preset, empty=False)
        base = _preset(self.preset)
        for f in fields(self):
            if getattr(self, f.name) is None:
                if f.name not in base:
                    raise ConfigError(f"{p}.{f.name}: not given and not in preset {self.preset!r}")
                object.__setattr__(self, f.name, base[f.name])
        self._check(p)

    def __hash__(self):
        return hash(tuple(tuple(map(tuple, self.gaps)) if f.name == "gaps" else getattr(self, f.name)
                          for f in fields(self)))

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _check(self, p: str) -> None:
        num, integer = validate.number, validate.integer
        self._set("shutter_open", _pair(f"{p}.shutter_open", self.shutter_open, 0.0, 5.0, "arcsec"))
        self._set("shutter_pitch", _pair(f"{p}.shutter_pitch", self.shutter_pitch, 0.0, 5.0, "arcsec"))
        for k in range(2):
            if self.shutter_pitch[k] < self.shutter_open[k]:
                raise ConfigError(f"{p}.shutter_pitch[{k}] = {self.shutter_pitch[k]} arcsec; allowed >= "
                                  f"{p}.shutter_open[{k}] = {self.shutter_open[k]} arcsec")
        self._set("n_shutters", integer(f"{p}.n_shutters", self.n_shutters, 1, 20))
        self._set("steps_disp", integer(f"{p}.steps_disp", self.steps_disp, 1, 50))
        self._set("steps_cross", integer(f"{p}.steps_cross", self.steps_cross, 1, 50))
        self._set("step_disp", num(f"{p}.step_disp", self.step_disp, 0.0, 5.0, lo_open=True, unit="arcsec"))
        self._set("step_cross", num(f"{p}.step_cross", self.step_cross, 0.0, 5.0, lo_open=True, unit="arcsec"))
        self._set("detector_pixel", num(f"{p}.detector_pixel", self.detector_pixel, 0.0, 1.0, lo_open=True,
                                        unit="arcsec"))
        self._set("dispersion", num(f"{p}.dispersion", self.dispersion, 0.0, 100.0, lo_open=True, unit="Angstrom"))
        self._set("resolving_power", num(f"{p}.resolving_power", self.resolving_power, 10.0, 1e5, lo_open=True))
        band = _pair(f"{p}.band", self.band, 900.0, 3e5, "Angstrom")
        if band[1] <= band[0]:
            raise ConfigError(f"{p}.band = {list(band)!r} Angstrom; expected lo < hi")
        self._set("band", band)
        self._set("gaps", _gaps(f"{p}.gaps", self.gaps, band))
        width = self.shutter_open[0]
        self._set("cube_pixel", num(f"{p}.cube_pixel", self.cube_pixel, 0.0, width, lo_open=True, unit="arcsec"))
        self._set("combine", validate.choice(f"{p}.combine", self.combine, COMBINE_MODES))
        self._set("exptime_per_position", num(f"{p}.exptime_per_position", self.exptime_per_position, 0.0, 1e7,
                                              lo_open=True, unit="s"))
        self._set("pathloss_correct", validate.boolean(f"{p}.pathloss_correct", self.pathloss_correct))
        self._set("catalog_pa_error", num(f"{p}.catalog_pa_error", self.catalog_pa_error, -90.0, 90.0, unit="deg"))
        self._set("catalog_axis_ratio_error", num(f"{p}.catalog_axis_ratio_error", self.catalog_axis_ratio_error,
                                                  -1.0, 1.0))
        if self.steps_disp > 1 and self.step_disp > width * (1.0 + 1e-9):
            frac = 1.0 - width / self.step_disp
            warnings.warn(f"{p}.step_disp = {self.step_disp} arcsec exceeds the shutter's open width {width} arcsec: "
                          f"{100 * frac:.1f} % of the field along dispersion is never sampled",
                          FieldOfViewWarning, stacklevel=4)

    @property
    def lsf_sigma(self) -> float:
        """Gaussian grating LSF sigma, km/s: c / (resolving_power 2 sqrt(2 ln 2))."""
        return C_KMS / (self.resolving_power * 2.0 * math.sqrt(2.0 * math.log(2.0)))

    @property
    def exptime_total(self) -> float:
        """Exposure time of all ``steps_disp x steps_cross`` pointings, s."""
        return self.exptime_per_position * self.steps_disp * self.steps_cross

    @property
    def exptime_effective(self) -> float:
        """Mean exposure time at one sky position inside the field, s.

        The pointings in which the position lies in an open shutter: along
        dispersion ``shutter_open[0] / step_disp`` of the steps (1 with one
        step), along the slit ``shutter_open[1] / shutter_pitch[1]`` of the
        ``steps_cross`` dithers (the walls), averaged over positions. The
        preset: 1166 s x 1 x 7 x 0.46 / 0.53 = 118 min, S1's "117 min per
        position" (Sect. 2.1).
        """
        disp = self.shutter_open[0] / self.step_disp if self.steps_disp > 1 else 1.0
        return self.exptime_per_position * disp * self.steps_cross * self.shutter_open[1] / self.shutter_pitch[1]

    @property
    def slit_length(self) -> float:
        """Length of the slitlet along the slit, arcsec: ``n_shutters`` pitches."""
        return self.n_shutters * self.shutter_pitch[1]
