"""Configuration of the line model: which lines are made, their fluxes and the dust on them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..physics.dust import LAWS
from ..physics.lines import NII_DOUBLET_RATIO, OII_DOUBLET_RATIO, OIII_DOUBLET_RATIO, SII_DOUBLET_RATIO
from ._checks import calibration_keys, check_fields, choice_field, line_field, line_name, number_field, strings_field

__all__ = [
    "DUST_LAWS",
    "OUTSIDE_RANGE_POLICIES",
    "RATIO_SCATTER_MODES",
    "FLAGSHIP_LINES",
    "DustConfig",
    "LinesConfig",
]

#: Attenuation curves, ``lines.dust.law`` and ``dust.law`` (:data:`mockzgrad.physics.dust.LAWS`).
DUST_LAWS = LAWS
#: What to do where Z(r) leaves a calibration's range, ``lines.outside_range``.
OUTSIDE_RANGE_POLICIES = ("clip", "extrapolate", "raise")
#: How the calibrations' intrinsic scatter is drawn, ``lines.ratio_scatter``.
RATIO_SCATTER_MODES = ("none", "per_mock", "per_ring", "per_spaxel")
#: Lines of the flagship z = 5 mock, the default ``lines.lines``.
FLAGSHIP_LINES = ("OII_3727", "OII_3730", "NeIII_3870", "Hb", "OIII_4960", "OIII_5008")


@dataclass(frozen=True, kw_only=True)
class DustConfig:
    """Dust attenuation applied to the generated line fluxes.

    Parameters
    ----------
    law : {"calzetti2000", "cardelli1989", "battisti2022"}
        Attenuation curve.
    a_v : float
        V-band attenuation at the centre, mag; [0, 10]. 0 = no dust.
    a_v_grad : float
        Radial slope of A_V, mag/kpc; [-5, 5]. A_V(r) = max(0, a_v + a_v_grad r).
    """

    law: str = choice_field("calzetti2000", DUST_LAWS)
    a_v: float = number_field(0.0, 0.0, 10.0, unit="mag")
    a_v_grad: float = number_field(0.0, -5.0, 5.0, unit="mag/kpc")

    def __post_init__(self):
        check_fields(self, "lines.dust")


def _ratio_field(default):
    return number_field(default, 0.0, 10.0, lo_open=True)


@dataclass(frozen=True, kw_only=True)
class LinesConfig:
    """Which lines are made and how their fluxes follow from Z(r).

    Parameters
    ----------
    reference_line : str
        Line that follows the light profile (e.g. ``"OIII_5008"`` at z ~ 5,
        ``"Ha"`` at z ~ 1-2).
    reference_flux : float
        Total (spatially integrated, intrinsic) flux of the reference line,
        erg/s/cm^2; (0, 1e-5].
    lines : tuple of str
        Lines rendered into the cube.
    generating_set : tuple of str
        Calibration diagnostics (keys such as ``"S25_R3"``) that give every
        other line relative to the reference line. Together with the fixed
        doublet and Balmer ratios they must determine each rendered line
        exactly once.
    oiii_doublet_ratio, nii_doublet_ratio, oii_doublet_ratio, sii_doublet_ratio : float
        [OIII] 5008/4960, [NII] 6585/6550, [OII] 3730/3727, [SII] 6718/6733
        flux ratios; (0, 10] (see :mod:`mockzgrad.physics.lines` for their sources).
    outside_range : {"clip", "extrapolate", "raise"}
        What to do where Z(r) leaves a generating calibration's validity
        range: evaluate at the clipped Z (default, with a warning),
        extrapolate the published form, or refuse.
    ratio_scatter : {"none", "per_mock", "per_ring", "per_spaxel"}
        Perturb each generating log ratio by a Gaussian draw of its
        calibration's intrinsic scatter: once per mock (coherent over the
        disk), once per ring of deprojected width ``ratio_scatter_ring``
        (independent between annuli of that width, as a chi^2 with the
        scatter term assumes), or once per spaxel; the draws are recorded
        in the truth (per mock and per ring).
    ratio_scatter_ring : float
        Ring width for ``per_ring``, kpc; (0, 100].
    logu : float
        log10 of the dimensionless ionisation parameter U used by generating
        calibrations that need one (the Kewley et al. 2019 surfaces, e.g.
        ``K19_N2O2``), uniform over the disk; [-4, -1], default -2.5 (the
        recovery recipes' default ``metallicity.logu``, so a mock made and
        recovered with defaults is self-consistent). It must lie inside the
        ``logu_range`` of every such calibration of ``generating_set``;
        ignored when none needs log U.
    dust : DustConfig
    """

    reference_line: str = line_field("OIII_5008")
    reference_flux: float = number_field(1.0e-16, 0.0, 1e-5, lo_open=True, unit="erg/s/cm^2")
    lines: tuple[str, ...] = strings_field(FLAGSHIP_LINES, each=line_name)
    generating_set: tuple[str, ...] = strings_field(("S25_R3", "S25_O32", "S25_Ne3O2"))
    oiii_doublet_ratio: float = _ratio_field(OIII_DOUBLET_RATIO)
    nii_doublet_ratio: float = _ratio_field(NII_DOUBLET_RATIO)
    oii_doublet_ratio: float = _ratio_field(OII_DOUBLET_RATIO)
    sii_doublet_ratio: float = _ratio_field(SII_DOUBLET_RATIO)
    outside_range: str = choice_field("clip", OUTSIDE_RANGE_POLICIES)
    ratio_scatter: str = choice_field("none", RATIO_SCATTER_MODES)
    ratio_scatter_ring: float = number_field(0.5, 0.0, 100.0, lo_open=True, unit="kpc")
    logu: float = number_field(-2.5, -4.0, -1.0)
    dust: DustConfig = field(default_factory=DustConfig)

    def __post_init__(self):
        p = "lines"
        check_fields(self, p)
        if not self.lines:
            raise ConfigError(f"{p}.lines = []: at least one line must be rendered")
        if len(set(self.lines)) != len(self.lines):
            raise ConfigError(f"{p}.lines = {list(self.lines)}: a line is listed twice")
        self._check_generating_set()

    def _check_generating_set(self):
        """Unknown or unusable calibration keys are user mistakes: say so here."""
        known = calibration_keys("lines.generating_set", self.generating_set)
        for key in self.generating_set:
            diag = known[key]
            if not diag.usable:
                raise ConfigError(
                    f"lines.generating_set: calibration {key!r} has status {diag.status} and is not "
                    f"usable for generating lines ({diag.notes.strip()[:160]})"
                )
            if diag.needs_logu and diag.logu_range is not None:
                lo, hi = diag.logu_range
                if not lo <= self.logu <= hi:
                    raise ConfigError(
                        f"lines.logu = {self.logu}: outside the log U range [{lo}, {hi}] of the "
                        f"generating calibration {key!r}"
                    )
