"""Configuration of the disk galaxy: light profile, geometry, rotation, metallicity."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ._checks import bool_field, check_fields, choice_field, number_field

__all__ = ["ROTATION_KINDS", "Z_PROFILES", "Z0_MODES", "RotationConfig", "MetallicityConfig", "GalaxyConfig"]

#: Rotation-curve forms, ``galaxy.rotation.kind``.
ROTATION_KINDS = ("exponential_disk", "arctan")
#: Metallicity profiles, ``galaxy.metallicity.profile``.
Z_PROFILES = ("linear", "broken_linear")
#: How z0 is chosen, ``galaxy.metallicity.z0_mode`` (None: "given" when z0 is set, else "centred").
Z0_MODES = ("given", "centred", "pinned")


@dataclass(frozen=True, kw_only=True)
class RotationConfig:
    """Rotation curve.

    Parameters
    ----------
    kind : {"exponential_disk", "arctan"}
        ``"exponential_disk"``: circular velocity of a razor-thin exponential
        disk of baryonic mass ``10**log_mbary`` and the galaxy's ``r_eff``
        (Freeman 1970). ``"arctan"``: V(R) = v0 + (2/pi) vc arctan(R/rt).
    log_mbary : float
        log10 of the baryonic mass, Msun; [6, 13].
    pressure_support : bool
        Subtract the asymmetric-drift term of a self-gravitating exponential
        disk of constant ``sigma0`` (Burkert et al. 2010):
        V^2 = Vc^2 - 3.36 sigma0^2 (R / r_eff); clipped at zero.
    v0 : float
        Arctan offset velocity, km/s; [-1000, 1000].
    vc : float
        Arctan asymptotic amplitude, km/s; [0, 1000].
    rt : float
        Arctan turnover radius, kpc; (0, 100].
    """

    kind: str = choice_field("exponential_disk", ROTATION_KINDS)
    log_mbary: float = number_field(10.5, 6.0, 13.0, unit="log Msun")
    pressure_support: bool = bool_field(False)
    v0: float = number_field(0.0, -1000.0, 1000.0, unit="km/s")
    vc: float = number_field(200.0, 0.0, 1000.0, unit="km/s")
    rt: float = number_field(1.0, 0.0, 100.0, lo_open=True, unit="kpc")

    def __post_init__(self):
        check_fields(self, "galaxy.rotation")


@dataclass(frozen=True, kw_only=True)
class MetallicityConfig:
    """Radial gas-phase metallicity Z(r) = 12 + log(O/H).

    Parameters
    ----------
    profile : {"linear", "broken_linear"}
        ``linear``: Z = z0 + grad_z r. ``broken_linear``: slope ``grad_z``
        inside ``r_break`` and ``grad_z_outer`` outside, continuous.
    grad_z : float
        Gradient, dex/kpc, on the deprojected radius; [-1, 1].
    z0 : float or None
        Z at r = 0, dex; [6.5, 9.8]. None: chosen as ``z0_mode`` says.
    z0_mode : {"given", "centred", "pinned"} or None
        How z0 is chosen. ``"given"``: ``z0`` (required). ``"centred"``:
        the span of Z(r) over 0..``r_valid`` r_eff is centred in the
        intersection of the generating calibrations' validity ranges
        (DESIGN.md; positive and negative gradients then sit on different
        parts of the calibrations). ``"pinned"``: Z(0) at the centre of that
        intersection, whatever the gradient (both signs start from the same
        Z). None (default): ``"given"`` when ``z0`` is set, else ``"centred"``.
    r_break : float or None
        Break radius, kpc; (0, 100] (broken_linear only).
    grad_z_outer : float or None
        Outer gradient, dex/kpc; [-1, 1] (broken_linear only).
    r_valid : float
        R_fit: radius out to which Z must stay inside the calibrations'
        validity ranges, in units of ``r_eff``; (0, 10]. Beyond it (or where
        a given or pinned z0 leaves a range) ``lines.outside_range`` says
        what happens: clip, extrapolate the calibration, or refuse.
    """

    profile: str = choice_field("linear", Z_PROFILES)
    grad_z: float = number_field(-0.10, -1.0, 1.0, unit="dex/kpc")
    z0: float | None = number_field(None, 6.5, 9.8, unit="(12+log(O/H))")
    z0_mode: str | None = choice_field(None, Z0_MODES)
    r_break: float | None = number_field(None, 0.0, 100.0, lo_open=True, unit="kpc")
    grad_z_outer: float | None = number_field(None, -1.0, 1.0, unit="dex/kpc")
    r_valid: float = number_field(3.0, 0.0, 10.0, lo_open=True, unit="r_eff")

    def __post_init__(self):
        p = "galaxy.metallicity"
        check_fields(self, p)
        if self.z0_mode == "given" and self.z0 is None:
            raise ConfigError(f"{p}.z0_mode = 'given' needs {p}.z0 (12+log(O/H), [6.5, 9.8])")
        if self.z0_mode in ("centred", "pinned") and self.z0 is not None:
            raise ConfigError(f"{p}.z0 = {self.z0} is given but {p}.z0_mode = {self.z0_mode!r} chooses z0; "
                              f"drop one of them")
        if self.profile == "broken_linear" and (self.r_break is None or self.grad_z_outer is None):
            raise ConfigError(
                f"{p}.profile = 'broken_linear' needs {p}.r_break (kpc) and {p}.grad_z_outer (dex/kpc)"
            )


@dataclass(frozen=True, kw_only=True)
class GalaxyConfig:
    """Disk galaxy: light profile, geometry, kinematics, metallicity.

    Parameters
    ----------
    redshift : float
        Redshift; (0, 20].
    r_eff : float
        Effective (half-light) radius of the Sersic light profile, kpc; (0, 100].
    sersic_n : float
        Sersic index; [0.3, 8]. 1 = exponential disk.
    inclination : float
        Inclination, deg; [0, 90]. 0 = face-on.
    pa : float
        Position angle of the receding major axis, deg east of north; [-360, 360].
    q0 : float
        Intrinsic axial ratio of the disk (thickness); [0, 1). Observed axis
        ratio is sqrt(cos^2 i + q0^2 sin^2 i).
    x_offset, y_offset : float
        Offset of the centre from the field centre, arcsec (x towards east,
        y towards north); [-60, 60].
    sigma0 : float
        Intrinsic velocity dispersion, km/s; [0, 500].
    rotation : RotationConfig
    metallicity : MetallicityConfig
    """

    redshift: float = number_field(5.0, 0.0, 20.0, lo_open=True)
    r_eff: float = number_field(2.0, 0.0, 100.0, lo_open=True, unit="kpc")
    sersic_n: float = number_field(1.0, 0.3, 8.0)
    inclination: float = number_field(20.0, 0.0, 90.0, unit="deg")
    pa: float = number_field(0.0, -360.0, 360.0, unit="deg")
    q0: float = number_field(0.0, 0.0, 1.0, hi_open=True)
    x_offset: float = number_field(0.0, -60.0, 60.0, unit="arcsec")
    y_offset: float = number_field(0.0, -60.0, 60.0, unit="arcsec")
    sigma0: float = number_field(80.0, 0.0, 500.0, unit="km/s")
    rotation: RotationConfig = field(default_factory=RotationConfig)
    metallicity: MetallicityConfig = field(default_factory=MetallicityConfig)

    def __post_init__(self):
        check_fields(self, "galaxy")
