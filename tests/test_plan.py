"""Observing-strategy planner (issue 19, first slice): files, verdicts, a tiny plan."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from _seed import seeded
from mockzgrad.corrections import plan as PL
from mockzgrad.corrections.plan_solve import SOLVE_RTOL as PS_RTOL
from mockzgrad.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TARGET = {"redshift": 2.2, "r_eff": 2.0, "sersic_n": 1.0, "inclination": 40.0, "reference_line": "Ha",
          "reference_flux": 1e-16, "grad_z": [0.1], "lines": ["NII_6550", "Ha", "NII_6585"],
          "generating_set": ["C20_N2"]}
NIRSPEC = {"name": "nirspec", "preset": "nirspec_ifu_g235m", "snr": [15.0], "recipe": "lee2026", "n_mocks": 4,
           "overrides": {"metallicity.diagnostics": ["C20_N2"], "metallicity.also": [], "gating.line": "Ha"}}
KMOS = {"name": "kmos", "preset": "kmos_seeing", "snr": [15.0], "recipe": "li2025_kurvs", "n_mocks": 4,
        "overrides": {"metallicity.diagnostics": ["C20_N2"], "dust.correct": False}}


def test_shipped_examples_load():
    target = PL.load_target(ROOT / "examples" / "plan_target_z2.toml")
    setups = PL.load_setups(ROOT / "examples" / "plan_setups.toml")
    assert target.redshift == 2.2 and target.grad_z == (0.05, 0.1)
    assert {s.preset for s in setups} >= {"nirspec_ifu_g235m", "kmos_seeing"}
    for sub, t, s in PL.EXAMPLES:  # every --example pair loads; at z ~ 5 only NIRSpec sees Halpha and [NII]
        target, setups = PL.load_target(ROOT / "examples" / t), PL.load_setups(ROOT / "examples" / s)
        assert [x.preset for x in setups] == ["nirspec_ifu_g235m" if sub == "z2" else "nirspec_ifu_g395m",
                                             "kmos_seeing", "niriss_gr150"]
        for setup in setups:
            problem = PL.band_problem(target, setup, PL.config_from_dict(PL._fixed(target, setup)))
            assert bool(problem) == (sub == "z5" and setup.preset != "nirspec_ifu_g395m"), problem
    assert PL.load_target(ROOT / "examples" / "plan_target_z5.toml").sigma_target == 0.05
    (niriss,) = PL.load_setups(ROOT / "examples" / "plan_setups_z2_niriss.toml")
    full = PL.target_from_dict(dict(TARGET, lines=["OII_3727", "OII_3730", "Hb", "OIII_4960", "OIII_5008",
                                                   "NII_6550", "Ha", "NII_6585"],
                                    generating_set=["C20_N2", "C20_R3", "C20_O32"]))  # as its comment says
    cfg = PL.config_from_dict(PL._fixed(full, niriss))
    assert niriss.kind == "grism" and cfg.instrument.kind == "grism" and cfg.noise.snr_line == "OIII_5008"


@pytest.mark.parametrize("change, words", [
    ({"exposure": [0.0], "snr": None}, ["setup.exposure[0]", "0.0"]),
    ({"preset": "kmos_seing"}, ["kmos_seeing"]),
    ({"preset": "niriss_gr150", "overrides": {"errors.model": "rms"}}, ["niriss_gr150", "errors.model", "grism"]),
    ({"preset": "nirspec_g235m"}, ["nirspec_g235m", "spectral-grid"]),
    ({"sensitivity": {"quantity": "snr", "value": 0.0, "exposure": 3600.0, "citation": "x"}},
     ["setup.sensitivity.value", "0.0"]),
    ({"exposure_cap": -1.0}, ["setup.exposure_cap", "-1.0"]),
    ({"exposure": [3600.0], "snr": None}, ["pixel_sigma", "snr"]),
    ({"n_mock": 3}, ["setup.n_mock", "unknown"]),
])
def test_bad_setups_are_one_line(change, words):
    s = {k: v for k, v in dict(KMOS, **change).items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        PL.setup_from_dict(s, "setup")
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_target_is_one_line():
    for change, word in (({"r_eff": -1.0}, "target.r_eff"), ({"grad_z": []}, "target.grad_z"),
                         ({"lines": "Ha"}, "target.lines")):
        with pytest.raises(ConfigError, match=word):
            PL.target_from_dict(dict(TARGET, **change))


def test_verdicts():
    assert PL.plan_row_verdict(0.59, 8, 8)[0] == "unresolved"
    assert PL.plan_row_verdict(math.nan, 8, 8)[0] == "unresolved"
    assert PL.plan_row_verdict(0.6, 8, 3)[0] == "too faint"
    assert PL.plan_row_verdict(0.6, 8, 0)[0] == "too faint"
    assert PL.plan_row_verdict(0.6, 8, 4) == ("ok", "")


def test_unresolved_setup_reports_no_number(tmp_path, capsys):
    """x = 2 r_eff / 0.6" < 0.6 for r_eff = 1 kpc at z = 2.2 (0.12"): no suite is run, no number is given."""
    target = PL.target_from_dict(dict(TARGET, r_eff=1.0))
    rows = PL.run_plan(target, [PL.setup_from_dict(KMOS, "setup")], tmp_path, workers=1)
    (row,) = rows
    assert row["verdict"] == "unresolved" and row["x_resolution"] < 0.6 and "x = 2 r_eff / FWHM" in row["reason"]
    assert all(math.isnan(row[k]) for k in ("ratio_median", "ratio_p16", "ratio_p84", "sigma_grad_median",
                                            "p_detect_3sigma"))
    assert not (tmp_path / "suites").exists()
    from astropy.table import Table

    t = Table.read(tmp_path / "plan.ecsv")
    assert t["ratio_median"].mask[0] and t["sigma_grad_median"].mask[0]
    PL._print(rows)
    line = capsys.readouterr().out.splitlines()[1]
    assert "unresolved" in line and "nan" not in line


def test_tiny_plan_writes_table_and_figure(tmp_path):
    """2 setups x 1 |grad_z| x 4 mocks, serial (~8 s): the table, the figure, the preset sources on every row."""
    target = PL.target_from_dict(TARGET)
    setups = [PL.setup_from_dict(NIRSPEC, "setup[0]"), PL.setup_from_dict(KMOS, "setup[1]")]
    rows = PL.run_plan(target, setups, tmp_path, workers=1)
    assert [r["setup"] for r in rows] == ["nirspec", "kmos"]
    for r in rows:
        assert r["preset_sources"] and r["preset_status"] in ("from seeds", "approximate")
        assert r["verdict"] in ("ok", "too faint")
        if r["verdict"] == "ok":
            assert r["ratio_p16"] <= r["ratio_median"] <= r["ratio_p84"] and r["sigma_grad_median"] > 0
            assert r["n_measured"] >= 2 and 0.0 <= r["p_detect_3sigma"] <= 1.0
    nirspec = rows[0]
    # x from the configuration: 2 x 0.2419" / 0.195" (the elliptical PSF's major axis at galaxy pa = 0)
    assert nirspec["x_resolution"] == pytest.approx(2 * 2.0 / 8.2688 / 0.195, rel=2e-3)
    assert nirspec["x_resolution_mocks"] >= nirspec["x_resolution"] - 1e-9  # the major axis is the worst case
    for name in ("plan.png", "design_map.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    from astropy.table import Table

    t = Table.read(tmp_path / "plan.ecsv")
    assert list(t["setup"]) == ["nirspec", "kmos"] and t["sigma_grad_median"].unit == "dex/kpc"
    assert np.all(np.isfinite(np.asarray(Table.read(tmp_path / "plan.csv")["x_resolution"], float)))


def test_line_outside_the_band_is_a_verdict_naming_line_wavelength_and_band(tmp_path, monkeypatch):
    """Within a comparison a setup that cannot see a line is an answer ("outside band"), not an error;
    a plan in which no setup sees the lines is an error naming line, observed wavelength and band."""
    target = PL.target_from_dict(dict(TARGET, redshift=4.0))  # [NII] 6550 at 6549.86 x 5 = 32749 A > 30700 A
    with pytest.raises(ConfigError) as exc:
        PL.run_plan(target, [PL.setup_from_dict(NIRSPEC, "setup")], tmp_path, workers=1, plot=False)
    msg = str(exc.value)
    assert "\n" not in msg and "NII_6550" in msg and "32749 A" in msg and "16600-30700 A" in msg, msg
    assert not (tmp_path / "suites").exists()  # no suite runs
    # one setup of two sees the lines: the other gets the verdict with the same words, and no suite
    seeing = PL.setup_from_dict(dict(NIRSPEC, name="seeing"), "setup")
    real_band, real_rows = PL.band_problem, PL._setup_rows  # the seeing setup's suite is not this test's subject
    monkeypatch.setattr(PL, "band_problem", lambda t, s, c: "" if s.name == "seeing" else real_band(t, s, c))
    monkeypatch.setattr(PL, "_setup_rows", lambda t, s, *a, **k: [] if s.name == "seeing" else real_rows(t, s, *a, **k))
    rows = PL.run_plan(target, [PL.setup_from_dict(NIRSPEC, "setup"), seeing], tmp_path, workers=1, plot=False)
    (row,) = rows
    assert row["verdict"] == "outside band" and row["reason"] == msg
    assert all(math.isnan(row[k]) for k in ("ratio_median", "sigma_grad_median", "sigma_grad_mean"))
    assert not (tmp_path / "suites" / "setup").exists()
    with pytest.raises(ConfigError, match="32749 A"):  # check_band still raises, for callers that want an error
        setup = PL.setup_from_dict(NIRSPEC, "setup")
        PL.check_band(target, setup, PL.config_from_dict(PL._fixed(target, setup)))


def test_preset_band_and_grism_filters_decide_outside_band():
    """KMOS's preset band (0.8-2.5 um, Sharples et al. 2014) and a grism's exposure filters."""
    target = PL.target_from_dict(dict(TARGET, redshift=2.2))
    kmos = PL.setup_from_dict(KMOS, "setup")
    cfg = PL.config_from_dict(PL._fixed(target, kmos))
    assert PL.band_problem(target, kmos, cfg) == ""  # Halpha at 2.10 um
    z3 = PL.target_from_dict(dict(TARGET, redshift=3.0))  # Halpha at 26258 A > 25000 A
    msg = PL.band_problem(z3, kmos, PL.config_from_dict(PL._fixed(z3, kmos)))
    assert "8000-25000 A" in msg and "Sharples" in msg and "NII_6550" in msg and "26199 A" in msg, msg
    niriss = PL.setup_from_dict({"name": "niriss", "preset": "niriss_gr150", "snr": [10.0], "recipe": "wang2022",
                                 "instrument": {"psf": {"kind": "gaussian", "fwhm": 0.1}, "grism": {"exposures": [
                                     {"grism": "GR150C", "filter": "F200W", "pa": 0.0, "exptime": 1000.0}]}}},
                                "setup")
    assert PL.band_problem(target, niriss, PL.config_from_dict(PL._fixed(target, niriss))) == ""  # 2.10 um in F200W
    msg = PL.band_problem(z3, niriss, PL.config_from_dict(PL._fixed(z3, niriss)))
    assert "F200W 17510-22260 A" in msg and "26199 A" in msg, msg


def test_exposure_depths_follow_the_preset_sensitivity(tmp_path):
    """A user preset with a per-pixel sensitivity: exposures become noise.sigma by the t^-1/2 law."""
    path = tmp_path / "deep.toml"
    path.write_text('[preset]\nname = "deep"\nkind = "ifu"\nstatus = "approximate"\nsources = ["test"]\n'
                    '[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = 0.3\n'
                    '[sensitivity]\nquantity = "pixel_sigma"\nvalue = 2e-20\nexposure = 3600.0\ncitation = "test"\n')
    table = {k: v for k, v in KMOS.items() if k != "snr"}
    setup = PL.setup_from_dict(dict(table, preset=str(path), exposure=[3600.0, 14400.0]), "setup")
    depths = PL._depths(setup)
    assert PL._noise_key(setup) == "noise.sigma"
    assert [d.value for d in depths] == pytest.approx([2e-20, 1e-20], rel=1e-15)
    assert [d.exposure for d in depths] == [3600.0, 14400.0]
    assert PL._depth_source(setup) == "pixel_sigma 2e-20 at 3600 s, t^-1/2 law: test"


def test_row_statistics_by_hand():
    """Ratio percentiles, sigma = half the 16-84 % range, P(3 sigma) over all mocks (failed ones count)."""
    t = -0.1
    rows = [{"status": "ok", "grad_z_true": t, "grad_z_measured": g, "grad_z_measured_lo": g - s,
             "grad_z_measured_hi": g + s} for g, s in ((-0.08, 0.02), (-0.05, 0.02), (-0.02, 0.01), (0.01, 0.01))]
    rows.append({"status": "ok", "grad_z_true": t, "grad_z_measured": None})  # no gradient (S/N gate)
    n, med, p16, p84, sigma, p3 = PL._stats(rows)
    ratios = [0.8, 0.5, 0.2, -0.1]
    assert n == 4 and med == pytest.approx(np.median(ratios)) and sigma == pytest.approx(0.015)
    assert (p16, p84) == pytest.approx(tuple(np.percentile(ratios, [16, 84])))
    assert p3 == pytest.approx(1 / 5)  # only -0.08 +- 0.02 is >= 3 sigma with the true sign (-0.05/0.02 = 2.5)
    mean, se = PL.sigma_mean(rows)  # the solver's estimator: mean of 0.02, 0.02, 0.01, 0.01 and std / sqrt(4)
    assert mean == pytest.approx(0.015) and se == pytest.approx(math.sqrt(4 * 0.005 ** 2 / 3) / 2)
    assert math.isnan(PL.sigma_mean(rows[:1])[1]) and all(math.isnan(v) for v in PL.sigma_mean(rows[-1:]))


def _deep_preset(tmp_path) -> str:
    """An IFU preset with a per-pixel sensitivity: 6e-20 erg/s/cm^2 at 1 h (Ha S/N ~ 10 for TARGET)."""
    path = tmp_path / "deep.toml"
    path.write_text('[preset]\nname = "deep"\nkind = "ifu"\nstatus = "approximate"\nsources = ["test"]\n'
                    '[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = 0.3\n'
                    '[sensitivity]\nquantity = "pixel_sigma"\nvalue = 6e-20\nexposure = 3600.0\ncitation = "test"\n')
    return str(path)


def _sigmas(rows) -> np.ndarray:
    """Per-mock sigma(grad) = half the 16-84 % range (dex/kpc), mocks with a gradient."""
    return np.array([0.5 * abs(r["grad_z_measured_hi"] - r["grad_z_measured_lo"]) for r in rows
                     if r.get("grad_z_measured") is not None])


@pytest.mark.slow
def test_exposure_solver_against_a_direct_suite(tmp_path):
    """sigma(grad) falls with exposure; a direct suite (another seed) at the solved exposure gives the target.

    The solver works on the mean sigma(grad) of a suite's mocks (per mock it is
    bimodal, ~0.06 or ~0.11 dex/kpc, so a median of a few mocks jumps between the
    modes). Tolerance: |direct - target| <= |check - target| + 3 sigma_MC, where
    check is the solver's suite at t* (asserted within the issue's 10 %) and
    sigma_MC the error of the difference of two independent means, std / sqrt(n)
    of each suite's per-mock sigma (central limit: valid for a bimodal
    distribution too) in quadrature: 24 mocks in the plan, 72 in the direct
    suite. Per-mock sigma(grad) spreads by ~35 % of its mean at t*, so sigma_MC
    is ~7-8 % of the target and the bound ~0.27-0.32 (seed offsets 0-2; the
    median version allowed ~0.59). The depths share their mocks (common
    random numbers), so the mean sigma(grad) must fall from depth to depth.
    """
    goal = 0.07
    target = PL.target_from_dict(dict(TARGET, sigma_target=goal))
    table = {k: v for k, v in NIRSPEC.items() if k != "snr"}
    setup = PL.setup_from_dict(dict(table, name="deep", preset=_deep_preset(tmp_path),
                                    exposure=[3600.0, 14400.0, 57600.0], n_mocks=24), "setup")
    rows = PL.run_plan(target, [setup], tmp_path / "plan", workers=1, plot=False, seed=seeded(20261204))
    main = [r for r in rows if not r["solved"]]
    assert all(r["verdict"] == "ok" for r in main)
    sig = [r["sigma_grad_mean"] for r in main]
    assert sig[0] > sig[1] > sig[2], sig
    t_star = main[0]["exposure_for_target"]
    assert 3600.0 < t_star < 57600.0 and all(r["exposure_for_target"] == t_star for r in rows)
    check = next(r for r in rows if r["solved"] and r["exposure_s"] == t_star)
    dev_check = abs(check["sigma_grad_mean"] / goal - 1.0)
    assert dev_check <= PS_RTOL, check["reason"]
    ctx = PL._Context(target, dataclasses.replace(setup, n_mocks=3 * setup.n_mocks), tmp_path / "direct", 1,
                      seed=seeded(777))
    depth = PL.depth_at(setup, t_star)
    s_d = _sigmas(next(iter(ctx.suite("direct", [0.1], [depth]).values())))
    se_d = float(np.std(s_d, ddof=1)) / math.sqrt(s_d.size)
    direct = float(np.mean(s_d))
    tol = dev_check + 3.0 * math.hypot(se_d, check["sigma_grad_mean_se"]) / goal
    print(f"t* = {t_star:.0f} s: check suite {check['sigma_grad_mean']:.4f} +- {check['sigma_grad_mean_se']:.4f}, "
          f"direct suite {direct:.4f} +- {se_d:.4f} ({s_d.size} mocks), target {goal}, tolerance {tol:.3f}")
    assert abs(direct / goal - 1.0) <= tol


def test_calibration_pinning_follows_the_span_of_z():
    """Z(r) spans |grad| x 2 r_eff; wider than C20_N2's 1.3 dex (7.6-8.9) it must leave the range, narrower not."""
    from mockzgrad.config import config_from_dict

    def cfg(g, r_eff):
        t = PL.target_from_dict(dict(TARGET, r_eff=r_eff, grad_z=[g]))
        d = PL._fixed(t, PL.setup_from_dict(NIRSPEC, "setup"))
        d["galaxy"]["metallicity"] = {"grad_z": -g}
        return config_from_dict(d)

    wide = PL.calibration_pinning(cfg(0.2, 4.0), ["C20_N2"])  # 0.2 x 8 kpc = 1.6 dex > 1.3
    assert "C20_N2" in wide and "7.6-8.9" in wide and "bins pin at" in wide
    assert PL.calibration_pinning(cfg(0.1, 2.0), ["C20_N2"]) == ""  # 0.4 dex, z0 chosen inside the range
    # a recipe diagnostic narrower than the generating one: S25_N2 is 7.8-8.6 (0.8 dex) < 0.17 x 2 x 2.5 = 0.85
    # dex, while C20_N2 (1.3 dex) holds the 3 r_eff the generator keeps inside it (1.275 dex)
    assert "S25_N2" in PL.calibration_pinning(cfg(0.17, 2.5), ["S25_N2"])


def test_lensing_passes_to_every_mock_and_bad_values_are_one_line():
    lens = {"kind": "constant", "kappa": 0.3}
    target = PL.target_from_dict(dict(TARGET, lensing=lens))
    fixed = PL._fixed(target, PL.setup_from_dict(NIRSPEC, "setup"))
    assert fixed["lensing"] == lens
    from mockzgrad.config import config_from_dict

    assert config_from_dict(fixed).lensing.kappa == 0.3
    with pytest.raises(ConfigError) as exc:
        PL.target_from_dict(dict(TARGET, lensing={"kind": "constant", "kappa": "x"}))
    assert "\n" not in str(exc.value) and "kappa" in str(exc.value)


def test_setup_band_and_lines_subset(tmp_path):
    """A preset without a spectral range takes the setup's band; setup.lines must be target lines."""
    target = PL.target_from_dict(dict(TARGET, redshift=5.0))  # Ha at 3.94 um
    setup = PL.setup_from_dict(dict(KMOS, band=[9000.0, 24000.0]), "setup")
    with pytest.raises(ConfigError) as exc:  # the only setup cannot see the lines: nothing to plan
        PL.run_plan(target, [setup], tmp_path, workers=1, plot=False)
    assert "NII_6550 at z = 5 is observed at 39299 A, outside the band of setup.band (9000-24000 A)" in str(exc.value)
    with pytest.raises(ConfigError, match="OIII_5008"):
        PL._fixed(target, PL.setup_from_dict(dict(KMOS, lines=["OIII_5008"]), "setup"))


def test_design_map_is_written(tmp_path):
    from mockzgrad.corrections.plan_map import depth_axis_value, plot_design_map

    base = {"setup": "a", "preset": "p", "preset_status": "approximate", "x_resolution": 2.0, "solved": False,
            "exposure_s": math.nan, "ratio_median": 0.5, "sigma_grad_median": 0.05, "exposure_for_target": math.nan,
            "snr_for_target": math.nan}
    rows = [dict(base, depth="S/N=10", grad_z_abs=0.1, verdict="ok"),
            dict(base, depth="S/N=5", grad_z_abs=0.1, verdict="too faint", ratio_median=math.nan),
            dict(base, depth="S/N=14.1", grad_z_abs=0.1, verdict="ok", solved=True, snr_for_target=14.1,
                 sigma_target=0.05),
            dict(base, depth="S/N=10", grad_z_abs=0.05, verdict="ok"),
            dict(base, depth="solve", grad_z_abs=0.05, verdict="calibration floor", solved=True, sigma_floor=0.061)]
    assert [depth_axis_value(r) for r in rows[:4]] == [10.0, 5.0, 14.1, 10.0] and math.isnan(depth_axis_value(rows[4]))
    assert depth_axis_value(dict(base, exposure_s=3600.0, depth="t=3600s")) == 3600.0
    plot_design_map(rows, tmp_path / "map.png", "test")
    png = (tmp_path / "map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def _suite_ratios_sigmas(store_path) -> tuple[np.ndarray, np.ndarray]:
    from mockzgrad.suites.store import ResultsStore

    ratios, sigmas = [], []
    with ResultsStore(store_path, readonly=True) as store:
        for r in store.rows():
            if r.get("grad_z_measured") is not None:
                ratios.append(r["grad_z_measured"] / r["grad_z_true"])
                sigmas.append(0.5 * abs(r["grad_z_measured_hi"] - r["grad_z_measured_lo"]))
    return np.array(ratios), np.array(sigmas)


def _median_se(values, n_boot=2000, seed=0) -> float:
    """Bootstrap standard error of the median."""
    rng = np.random.default_rng(seed)
    return float(np.std(np.median(rng.choice(values, (n_boot, values.size)), axis=1)))


def _direct_spec(name: str, seed: int, n: int, snr: float):
    """The plan's NIRSpec setup spelled out as a suite by hand (not built by the planner)."""
    from mockzgrad.suites.suite import suite_from_dict

    return suite_from_dict({
        "suite": {"name": name, "seed": seed, "n_mocks": n},
        "fixed": {"galaxy": {"redshift": 2.2, "r_eff": 2.0, "sersic_n": 1.0, "inclination": 40.0,
                             "metallicity": {"grad_z": -0.1}},
                  "lines": {"reference_line": "Ha", "reference_flux": 1e-16,
                            "lines": ["NII_6550", "Ha", "NII_6585"], "generating_set": ["C20_N2"]},
                  "instrument": {"preset": "nirspec_ifu_g235m"}, "noise": {"snr_line": "Ha", "snr": snr}},
        "sample": {"galaxy.pa": {"dist": "uniform", "low": 0.0, "high": 180.0}},
        "recovery": {"recipe": "lee2026", "overrides": NIRSPEC["overrides"]}})


def _run_direct(tmp_path, name, seed, n, snr):
    from mockzgrad.suites.suite import run_suite

    run = run_suite(_direct_spec(name, seed, n, snr), tmp_path / name, "mockzgrad.suites.job:run_mock", workers=1,
                    progress=False, executor="serial")
    return _suite_ratios_sigmas(run.store_path)


def test_plan_row_is_the_hand_written_suite_at_the_plan_seed(tmp_path):
    """The same suite written by hand with the plan's seed gives the plan row's numbers exactly (2 mocks).

    The statistics are recomputed here from the direct suite's rows (median and
    16/84 % of measured/intrinsic, median of half the 16-84 % interval).
    """
    n, seed = 2, 20261204
    target = PL.target_from_dict(TARGET)
    (row,) = PL.run_plan(target, [PL.setup_from_dict(dict(NIRSPEC, n_mocks=n), "setup")], tmp_path / "plan",
                         workers=1, plot=False, seed=seed)
    r_d, s_d = _run_direct(tmp_path, "direct", seed, n, 15.0)
    assert row["n_measured"] == r_d.size
    if r_d.size:
        assert row["ratio_median"] == pytest.approx(float(np.median(r_d)), rel=1e-12)
        assert (row["ratio_p16"], row["ratio_p84"]) == pytest.approx(tuple(np.percentile(r_d, [16, 84])), rel=1e-12)
        assert row["sigma_grad_median"] == pytest.approx(float(np.median(s_d)), rel=1e-12)


@pytest.mark.slow
def test_plan_agrees_with_an_independent_direct_suite(tmp_path):
    """The plan's median ratio and sigma(grad) agree with a suite written by hand (other seed) within 3 sigma_MC.

    The direct suite is spelled out here, not built by the planner: the same galaxy,
    preset, noise and recipe, pa uniform in [0, 180) deg. 40 mocks each at S/N 30
    (16 at S/N 15 allowed a ~70 % gap in the ratio): sigma_MC is the bootstrap
    error of each median, combined in quadrature for the difference.
    """
    n, snr = 40, 30.0
    target = PL.target_from_dict(TARGET)
    (row,) = PL.run_plan(target, [PL.setup_from_dict(dict(NIRSPEC, n_mocks=n, snr=[snr]), "setup")],
                         tmp_path / "plan", workers=1, plot=False)
    r_d, s_d = _run_direct(tmp_path, "direct", 4242, n, snr)
    r_p, s_p = _suite_ratios_sigmas(tmp_path / "plan" / "suites" / "nirspec" / "g0.1_d0" / "results.sqlite")
    assert row["n_measured"] == r_p.size and row["ratio_median"] == pytest.approx(np.median(r_p))
    for name, plan_value, p, d in (("ratio", row["ratio_median"], r_p, r_d),
                                   ("sigma", row["sigma_grad_median"], s_p, s_d)):
        tol = 3.0 * math.hypot(_median_se(p), _median_se(d))
        print(f"{name}: plan {plan_value:.4f} ({p.size} mocks), direct {np.median(d):.4f} ({d.size}), 3 sigma_MC {tol:.4f}")
        assert abs(plan_value - np.median(d)) <= tol


def test_walkthrough_figure_script_writes_the_png(tmp_path):
    """examples/plan_figure.py (the docs/guide/planner.md figure), quick settings: 2 mocks, no solver."""
    import subprocess
    import sys

    out = tmp_path / "fig" / "map.png"
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "plan_figure.py"), "-o", str(out),
                          "--n-mocks", "2", "--no-solve"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    assert "nirspec_g395m" in res.stdout and not list(out.parent.glob(".*tmp*"))


def test_slitstep_setup_runs_through_the_planner(tmp_path):
    """A slit-stepping preset (NIRSpec MSA G140H, Ju et al.) as a plan setup: 2 mocks at z = 1 (~10 s)."""
    target = PL.target_from_dict({"redshift": 1.0, "r_eff": 3.0, "inclination": 50.0, "reference_line": "Ha",
                                  "reference_flux": 2e-16, "grad_z": [0.05], "lines": ["NII_6550", "Ha", "NII_6585"],
                                  "generating_set": ["C20_N2"]})
    setup = PL.setup_from_dict({"name": "msa", "preset": "nirspec_msa_g140h", "snr": [30.0], "recipe": "ju_msa3d",
                                "n_mocks": 2, "overrides": {"metallicity.diagnostics": ["C20_N2"]},
                                "instrument": {"fov_flux_fraction": 0.95,
                                               "psf": {"kind": "gaussian", "fwhm": 0.05, "ref_wavelength": 13000.0,
                                                       "scaling_exponent": 1.0},
                                               "slitstep": {"n_shutters": 3}}}, "setup")
    assert setup.kind == "slitstep"
    (row,) = PL.run_plan(target, [setup], tmp_path, workers=1, plot=False)
    assert row["preset"] == "nirspec_msa_g140h" and "Ju et al." in row["preset_sources"]
    assert row["n_mocks"] == 2 and row["verdict"] in ("ok", "too faint", "calibration floor")
    from mockzgrad.suites.store import ResultsStore

    with ResultsStore(tmp_path / "suites" / "msa" / "g0.05_d0" / "results.sqlite", readonly=True) as store:
        rows = list(store.rows())
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]


def _example(sub: str):
    t, s = next((t, s) for name, t, s in PL.EXAMPLES if name == sub)
    return PL.load_target(ROOT / "examples" / t), PL.load_setups(ROOT / "examples" / s)


def test_example_z5_reduced_has_three_instruments_with_verdicts(tmp_path):
    """The z ~ 5 example (1 mock, no solver): NIRSpec measures; KMOS and NIRISS are "outside band" in words."""
    target, setups = _example("z5")
    target = dataclasses.replace(target, sigma_target=None)
    setups = [dataclasses.replace(s, n_mocks=1) for s in setups]
    rows = PL.run_plan(target, setups, tmp_path, workers=1, plot=False)
    assert {r["setup"] for r in rows} == {"nirspec_g395m", "kmos", "niriss_gr150"}
    for r in rows:
        assert r["verdict"] in ("ok", "too faint", "calibration floor", "unresolved", "outside band") and r["preset_sources"]
        if r["setup"] == "nirspec_g395m":
            assert r["verdict"] != "outside band"
        else:
            assert r["verdict"] == "outside band" and ("Ha" in r["reason"] or "NII" in r["reason"])
            assert " A, outside the band of " in r["reason"] and math.isnan(r["ratio_median"])
    assert sorted(p.name for p in (tmp_path / "suites").iterdir()) == ["nirspec_g395m"]  # only NIRSpec ran


@pytest.mark.slow
def test_plan_example_compares_three_instruments_at_two_redshifts(tmp_path, capsys):
    """`mockzgrad plan --example`: NIRSpec IFU, KMOS and NIRISS x z ~ 2 and z ~ 5, each row with a verdict.

    At z ~ 2 every instrument runs (x = 2 r_eff / FWHM: NIRISS 4.8, NIRSpec 2.5,
    KMOS 0.8); at z ~ 5 KMOS and NIRISS see neither Halpha nor [NII] and say so.
    """
    from astropy.table import Table

    from mockzgrad.cli import main

    assert main(["plan", "--example", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for sub in ("z2", "z5"):
        t = Table.read(tmp_path / sub / "plan.ecsv")
        plain = t[~np.asarray(t["solved"], bool)]
        assert set(plain["preset"]) == {"nirspec_ifu_g235m" if sub == "z2" else "nirspec_ifu_g395m", "kmos_seeing",
                                        "niriss_gr150"}
        assert set(plain["grad_z_abs"]) == {0.05, 0.1}
        for r in plain:
            assert r["verdict"] in ("ok", "too faint", "calibration floor", "unresolved", "outside band")
            assert (r["verdict"] == "outside band") == (sub == "z5" and r["preset"] != "nirspec_ifu_g395m")
            if r["verdict"] == "ok":
                assert np.isfinite(r["ratio_median"]) and r["sigma_grad_mean"] > 0
        assert (tmp_path / sub / "design_map.png").stat().st_size > 5000
    assert out.count("outside band") >= 6  # 2 setups x 2 |grad| x (1-2 depths) at z ~ 5
