"""Applying correction curves: exact inversion, self-consistent roots, error propagation, real table.

Known answers are built here: curves given as explicit polynomials, and
measured gradients made from them (measured = g * ratio_g(x)); crossing
curves whose self-consistent roots are found independently by brute force on
a fine grid of G with numpy's linear interpolation (which holds the end
values flat outside, as documented).
"""

import filecmp
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from _seed import seeded
from astropy.table import Table
from matplotlib.image import imread

from mockzgrad.corrections.correct import (
    DEFAULT_COLUMNS,
    SelfConsistencyWarning,
    correct_table,
    format_abs_grad,
    parse_x,
    read_gradient_table,
    write_table,
)
from mockzgrad.corrections.curves import CorrectionCurves, CurvesWarning, OutsideCurvesWarning, derive_curves
from mockzgrad.corrections.roots import solve_self_consistent
from mockzgrad.errors import ConfigError, DataError
from mockzgrad.plots import plot_corrections

ROOT = Path(__file__).resolve().parents[1]
LEE = ROOT / "examples" / "observed_gradients_lee2026.csv"
PROV = {"suite": "tests", "package_version": "0.1.0", "recipe": "lee2026", "calibrations": ["S25_R3"]}

# ratio_g(x) = a_g + b x: increases with x (less smearing at higher resolution) and with |g|
LINEAR = {0.05: (0.30, 0.10), 0.1: (0.35, 0.10), 0.2: (0.40, 0.10)}


def linear_ratio(g, x):
    a, b = LINEAR[g]
    return a + b * np.asarray(x, float)


@pytest.fixture(scope="module")
def linear_curves():
    return CorrectionCurves.from_polynomials({g: list(ab) for g, ab in LINEAR.items()}, x_range=(0.5, 7.0),
                                             provenance=PROV)


def known_table():
    rows = []
    for g in LINEAR:
        for s in (1, -1):
            for x in (0.8, 1.7, 2.5, 4.0, 6.5):
                rows.append((f"g{g}_{s}_{x}", s * g * float(linear_ratio(g, x)), 0.01, 0.015, x))
    return Table(rows=rows, names=("id", "gradient_dex_per_kpc", "err_minus", "err_plus", "x_resolution"))


class TestExactInversion:
    def test_fixed_g_column_and_selfconsistent_root_recover_g(self, linear_curves):
        t = known_table()
        out = correct_table(t, linear_curves, rng=1)
        for row in out:
            g_true = float(row["id"].split("_")[0][1:])
            s = float(row["id"].split("_")[1])
            assert row[f"grad_corr_g{format_abs_grad(g_true)}"] == pytest.approx(s * g_true, abs=1e-6)
            # every fixed-g column is measured / ratio_g(x)
            for g in LINEAR:
                expect = row["gradient_dex_per_kpc"] / linear_ratio(g, row["x_resolution"])
                assert row[f"grad_corr_g{format_abs_grad(g)}"] == pytest.approx(expect, rel=1e-12)
            # a * ratio(a) increases with a for these curves: exactly one root, at the true gradient
            assert row["n_roots"] == 1
            assert row["grad_selfcons"] == pytest.approx(s * g_true, abs=1e-6)
            assert row["flag"] == "ok"
            assert float(row["roots"]) == pytest.approx(s * g_true, abs=1e-6)

    def test_column_names(self, linear_curves):
        out = correct_table(known_table(), linear_curves, rng=1)
        for g in ("0.05", "0.1", "0.2"):
            for suffix in ("", "_err_minus", "_err_plus"):
                assert f"grad_corr_g{g}{suffix}" in out.colnames
        for name in ("x_resolution_lo", "x_resolution_hi", "grad_selfcons", "grad_selfcons_err_minus",
                     "grad_selfcons_err_plus", "grad_selfcons_unique_frac", "n_roots", "roots", "flag"):
            assert name in out.colnames
        assert out.meta["mockzgrad_correct"]["curves_provenance"] == PROV

    def test_errors_without_curve_uncertainty(self, linear_curves):
        # zero curve covariance, fixed x: the corrected errors are the measured ones divided by the ratio
        out = correct_table(known_table(), linear_curves, n_mc=20000, rng=2)
        for row in out:
            r = linear_ratio(0.1, row["x_resolution"])
            lo, hi = (row["err_minus"], row["err_plus"]) if row["gradient_dex_per_kpc"] > 0 else \
                (row["err_minus"], row["err_plus"])
            assert row["grad_corr_g0.1_err_minus"] == pytest.approx(lo / r, rel=0.05)
            assert row["grad_corr_g0.1_err_plus"] == pytest.approx(hi / r, rel=0.05)

    def test_same_seed_same_output(self, linear_curves):
        with pytest.warns(CurvesWarning, match="ignored"):  # the table's x column gives way to x=
            a = correct_table(known_table(), linear_curves, x="1:3", rng=5)
        with pytest.warns(CurvesWarning):
            b = correct_table(known_table(), linear_curves, x="1:3", rng=5)
        for name in a.colnames:
            np.testing.assert_array_equal(a[name], b[name])


class TestXRange:
    def test_range_widens_errors(self, linear_curves):
        t = known_table()
        t.remove_column("x_resolution")
        single = correct_table(t, linear_curves, x=2.85, n_mc=20000, rng=seeded(3))
        ranged = correct_table(t, linear_curves, x=(1.2, 4.5), n_mc=20000, rng=seeded(3))
        # central values at the range's median (its midpoint for a uniform x)
        np.testing.assert_allclose(ranged["grad_corr_g0.1"], single["grad_corr_g0.1"], rtol=1e-12)
        np.testing.assert_allclose(ranged["x_resolution"], 2.85)
        for g in ("0.05", "0.1", "0.2"):
            w1 = single[f"grad_corr_g{g}_err_minus"] + single[f"grad_corr_g{g}_err_plus"]
            w2 = ranged[f"grad_corr_g{g}_err_minus"] + ranged[f"grad_corr_g{g}_err_plus"]
            # the x range adds variance ~ |measured|: never narrower (beyond Monte Carlo noise of ~1 per
            # cent), clearly wider for large gradients, and the more so the larger the gradient
            assert np.all(w2 > 0.97 * w1)
            m = np.abs(single["gradient_dex_per_kpc"])
            assert np.all(w2[m > 0.15] > 1.5 * w1[m > 0.15])
            assert np.corrcoef(m, w2 / w1)[0, 1] > 0.9
        w1 = single["grad_selfcons_err_minus"] + single["grad_selfcons_err_plus"]
        w2 = ranged["grad_selfcons_err_minus"] + ranged["grad_selfcons_err_plus"]
        assert np.all(w2 > 0.97 * w1) and np.mean(w2 / w1) > 1.3

    def test_curve_covariance_widens_errors(self):
        cov = {g: np.diag([0.05**2, 0.01**2]) for g in LINEAR}
        noisy = CorrectionCurves.from_polynomials({g: list(ab) for g, ab in LINEAR.items()}, x_range=(0.5, 7.0),
                                                  provenance=PROV, covariances=cov)
        exact = CorrectionCurves.from_polynomials({g: list(ab) for g, ab in LINEAR.items()}, x_range=(0.5, 7.0),
                                                  provenance=PROV)
        a = correct_table(known_table(), exact, n_mc=20000, rng=seeded(4))
        b = correct_table(known_table(), noisy, n_mc=20000, rng=seeded(4))
        wa = a["grad_corr_g0.1_err_minus"] + a["grad_corr_g0.1_err_plus"]
        wb = b["grad_corr_g0.1_err_minus"] + b["grad_corr_g0.1_err_plus"]
        assert np.all(wb > wa)

    def test_x_outside_range_warns_and_flags(self, linear_curves):
        t = known_table()[:3]
        t.remove_column("x_resolution")
        with pytest.warns(OutsideCurvesWarning, match="outside"):
            out = correct_table(t, linear_curves, x=9.0, rng=1)
        assert all("x_outside_curves" in f for f in out["flag"])
        with pytest.warns(OutsideCurvesWarning):
            out = correct_table(t, linear_curves, x="2:8", rng=1)
        assert all("x_outside_curves" in f for f in out["flag"])

    def test_x_from_sizes(self, linear_curves):
        t = known_table()
        t.remove_column("x_resolution")
        t["r_eff"] = 0.25  # arcsec
        t["psf_fwhm"] = 0.2  # arcsec
        out = correct_table(t, linear_curves, rng=1)
        np.testing.assert_allclose(out["x_resolution"], 2 * 0.25 / 0.2)

    def test_parse_x(self):
        assert parse_x("2.5") == (2.5, 2.5)
        assert parse_x("1.2:4.5") == (1.2, 4.5)
        assert parse_x((1, 2)) == (1.0, 2.0)
        for bad in ("4:1", "a", -1.0, (0, 2), "1:2:3"):
            with pytest.raises(ConfigError, match="x ="):
                parse_x(bad)


def brute_force_roots(m, grads, ratios, factor=2.0, n=2_000_001):
    """Sign changes of ratio(|G|) G - m on a fine grid; np.interp holds the end values flat."""
    a = np.linspace(0.0, factor * max(grads), n)
    f = a * np.interp(a, grads, ratios) - abs(m)
    idx = np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0)[0]
    roots = a[idx] - f[idx] * (a[idx + 1] - a[idx]) / (f[idx + 1] - f[idx])
    return math.copysign(1.0, m) * roots


# ratio_0.05 rises with x, ratio_0.2 falls: they cross at x = 5/6
CROSSING = {0.05: [0.3, 0.3], 0.2: [0.8, -0.3]}


@pytest.fixture(scope="module")
def crossing():
    return CorrectionCurves.from_polynomials(CROSSING, x_range=(0.5, 2.5), provenance=PROV)


class TestCrossingCurves:

    def test_curves_cross(self, crossing):
        assert crossing.ratio(0.6, 0.05) < crossing.ratio(0.6, 0.2)
        assert crossing.ratio(2.0, 0.05) > crossing.ratio(2.0, 0.2)

    def test_every_root_reported_and_flagged(self, crossing):
        x = 2.0
        r = [0.3 + 0.3 * x, 0.8 - 0.3 * x]  # 0.9, 0.2
        t = Table({"id": ["pos", "neg", "one", "none"], "gradient_dex_per_kpc": [0.042, -0.042, 0.006, 0.3],
                   "err_minus": [0.005] * 4, "err_plus": [0.005] * 4})
        with pytest.warns(SelfConsistencyWarning, match=r"several.*pos, neg"):
            out = correct_table(t, crossing, x=x, rng=1)
        for row in out:
            expect = brute_force_roots(row["gradient_dex_per_kpc"], [0.05, 0.2], r)
            got = [float(v) for v in row["roots"].split(";")] if row["roots"] else []
            assert row["n_roots"] == len(expect) == len(got)
            np.testing.assert_allclose(sorted(got), sorted(expect), atol=1e-6)
        pos, neg, one, none = out
        assert pos["n_roots"] == 3 and math.isnan(pos["grad_selfcons"])
        assert "multiple_roots" in pos["flag"] and "extrapolated" in pos["flag"]
        np.testing.assert_allclose(sorted(-np.array(neg["roots"].split(";"), float)),
                                   sorted(np.array(pos["roots"].split(";"), float)))
        assert one["n_roots"] == 1 and one["grad_selfcons"] == pytest.approx(0.006 / 0.9, rel=1e-12)
        assert none["n_roots"] == 0 and none["flag"].startswith("no_root") and math.isnan(none["grad_selfcons"])
        # the fixed-g corrections are still given for every row
        assert pos["grad_corr_g0.05"] == pytest.approx(0.042 / 0.9) and pos["grad_corr_g0.2"] == pytest.approx(0.21)

    def test_solver_against_brute_force_many(self):
        rng = np.random.default_rng(9)
        grads = np.array([0.05, 0.1, 0.2])
        for _ in range(200):
            ratios = rng.uniform(0.1, 1.0, 3)
            m = rng.uniform(-0.3, 0.3)
            roots, n, _ = solve_self_consistent(m, grads, ratios)
            expect = brute_force_roots(m, grads, ratios, n=200_001)
            got = roots[0][np.isfinite(roots[0])]
            assert n[0] == len(expect)
            np.testing.assert_allclose(np.sort(got), np.sort(expect), atol=1e-5)


@pytest.fixture(scope="module")
def suite_curves():
    """Curves of a synthetic suite with ratio(x) = 1 - exp(-x / 1.5) + noise (< 1 everywhere)."""
    rng = np.random.default_rng(21)
    n = 900
    g = rng.choice([-0.2, -0.1, -0.05, 0.05, 0.1, 0.2], n)
    x = rng.uniform(0.6, 6.4, n)
    r = 1 - np.exp(-x / 1.5) + rng.normal(0, 0.02, n)
    t = Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": g * r, "x_resolution": x,
               "snr": rng.uniform(20, 100, n)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive_curves(t, provenance=PROV)


class TestLeeTable:
    def test_shipped_copy_is_the_reference(self):
        # the packaged copy (used by `mockzgrad demo`) is the example table, byte for byte
        packaged = ROOT / "mockzgrad" / "data" / "observed_gradients_lee2026.csv"
        assert packaged.is_file() and LEE.is_file()
        assert filecmp.cmp(LEE, packaged, shallow=False)
        assert (LEE.parent / "observed_gradients_lee2026.md").exists()

    def test_reads_with_default_columns(self):
        t = read_gradient_table(LEE)
        assert len(t) == 20
        for role in ("id", "gradient", "err_minus", "err_plus"):
            assert DEFAULT_COLUMNS[role] in t.colnames
        assert "02" in list(t["id"])  # ids stay text

    @pytest.mark.parametrize("x", [2.5, "1.2:4.5"])
    def test_corrects(self, suite_curves, x, tmp_path):
        t = read_gradient_table(LEE)
        out = correct_table(t, suite_curves, x=x, rng=7)
        assert len(out) == 20
        m = np.abs(out["gradient_dex_per_kpc"])
        lo, hi = parse_x(x)
        for g in suite_curves.abs_grads():
            assert np.all(suite_curves.ratio(np.linspace(lo, hi, 50), g) < 1)
            c = np.abs(out[f"grad_corr_g{format_abs_grad(g)}"])
            assert np.all(c >= m)
            assert np.all(np.sign(out[f"grad_corr_g{format_abs_grad(g)}"]) == np.sign(out["gradient_dex_per_kpc"]))
            assert np.all(out[f"grad_corr_g{format_abs_grad(g)}_err_plus"] >= out["err_plus"])
        ok = out["n_roots"] == 1
        assert np.all(np.abs(out["grad_selfcons"][ok]) >= m[ok])
        path = tmp_path / "corrected.ecsv"
        write_table(out, path)
        back = read_gradient_table(path)
        np.testing.assert_array_equal(back["grad_corr_g0.1"], out["grad_corr_g0.1"])
        assert back.meta["mockzgrad_correct"]["x_source"].startswith("argument")
        write_table(out, tmp_path / "corrected.csv")
        assert len(read_gradient_table(tmp_path / "corrected.csv")) == 20

    def test_plot_corrections(self, suite_curves, tmp_path):
        out = correct_table(read_gradient_table(LEE), suite_curves, x="1.2:4.5", rng=7)
        png = tmp_path / "corr.png"
        plot_corrections(out, png)
        assert png.stat().st_size > 0 and imread(png).shape[0] > 100
        pdf = tmp_path / "corr.pdf"
        plot_corrections(out, pdf)
        assert pdf.read_bytes()[:4] == b"%PDF"


class TestErrors:
    def test_missing_column(self, linear_curves):
        t = known_table()
        t.remove_column("err_plus")
        with pytest.raises(DataError, match=r"'err_plus'.*present.*gradient_dex_per_kpc"):
            correct_table(t, linear_curves)

    def test_non_numeric_row_named(self, linear_curves):
        t = known_table()
        t["gradient_dex_per_kpc"] = t["gradient_dex_per_kpc"].astype(object)
        t["gradient_dex_per_kpc"][2] = "n/a"
        with pytest.raises(DataError, match=r"gradient_dex_per_kpc.*" + t["id"][2]):
            correct_table(t, linear_curves)

    def test_no_x_anywhere(self, linear_curves):
        t = known_table()
        t.remove_column("x_resolution")
        with pytest.raises(DataError, match="x_resolution.*r_eff.*psf_fwhm"):
            correct_table(t, linear_curves)

    def test_column_map(self, linear_curves):
        t = known_table()
        t.rename_column("gradient_dex_per_kpc", "grad")
        out = correct_table(t, linear_curves, columns={"gradient": "grad"}, rng=1)
        assert "grad_corr_g0.1" in out.colnames
        with pytest.raises(ConfigError, match="unknown role"):
            correct_table(t, linear_curves, columns={"gradient_column": "grad"})

    def test_read_errors(self, tmp_path):
        with pytest.raises(DataError, match="no such file"):
            read_gradient_table(tmp_path / "missing.csv")
        p = tmp_path / "x.txt"
        p.write_text("a\n1\n")
        with pytest.raises(DataError, match="allowed"):
            read_gradient_table(p)


@pytest.fixture(scope="module")
def inclined_curves():
    # suite varying inclination: more smearing (lower ratio) at higher inclination
    rng = np.random.default_rng(31)
    n = 1200
    g = rng.choice([-0.2, -0.1, 0.1, 0.2], n)
    x = rng.uniform(0.6, 6.4, n)
    inc = rng.choice([10.0, 30.0, 50.0, 70.0], n)
    r = (1 - np.exp(-x / 1.5)) * (1 - 0.3 * (inc / 90) ** 2) + rng.normal(0, 0.02, n)
    t = Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": g * r, "x_resolution": x,
               "inclination": inc})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive_curves(t, provenance=PROV)


class TestInclinationAndSign:
    def test_surface_used_per_row(self, inclined_curves):
        t = Table({"id": ["a", "b", "c"], "gradient_dex_per_kpc": [0.09, 0.09, 0.09], "err_minus": [0.01] * 3,
                   "err_plus": [0.01] * 3, "x_resolution": [2.0] * 3, "inclination": [15.0, 65.0, 85.0]})
        with pytest.warns(OutsideCurvesWarning, match="inclination.*c"):
            out = correct_table(t, inclined_curves, rng=1)
        for row in out:
            # sign="auto" uses the curve of the measured gradient's sign (positive here) when per-sign curves exist
            r = inclined_curves.ratio(2.0, 0.1, sign="pos", inclination=row["inclination"])
            assert row["grad_corr_g0.1"] == pytest.approx(0.09 / r, rel=1e-12)
        # same measurement, more inclined galaxy: more smearing to undo
        assert out["grad_corr_g0.1"][1] > out["grad_corr_g0.1"][0]
        assert list(out["flag"][:2]) == ["ok", "ok"] and "inclination_outside_curves" in out["flag"][2]
        assert "surface" in out.meta["mockzgrad_correct"]["inclination"]

    def test_matched_sign_curves(self):
        coef = {(0.1, "pos"): [0.5, 0.1], (0.1, "neg"): [0.4, 0.1], (0.2, "pos"): [0.55, 0.1],
                (0.2, "neg"): [0.45, 0.1]}
        c = CorrectionCurves.from_polynomials(coef, x_range=(0.5, 5.0), provenance=PROV)
        t = Table({"id": ["p", "n"], "gradient_dex_per_kpc": [0.06, -0.05], "err_minus": [0.01, 0.01],
                   "err_plus": [0.01, 0.01]})
        out = correct_table(t, c, x=2.0, rng=1)  # no pooled curves: sign="auto" uses the matching sign
        assert out.meta["mockzgrad_correct"]["sign"] == "matched"
        assert out["grad_corr_g0.1"][0] == pytest.approx(0.06 / 0.7)
        assert out["grad_corr_g0.1"][1] == pytest.approx(-0.05 / 0.6)
        with pytest.raises(ConfigError, match="both"):
            correct_table(t, c, x=2.0, sign="both")


def test_warnings_point_at_the_caller(linear_curves, crossing):
    """Every warning of correct_table names this file (its stack level skips the package's own frames)."""
    t = known_table()
    cross = Table({"id": ["pos", "none"], "gradient_dex_per_kpc": [0.042, 0.3], "err_minus": [0.005] * 2,
                   "err_plus": [0.005] * 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        correct_table(t, linear_curves, x="2:9", rng=1)  # x ignored in the table, and outside the curves
        correct_table(cross, crossing, x=2.0, rng=1)  # several roots, and none
    kinds = {type(w.message) for w in caught}
    assert {CurvesWarning, OutsideCurvesWarning, SelfConsistencyWarning} <= kinds
    assert all(w.filename == __file__ for w in caught), [(w.filename, str(w.message)) for w in caught]
