"""Observing-strategy planner: small suites per instrument setup and |grad_z|.

``mockzgrad plan TARGET.toml --setups SETUPS.toml -o plan_dir`` reads a
:class:`PlanTarget` (the galaxy) and a list of :class:`PlanSetup` (preset,
depth, recipe, mocks), runs one small suite per setup over depth x |grad_z|
(:func:`mockzgrad.suites.suite.run_suite`, folders under ``plan_dir/suites/``)
and writes ``plan.ecsv``, ``plan.csv``, ``plan.png`` and ``design_map.png``
(:mod:`mockzgrad.corrections.plan_map`): per row x = 2 r_eff / FWHM, the median
measured/intrinsic gradient with its 16-84 % range, the median and the mean
sigma(grad) (the mean with its Monte Carlo error; the exposure solver uses the
mean), P(3 sigma) and a verdict:

* ``"outside band"``: a line the setup must observe falls outside its band (the
  preset's spectral grid or ``band``, a grism's filters, or ``setup.band``); the
  reason names the line, its observed wavelength and the band (no suite is run);
* ``"unresolved"``: x < :data:`X_UNRESOLVED` (no suite is run; no numbers); a
  lensed target is judged on the mocks' source-plane x;
* ``"too faint"``: more than half of the mocks give no gradient (S/N gate), or
  no depth up to the cap reaches ``sigma_target``;
* ``"calibration floor"``: Z(r) leaves a calibration's validity range within
  :data:`CAL_RADIUS_REFF` r_eff (bins pin at the range limit), or the fitted
  exposure-independent part of sigma(grad) is at or above ``sigma_target``;
* ``"ok"``: the numbers.

With ``sigma_target`` in the target, the exposure solver
(:func:`solve_rows`, :mod:`mockzgrad.corrections.plan_solve`) gives the
shortest depth reaching it per setup and |grad_z|, checked by a suite there.
Setups may be IFU, grism or slit-stepping presets. Every row names the preset,
its status and its sources. A depth is a ``noise.snr`` or an exposure turned
into ``noise.sigma`` (or ``noise.snr``) through a sensitivity (the preset's
``pixel_sigma`` or the setup's own ``[setup.sensitivity]``).

Target file::

    [target]
    redshift = 2.45
    r_eff = 3.0                 # kpc
    sersic_n = 1.0
    inclination = 40.0          # deg
    reference_line = "Ha"
    reference_flux = 1e-16      # erg/s/cm^2
    grad_z = [0.05, 0.1]        # |grad_z|, dex/kpc (simulated as negative gradients)
    lines = ["Hb", "OIII_5008", "Ha", "NII_6585"]
    generating_set = ["S25_R3", "S25_N2"]   # optional
    sigma_target = 0.05         # optional, dex/kpc: ask for the shortest depth reaching it
    # [target.lensing] optional: a [lensing] table passed to every mock

Setups file::

    [[setup]]
    name = "nirspec_g235m"
    preset = "nirspec_ifu_g235m"
    snr = [10.0]                # or exposure = [3600.0] (s) with a pixel_sigma sensitivity
    recipe = "lee2026"
    overrides = {"metallicity.diagnostics" = ["S25_R3", "S25_N2"]}
    n_mocks = 8
    # optional: lines (subset of target.lines), snr_line, band = [min, max] (A),
    # exposure_cap (s), snr_cap, [setup.instrument] (values the preset leaves open, e.g. a
    # grism's PSF), [setup.sensitivity] (quantity "pixel_sigma" or "snr", value, exposure, citation;
    # a "pixel_sigma" table may list [[setup.sensitivity.windows]]: a depth per grating / band / line)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import validate
from ..config import config_from_dict, read_toml
from ..config.resolution import x_resolution
from ..errors import ConfigError
from ..observation.presets import (SENSITIVITY_QUANTITIES, Sensitivity, load_preset, sensitivity_at,
                                   sensitivity_window)
from . import plan_solve

__all__ = ["X_UNRESOLVED", "PlanTarget", "PlanSetup", "load_target", "load_setups", "run_plan",
           "plan_row_verdict", "sigma_mean", "check_band", "band_problem", "plot_plan", "cli"]

#: Below this x = 2 r_eff / FWHM a gradient is reported "unresolved" (issue 19).
X_UNRESOLVED = 0.6
#: A setup is "too faint" when more than this fraction of its mocks give no gradient.
FAINT_FRACTION = 0.5
_COLUMNS = ("setup", "preset", "preset_status", "preset_sources", "depth", "exposure_s", "grad_z_abs",
            "x_resolution", "x_resolution_mocks",
            "n_mocks", "n_measured", "ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median", "p_detect_3sigma",
            "sigma_grad_mean", "sigma_grad_mean_se",
            "sigma_target", "exposure_for_target", "snr_for_target", "sigma_floor", "solved",
            "verdict",
            "reason", "depth_source")


@dataclass(frozen=True)
class PlanTarget:
    """The galaxy to plan for (kpc, deg, erg/s/cm^2, dex/kpc)."""

    redshift: float
    r_eff: float
    sersic_n: float
    inclination: float
    reference_line: str
    reference_flux: float
    grad_z: tuple[float, ...]
    lines: tuple[str, ...]
    generating_set: tuple[str, ...] | None = None
    sigma_target: float | None = None
    lensing: dict | None = None


@dataclass(frozen=True)
class PlanSetup:
    """One candidate setup: preset, depths (S/N or exposure, s), recipe (+ overrides), mocks.

    ``instrument`` holds extra ``[instrument]`` values the preset leaves open
    (a grism's PSF and field); ``sensitivity`` overrides the preset's (a depth
    at a reference exposure); ``exposure_cap`` (s) and ``snr_cap`` bound the
    exposure solver.
    """

    name: str
    preset: str
    snr: tuple[float, ...] = ()
    exposure: tuple[float, ...] = ()
    recipe: str = "lee2026"
    overrides: dict = field(default_factory=dict)
    n_mocks: int = 8
    instrument: dict = field(default_factory=dict)
    sensitivity: Sensitivity | None = None
    exposure_cap: float = 360000.0
    snr_cap: float = 300.0
    lines: tuple[str, ...] = ()
    snr_line: str | None = None
    band: tuple[float, float] | None = None
    kind: str = "ifu"


def _numbers(where: str, value, lo=0.0, unit="") -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} = {value!r}; expected a number or a non-empty list of numbers")
    return tuple(validate.number(f"{where}[{k}]", v, lo, None, lo_open=True, unit=unit) for k, v in enumerate(value))


def target_from_dict(t: dict, where: str = "target") -> PlanTarget:
    """Check a ``[target]`` table; one-line :class:`ConfigError` on a bad value."""
    known = {f for f in PlanTarget.__dataclass_fields__}
    extra = sorted(set(t) - known)
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown field; allowed: {', '.join(sorted(known))}")
    for key in ("redshift", "r_eff", "grad_z", "lines"):
        if key not in t:
            raise ConfigError(f"{where}.{key} is missing")
    lines = t["lines"]
    if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
        raise ConfigError(f"{where}.lines = {lines!r}; expected a list of line names")
    gs = t.get("generating_set")
    return PlanTarget(
        redshift=validate.number(f"{where}.redshift", t["redshift"], 0.0, 20.0, lo_open=True),
        r_eff=validate.number(f"{where}.r_eff", t["r_eff"], 0.0, 100.0, lo_open=True, unit="kpc"),
        sersic_n=validate.number(f"{where}.sersic_n", t.get("sersic_n", 1.0), 0.3, 8.0),
        inclination=validate.number(f"{where}.inclination", t.get("inclination", 20.0), 0.0, 90.0, unit="deg"),
        reference_line=str(t.get("reference_line", "OIII_5008")),
        reference_flux=validate.number(f"{where}.reference_flux", t.get("reference_flux", 1e-16), 0.0, 1e-5,
                                       lo_open=True, unit="erg/s/cm^2"),
        grad_z=_numbers(f"{where}.grad_z", t["grad_z"], unit="dex/kpc"), lines=tuple(lines),
        generating_set=tuple(gs) if gs else None,
        sigma_target=(None if t.get("sigma_target") is None else
                      validate.number(f"{where}.sigma_target", t["sigma_target"], 0.0, None, lo_open=True,
                                      unit="dex/kpc")),
        lensing=_lensing_table(f"{where}.lensing", t.get("lensing")))


def _lensing_table(where: str, table) -> dict | None:
    """A ``[target.lensing]`` table, checked by :class:`~mockzgrad.config.lensing.LensingConfig`."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where} = {table!r}; expected a table of [lensing] values")
    config_from_dict({"lensing": dict(table)})  # one-line ConfigError on a bad value
    return dict(table)


def _setup_sensitivity(where: str, table) -> Sensitivity | None:
    """A setup's own depth at a reference exposure (``quantity`` "pixel_sigma" or "snr" of this target).

    A "pixel_sigma" table may list ``[[setup.sensitivity.windows]]`` as a
    preset's ``[[sensitivity.windows]]`` (:func:`~mockzgrad.observation.presets.sensitivity_window`):
    a depth per grating, band or line, passed to the mocks as ``noise.windows``.
    """
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where} = {table!r}; expected a table (quantity, value, exposure, citation)")
    q = validate.choice(f"{where}.quantity", table.get("quantity"), ("pixel_sigma", "snr"))
    t = validate.number(f"{where}.exposure", table.get("exposure"), 0.0, None, lo_open=True, unit="s")
    windows = table.get("windows", [])
    if not isinstance(windows, list):
        raise ConfigError(f"{where}.windows = {windows!r}; expected a list of tables ([[setup.sensitivity.windows]])")
    if windows and q != "pixel_sigma":
        raise ConfigError(f"{where}.windows: needs quantity 'pixel_sigma'; got {q!r}")
    return Sensitivity(q, validate.number(f"{where}.value", table.get("value"), 0.0, None, lo_open=True), t,
                       validate.text(f"{where}.citation", table.get("citation"), empty=False),
                       windows=tuple(sensitivity_window(f"{where}.windows[{k}]", w, t)
                                     for k, w in enumerate(windows)))


def setup_from_dict(s: dict, where: str) -> PlanSetup:
    """Check one ``[[setup]]`` table."""
    known = set(PlanSetup.__dataclass_fields__) - {"kind"}  # the preset gives the kind
    extra = sorted(set(s) - known)
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown field; allowed: {', '.join(sorted(known))}")
    if "preset" not in s:
        raise ConfigError(f"{where}.preset is missing")
    preset = load_preset(s["preset"])
    if preset.kind == "ifu" and "instrument" not in preset.tables:
        raise ConfigError(f"{where}.preset = {s['preset']!r} is a spectral-grid preset without an "
                          "[instrument] table; give an IFU, grism or slit-stepping instrument preset")
    if ("snr" in s) == ("exposure" in s):
        raise ConfigError(f"{where}: give exactly one of snr (list) and exposure (list, s)")
    snr = _numbers(f"{where}.snr", s["snr"]) if "snr" in s else ()
    exposure = _numbers(f"{where}.exposure", s["exposure"], unit="s") if "exposure" in s else ()
    sens = _setup_sensitivity(f"{where}.sensitivity", s.get("sensitivity")) or preset.sensitivity
    own = "sensitivity" in s
    if exposure and (sens is None or sens.quantity not in ("pixel_sigma",) + (("snr",) if own else ())):
        q = sens.quantity if sens else "none"
        raise ConfigError(f"{where}.exposure needs a pixel_sigma sensitivity (preset) or a setup "
                          f"[sensitivity] table; {s['preset']!r} has {q}: give snr or sensitivity instead")
    overrides = s.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.overrides = {overrides!r}; expected a table of recipe values")
    instrument = s.get("instrument", {})
    if not isinstance(instrument, dict) or {"kind", "preset"} & set(instrument):
        raise ConfigError(f"{where}.instrument = {instrument!r}; expected a table of [instrument] values "
                          "other than kind and preset (the preset sets them)")
    _check_recipe_kind(where, preset, str(s.get("recipe", "lee2026")), overrides)
    lines = s.get("lines", [])
    if not isinstance(lines, list) or not all(isinstance(v, str) for v in lines):
        raise ConfigError(f"{where}.lines = {lines!r}; expected a list of line names (a subset of target.lines)")
    return PlanSetup(name=validate.text(f"{where}.name", s.get("name", s["preset"]), empty=False),
                     preset=s["preset"], snr=snr, exposure=exposure, recipe=str(s.get("recipe", "lee2026")),
                     overrides=dict(overrides),
                     n_mocks=validate.integer(f"{where}.n_mocks", s.get("n_mocks", 8), 1, 10000),
                     instrument=dict(instrument), sensitivity=sens if own else (
                         sens if sens is not None and sens.quantity == "pixel_sigma" else None),
                     exposure_cap=validate.number(f"{where}.exposure_cap", s.get("exposure_cap", 360000.0), 0.0,
                                                  None, lo_open=True, unit="s"),
                     snr_cap=validate.number(f"{where}.snr_cap", s.get("snr_cap", 300.0), 0.0, None,
                                             lo_open=True),
                     lines=tuple(lines), snr_line=s.get("snr_line"), band=_band(f"{where}.band", s.get("band")),
                     kind=preset.kind)


def _band(where: str, band) -> tuple[float, float] | None:
    """A setup's observed band [min, max] (Angstrom) for a preset without a spectral range."""
    if band is None:
        return None
    if not isinstance(band, list) or len(band) != 2:
        raise ConfigError(f"{where} = {band!r}; expected [min, max] in Angstrom")
    lo, hi = (validate.number(f"{where}[{k}]", v, 0.0, None, lo_open=True, unit="Angstrom")
              for k, v in enumerate(band))
    if not lo < hi:
        raise ConfigError(f"{where} = {band!r}; expected min < max")
    return float(lo), float(hi)


#: Recipe options that act on a cube's spectra (noise from the spectra) and mean nothing on grism line maps.
IFU_ONLY_OPTIONS = ("errors.",)


def _check_recipe_kind(where: str, preset, recipe: str, overrides: dict) -> None:
    """A grism preset with a cube-only recipe override is refused, naming both."""
    if preset.kind != "grism":
        return
    for key in overrides:
        if key.startswith(IFU_ONLY_OPTIONS):
            raise ConfigError(f"{where}: recipe option {key!r} applies to IFU cubes only; preset "
                              f"{preset.name!r} is a grism (line maps): remove the option or change the preset")


def load_target(path) -> PlanTarget:
    """Read ``[target]`` from a TOML file."""
    data = read_toml(path, "plan file")[0]
    if not isinstance(data.get("target"), dict):
        raise ConfigError(f"{path}: needs a [target] table")
    return target_from_dict(data["target"])


def load_setups(path) -> tuple[PlanSetup, ...]:
    """Read the ``[[setup]]`` tables of a TOML file."""
    data = read_toml(path, "plan file")[0]
    setups = data.get("setup")
    if not isinstance(setups, list) or not setups:
        raise ConfigError(f"{path}: needs one or more [[setup]] tables")
    out = tuple(setup_from_dict(s, f"setup[{k}]") for k, s in enumerate(setups))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: setup names must differ; got {names}")
    return out


@dataclass(frozen=True)
class Depth:
    """One depth of a setup.

    ``value`` is the swept noise value (``noise.snr`` or ``noise.sigma``,
    erg/s/cm^2); ``effort`` is proportional to exposure time (t in s for an
    exposure setup, (S/N)^2 for an S/N setup: background limited, S/N ~ t^1/2);
    ``exposure`` is t in s, NaN when the setup has no sensitivity to give it.
    """

    label: str
    value: float
    effort: float
    exposure: float


#: Z(r) is checked against the calibrations' validity ranges out to this many r_eff (bins rarely reach further).
CAL_RADIUS_REFF = 2.0


def _instrument_table(setup: PlanSetup) -> dict:
    inst = {k: (dict(v) if isinstance(v, dict) else v) for k, v in setup.instrument.items()}
    if setup.kind == "ifu":
        inst["preset"] = setup.preset
    else:  # grism / slitstep presets are named in their own sub-table
        inst["kind"] = setup.kind
        inst[setup.kind] = dict(inst.get(setup.kind, {}), preset=setup.preset)
    return inst


def _setup_lines(target: PlanTarget, setup: PlanSetup) -> tuple[str, ...]:
    """The target lines this setup observes (``setup.lines``, default all); each must be a target line."""
    if not setup.lines:
        return target.lines
    unknown = [v for v in setup.lines if v not in target.lines]
    if unknown:
        raise ConfigError(f"setup {setup.name!r}: lines {unknown} are not in target.lines {list(target.lines)}")
    return setup.lines


def _fixed(target: PlanTarget, setup: PlanSetup) -> dict:
    names = list(_setup_lines(target, setup))
    if target.reference_line not in names:  # the flux scale is the reference line's: it stays in the mock
        names.append(target.reference_line)
    lines = {"reference_line": target.reference_line, "reference_flux": target.reference_flux, "lines": names}
    if target.generating_set:
        lines["generating_set"] = list(target.generating_set)
    out = {"galaxy": {"redshift": target.redshift, "r_eff": target.r_eff, "sersic_n": target.sersic_n,
                      "inclination": target.inclination},
           "lines": lines, "instrument": _instrument_table(setup),
           "noise": {"snr_line": setup.snr_line or target.reference_line}}
    windows = noise_windows(target, setup, names)
    if windows:
        out["noise"]["windows"] = windows
    if target.lensing:
        out["lensing"] = dict(target.lensing)
    return out


def _sensitivity(setup: PlanSetup) -> Sensitivity | None:
    """The setup's own sensitivity, else the preset's (which may be a line flux or S/N)."""
    return setup.sensitivity if setup.sensitivity is not None else load_preset(setup.preset).sensitivity


def noise_windows(target: PlanTarget, setup: PlanSetup, names) -> dict | None:
    """``noise.windows`` from a sensitivity with spectral windows (IFU, grism and slit-stepping setups), else None.

    Each line of ``names`` gets its own window whose ``scale`` is the
    background-limited sigma at a common exposure, value x sqrt(t_ref), of
    the sensitivity window covering the line's observed wavelength
    (:meth:`~mockzgrad.observation.presets.Sensitivity.at`): the noise
    stage keeps the ``snr_line`` sigma and scales the other lines by the
    ratios. A 1-sigma line-flux limit is taken to scale like the per-pixel
    noise (the same aperture in every window).
    """
    from ..physics.lines import LINES

    sens = _sensitivity(setup)
    if sens is None or not sens.windows:
        return None
    out = {}
    for name in names:
        s = sens.at(name, LINES[name].wavelength * (1.0 + target.redshift))
        out[name] = {"lines": [name], "scale": s.value * math.sqrt(s.exposure)}
    return out


def _reference(target: PlanTarget, setup: PlanSetup) -> tuple[str, float]:
    """The line whose sigma a depth sets (``snr_line``) and its observed wavelength, Angstrom."""
    from ..physics.lines import LINES

    line = setup.snr_line or target.reference_line
    return line, LINES[line].wavelength * (1.0 + target.redshift)


def _noise_key(setup: PlanSetup) -> str:
    if setup.snr or (setup.sensitivity is not None and setup.sensitivity.quantity == "snr"):
        return "noise.snr"
    return "noise.sigma"


def depth_at(setup: PlanSetup, effort: float, ref: tuple[str, float] | None = None) -> Depth:
    """The depth of ``setup`` at ``effort`` (t in s for exposure setups, (S/N)^2 for S/N setups).

    ``ref`` = (``snr_line``, observed wavelength in Angstrom) picks the
    sensitivity window that sets ``noise.sigma`` (:func:`_reference`).
    """
    if setup.exposure:
        line, wave = ref if ref is not None else (None, None)
        return Depth(f"t={effort:.4g}s", sensitivity_at(setup.sensitivity, effort, line=line, wave=wave),
                     effort, effort)
    snr = math.sqrt(effort)
    sens = setup.sensitivity
    t = sens.exposure * (snr / sens.value) ** 2 if sens is not None and sens.quantity == "snr" else math.nan
    return Depth(f"S/N={snr:.4g}", snr, effort, t)


def _depths(setup: PlanSetup, ref: tuple[str, float] | None = None) -> list[Depth]:
    """The setup's depths, in the order given."""
    if setup.exposure:
        return [depth_at(setup, t, ref) for t in setup.exposure]
    return [dataclasses.replace(depth_at(setup, v * v), label=f"S/N={v:g}", value=v) for v in setup.snr]


def _effort_cap(setup: PlanSetup) -> float:
    """Largest effort the solver may return: the exposure cap, or the S/N cap (and the exposure cap via S/N)."""
    if setup.exposure:
        return setup.exposure_cap
    cap = setup.snr_cap ** 2
    sens = setup.sensitivity
    if sens is not None and sens.quantity == "snr":
        cap = min(cap, sens.value ** 2 * setup.exposure_cap / sens.exposure)
    return cap


def plan_row_verdict(x: float, n_mocks: int, n_measured: int) -> tuple[str, str]:
    """Verdict and reason of one plan row (``"unresolved"``, ``"too faint"`` or ``"ok"``)."""
    if not x >= X_UNRESOLVED:
        return "unresolved", f"x = 2 r_eff / FWHM = {x:.2f} < {X_UNRESOLVED}"
    if n_measured < (1.0 - FAINT_FRACTION) * n_mocks or n_measured == 0:
        return "too faint", f"{n_mocks - n_measured} of {n_mocks} mocks give no gradient (S/N gate)"
    return "ok", ""


def calibration_pinning(cfg, diagnostics) -> str:
    """Why bins pin at a calibration's range limit, or "" when Z(r) stays inside.

    Z(r) = z0 + grad_z r (z0 as the mock resolves it) over deprojected radii
    0 - :data:`CAL_RADIUS_REFF` r_eff, against the validity range of each
    generating calibration and each recipe diagnostic: outside it the mock's
    line ratios are clipped and the recovered Z sits at the range limit, so the
    gradient flattens whatever the PSF and depth.
    """
    import warnings

    from ..physics.calibrations import get_diagnostic
    from ..source.galaxy import resolve_galaxy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = resolve_galaxy(cfg.galaxy, cfg.lines, cfg.cosmology)
    r_max = CAL_RADIUS_REFF * cfg.galaxy.r_eff
    g = cfg.galaxy.metallicity.grad_z
    z_lo, z_hi = sorted((model.z0, model.z0 + g * r_max))
    for key in dict.fromkeys([*cfg.lines.generating_set, *diagnostics]):
        vr = get_diagnostic(key).valid_range
        if vr is None or (vr[0] <= z_lo and z_hi <= vr[1]):
            continue
        edge = vr[0] if z_lo < vr[0] else vr[1]
        r_cross = (edge - model.z0) / g if g else 0.0
        return (f"Z(r) = {model.z0:.2f} {g:+g} r leaves {key}'s valid range {vr[0]:g}-{vr[1]:g} at r = "
                f"{max(r_cross, 0.0):.2f} kpc (< {CAL_RADIUS_REFF:g} r_eff): bins pin at {edge:g}")
    return ""


def _stats(rows: list[dict]) -> tuple[int, float, float, float, float, float]:

    """Mocks with a gradient; median, 16 and 84 % of measured/intrinsic; median sigma(grad); P(3 sigma).

    P(3 sigma) is the fraction of all mocks whose gradient has the true sign
    and |grad| >= 3 sigma (sigma = half the 16-84 % range).
    """
    ratios, sigmas, detected = [], [], 0
    for r in rows:
        g, t = r.get("grad_z_measured"), r.get("grad_z_true")
        if r.get("status") != "ok" or g is None or t in (None, 0) or not math.isfinite(g):
            continue
        ratios.append(g / t)
        lo, hi = r.get("grad_z_measured_lo"), r.get("grad_z_measured_hi")
        if lo is not None and hi is not None:
            sigmas.append(0.5 * abs(hi - lo))
            detected += g / t > 0 and abs(g) >= 3.0 * sigmas[-1]
    if not ratios:
        return 0, math.nan, math.nan, math.nan, math.nan, math.nan
    p16, p50, p84 = np.percentile(ratios, [16, 50, 84])
    sigma = float(np.median(sigmas)) if sigmas else math.nan
    return len(ratios), float(p50), float(p16), float(p84), sigma, detected / len(rows)


def sigma_mean(rows: list[dict]) -> tuple[float, float]:
    """Mean sigma(grad) (dex/kpc) of the mocks with a gradient and its Monte Carlo standard error.

    sigma = half the 16-84 % range of each mock's gradient. The exposure
    solver uses this mean, not the median: a mock's sigma(grad) jumps with
    the number of bins its S/N gate keeps, so across mocks it is bimodal
    (e.g. ~0.06 or ~0.11 dex/kpc for 3 or 4 annuli) and the median of a few
    mocks jumps between the modes, while the mean moves smoothly with depth
    and its error, std / sqrt(n), holds for any distribution (central limit).
    The error is NaN below two mocks.
    """
    sig = []
    for r in rows:
        g, lo, hi = r.get("grad_z_measured"), r.get("grad_z_measured_lo"), r.get("grad_z_measured_hi")
        if r.get("status") == "ok" and g is not None and math.isfinite(g) and lo is not None and hi is not None:
            sig.append(0.5 * abs(hi - lo))
    if not sig:
        return math.nan, math.nan
    se = float(np.std(sig, ddof=1)) / math.sqrt(len(sig)) if len(sig) > 1 else math.nan
    return float(np.mean(sig)), se


def _run_grid(target, setup, folder: Path, grads, depths, workers, seed, cache: bool = True) -> dict:
    """One suite per |grad_z| and depth, all with suite seed ``seed``; rows grouped by (|grad_z|, depth value).

    Common random numbers: mock ``j`` of every suite has the same seed
    (position angle, unit noise deviates, recovery draws), so depths differ
    in the noise scale only, and the noise-free cube is built once per mock
    (:mod:`mockzgrad.corrections.plan_cache`; ``cache=False``: the shipped job).
    """
    from ..suites.store import ResultsStore
    from ..suites.suite import run_suite, suite_from_dict

    key = _noise_key(setup)
    rec = {"recipe": setup.recipe}
    if setup.overrides:
        rec["overrides"] = setup.overrides
    job = "mockzgrad.corrections.plan_cache:run_mock" if cache else "mockzgrad.suites.job:run_mock"
    groups: dict = {}
    for g in grads:
        for k, d in enumerate(depths):
            fixed = _fixed(target, setup)
            fixed["galaxy"]["metallicity"] = {"grad_z": -g}
            fixed["noise"][key.split(".")[1]] = d.value
            spec = suite_from_dict({"suite": {"name": f"plan_{setup.name}", "seed": seed, "n_mocks": setup.n_mocks},
                                    "fixed": fixed,
                                    "sample": {"galaxy.pa": {"dist": "uniform", "low": 0.0, "high": 180.0}},
                                    "recovery": rec})
            run = run_suite(spec, folder / f"g{g:g}_d{k}", job, workers=workers, progress=False,
                            executor=_executor(spec.n_mocks, workers))
            with ResultsStore(run.store_path, readonly=True) as store:
                groups[(g, d.value)] = list(store.rows())
    return groups


#: A suite runs in a process pool only with at least this many mocks per worker: starting the
#: pool (spawn, imports, kernel cache) costs about as much CPU as ~25 small IFU mocks.
POOL_MIN_MOCKS_PER_WORKER = 25


def _executor(n_mocks: int, workers) -> str:
    """"serial" for small suites (the results are the same: every mock has its own seed), else "local"."""
    n = workers if workers is not None else 2
    return "serial" if n <= 1 or n_mocks < POOL_MIN_MOCKS_PER_WORKER * n else "local"


def _bands(setup: PlanSetup, cfg) -> tuple[list[tuple[str, float, float]], str, str]:
    """The observable ranges (label, min, max; observed Angstrom) of a setup, whose they are, their source.

    In order: the preset's spectral grid, ``setup.band``, a grism's exposure
    filters, the preset's ``band``; ([], "", "") when none says.
    """
    spec = cfg.instrument.spectral
    if spec.wave_min is not None and spec.wave_max is not None:
        return [("", spec.wave_min, spec.wave_max)], f"preset {setup.preset!r}", ""
    if setup.band is not None:
        return [("", *setup.band)], "setup.band", ""
    if cfg.instrument.kind == "grism":
        from ..observation.grism.presets import filter_range

        g = cfg.instrument.grism
        names = dict.fromkeys(e.filter for _, e in g.exposure_list())
        return [(f, *filter_range(g, f)) for f in names], f"the exposures' filters of preset {setup.preset!r}", ""
    preset = load_preset(setup.preset)
    if preset.band is not None:
        return [("", *preset.band)], f"preset {setup.preset!r}", preset.band_source
    return [], "", ""


def band_problem(target: PlanTarget, setup: PlanSetup, cfg) -> str:
    """Why ``setup`` cannot observe the mock's lines, or "" when every line falls in its band.

    The lines are those the mock renders (``setup.lines`` or the target's, and
    the reference line); the reason names the first line outside, its observed
    wavelength (Angstrom) and the band (:func:`_bands`).
    """
    from ..physics.lines import LINES

    ranges, whose, source = _bands(setup, cfg)
    if not ranges:
        return ""
    for name in cfg.lines.lines:
        w = LINES[name].wavelength * (1.0 + target.redshift)
        if not any(lo <= w <= hi for _, lo, hi in ranges):
            shown = ", ".join(f"{f} {lo:.0f}-{hi:.0f} A".strip() for f, lo, hi in ranges)
            return (f"setup {setup.name!r}: line {name} at z = {target.redshift:g} is observed at {w:.0f} A, "
                    f"outside the band of {whose} ({shown}{'; ' + source if source else ''})")
    return ""


def check_band(target: PlanTarget, setup: PlanSetup, cfg) -> None:
    """Every line of the mock must fall in the setup's band (:func:`band_problem`).

    The planner reports such a setup as "outside band"; this raises instead.

    Raises
    ------
    ConfigError
        Naming the setup, the line, its observed wavelength and the band.
    """
    problem = band_problem(target, setup, cfg)
    if problem:
        raise ConfigError(problem)


def _median(rows, key) -> float:
    xs = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(xs)) if xs else math.nan


def _row(setup, preset, depth: Depth, g: float, x: float, group: list, pinning: str, band: str = "") -> dict:
    n, *stats = _stats(group)
    x_gate = x
    if not math.isfinite(x_gate) and group:  # lensed: the source-plane x of the mocks
        x_gate = _median(group, "x_resolution_source")
    verdict, reason = plan_row_verdict(x_gate, setup.n_mocks, n)
    if band:
        verdict, reason = "outside band", band
    elif verdict == "ok" and pinning:
        verdict, reason = "calibration floor", pinning
    row = {"setup": setup.name, "preset": preset.name, "preset_status": preset.status,
           "preset_sources": "; ".join(preset.sources), "depth": depth.label, "exposure_s": depth.exposure,
           "grad_z_abs": g, "x_resolution": x_gate, "x_resolution_mocks": _median(group, "x_resolution"),
           "n_mocks": setup.n_mocks, "n_measured": n, "verdict": verdict, "reason": reason,
           "depth_source": _depth_source(setup)}
    stats += list(sigma_mean(group))
    for k, v in zip(("ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median", "p_detect_3sigma",
                     "sigma_grad_mean", "sigma_grad_mean_se"), stats):
        # never a number for an unresolved or too faint row; a pinned row keeps what would be measured
        row[k] = v if verdict in ("ok", "calibration floor") else math.nan
    row.update({"sigma_target": math.nan, "exposure_for_target": math.nan, "snr_for_target": math.nan,
                "sigma_floor": math.nan, "solved": False})
    return row


def _depth_source(setup: PlanSetup) -> str:
    """What a row's depth relies on: the sensitivity's citation, or the S/N as given."""
    sens = setup.sensitivity
    if sens is not None and (setup.exposure or sens.quantity == "snr"):
        return f"{sens.quantity} {sens.value:g} at {sens.exposure:g} s, t^-1/2 law: {sens.citation}"
    return "S/N of the reference line as given (mockzgrad definition)"


class _Context:
    """What the rows of one setup share: preset, configuration, x, pinning reasons per |grad_z|."""

    def __init__(self, target: PlanTarget, setup: PlanSetup, outdir: Path, workers, seed, cache: bool = True):
        from ..config import load_recipe

        self.target, self.setup, self.outdir, self.workers, self.seed = target, setup, outdir, workers, seed
        self.cache = cache
        self.preset = load_preset(setup.preset)
        cfg = config_from_dict(_fixed(target, setup))
        self.band = band_problem(target, setup, cfg)
        # lensed targets: decided on the mocks' source-plane x (NaN here)
        self.x = math.nan if target.lensing else x_resolution(cfg)
        recipe = load_recipe(setup.recipe)
        if setup.overrides:
            recipe = recipe.replace(**setup.overrides)
        self.pinning = {g: calibration_pinning(config_from_dict(
            dict(_fixed(target, setup), galaxy=dict(_fixed(target, setup)["galaxy"], metallicity={"grad_z": -g}))),
            recipe.metallicity.diagnostics) for g in target.grad_z}

    @property
    def runs(self) -> bool:
        return not self.band and not self.x < X_UNRESOLVED  # NaN (lensed) runs

    def suite(self, name: str, grads, depths) -> dict:
        return _run_grid(self.target, self.setup, self.outdir / "suites" / name, grads, depths, self.workers,
                         self.seed, self.cache)

    def row(self, depth: Depth, g: float, group: list) -> dict:
        return _row(self.setup, self.preset, depth, g, self.x, group, self.pinning[g], self.band)


def _setup_rows(target, setup, outdir, workers, seed, cache=True) -> list[dict]:
    ctx = _Context(target, setup, outdir, workers, seed, cache)
    depths = _depths(setup, _reference(target, setup))
    groups = ctx.suite(setup.name, target.grad_z, depths) if ctx.runs else {}
    rows = [ctx.row(d, g, groups.get((g, d.value), [])) for d in depths for g in target.grad_z]
    if target.sigma_target is not None and ctx.runs:
        for g in target.grad_z:
            rows += solve_rows(ctx, [r for r in rows if r["grad_z_abs"] == g], depths, g)
    return rows


def solve_rows(ctx: _Context, rows: list[dict], depths: list[Depth], g: float, max_suites: int = 4) -> list[dict]:
    """Shortest depth reaching ``sigma_target`` for one |grad_z|: fit, run a suite there, refit.

    The sigma law (:func:`mockzgrad.corrections.plan_solve.fit_sigma_law`) is
    fitted to the rows' mean sigma(grad) (:func:`sigma_mean`) against effort and solved (or, once
    the target is bracketed, a secant / bisection step,
    :func:`~mockzgrad.corrections.plan_solve.next_effort`); a suite at that
    effort adds a point, until a suite reproduces the target within
    :data:`~mockzgrad.corrections.plan_solve.SOLVE_RTOL` or ``max_suites`` ran.
    A fitted floor at or above the target stops it: "calibration floor".
    Writes the outcome into ``rows`` and returns the rows of the check suites.
    """
    setup, goal, cap = ctx.setup, ctx.target.sigma_target, _effort_cap(ctx.setup)
    points = [(d.effort, r["sigma_grad_mean"]) for d, r in zip(depths, rows)
              if r["verdict"] in ("ok", "calibration floor") and math.isfinite(r["sigma_grad_mean"])]
    extra: list[dict] = []
    status, reason = "too faint", "no depth of the setup gives a gradient to extrapolate from"
    law, solved, confirmed = None, None, False
    for k in range(max_suites):
        if not points:
            break
        law = plan_solve.fit_sigma_law(*zip(*points))
        sol = plan_solve.solve_exposure(law, goal, cap)
        step, confirm = plan_solve.next_effort(points, goal), False
        if step is None and sol.status == "ok":
            step = sol.exposure
        elif step is None and sol.status == "calibration floor" and not confirmed:
            # a floor fitted to a few noisy points is confirmed by one suite deeper than any so far
            step = confirmed = confirm = min(FLOOR_CONFIRM_FACTOR * max(e for e, _ in points), cap)
        elif step is None:
            status, reason = sol.status, sol.reason
            break
        if step > cap:
            status, reason = "too faint", f"sigma(grad) = {goal:g} dex/kpc needs a depth beyond the cap"
            break
        depth = depth_at(setup, max(step, 1e-12), _reference(ctx.target, setup))
        check = ctx.row(depth, g, ctx.suite(f"{setup.name}_solve_g{g:g}_{k}", [g], [depth]).get((g, depth.value), []))
        check["solved"] = True
        extra.append(check)
        if check["verdict"] not in ("ok", "calibration floor"):
            status, reason = check["verdict"], f"the suite at the solved depth: {check['reason']}"
            break
        points.append((depth.effort, check["sigma_grad_mean"]))
        if confirm:
            check["reason"] = f"deeper suite to confirm a fitted sigma(grad) floor of {law.floor:.4f} dex/kpc"
            status, reason = sol.status, sol.reason  # stands unless the refit with this point says otherwise
            continue
        dev = check["sigma_grad_mean"] / goal - 1.0
        check["reason"] = (f"solved depth for sigma_target {goal:g}: suite mean sigma {check['sigma_grad_mean']:.4f} "
                           f"({dev:+.0%})")
        status, reason, solved = "ok", "", depth
        if abs(dev) <= plan_solve.SOLVE_RTOL:
            break
    for r in rows + extra:
        r["sigma_target"] = goal
        r["sigma_floor"] = law.floor if law is not None else math.nan
        if status == "ok" and solved is not None:
            r["exposure_for_target"] = solved.exposure
            r["snr_for_target"] = math.nan if setup.exposure else solved.value
    if status != "ok":
        extra.append(_unsolved_row(ctx, g, status, reason, goal, law))
    return extra


#: A fitted sigma(grad) floor above the target is checked by a suite this many times deeper than any so far.
FLOOR_CONFIRM_FACTOR = 4.0


def _unsolved_row(ctx, g, status, reason, goal, law) -> dict:
    """A row saying why no depth reaches the target: "calibration floor" (with the floor) or "too faint"."""
    row = ctx.row(Depth("solve", math.nan, math.nan, math.nan), g, [])
    for k in ("ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median", "p_detect_3sigma", "sigma_grad_mean",
              "sigma_grad_mean_se"):
        row[k] = math.nan
    row.update({"verdict": status, "reason": reason, "sigma_target": goal, "solved": True,
                "sigma_floor": law.floor if law is not None else math.nan})
    return row


def _check_some_setup_sees_the_lines(target: PlanTarget, setups) -> None:
    """A plan in which no setup sees the lines has nothing to compare: an error naming the first problem.

    Within a comparison, a setup outside its band is a verdict ("outside band"), not an error.
    """
    problems = [band_problem(target, s, config_from_dict(_fixed(target, s))) for s in setups]
    if setups and all(problems):
        more = f" (and {len(problems) - 1} more setup(s) outside their bands)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def run_plan(target: PlanTarget, setups, outdir, *, workers: int | None = None, seed: int = 20261204,
             plot: bool = True, cache: bool = True) -> list[dict]:
    """Run the plan; write ``plan.ecsv``, ``plan.csv`` (and ``plan.png``, ``design_map.png``) in ``outdir``.

    ``cache``: build each mock's noise-free cube once and re-noise it at each
    depth (:mod:`~mockzgrad.corrections.plan_cache`); the tables are the same either way.
    """
    setups = list(setups)
    _check_some_setup_sees_the_lines(target, setups)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [r for s in setups for r in _setup_rows(target, s, outdir, workers, seed, cache)]
    _write_tables(rows, outdir, target)
    if plot:
        from .plan_map import plot_design_map

        plot_plan(rows, outdir / "plan.png", target)
        plot_design_map(rows, outdir / "design_map.png",
                        f"design map: z = {target.redshift:g}, r_eff = {target.r_eff:g} kpc, "
                        f"i = {target.inclination:g} deg" + (f", sigma_target = {target.sigma_target:g} dex/kpc"
                                                             if target.sigma_target else ""))
    return rows


def _write_tables(rows: list[dict], outdir: Path, target: PlanTarget) -> None:
    from astropy.table import MaskedColumn, Table

    t = Table()
    for c in _COLUMNS:
        values = [r[c] for r in rows]
        if values and isinstance(values[0], float):
            t[c] = MaskedColumn(values, mask=[not math.isfinite(v) for v in values])
        else:
            t[c] = values
    t["x_resolution"].description = ("2 r_eff / PSF FWHM at galaxy pa = 0 (an elliptical PSF's FWHM along "
                                      "the galaxy's major axis); decides 'unresolved'")
    t["x_resolution_mocks"].description = "median x of the mocks (galaxy pa drawn uniformly in [0, 180) deg)"
    t["grad_z_abs"].unit = "dex/kpc"
    for c in ("sigma_grad_median", "sigma_grad_mean", "sigma_grad_mean_se"):
        t[c].unit = "dex/kpc"
    t["sigma_grad_mean"].description = "mean sigma(grad) of the mocks (the exposure solver's estimator)"
    t["sigma_grad_mean_se"].description = "Monte Carlo standard error of sigma_grad_mean, std / sqrt(n)"
    t["p_detect_3sigma"].description = "fraction of the mocks with the true sign and |grad| >= 3 sigma"
    for c in ("sigma_target", "sigma_floor"):
        t[c].unit = "dex/kpc"
    for c in ("exposure_s", "exposure_for_target"):
        t[c].unit = "s"
    t["exposure_for_target"].description = ("shortest exposure with sigma(grad) <= sigma_target (sigma law fitted "
                                            "to the depths, checked by a suite there; rows with solved = True)")
    t["sigma_floor"].description = "exposure-independent part of sigma(grad) in sigma^2 = a / t + floor^2"
    t.meta["target"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in target.__dict__.items()}
    t.meta["note"] = "ratio = measured / intrinsic gradient; unresolved rows carry no numbers"
    for name, fmt in (("plan.ecsv", "ascii.ecsv"), ("plan.csv", "ascii.csv")):
        tmp = outdir / f".{name}.tmp"
        t.write(tmp, format=fmt, overwrite=True)
        tmp.replace(outdir / name)


def plot_plan(rows: list[dict], path, target: PlanTarget) -> None:
    """Measured/intrinsic ratio (median, 16-84 %) and median sigma(grad) per setup and depth.

    One marker per |grad_z|; a row without numbers is written as its verdict
    at the foot of the left panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r["solved"]]  # the solver's rows are in the table and the design map
    labels = list(dict.fromkeys((r["setup"], r["depth"]) for r in rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(max(10.0, 2.4 * len(labels)), 4.4))  # room for four-line labels
    ng = len(target.grad_z)
    for j, g in enumerate(target.grad_z):
        sel = {(r["setup"], r["depth"]): r for r in rows if r["grad_z_abs"] == g}
        xs = np.arange(len(labels)) + 0.15 * (j - (ng - 1) / 2)
        med, lo, hi = (np.array([sel[k][c] for k in labels]) for c in ("ratio_median", "ratio_p16", "ratio_p84"))
        a1.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="o", color=f"C{j}", capsize=3,
                    label=f"|grad_z| = {g:g} dex/kpc")
        a2.plot(xs, [sel[k]["sigma_grad_median"] for k in labels], "s", color=f"C{j}",
                label=f"|grad_z| = {g:g} dex/kpc")
        for k, x in zip(labels, xs):
            if sel[k]["verdict"] != "ok":
                a1.text(x, 0.03, sel[k]["verdict"], ha="center", va="bottom", rotation=90, fontsize=8,
                        color=f"C{j}", transform=a1.get_xaxis_transform())
    first = {(r["setup"], r["depth"]): r for r in reversed(rows)}
    ticks = [f"{s}\n({first[(s, d)]['preset_status']})\n{d}\nx = {first[(s, d)]['x_resolution']:.2f}"
             for s, d in labels]
    for ax in (a1, a2):
        ax.set_xticks(range(len(labels)), ticks, fontsize=7)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.legend(fontsize=8)
    a1.axhline(1.0, color="0.5", lw=0.8)
    a1.set_ylabel("measured / intrinsic gradient (median, 16-84 %)")
    a2.set_ylabel(r"median $\sigma$(grad$_Z$)  [dex/kpc]")
    fig.suptitle(f"plan: z = {target.redshift:g}, r_eff = {target.r_eff:g} kpc, i = {target.inclination:g} deg, "
                 f"x = 2 r_eff / PSF FWHM", fontsize=10)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _print(rows: list[dict]) -> None:
    print(f"{'setup':<18} {'depth':<10} {'|grad|':>6} {'x':>5} {'ratio':>6} {'16%':>6} {'84%':>6} "
          f"{'sigma':>7} {'P3s':>4}  verdict (preset status; sources)")
    for r in rows:
        nums = ("" if r["verdict"] != "ok" else
                f"{r['ratio_median']:6.2f} {r['ratio_p16']:6.2f} {r['ratio_p84']:6.2f} {r['sigma_grad_median']:7.3f} "
                f"{r['p_detect_3sigma']:4.2f}")
        print(f"{r['setup']:<18} {r['depth']:<10} {r['grad_z_abs']:6.3f} {r['x_resolution']:5.2f} {nums:<33}"
              f"  {r['verdict']} {r['reason']} ({r['preset_status']}; {r['preset_sources']})")


#: ``plan --example``: (subfolder, target file, setups file), shipped in ``mockzgrad.data`` (copies of
#: the files of the same names in examples/; a test keeps them equal).
EXAMPLES = (("z2", "plan_target_z2.toml", "plan_setups.toml"), ("z5", "plan_target_z5.toml", "plan_setups_z5.toml"))


def _example_inputs(outdir: Path) -> list:
    """Copy the packaged example target and setups files to ``outdir/inputs``; the runs to make."""
    from importlib import resources
    import shutil

    inputs = outdir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    data = resources.files("mockzgrad.data")
    for name in {n for _, t, s in EXAMPLES for n in (t, s)}:
        with resources.as_file(data.joinpath(name)) as src:
            shutil.copyfile(src, inputs / name)
    return [(outdir / sub, inputs / t, inputs / s) for sub, t, s in EXAMPLES]


def cli(args) -> int:
    """``mockzgrad plan TARGET.toml --setups SETUPS.toml -o plan_dir [--workers N] | --example``."""
    if args.example:
        runs = _example_inputs(Path(args.output or "mockzgrad-plan-example"))
    else:
        if not args.target or not args.setups or not args.output:
            raise ConfigError("plan needs TARGET.toml, --setups SETUPS.toml and -o plan_dir (or --example)")
        runs = [(Path(args.output), args.target, args.setups)]
    for out, target_path, setups_path in runs:
        rows = run_plan(load_target(target_path), load_setups(setups_path), out, workers=args.workers,
                        cache=not getattr(args, "no_cache", False))
        _print(rows)
        print(f"plan written to {out}/plan.ecsv, plan.csv, plan.png, design_map.png")
    return 0
