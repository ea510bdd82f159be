"""Observing-strategy planner (issue 19, first slice): files, verdicts, a tiny plan."""

import math
from pathlib import Path

import numpy as np
import pytest

from mockzgrad.corrections import plan as PL
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


@pytest.mark.parametrize("change, words", [
    ({"exposure": [0.0], "snr": None}, ["setup.exposure[0]", "0.0"]),
    ({"preset": "kmos_seing"}, ["kmos_seeing"]),
    ({"preset": "niriss_gr150"}, ["niriss_gr150", "grism"]),
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
    png = (tmp_path / "plan.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    from astropy.table import Table

    t = Table.read(tmp_path / "plan.ecsv")
    assert list(t["setup"]) == ["nirspec", "kmos"] and t["sigma_grad_median"].unit == "dex/kpc"
    assert np.all(np.isfinite(np.asarray(Table.read(tmp_path / "plan.csv")["x_resolution"], float)))


def test_line_outside_the_band_names_line_wavelength_and_band(tmp_path):
    target = PL.target_from_dict(dict(TARGET, redshift=4.0))  # [NII] 6550 at 6549.86 x 5 = 32749 A > 30700 A
    with pytest.raises(ConfigError) as exc:
        PL.run_plan(target, [PL.setup_from_dict(NIRSPEC, "setup")], tmp_path, workers=1)
    msg = str(exc.value)
    assert "\n" not in msg and "NII_6550" in msg and "32749 A" in msg and "16600-30700 A" in msg, msg


def test_exposure_depths_follow_the_preset_sensitivity(tmp_path):
    """A user preset with a per-pixel sensitivity: exposures become noise.sigma by the t^-1/2 law."""
    path = tmp_path / "deep.toml"
    path.write_text('[preset]\nname = "deep"\nkind = "ifu"\nstatus = "approximate"\nsources = ["test"]\n'
                    '[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = 0.3\n'
                    '[sensitivity]\nquantity = "pixel_sigma"\nvalue = 2e-20\nexposure = 3600.0\ncitation = "test"\n')
    table = {k: v for k, v in KMOS.items() if k != "snr"}
    setup = PL.setup_from_dict(dict(table, preset=str(path), exposure=[3600.0, 14400.0]), "setup")
    key, depths = PL._depths(setup)
    assert key == "noise.sigma"
    assert [v for _, v in depths] == pytest.approx([2e-20, 1e-20], rel=1e-15)


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
