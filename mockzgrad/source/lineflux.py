"""Line fluxes from Z(r): the reference line times calibrated ratios.

Lines are grouped by fixed intrinsic ratios (doublets; case-B Balmer lines),
so each group has one free amplitude, its total flux (for the Balmer group,
the Hbeta flux). The reference line fixes its group's amplitude; each
diagnostic of the *generating set* is one linear equation in the log
amplitudes,

    log R(Z) = sum_j w_j [log A_num(j) + log f_num(j) - log A_den(j) - log f_den(j)],

where f are the within-group fractions. The set must determine every group
of a rendered line exactly once: the system is square and solved once, then
applied to the log ratios at every position. Diagnostics whose ratio is a
sum of ratios (Curti et al. 2020 RS32) cannot generate lines.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from ..physics import calibrations, dust
from ..config import LinesConfig
from ..errors import ConfigError
from ..physics.lines import BALMER_RATIOS, LINES

__all__ = ["lines_truth", "LineGroups", "line_groups", "GeneratingSystem", "generating_system", "line_factors",
           "analytic_line_totals", "draw_ratio_offsets"]


@dataclass(frozen=True)
class LineGroups:
    """Line groups with fixed internal ratios.

    Attributes
    ----------
    group_of : dict
        Line name -> group name.
    fraction : dict
        Line name -> flux of the line / group amplitude.
    """

    group_of: dict
    fraction: dict

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.group_of.values()))


def line_groups(cfg: LinesConfig) -> LineGroups:
    """Groups and within-group fractions for the ratios in ``cfg``."""
    group_of, fraction = {}, {}

    def doublet(group, weak, strong, ratio):
        group_of[weak] = group_of[strong] = group
        fraction[strong] = ratio / (1.0 + ratio)
        fraction[weak] = 1.0 / (1.0 + ratio)

    doublet("OII", "OII_3727", "OII_3730", cfg.oii_doublet_ratio)
    doublet("OIII", "OIII_4960", "OIII_5008", cfg.oiii_doublet_ratio)
    doublet("NII", "NII_6550", "NII_6585", cfg.nii_doublet_ratio)
    doublet("SII", "SII_6733", "SII_6718", cfg.sii_doublet_ratio)
    for name, ratio in BALMER_RATIOS.items():  # amplitude = Hbeta flux
        group_of[name] = "HI"
        fraction[name] = ratio
    for name in LINES:
        if name not in group_of:
            group_of[name] = name
            fraction[name] = 1.0
    return LineGroups(group_of, fraction)


@functools.lru_cache(maxsize=64)
def _line_groups(cfg: LinesConfig) -> LineGroups:
    """:func:`line_groups` cached per (frozen) configuration, for :func:`line_factors`, which
    only reads it (several calls per cube)."""
    return line_groups(cfg)


@dataclass(frozen=True)
class GeneratingSystem:
    """The solved generating set: log A = const + M @ log R.

    Attributes
    ----------
    groups : tuple of str
        Groups with a determined amplitude (reference group first).
    offset : ndarray, shape (n_groups,)
        log10 amplitude relative to the reference line's flux when all log
        ratios are zero.
    matrix : ndarray, shape (n_groups, n_diagnostics)
        Sensitivity of each log amplitude to each diagnostic's log ratio.
    diagnostics : tuple
        The generating :class:`~mockzgrad.physics.calibrations.Diagnostic` objects.
    """

    groups: tuple
    offset: np.ndarray
    matrix: np.ndarray
    diagnostics: tuple


def _group_sum(side: dict, lg: LineGroups, key: str):
    groups = {lg.group_of[line] for line in side}
    if len(groups) != 1:
        raise ConfigError(
            f"lines.generating_set: {key} sums lines from several groups ({sorted(side)}); "
            "only ratios of single line groups can generate lines"
        )
    return groups.pop(), sum(w * lg.fraction[line] for line, w in side.items())


def generating_system(cfg: LinesConfig) -> GeneratingSystem:
    """Solve the generating set for the group amplitudes (cached per
    configuration and state of the calibration directories)."""
    return _generating_system(cfg, calibrations._dirs_key(()))


@functools.lru_cache(maxsize=64)
def _generating_system(cfg: LinesConfig, _dirs) -> GeneratingSystem:
    """Solve the generating set for the group amplitudes.

    Raises
    ------
    ConfigError
        A rendered line's group is not determined, a group is determined
        twice (the set is over-determined), or a diagnostic cannot generate.
    """
    lg = line_groups(cfg)
    diags = tuple(calibrations.get_diagnostic(k) for k in cfg.generating_set)
    ref_group = lg.group_of[cfg.reference_line]
    needed = {lg.group_of[line] for line in cfg.lines}
    rows, rhs_const = [], []
    involved = {ref_group}
    for d in diags:
        row, const = {}, 0.0
        for term in d.ratio["terms"]:
            if len(term["parts"]) != 1:
                raise ConfigError(
                    f"lines.generating_set: {d.key} is a sum of ratios and cannot generate lines"
                )
            part = term["parts"][0]
            w = float(term["weight"])
            gn, fn = _group_sum(part["numerator"], lg, d.key)
            gd, fd = _group_sum(part["denominator"], lg, d.key)
            row[gn] = row.get(gn, 0.0) + w
            row[gd] = row.get(gd, 0.0) - w
            const += w * (math.log10(fn) - math.log10(fd))
        row = {g: c for g, c in row.items() if abs(c) > 1e-12}
        if not row:
            raise ConfigError(f"lines.generating_set: {d.key} relates a group to itself")
        rows.append(row)
        rhs_const.append(const)
        involved |= set(row)
    groups = [ref_group] + sorted(involved - {ref_group})
    n = len(groups)
    if len(rows) != n - 1:
        raise ConfigError(
            f"lines.generating_set = {list(cfg.generating_set)} relates {n} line groups "
            f"({', '.join(groups)}) with {len(rows)} ratios; exactly {n - 1} independent ratios "
            "are needed (one per group besides the reference line's)"
        )
    a = np.zeros((n, n))
    a[0, 0] = 1.0
    for i, row in enumerate(rows, start=1):
        for g, c in row.items():
            a[i, groups.index(g)] = c
    if abs(np.linalg.det(a)) < 1e-10:
        raise ConfigError(
            f"lines.generating_set = {list(cfg.generating_set)} does not determine every group "
            "independently (two ratios say the same thing)"
        )
    missing = needed - set(groups)
    if missing:
        lines_missing = sorted(line for line in cfg.lines if lg.group_of[line] in missing)
        raise ConfigError(
            f"lines.lines: {', '.join(lines_missing)} cannot be generated: no ratio in "
            f"lines.generating_set = {list(cfg.generating_set)} links them to the reference line "
            f"{cfg.reference_line}"
        )
    inv = np.linalg.inv(a)
    # right-hand side: [log A_ref, logR_1 - c_1, ...]; A_ref = F_ref / f_ref with F_ref = 1
    b0 = np.concatenate([[-math.log10(lg.fraction[cfg.reference_line])], -np.asarray(rhs_const)])
    return GeneratingSystem(tuple(groups), inv @ b0, inv[:, 1:], diags)


def draw_ratio_offsets(cfg: LinesConfig, rng: np.random.Generator, shape=()) -> dict:
    """Gaussian perturbations of each generating log ratio by its intrinsic scatter.

    Diagnostics with no published scatter in log ratio get zero offsets.
    Returns a dict key -> array of ``shape`` (dex).
    """
    out = {}
    for key in cfg.generating_set:
        d = calibrations.get_diagnostic(key)
        sigma = d.sigma_ratio or 0.0
        out[key] = rng.normal(0.0, sigma, size=shape) if sigma > 0 else np.zeros(shape)
    return out


def line_factors(cfg: LinesConfig, z, *, r_kpc=None, ratio_offsets=None, logu=None) -> dict:
    """Flux of each rendered line relative to the reference line's intrinsic flux.

    Parameters
    ----------
    cfg : LinesConfig
    z : array_like
        12+log(O/H) at each position.
    r_kpc : array_like, optional
        Radius, kpc (needed for a radial A_V profile).
    ratio_offsets : dict, optional
        Additive offsets (dex) of each generating log ratio (calibration scatter).
    logu : float, optional
        log10 U for calibrations that need one; default ``cfg.logu``.

    Returns
    -------
    dict
        Line name -> array of factors, dust attenuation included.
    """
    z = np.asarray(z, dtype=float)
    logu = cfg.logu if logu is None else logu
    system = generating_system(cfg)
    lg = _line_groups(cfg)
    log_r = []
    for d in system.diagnostics:
        zz = z if cfg.outside_range == "extrapolate" else np.clip(z, *d.valid_range)
        lr = d.log_ratio(zz, policy="ignore", logu=logu)
        if ratio_offsets is not None:
            lr = lr + ratio_offsets.get(d.key, 0.0)
        log_r.append(lr)
    out, group_flux = {}, {}
    for line in cfg.lines:
        g = system.groups.index(lg.group_of[line])
        if g not in group_flux:  # lines of one group (a doublet) share 10**log_a
            log_a = system.offset[g] + sum(system.matrix[g, j] * log_r[j] for j in range(len(log_r)))
            group_flux[g] = np.broadcast_to(10.0 ** log_a, z.shape)
        out[line] = group_flux[g] * lg.fraction[line]
    if cfg.dust.a_v > 0 or cfg.dust.a_v_grad != 0:
        a_v = cfg.dust.a_v
        if cfg.dust.a_v_grad != 0:
            if r_kpc is None:
                raise ConfigError("lines.dust.a_v_grad needs radii (r_kpc)")
            a_v = np.maximum(cfg.dust.a_v + cfg.dust.a_v_grad * np.asarray(r_kpc), 0.0)
        for line in cfg.lines:
            out[line] = dust.redden(out[line], LINES[line].wavelength, a_v, law=cfg.dust.law)
    return out


@functools.lru_cache(maxsize=8)
def _leggauss(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: an eigenvalue solve per call otherwise)."""
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    x.flags.writeable = False
    w.flags.writeable = False
    return x, w


def analytic_line_totals(model, cfg: LinesConfig, *, ratio_offsets=None, n_nodes: int = 96) -> dict:
    """Total flux of every line, erg/s/cm^2, by radial quadrature of the model.

    Integrates reference_flux * I(r) * factor(Z(r)) * 2 pi r q dr over the
    elliptical disk with composite Gauss-Legendre quadrature on segments
    that double in length (0, r_eff/4, r_eff/2, r_eff, 2 r_eff, ...), so it is
    independent of any pixel grid. Valid for radially symmetric factors (no
    per-spaxel ratio scatter).
    """
    q = max(model.axis_ratio, 1e-3)
    r_hi = model.light_radius(1.0 - 1e-12)
    edges = [0.0] + [model.r_eff * 2.0**k for k in range(-2, 12) if model.r_eff * 2.0**k < r_hi] + [r_hi]
    x, w = _leggauss(n_nodes)
    r_all, w_all = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        r_all.append(0.5 * (b - a) * x + 0.5 * (a + b))
        w_all.append(0.5 * (b - a) * w)
    r = np.concatenate(r_all)
    wts = np.concatenate(w_all)
    sb = model.surface_brightness(r) / model.kpc_per_arcsec**2  # unit total, per kpc^2
    fac = line_factors(cfg, model.metallicity(r), r_kpc=r, ratio_offsets=ratio_offsets)
    return {line: float(cfg.reference_flux * np.sum(wts * sb * fac[line] * 2.0 * math.pi * r * q))
            for line in cfg.lines}


def lines_truth(lcfg: LinesConfig, totals: dict, ratio_offsets) -> dict:
    """The line part of a mock's truth: reference line, generating set and entries, line totals, ratio draws.

    Parameters
    ----------
    lcfg : LinesConfig
    totals : dict
        Line id -> analytic total flux, erg/s/cm^2 (empty when not analytic).
    ratio_offsets : dict or None
        The ratio-scatter draws of the scene (dex), per mock or per ring.
    """
    if lcfg.ratio_scatter == "per_mock":
        offsets = {k: float(v) for k, v in ratio_offsets.items()}
    elif lcfg.ratio_scatter == "per_ring":
        offsets = {k: [float(x) for x in v] for k, v in ratio_offsets.items()}
    else:
        offsets = {}
    return {
        "reference_line": lcfg.reference_line,
        "generating_set": list(lcfg.generating_set),
        "generating_entries": {d.key: (d.stand_in or {}).get("uses", d.key)
                               for d in generating_system(lcfg).diagnostics},
        "line_totals": totals,
        "ratio_offsets": offsets,
        "ratio_scatter_ring": lcfg.ratio_scatter_ring if lcfg.ratio_scatter == "per_ring" else None,
        "ratio_scatter": lcfg.ratio_scatter,
    }
