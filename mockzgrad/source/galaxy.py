"""Galaxy model: light profile, geometry, rotation, dispersion and Z(r).

A :class:`GalaxyModel` is resolved once from a :class:`~mockzgrad.config.GalaxyConfig`
(cosmology applied, automatic z0 chosen) and then evaluated as pure functions
of sky position. Conventions:

- Sky offsets ``x`` (towards east) and ``y`` (towards north) in arcsec from
  the field centre. In an image array with north up, east is to the left.
- ``pa``: position angle of the receding half of the major axis, degrees
  east of north.
- Radius ``r``: deprojected galactocentric radius in physical kpc. The disk
  is an oblate spheroid of intrinsic axis ratio ``q0``; its projection is an
  ellipse of axis ratio q = sqrt(cos^2 i + q0^2 sin^2 i), and the radius is
  the elliptical radius sqrt(x_maj^2 + (y_min/q)^2). For q0 = 0 this is the
  exact thin-disk deprojection; it is also what an observer computes from
  the measured axis ratio.
- Line-of-sight velocity v_los = V(r) sin i cos(phi), cos(phi) = x_maj / r
  (positive = receding).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

from ..physics import calibrations
from ..config import GalaxyConfig, LinesConfig, CosmologyConfig
from ..physics.cosmology import kpc_per_arcsec
from ..errors import CalibrationRangeWarning, ConfigError
from .lineflux import _leggauss, line_factors

__all__ = [
    "GalaxyModel",
    "resolve_galaxy",
    "sersic_bn",
    "exponential_disk_vcirc",
    "choose_z0",
    "pinned_z0",
    "outside_flux_share",
    "G_KPC_KMS2_MSUN",
]

#: Gravitational constant in kpc (km/s)^2 / Msun (astropy.constants.G converted).
G_KPC_KMS2_MSUN = 4.300917270036279e-06


def sersic_bn(n: float) -> float:
    """b_n such that r_eff encloses half the light of a Sersic profile.

    Solves gamma(2n, b_n) = Gamma(2n)/2 exactly (Ciotti & Bertin 1999 give
    series approximations; we invert the incomplete gamma function).
    """
    return float(special.gammaincinv(2.0 * n, 0.5))


def exponential_disk_vcirc(r_kpc, log_mbary: float, r_eff_kpc: float) -> np.ndarray:
    """Circular velocity of a razor-thin exponential disk (Freeman 1970), km/s.

    V^2(R) = 4 pi G Sigma0 Rd y^2 [I0(y) K0(y) - I1(y) K1(y)], y = R / (2 Rd),
    Sigma0 = M / (2 pi Rd^2), Rd = r_eff / b_1.

    Parameters
    ----------
    r_kpc : array_like
        Radius, kpc; >= 0.
    log_mbary : float
        log10 baryonic mass, Msun.
    r_eff_kpc : float
        Effective radius, kpc.
    """
    r = np.asarray(r_kpc, dtype=float)
    rd = r_eff_kpc / sersic_bn(1.0)
    mass = 10.0 ** log_mbary
    sigma0 = mass / (2.0 * math.pi * rd**2)
    y = np.maximum(r, 1e-12) / (2.0 * rd)
    # exponentially scaled Bessel functions: I(y)K(y) = ive(y) kve(y)
    bessel = special.ive(0, y) * special.kve(0, y) - special.ive(1, y) * special.kve(1, y)
    v2 = 4.0 * math.pi * G_KPC_KMS2_MSUN * sigma0 * rd * y**2 * bessel
    return np.sqrt(np.maximum(v2, 0.0)) * (r > 0)


@functools.lru_cache(maxsize=64)
def _vcirc_table(log_mbary: float, r_eff_kpc: float, r_top: float) -> tuple[np.ndarray, np.ndarray]:
    """ln(r) and V(r) (km/s) of :func:`exponential_disk_vcirc` on 4097 log-spaced nodes over
    [1e-6 r_top, r_top] kpc (read-only arrays, cached: they are the same for every sub-pixel pass)."""
    nodes = np.geomspace(1e-6 * r_top, r_top, 4097)
    log_nodes, v_nodes = np.log(nodes), exponential_disk_vcirc(nodes, log_mbary, r_eff_kpc)
    log_nodes.flags.writeable = False
    v_nodes.flags.writeable = False
    return log_nodes, v_nodes


def choose_z0(grad_z: float, r_max_kpc: float, ranges, *, profile_span=None) -> tuple[float, bool]:
    """Central metallicity that keeps Z(r) inside every validity range.

    The span of Z over [0, r_max] is centred in the intersection of the
    ranges. Returns (z0, fits); ``fits`` is False when the span is wider
    than the intersection (then Z is clipped at the edges).

    Parameters
    ----------
    grad_z : float
        Gradient, dex/kpc.
    r_max_kpc : float
        Largest radius that must stay valid, kpc.
    ranges : sequence of (float, float)
        Validity ranges in 12+log(O/H).
    profile_span : (float, float), optional
        (min, max) of Z(r) - z0 over [0, r_max]; default from the linear profile.
    """
    lo = max(r[0] for r in ranges)
    hi = min(r[1] for r in ranges)
    if hi <= lo:
        raise ConfigError(
            f"the generating calibrations' validity ranges do not overlap: "
            f"{[tuple(r) for r in ranges]}"
        )
    if profile_span is None:
        profile_span = (min(0.0, grad_z * r_max_kpc), max(0.0, grad_z * r_max_kpc))
    dmin, dmax = profile_span
    z0 = 0.5 * (lo + hi) - 0.5 * (dmin + dmax)
    return float(z0), (dmax - dmin) <= (hi - lo) + 1e-12


def pinned_z0(ranges) -> float:
    """Central metallicity at the centre of the intersection of the validity ranges (``z0_mode = "pinned"``).

    Parameters
    ----------
    ranges : sequence of (float, float)
        Validity ranges in 12+log(O/H).
    """
    lo = max(r[0] for r in ranges)
    hi = min(r[1] for r in ranges)
    if hi <= lo:
        raise ConfigError(
            f"the generating calibrations' validity ranges do not overlap: {[tuple(r) for r in ranges]}"
        )
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class GalaxyModel:
    """A resolved galaxy: plain floats in documented units.

    Attributes
    ----------
    redshift : float
    kpc_per_arcsec : float
        Proper kpc per arcsec at ``redshift``.
    r_eff : float
        Effective radius, kpc.
    r_eff_arcsec : float
        Effective radius, arcsec.
    sersic_n, sersic_bn : float
    inclination, pa : float
        Degrees.
    q0 : float
        Intrinsic axis ratio.
    axis_ratio : float
        Observed axis ratio q = sqrt(cos^2 i + q0^2 sin^2 i).
    x_offset, y_offset : float
        Centre offsets, arcsec (east, north).
    sigma0 : float
        Velocity dispersion, km/s.
    rotation_kind : str
    log_mbary, v0, vc, rt : float
        Rotation-curve parameters (Msun in log10, km/s, kpc).
    pressure_support : bool
    z_profile : str
    z0 : float
        12+log(O/H) at r = 0.
    grad_z : float
        dex/kpc.
    r_break, grad_z_outer : float
        Broken-linear parameters (NaN when unused).
    z0_auto : bool
        True when z0 was chosen automatically.
    z_valid_range : (float, float)
        Intersection of the generating calibrations' validity ranges.
    z0_mode : str
        How z0 was chosen: ``"given"``, ``"centred"`` or ``"pinned"``.
    r_fit : float
        R_fit (``galaxy.metallicity.r_valid``): radius out to which z0 was
        chosen to keep Z in range, in units of ``r_eff``.
    outside_range : str
        What the line model does where Z leaves a range (``lines.outside_range``).
    outside_flux_frac : tuple of (str, float)
        Per rendered line, the share of its intrinsic total flux emitted
        where Z(r) lies outside the common validity range (clipped or
        extrapolated there), :func:`outside_flux_share`.
    """

    redshift: float
    kpc_per_arcsec: float
    r_eff: float
    r_eff_arcsec: float
    sersic_n: float
    sersic_bn: float
    inclination: float
    pa: float
    q0: float
    axis_ratio: float
    x_offset: float
    y_offset: float
    sigma0: float
    rotation_kind: str
    log_mbary: float
    v0: float
    vc: float
    rt: float
    pressure_support: bool
    z_profile: str
    z0: float
    grad_z: float
    r_break: float
    grad_z_outer: float
    z0_auto: bool
    z_valid_range: tuple
    z0_mode: str = "centred"
    r_fit: float = 3.0
    outside_range: str = "clip"
    outside_flux_frac: tuple = ()

    # --- geometry -----------------------------------------------------------
    def disk_coords(self, x_arcsec, y_arcsec):
        """Deprojected radius (kpc) and cos(azimuth from the receding major axis).

        Parameters
        ----------
        x_arcsec, y_arcsec : array_like
            Sky offsets from the field centre, arcsec (east, north).
        """
        pa = math.radians(self.pa)
        dx = np.asarray(x_arcsec, dtype=float) - self.x_offset
        dy = np.asarray(y_arcsec, dtype=float) - self.y_offset
        x_maj = dx * math.sin(pa) + dy * math.cos(pa)
        y_min = -dx * math.cos(pa) + dy * math.sin(pa)
        q = max(self.axis_ratio, 1e-3)
        r_arcsec = np.hypot(x_maj, y_min / q)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_phi = np.where(r_arcsec > 0, x_maj / r_arcsec, 0.0)
        return r_arcsec * self.kpc_per_arcsec, cos_phi

    # --- light ------------------------------------------------------------
    def surface_brightness(self, r_kpc) -> np.ndarray:
        """Sersic surface brightness normalised to unit total flux, per arcsec^2.

        The projected profile is elliptical with axis ratio ``axis_ratio``,
        so the total is 2 pi n e^b Gamma(2n) / b^(2n) I_e r_eff^2 q.
        """
        n, b = self.sersic_n, self.sersic_bn
        re = self.r_eff_arcsec
        norm = 2.0 * math.pi * n * math.exp(b) * math.gamma(2.0 * n) / b ** (2.0 * n) * re**2
        norm *= max(self.axis_ratio, 1e-3)
        r_arcsec = np.asarray(r_kpc, dtype=float) / self.kpc_per_arcsec
        return np.exp(-b * ((r_arcsec / re) ** (1.0 / n) - 1.0)) / norm

    def enclosed_light_fraction(self, r_kpc) -> np.ndarray:
        """Fraction of the total light inside elliptical radius r (kpc)."""
        x = self.sersic_bn * (np.asarray(r_kpc, dtype=float) / self.r_eff) ** (1.0 / self.sersic_n)
        return special.gammainc(2.0 * self.sersic_n, x)

    def light_radius(self, fraction: float) -> float:
        """Elliptical radius (kpc) enclosing ``fraction`` of the light."""
        x = special.gammaincinv(2.0 * self.sersic_n, fraction)
        return float(self.r_eff * (x / self.sersic_bn) ** self.sersic_n)

    # --- kinematics -------------------------------------------------------
    def vrot(self, r_kpc) -> np.ndarray:
        """Rotation velocity V(r), km/s."""
        r = np.asarray(r_kpc, dtype=float)
        if self.rotation_kind == "arctan":
            v = self.v0 + (2.0 / math.pi) * self.vc * np.arctan(r / self.rt)
            return v
        if r.size > 4096:
            # V(r) is smooth in log r: tabulate on 4097 log-spaced nodes
            # (relative interpolation error < 2e-6; evenly spaced nodes cannot
            # follow V ~ r sqrt(ln(r_d/r)) near the centre) instead of Bessel
            # functions at every sub-pixel; below the first node, exactly. The
            # table reaches the next power of 2 above max(r) and is cached per
            # (mass, r_eff, reach), so the passes of a cube share one table
            log_nodes, v_nodes = _vcirc_table(self.log_mbary, self.r_eff,
                                              2.0 ** math.ceil(math.log2(max(float(np.max(r)), 1e-6))))
            r_min = math.exp(log_nodes[0])
            v = np.interp(np.log(np.maximum(r, r_min)), log_nodes, v_nodes)
            inner = r < r_min
            if inner.any():
                v[inner] = exponential_disk_vcirc(r[inner], self.log_mbary, self.r_eff)
        else:
            v = exponential_disk_vcirc(r, self.log_mbary, self.r_eff)
        if self.pressure_support:
            # asymmetric drift of a self-gravitating exponential disk with
            # constant sigma0 (Burkert et al. 2010, ApJ 725, 2324, Eq. 11):
            # V_rot^2 = V_c^2 - 2 sigma0^2 (r / r_d), r_d = r_eff / b_1
            rd = self.r_eff / sersic_bn(1.0)
            v = np.sqrt(np.maximum(v**2 - 2.0 * self.sigma0**2 * r / rd, 0.0))
        return v

    def vlos(self, r_kpc, cos_phi) -> np.ndarray:
        """Line-of-sight velocity V(r) sin(i) cos(phi), km/s (positive receding)."""
        return self.vrot(r_kpc) * math.sin(math.radians(self.inclination)) * np.asarray(cos_phi)

    # --- metallicity ------------------------------------------------------
    def metallicity(self, r_kpc) -> np.ndarray:
        """12 + log(O/H) at radius r (kpc), before any clipping to calibration ranges."""
        r = np.asarray(r_kpc, dtype=float)
        if self.z_profile == "broken_linear":
            inner = self.z0 + self.grad_z * np.minimum(r, self.r_break)
            return inner + self.grad_z_outer * np.maximum(r - self.r_break, 0.0)
        return self.z0 + self.grad_z * r

    def truth(self) -> dict:
        """All model parameters as a flat JSON-serialisable dict."""
        d = asdict(self)
        d["z_valid_range"] = list(self.z_valid_range)
        d["outside_flux_frac"] = dict(self.outside_flux_frac)
        d["outside_flux_frac_max"] = max((f for _, f in self.outside_flux_frac), default=0.0)
        return d


def _profile_span(cfg: GalaxyConfig, r_max: float) -> tuple[float, float]:
    m = cfg.metallicity
    if m.profile == "broken_linear":
        r = np.linspace(0.0, r_max, 2001)
        d = m.grad_z * np.minimum(r, m.r_break) + m.grad_z_outer * np.maximum(r - m.r_break, 0.0)
        return float(d.min()), float(d.max())
    return min(0.0, m.grad_z * r_max), max(0.0, m.grad_z * r_max)


def z0_mode(m) -> str:
    """The z0 mode of a :class:`~mockzgrad.config.galaxy.MetallicityConfig` (its default resolved)."""
    if m.z0_mode is not None:
        return m.z0_mode
    return "given" if m.z0 is not None else "centred"


def outside_flux_share(model: "GalaxyModel", lines: LinesConfig, *, n_nodes: int = 96) -> dict:
    """Share of each line's intrinsic flux emitted where Z(r) is outside the common validity range.

    Radial Gauss-Legendre quadrature of I(r) factor(Z(r)) 2 pi r over the
    whole disk (as :func:`mockzgrad.source.lineflux.analytic_line_totals`),
    the part where Z < lo or Z > hi of ``model.z_valid_range`` over the
    total. There the generating ratios are clipped or extrapolated
    (``lines.outside_range``).

    Returns
    -------
    dict
        Line name -> share in [0, 1].
    """
    lo, hi = model.z_valid_range
    r_hi = model.light_radius(1.0 - 1e-12)
    edges = [0.0] + [model.r_eff * 2.0**k for k in range(-2, 12) if model.r_eff * 2.0**k < r_hi] + [r_hi]
    if model.z_profile == "broken_linear" and 0.0 < model.r_break < r_hi:
        edges = sorted(set(edges) | {model.r_break})
    z_edges = [(zv - model.z0) / model.grad_z for zv in (lo, hi)] if model.grad_z != 0 else []
    edges = sorted(set(edges) | {r for r in z_edges if 0.0 < r < r_hi})  # a node segment never straddles lo/hi
    x, w = _leggauss(n_nodes)  # cached: an eigenvalue solve per call otherwise
    r = np.concatenate([0.5 * (b - a) * x + 0.5 * (a + b) for a, b in zip(edges[:-1], edges[1:])])
    wts = np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:])])
    z = model.metallicity(r)
    outside = (z < lo) | (z > hi)
    weight = wts * model.surface_brightness(r) * r
    fac = line_factors(lines, z, r_kpc=r)
    out = {}
    for line in lines.lines:
        total = float(np.sum(weight * fac[line]))
        out[line] = float(np.sum((weight * fac[line])[outside]) / total) if total > 0 else 0.0
    return out


def _central_metallicity(cfg: GalaxyConfig, lines: LinesConfig) -> tuple[float, bool, tuple[float, float]]:
    """z0 (given or chosen), whether it was chosen, and the generating calibrations' common range.

    Raises or warns, as :func:`resolve_galaxy` documents, when Z(r) leaves a range.
    """
    m = cfg.metallicity
    diags = [calibrations.get_diagnostic(k) for k in lines.generating_set]
    ranges = [d.valid_range for d in diags]
    r_max = m.r_valid * cfg.r_eff
    span = _profile_span(cfg, r_max)
    if ranges:
        valid = (max(r[0] for r in ranges), min(r[1] for r in ranges))
    else:
        valid = (-math.inf, math.inf)
    mode = z0_mode(m)
    if mode != "given" and not ranges:
        raise ConfigError("galaxy.metallicity.z0 must be given when lines.generating_set is empty")
    if mode == "centred":
        z0, fits = choose_z0(m.grad_z, r_max, ranges, profile_span=span)
    else:
        z0 = m.z0 if mode == "given" else pinned_z0(ranges)
        fits = z0 + span[0] >= valid[0] - 1e-12 and z0 + span[1] <= valid[1] + 1e-12
    z0_auto = mode != "given"
    zmin, zmax = z0 + span[0], z0 + span[1]
    for d in diags:
        lo, hi = d.valid_range
        if zmax < lo or zmin > hi:
            raise ConfigError(
                f"galaxy.metallicity: grad_z = {m.grad_z} dex/kpc with z0 = {z0:.3f} gives "
                f"Z(r) in [{zmin:.3f}, {zmax:.3f}] over 0-{r_max:.2f} kpc, entirely outside "
                f"{d.key}'s validity range [{lo}, {hi}]; choose z0 inside it or another calibration"
            )
    if not fits:
        if lines.outside_range == "raise":
            raise ConfigError(
                f"galaxy.metallicity: Z(r) spans [{zmin:.3f}, {zmax:.3f}] over 0-{r_max:.2f} kpc, "
                f"outside the generating calibrations' common validity range "
                f"[{valid[0]}, {valid[1]}] (lines.outside_range = 'raise')"
            )
        action = "clipped" if lines.outside_range == "clip" else "extrapolated"
        warnings.warn(
            f"Z(r) spans [{zmin:.3f}, {zmax:.3f}] over 0-{r_max:.2f} kpc (grad_z = {m.grad_z}, "
            f"z0 = {z0:.3f}), beyond the generating calibrations' common validity range "
            f"[{valid[0]}, {valid[1]}]; line ratios are {action} there",
            CalibrationRangeWarning,
            stacklevel=3,
        )
    return z0, z0_auto, valid


@functools.lru_cache(maxsize=256)
def _kpc_per_arcsec(redshift: float, cosmology: CosmologyConfig) -> float:
    """Proper kpc per arcsec at ``redshift`` (cached per redshift and frozen cosmology
    configuration: astropy's distance integral and units cost ~0.5 ms a call)."""
    return kpc_per_arcsec(redshift, cosmology.to_astropy())


def resolve_galaxy(cfg: GalaxyConfig, lines: LinesConfig, cosmology: CosmologyConfig | None = None
                   ) -> GalaxyModel:
    """Resolve a galaxy configuration into a :class:`GalaxyModel`.

    Applies the cosmology (kpc per arcsec at the redshift) and chooses z0
    when it is not given, so that Z(r) stays inside the validity range of
    every generating calibration out to ``r_valid * r_eff``.

    Raises
    ------
    ConfigError
        Z(r) over the light-carrying radii lies entirely outside a
        generating calibration's validity range, or ``outside_range = "raise"``
        and it leaves one.

    Warns
    -----
    CalibrationRangeWarning
        Z(r) leaves a validity range over part of the radii (the line ratios
        are then clipped or extrapolated as ``lines.outside_range`` says).
    """
    cosmology = cosmology or CosmologyConfig()
    scale = _kpc_per_arcsec(cfg.redshift, cosmology)
    m = cfg.metallicity
    z0, z0_auto, valid = _central_metallicity(cfg, lines)
    q = math.sqrt(math.cos(math.radians(cfg.inclination)) ** 2
                  + cfg.q0**2 * math.sin(math.radians(cfg.inclination)) ** 2)
    rot = cfg.rotation
    model = GalaxyModel(
        redshift=cfg.redshift,
        kpc_per_arcsec=scale,
        r_eff=cfg.r_eff,
        r_eff_arcsec=cfg.r_eff / scale,
        sersic_n=cfg.sersic_n,
        sersic_bn=sersic_bn(cfg.sersic_n),
        inclination=cfg.inclination,
        pa=cfg.pa,
        q0=cfg.q0,
        axis_ratio=q,
        x_offset=cfg.x_offset,
        y_offset=cfg.y_offset,
        sigma0=cfg.sigma0,
        rotation_kind=rot.kind,
        log_mbary=rot.log_mbary,
        v0=rot.v0,
        vc=rot.vc,
        rt=rot.rt,
        pressure_support=rot.pressure_support,
        z_profile=m.profile,
        z0=float(z0),
        grad_z=m.grad_z,
        r_break=float(m.r_break) if m.r_break is not None else math.nan,
        grad_z_outer=float(m.grad_z_outer) if m.grad_z_outer is not None else math.nan,
        z0_auto=z0_auto,
        z_valid_range=tuple(float(v) for v in valid),
        z0_mode=z0_mode(m),
        r_fit=float(m.r_valid),
        outside_range=lines.outside_range,
    )
    if not all(math.isfinite(v) for v in valid):
        return model
    shares = outside_flux_share(model, lines)
    return dataclasses.replace(model, outside_flux_frac=tuple((k, shares[k]) for k in lines.lines))
