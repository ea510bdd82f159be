"""Observing-strategy planner: small suites per instrument setup and |grad_z|.

``mockzgrad plan TARGET.toml --setups SETUPS.toml -o plan_dir`` reads a
:class:`PlanTarget` (the galaxy) and a list of :class:`PlanSetup` (preset,
depth, recipe, mocks), runs one small suite per setup, depth and |grad_z|
(:func:`mockzgrad.suites.suite.run_suite`, folders under ``plan_dir/suites/``)
and writes ``plan.ecsv``, ``plan.csv`` and ``plan.png``: per row x = 2 r_eff / FWHM,
the median measured/intrinsic gradient with its 16-84 % range, the median
sigma(grad) and a verdict:

* ``"unresolved"``: x < :data:`X_UNRESOLVED` (no suite is run; no numbers);
* ``"too faint"``: more than half of the mocks give no gradient (S/N gate);
* ``"ok"``: the numbers.

Every row names the preset, its status and its sources. First slice of issue
19: no exposure solver, cache or design map yet; a depth is a ``noise.snr`` or
an exposure turned into ``noise.sigma`` through a ``pixel_sigma`` sensitivity.

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

Setups file::

    [[setup]]
    name = "nirspec_g235m"
    preset = "nirspec_ifu_g235m"
    snr = [10.0]                # or exposure = [3600.0] (s) with a pixel_sigma sensitivity
    recipe = "lee2026"
    overrides = {"metallicity.diagnostics" = ["S25_R3", "S25_N2"]}
    n_mocks = 8
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import validate
from ..config import config_from_dict, read_toml
from ..config.resolution import x_resolution
from ..errors import ConfigError
from ..observation.presets import load_preset, sensitivity_at

__all__ = ["X_UNRESOLVED", "PlanTarget", "PlanSetup", "load_target", "load_setups", "run_plan",
           "plan_row_verdict", "check_band", "plot_plan", "cli"]

#: Below this x = 2 r_eff / FWHM a gradient is reported "unresolved" (issue 19).
X_UNRESOLVED = 0.6
#: A setup is "too faint" when more than this fraction of its mocks give no gradient.
FAINT_FRACTION = 0.5
_COLUMNS = ("setup", "preset", "preset_status", "preset_sources", "depth", "grad_z_abs", "x_resolution",
            "x_resolution_mocks",
            "n_mocks", "n_measured", "ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median", "p_detect_3sigma",
            "verdict",
            "reason")


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


@dataclass(frozen=True)
class PlanSetup:
    """One candidate setup: preset, depths (S/N or exposure, s), recipe (+ overrides), mocks."""

    name: str
    preset: str
    snr: tuple[float, ...] = ()
    exposure: tuple[float, ...] = ()
    recipe: str = "lee2026"
    overrides: dict = field(default_factory=dict)
    n_mocks: int = 8


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
        generating_set=tuple(gs) if gs else None)


def setup_from_dict(s: dict, where: str) -> PlanSetup:
    """Check one ``[[setup]]`` table."""
    known = set(PlanSetup.__dataclass_fields__)
    extra = sorted(set(s) - known)
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown field; allowed: {', '.join(sorted(known))}")
    if "preset" not in s:
        raise ConfigError(f"{where}.preset is missing")
    preset = load_preset(s["preset"])
    if preset.kind != "ifu" or "instrument" not in preset.tables:
        raise ConfigError(f"{where}.preset = {s['preset']!r} is a {preset.kind!r} preset without an "
                          "[instrument] table; the planner runs IFU presets in this version")
    if ("snr" in s) == ("exposure" in s):
        raise ConfigError(f"{where}: give exactly one of snr (list) and exposure (list, s)")
    snr = _numbers(f"{where}.snr", s["snr"]) if "snr" in s else ()
    exposure = _numbers(f"{where}.exposure", s["exposure"], unit="s") if "exposure" in s else ()
    if exposure and (preset.sensitivity is None or preset.sensitivity.quantity != "pixel_sigma"):
        q = preset.sensitivity.quantity if preset.sensitivity else "none"
        raise ConfigError(f"{where}.exposure needs a preset with a pixel_sigma sensitivity; "
                          f"{s['preset']!r} has {q}: give snr instead")
    overrides = s.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.overrides = {overrides!r}; expected a table of recipe values")
    return PlanSetup(name=validate.text(f"{where}.name", s.get("name", s["preset"]), empty=False),
                     preset=s["preset"], snr=snr, exposure=exposure, recipe=str(s.get("recipe", "lee2026")),
                     overrides=dict(overrides),
                     n_mocks=validate.integer(f"{where}.n_mocks", s.get("n_mocks", 8), 1, 10000))


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


def _fixed(target: PlanTarget, setup: PlanSetup) -> dict:
    lines = {"reference_line": target.reference_line, "reference_flux": target.reference_flux,
             "lines": list(target.lines)}
    if target.generating_set:
        lines["generating_set"] = list(target.generating_set)
    return {"galaxy": {"redshift": target.redshift, "r_eff": target.r_eff, "sersic_n": target.sersic_n,
                       "inclination": target.inclination},
            "lines": lines, "instrument": {"preset": setup.preset},
            "noise": {"snr_line": target.reference_line}}


def _depths(setup: PlanSetup) -> tuple[str, list[tuple[str, float]]]:
    """The noise parameter the setup sweeps and its (label, value) pairs."""
    if setup.snr:
        return "noise.snr", [(f"S/N={v:g}", v) for v in setup.snr]
    sens = load_preset(setup.preset).sensitivity
    return "noise.sigma", [(f"t={t:g}s", sensitivity_at(sens, t)) for t in setup.exposure]


def plan_row_verdict(x: float, n_mocks: int, n_measured: int) -> tuple[str, str]:
    """Verdict and reason of one plan row (``"unresolved"``, ``"too faint"`` or ``"ok"``)."""
    if not x >= X_UNRESOLVED:
        return "unresolved", f"x = 2 r_eff / FWHM = {x:.2f} < {X_UNRESOLVED}"
    if n_measured < (1.0 - FAINT_FRACTION) * n_mocks or n_measured == 0:
        return "too faint", f"{n_mocks - n_measured} of {n_mocks} mocks give no gradient (S/N gate)"
    return "ok", ""


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


def _run_setup(target, setup, outdir: Path, workers, seed) -> dict:
    """One suite per setup over |grad_z| x depth; its rows grouped by (|grad_z|, depth value)."""
    from ..suites.store import ResultsStore
    from ..suites.suite import run_suite, suite_from_dict

    key, depths = _depths(setup)
    rec = {"recipe": setup.recipe}
    if setup.overrides:
        rec["overrides"] = setup.overrides
    grid = {"galaxy.metallicity.grad_z": [-g for g in target.grad_z], key: [v for _, v in depths]}
    spec = suite_from_dict({"suite": {"name": f"plan_{setup.name}", "seed": seed,
                                      "n_mocks": setup.n_mocks * len(target.grad_z) * len(depths)},
                            "fixed": _fixed(target, setup), "grid": grid,
                            "sample": {"galaxy.pa": {"dist": "uniform", "low": 0.0, "high": 180.0}},
                            "recovery": rec})
    run = run_suite(spec, outdir / "suites" / setup.name, "mockzgrad.suites.job:run_mock", workers=workers,
                    progress=False, executor="serial" if workers == 1 else "local")
    groups: dict = {}
    with ResultsStore(run.store_path, readonly=True) as store:
        for r in store.rows():
            point = spec.grid_point(int(r["mock_index"]))
            groups.setdefault((-point["galaxy.metallicity.grad_z"], point[key]), []).append(r)
    return groups


def check_band(target: PlanTarget, setup: PlanSetup, cfg) -> None:
    """Every target line must fall in the preset's band (when it has one).

    Raises
    ------
    ConfigError
        Naming the setup, the line, its observed wavelength and the band.
    """
    from ..physics.lines import LINES

    spec = cfg.instrument.spectral
    if spec.wave_min is None or spec.wave_max is None:
        return
    for name in target.lines:
        w = LINES[name].wavelength * (1.0 + target.redshift)
        if not spec.wave_min <= w <= spec.wave_max:
            raise ConfigError(f"setup {setup.name!r}: line {name} at z = {target.redshift:g} is observed at "
                              f"{w:.0f} A, outside the band of preset {setup.preset!r} "
                              f"({spec.wave_min:.0f}-{spec.wave_max:.0f} A)")


def _setup_rows(target, setup, outdir, workers, seed) -> list[dict]:
    preset = load_preset(setup.preset)
    fixed = _fixed(target, setup)
    cfg = config_from_dict(fixed)
    check_band(target, setup, cfg)
    x = x_resolution(cfg)
    _, depths = _depths(setup)
    groups = {} if x < X_UNRESOLVED else _run_setup(target, setup, outdir, workers, seed)
    rows = []
    for label, value in depths:
        for g in target.grad_z:
            group = groups.get((g, value), [])
            n, *stats = _stats(group)
            xs = [r["x_resolution"] for r in group if r.get("x_resolution") is not None]
            verdict, reason = plan_row_verdict(x, setup.n_mocks, n)
            row = {"setup": setup.name, "preset": preset.name, "preset_status": preset.status,
                   "preset_sources": "; ".join(preset.sources), "depth": label, "grad_z_abs": g,
                   "x_resolution": x, "x_resolution_mocks": float(np.median(xs)) if xs else math.nan,
                   "n_mocks": setup.n_mocks, "n_measured": n, "verdict": verdict,
                   "reason": reason}
            for k, v in zip(("ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median", "p_detect_3sigma"),
                            stats):
                row[k] = v if verdict == "ok" else math.nan  # never a number for a failed setup
            rows.append(row)
    return rows


def run_plan(target: PlanTarget, setups, outdir, *, workers: int | None = None, seed: int = 20261204,
             plot: bool = True) -> list[dict]:
    """Run the plan; write ``plan.ecsv``, ``plan.csv`` (and ``plan.png``) in ``outdir``; return the rows."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = [r for s in setups for r in _setup_rows(target, s, outdir, workers, seed)]
    _write_tables(rows, outdir, target)
    if plot:
        plot_plan(rows, outdir / "plan.png", target)
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
    t["sigma_grad_median"].unit = "dex/kpc"
    t["p_detect_3sigma"].description = "fraction of the mocks with the true sign and |grad| >= 3 sigma"
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

    labels = list(dict.fromkeys((r["setup"], r["depth"]) for r in rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
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


def cli(args) -> int:
    """``mockzgrad plan TARGET.toml --setups SETUPS.toml -o plan_dir [--workers N] | --example``."""
    if args.example:
        root = Path(__file__).resolve().parents[2] / "examples"
        target_path, setups_path = root / "plan_target_z2.toml", root / "plan_setups.toml"
        if not target_path.is_file() or not setups_path.is_file():
            raise ConfigError(f"plan --example needs {target_path} and {setups_path} (examples/ of a source "
                              "checkout); give TARGET.toml and --setups instead")
        outdir = args.output or "mockzgrad-plan-example"
    else:
        if not args.target or not args.setups or not args.output:
            raise ConfigError("plan needs TARGET.toml, --setups SETUPS.toml and -o plan_dir (or --example)")
        target_path, setups_path, outdir = args.target, args.setups, args.output
    rows = run_plan(load_target(target_path), load_setups(setups_path), outdir, workers=args.workers)
    _print(rows)
    print(f"plan written to {outdir}/plan.ecsv, plan.csv, plan.png")
    return 0
