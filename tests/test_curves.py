"""Correction curves recover a known ratio(x), their checks see injected dependences, ECSV round-trips.

Known answer built here: ratio(x) = 1 - exp(-x / 1.5) (a smooth beam-smearing
suppression that tends to 1 at high resolution), Gaussian noise of 0.02 per
mock, |grad_z| in {0.05, 0.1, 0.2} dex/kpc, both signs.
"""

import math
import warnings

import numpy as np
import pytest
from _seed import seeded
from astropy.table import Table
from matplotlib.image import imread

from mockzgrad.corrections.curves import (
    CorrectionCurves,
    CurveOptions,
    CurvesCheckWarning,
    CurvesWarning,
    derive_curves,
)
from mockzgrad.errors import ConfigError, DataError
from mockzgrad.plots import plot_curves, plot_surface

PROV = {
    "suite": "tests/synthetic_suite.toml",
    "package_version": "0.1.0",
    "recipe": "lee2026",
    "calibrations": ["S25_R3", "S25_O32", "S25_Ne3O2"],
    "note": {"seed": 7, "kind": "synthetic"},
}
GRADS = (0.05, 0.1, 0.2)
NOISE = 0.02
X_LO, X_HI = 0.6, 6.4


def truth(x):
    return 1.0 - np.exp(-np.asarray(x) / 1.5)


def synthetic(seed=1, n_per=160, noise=NOISE, snr_slope=0.0, neg_factor=1.0, inclinations=None,
              inc_effect=0.0, n_failed=10):
    """Suite-like results table with ratio = truth(x) (x) modifiers + noise.

    snr_slope: ratio multiplied by 1 - snr_slope * (100 - snr) / 80 (S/N in [20, 100]).
    neg_factor: ratio of negative gradients multiplied by this.
    inc_effect: ratio multiplied by 1 - inc_effect * (inclination / 90)^2.
    """
    rng = np.random.default_rng(seed)
    rows = {k: [] for k in ("status", "grad_z_true", "grad_z_measured", "grad_z_measured_lo",
                            "grad_z_measured_hi", "x_resolution", "snr", "inclination")}
    for g in GRADS:
        for s in (1, -1):
            x = rng.uniform(X_LO, X_HI, n_per)
            snr = rng.uniform(20, 100, n_per)
            inc = (np.full(n_per, 20.0) if inclinations is None else rng.choice(inclinations, n_per))
            r = truth(x) * (1 - snr_slope * (100 - snr) / 80) * (1 - inc_effect * (inc / 90) ** 2)
            r = r * (neg_factor if s < 0 else 1.0) + rng.normal(0, noise, n_per)
            gm = s * g * r
            rows["status"] += ["ok"] * n_per
            rows["grad_z_true"] += [s * g] * n_per
            rows["grad_z_measured"] += list(gm)
            rows["grad_z_measured_lo"] += list(gm - 0.01)
            rows["grad_z_measured_hi"] += list(gm + 0.01)
            rows["x_resolution"] += list(x)
            rows["snr"] += list(snr)
            rows["inclination"] += list(inc)
    for _ in range(n_failed):  # failed mocks carry NaN and must be ignored
        rows["status"].append("failed")
        rows["grad_z_true"].append(0.1)
        rows["grad_z_measured"].append(np.nan)
        rows["grad_z_measured_lo"].append(np.nan)
        rows["grad_z_measured_hi"].append(np.nan)
        rows["x_resolution"].append(1.0)
        rows["snr"].append(50.0)
        rows["inclination"].append(20.0)
    return Table(rows)


def derive_quiet(table, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CurvesCheckWarning)  # a null table must not be flagged
        return derive_curves(table, provenance=PROV, **kw)


@pytest.fixture(scope="module")
def table():
    return synthetic(seed=seeded(1))


@pytest.fixture(scope="module")
def curves(table):
    return derive_quiet(table)


class TestKnownCurve:
    def test_all_groups_and_signs(self, curves):
        assert curves.signs == ("both", "pos", "neg")
        for s in curves.signs:
            np.testing.assert_allclose(curves.abs_grads(s), GRADS)
        assert curves.settings["excluded"]["status_not_ok"] == 10
        assert curves.settings["n_used"] == 6 * 160

    def test_fit_recovers_function_within_noise(self, curves):
        for c in curves.curves:
            x = np.linspace(*c.x_range, 400)
            dev = c.fit(x) - truth(x)
            # a polynomial of degree <= 4 approximates 1 - exp(-x/1.5) to 0.004 over the range; with noise
            # the edges (fewest constraints) stay within twice the single-mock noise, the bulk within it
            assert np.max(np.abs(dev)) < 2 * NOISE, (c.abs_grad, c.sign)
            inner = (x > 1.0) & (x < 6.0)
            assert np.max(np.abs(dev[inner])) < NOISE, (c.abs_grad, c.sign)
            assert np.sqrt(np.mean(dev**2)) < 0.5 * NOISE
            # the pooled curve is also consistent with its own uncertainty in the well-sampled middle
            if c.sign == "both":
                xm = np.linspace(1.5, 5.5, 50)
                assert np.all(np.abs(c.fit(xm) - truth(xm)) < 5 * c.fit.std(xm) + 0.005)

    def test_degree_reported_and_chosen_by_bic(self, curves):
        for c in curves.curves:
            assert c.fit.degree in (1, 2, 3, 4)
            # candidates: the forms whose fit stays in [0, 1.2] and is monotone over the mocks' x (the truth
            # saturates without a turning point, so e.g. a concave parabola peaking inside the range is left out)
            assert set(c.fit.candidates) <= {1, 2, 3, 4, "1/x deg 1", "1/x deg 2"} and 1 in c.fit.candidates
            chosen = c.fit.degree if c.fit.variable == "x" else c.fit.form
            assert chosen == c.fit.candidates[int(np.argmin(c.fit.bic))]
            xx = np.linspace(*c.x_range, 400)
            y = c.fit(xx)
            # rising, up to wiggles within the curve's own 1-sigma uncertainty
            assert np.all(np.maximum.accumulate(y) - y <= c.fit.std(xx) + 1e-9) and y[-1] > y[0]
            assert y.min() >= 0 and y.max() <= 1.2
            # a steeply curved function: a straight line is never preferred (a polynomial in 1/x is curved)
            assert c.fit.variable == "1/x" or c.fit.degree >= 2
            assert c.fit.covariance.shape == (c.fit.degree + 1,) * 2
            assert np.all(np.diag(c.fit.covariance) > 0)
            # chi2 per dof near 1: the weights describe the scatter about the curve
            assert 0.6 < c.fit.chi2 / c.fit.dof < 1.6

    def test_fixed_degree(self, table):
        c = derive_quiet(table, degree=2)
        assert all(cv.fit.degree == 2 and cv.fit.candidates == (2,) for cv in c.curves)

    def test_running_medians(self, table, curves):
        x_all = np.asarray(table["x_resolution"])
        ok = np.asarray(table["status"]) == "ok"
        ratio = np.asarray(table["grad_z_measured"]) / np.asarray(table["grad_z_true"])
        g_true = np.asarray(table["grad_z_true"])
        for c in curves.curves:
            sel = ok & np.isclose(np.abs(g_true), c.abs_grad)
            if c.sign == "pos":
                sel &= g_true > 0
            elif c.sign == "neg":
                sel &= g_true < 0
            r = c.running
            assert r.n.sum() == sel.sum() == c.n_mocks
            assert np.all(r.n >= 5)
            assert r.x_lo[0] == x_all[sel].min() and r.x_hi[-1] == x_all[sel].max()
            np.testing.assert_array_equal(r.x_hi[:-1], r.x_lo[1:])
            for i in range(r.n_bins):
                last = i == r.n_bins - 1
                inb = sel & (x_all >= r.x_lo[i]) & ((x_all <= r.x_hi[i]) if last else (x_all < r.x_hi[i]))
                assert inb.sum() == r.n[i]
                assert r.median[i] == pytest.approx(np.median(ratio[inb]), abs=1e-14)
                assert r.p16[i] < r.median[i] < r.p84[i]
                # the median follows the true curve (error of a median + curvature within the bin)
                se = math.sqrt(math.pi / 2) * NOISE / math.sqrt(r.n[i])
                spread = truth(r.x_hi[i]) - truth(r.x_lo[i])
                assert abs(r.median[i] - truth(r.x_center[i])) < 4 * se + 0.5 * spread

    def test_x_range_and_ratio(self, curves):
        lo, hi = curves.x_range()
        assert X_LO <= lo < 0.7 and 6.3 < hi <= X_HI
        assert curves.x_range(0.1, "pos") == curves.curve(0.1, "pos").x_range
        np.testing.assert_allclose(curves.ratio([1.0, 3.0], 0.1), truth([1.0, 3.0]), atol=1.5 * NOISE)
        with pytest.raises(ConfigError, match="allowed"):
            curves.ratio(2.0, 0.07)
        with pytest.raises(ConfigError, match="no surface"):
            curves.ratio(2.0, 0.1, inclination=40.0)

    def test_pool_signs_false(self, table):
        c = derive_quiet(table, pool_signs=False)
        assert c.signs == ("pos", "neg")
        with pytest.raises(ConfigError, match="sign"):
            c.ratio(2.0, 0.1)


class TestRoundTrip:
    def test_ecsv_round_trip_exact(self, curves, tmp_path):
        path = tmp_path / "curves.ecsv"
        curves.write(path)
        back = CorrectionCurves.read(path)
        assert back.provenance == PROV
        assert back.provenance == curves.provenance
        assert back.checks == curves.checks
        assert back.settings == curves.settings
        assert back.created == curves.created
        assert back.mockzgrad_version == curves.mockzgrad_version
        assert_curves_equal(curves, back)
        meta = Table.read(path, format="ascii.ecsv").meta
        assert "BIC" in meta["degree_rule"]
        assert meta["provenance"]["recipe"] == "lee2026"
        with pytest.raises(DataError, match="exists"):
            curves.write(path)
        curves.write(path, overwrite=True)

    def test_round_trip_with_surface(self, tmp_path):
        c = derive_quiet(synthetic(seed=3, inclinations=[10.0, 30.0, 50.0, 70.0], inc_effect=0.3))
        assert c.has_surface
        c.write(tmp_path / "s.ecsv")
        assert_curves_equal(c, CorrectionCurves.read(tmp_path / "s.ecsv"))

    def test_write_wrong_suffix(self, curves, tmp_path):
        with pytest.raises(ConfigError, match="ecsv"):
            curves.write(tmp_path / "curves.csv")


def assert_curves_equal(a, b):
    assert len(a.curves) == len(b.curves)
    for ca, cb in zip(a.curves, b.curves):
        assert (ca.abs_grad, ca.sign, ca.x_range, ca.n_mocks, ca.grad_range) == \
               (cb.abs_grad, cb.sign, cb.x_range, cb.n_mocks, cb.grad_range)
        np.testing.assert_array_equal(ca.inclination_range, cb.inclination_range)
        for name in ("coefficients", "covariance"):
            np.testing.assert_array_equal(getattr(ca.fit, name), getattr(cb.fit, name))
        assert (ca.fit.chi2, ca.fit.dof, ca.fit.n_points, ca.fit.n_clipped, ca.fit.candidates, ca.fit.bic,
                ca.fit.variable) == \
               (cb.fit.chi2, cb.fit.dof, cb.fit.n_points, cb.fit.n_clipped, cb.fit.candidates, cb.fit.bic,
                cb.fit.variable)
        for name in ("x_lo", "x_hi", "x_center", "n", "median", "p16", "p84"):
            np.testing.assert_array_equal(getattr(ca.running, name), getattr(cb.running, name))
        assert (ca.surface is None) == (cb.surface is None)
        if ca.surface is not None:
            np.testing.assert_array_equal(ca.surface.coefficients, cb.surface.coefficients)
            np.testing.assert_array_equal(ca.surface.covariance, cb.surface.covariance)
            assert ca.surface.inclination_range == cb.surface.inclination_range
            assert ca.surface.candidates == cb.surface.candidates


class TestChecks:
    def test_null_not_flagged(self, curves):
        assert not curves.checks["any_flagged"]
        for name in ("snr", "sign"):
            assert len(curves.checks[name]) == 3
            for c in curves.checks[name]:
                assert c["applicable"] and not c["flag"]

    def test_injected_snr_dependence_flagged(self):
        # low-S/N mocks lose up to 10 per cent more of their gradient
        t = synthetic(seed=5, snr_slope=0.10)
        with pytest.warns(CurvesCheckWarning, match="snr"):
            c = derive_curves(t, provenance=PROV)
        assert all(ch["flag"] for ch in c.checks["snr"])
        assert not any(ch["flag"] for ch in c.checks["sign"])
        assert c.checks["any_flagged"]

    def test_injected_sign_dependence_flagged(self):
        t = synthetic(seed=6, neg_factor=0.9)
        with pytest.warns(CurvesCheckWarning, match="sign"):
            c = derive_curves(t, provenance=PROV)
        assert all(ch["flag"] for ch in c.checks["sign"])
        assert not any(ch["flag"] for ch in c.checks["snr"])
        # the separate sign curves see the 10 per cent difference
        x = np.linspace(1.5, 5.5, 20)
        np.testing.assert_allclose(c.ratio(x, 0.1, "neg") / c.ratio(x, 0.1, "pos"), 0.9, atol=0.03)

    def test_no_snr_column(self, table):
        t = table.copy()
        t.remove_column("snr")
        c = derive_quiet(t)
        assert all(not ch["applicable"] for ch in c.checks["snr"])


class TestSurface:
    def test_surface_recovers_inclination_dependence(self):
        incs = [10.0, 30.0, 50.0, 70.0]
        c = derive_quiet(synthetic(seed=4, inclinations=incs, inc_effect=0.3))
        assert c.has_surface
        x = np.linspace(0.8, 6.2, 30)
        for g in GRADS:
            s = c.curve(g).surface
            assert s.degree_inclination >= 1
            assert s.inclination_range == (10.0, 70.0)
            for inc in (10.0, 40.0, 70.0):
                expect = truth(x) * (1 - 0.3 * (inc / 90) ** 2)
                np.testing.assert_allclose(c.ratio(x, g, inclination=inc), expect, atol=0.025)
            # the inclination dependence itself: 70 deg vs 10 deg
            d = c.ratio(x, g, inclination=70.0) - c.ratio(x, g, inclination=10.0)
            np.testing.assert_allclose(d, -0.3 * truth(x) * ((70 / 90) ** 2 - (10 / 90) ** 2), atol=0.02)

    def test_no_surface_with_two_inclinations(self):
        c = derive_quiet(synthetic(seed=8, inclinations=[20.0, 60.0]))
        assert not c.has_surface
        with pytest.raises(ConfigError, match="surface"):
            derive_curves(synthetic(seed=8, inclinations=[20.0, 60.0]), provenance=PROV, surface=True)


class TestGrouping:
    def _continuous(self, jitter):
        rng = np.random.default_rng(11)
        n = 900
        if jitter is None:
            g = rng.uniform(0.02, 0.2, n)
        else:
            g = rng.choice(GRADS, n) * (1 + rng.uniform(-jitter, jitter, n))
        g = g * rng.choice([-1, 1], n)
        x = rng.uniform(X_LO, X_HI, n)
        r = truth(x) + rng.normal(0, NOISE, n)
        return Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": g * r, "x_resolution": x,
                      "snr": rng.uniform(20, 100, n)})

    def test_auto_bins_continuous_gradients(self):
        c = derive_quiet(self._continuous(None))
        assert c.settings["grouping"]["mode"] == "bins"
        assert len(c.abs_grads()) == 4
        edges = c.settings["grouping"]["edges"]
        for cv in c.curves:
            assert edges[0] <= cv.grad_range[0] <= cv.abs_grad <= cv.grad_range[1] <= edges[-1]

    def test_int_bins_and_values(self):
        t = self._continuous(0.1)
        assert len(derive_quiet(t, grad_bins=3).abs_grads()) == 3
        c = derive_quiet(t, grad_bins=list(GRADS))
        np.testing.assert_allclose(c.abs_grads(), GRADS)
        assert c.settings["grouping"]["mode"] == "values"
        c2 = derive_quiet(t, grad_bins={"edges": [0.0, 0.075, 0.15, 0.3]})
        assert len(c2.abs_grads()) == 3


class TestErrors:
    def test_missing_column(self, table):
        t = table.copy()
        t.remove_column("x_resolution")
        with pytest.raises(DataError, match=r"x_resolution.*present.*grad_z_true"):
            derive_curves(t, provenance=PROV)

    def test_provenance_keys(self, table):
        with pytest.raises(ConfigError, match="recipe"):
            derive_curves(table, provenance={"suite": "a", "package_version": "1", "calibrations": []})

    def test_bad_options(self, table):
        with pytest.raises(ConfigError, match="degree"):
            derive_curves(table, provenance=PROV, degree=12)
        with pytest.raises(ConfigError, match="min_per_bin"):
            derive_curves(table, provenance=PROV, min_per_bin=0)

    def test_non_numeric_named(self, table):
        t = Table(table, copy=True)
        t["x_resolution"] = t["x_resolution"].astype(object)
        t["x_resolution"][3] = "wide"
        with pytest.raises(DataError, match="x_resolution.*3"):
            derive_curves(t, provenance=PROV)

    def test_too_few_mocks_warns(self):
        t = synthetic(n_per=2, n_failed=0)
        with pytest.warns(CurvesWarning, match="no curve"), pytest.raises(DataError, match="no correction curve"):
            derive_curves(t, provenance=PROV)


class TestPlots:
    def test_plot_curves_png_pdf(self, curves, table, tmp_path):
        png = tmp_path / "curves.png"
        fig = plot_curves(curves, png, table=table)
        assert len([a for a in fig.axes if a.get_visible()]) == 3
        img = imread(png)
        assert img.ndim == 3 and img.shape[0] > 100
        pdf = tmp_path / "curves.pdf"
        plot_curves(curves, pdf)
        assert pdf.stat().st_size > 1000 and pdf.read_bytes()[:4] == b"%PDF"

    def test_plot_surface(self, tmp_path, curves):
        c = derive_quiet(synthetic(seed=3, inclinations=[10.0, 30.0, 50.0, 70.0], inc_effect=0.3))
        png = tmp_path / "surface.png"
        plot_surface(c, png)
        assert imread(png).shape[0] > 100
        with pytest.raises(ConfigError, match="surface"):
            plot_surface(curves, tmp_path / "none.png")

    def test_bad_extension(self, curves, tmp_path):
        with pytest.raises(ConfigError, match="png"):
            plot_curves(curves, tmp_path / "curves.jpg")

    def test_source_plane_x_is_labelled(self, table, tmp_path):
        t = table.copy()
        t.rename_column("x_resolution", "x_resolution_source")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = derive_curves(t, provenance=PROV, columns={"x_resolution": "x_resolution_source"})
        fig = plot_curves(c, tmp_path / "c.png", table=t)
        labels = [a.get_xlabel() for a in fig.axes if a.get_visible()]
        assert labels and all("source plane" in lab for lab in labels), labels
        fig = plot_curves(derive_quiet(table), tmp_path / "d.png", table=table)
        assert not any("source" in a.get_xlabel() for a in fig.axes)

    def test_outliers_beyond_the_axis_are_counted_and_the_curve_stays_visible(self, table, tmp_path):
        t = table.copy()
        g = np.asarray(t["grad_z_true"])
        # two wild mocks of the weakest group: their ratios (+-40) must not set the axis
        k = np.nonzero((np.abs(g) == min(GRADS)) & (np.asarray(t["status"]) == "ok"))[0][:2]
        t["grad_z_measured"][k] = 40 * g[k] * np.array([1, -1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = derive_curves(t, provenance=PROV)
        fig = plot_curves(c, tmp_path / "c.png", table=t)
        ax = next(a for a in fig.axes if a.get_visible() and f"= {min(GRADS):g}" in a.get_title())
        lo, hi = ax.get_ylim()
        assert -5 < lo <= 0 and 1.2 <= hi < 5, (lo, hi)
        assert "2 of" in ax.get_title()


class TestBinningOptions:
    def test_int_and_explicit_x_bins(self, table):
        c = derive_quiet(table, x_bins=4)
        assert all(cv.running.n_bins == 4 for cv in c.curves)
        edges = [0.6, 1.0, 2.0, 4.0, 6.4, 9.0]  # the last bin is empty
        c = derive_quiet(table, x_bins=edges)
        for cv in c.curves:
            np.testing.assert_array_equal(cv.running.x_lo, edges[:-1])
            assert cv.running.n[-1] == 0 and np.isnan(cv.running.median[-1])
            assert np.all(np.isfinite(cv.running.median[:-1]))
        with pytest.raises(ConfigError, match="x_bins"):
            derive_curves(table, provenance=PROV, x_bins=[2.0, 1.0])

    def test_outliers_clipped_from_fit(self, table):
        t = Table(table, copy=True)
        ok = np.flatnonzero(np.asarray(t["status"]) == "ok")[:8]
        t["grad_z_measured"][ok] = 40 * t["grad_z_true"][ok]  # catastrophic recoveries, ratio 40
        c = derive_quiet(t)
        assert sum(cv.fit.n_clipped for cv in c.curves if cv.sign == "both") >= 8
        x = np.linspace(1.0, 6.0, 50)
        assert np.max(np.abs(c.ratio(x, 0.05) - truth(x))) < NOISE


def test_column_map(table):
    t = Table(table, copy=True)
    t.rename_column("grad_z_true", "galaxy.metallicity.grad_z")
    with pytest.raises(DataError, match=r"'grad_z_true'.*present"):
        derive_curves(t, provenance=PROV)
    c = derive_quiet(t, columns={"grad_z_true": "galaxy.metallicity.grad_z"})
    np.testing.assert_allclose(c.abs_grads(), GRADS)
    assert c.settings["columns"]["grad_z_true"] == "galaxy.metallicity.grad_z"
    with pytest.raises(ConfigError, match="unknown role"):
        derive_curves(t, provenance=PROV, columns={"gradient": "x"})


def test_failed_mocks_without_values_are_left_out():
    """Rows of failed mocks carry no truth or measurement; curves skip them."""
    from astropy.table import Table, MaskedColumn

    rng = np.random.default_rng(0)
    n = 300
    g = rng.choice([-0.1, 0.1], n)
    x = rng.uniform(0.8, 6.0, n)
    meas = g * (1 - np.exp(-x / 1.5)) * (1 + 0.02 * rng.standard_normal(n))
    ok = Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": meas, "x_resolution": x})
    bad = Table({"status": ["failed"] * 3,
                 "grad_z_true": MaskedColumn([0.0] * 3, mask=[True] * 3),
                 "grad_z_measured": MaskedColumn([0.0] * 3, mask=[True] * 3),
                 "x_resolution": MaskedColumn([0.0] * 3, mask=[True] * 3)})
    from astropy.table import vstack

    prov = {"suite": "t", "package_version": "0", "recipe": "lee2026", "calibrations": {}}
    with_failed = derive_curves(vstack([ok, bad]), provenance=prov, degree=2)
    clean = derive_curves(ok, provenance=prov, degree=2)
    assert np.allclose(with_failed.ratio(3.0, 0.1), clean.ratio(3.0, 0.1))


class TestCurveOptions:
    def test_defaults_match_derive_curves(self):
        import inspect

        o = CurveOptions()
        params = inspect.signature(derive_curves).parameters
        for name in ("x_bins", "degree", "min_per_bin", "pool_signs", "grad_bins", "clip_sigma", "check_sigma",
                     "surface", "surface_degree"):
            assert getattr(o, name) == params[name].default, name
        assert o.explicit_edges is None

    def test_normalised(self):
        o = CurveOptions(x_bins=np.array([1, 2, 4]), degree=np.int64(3), surface_degree=[2, 1], check_sigma=2)
        assert o.x_bins == [1.0, 2.0, 4.0] and type(o.x_bins[0]) is float
        np.testing.assert_array_equal(o.explicit_edges, [1.0, 2.0, 4.0])
        assert o.degree == 3 and type(o.degree) is int
        assert o.surface_degree == (2, 1) and o.check_sigma == 2.0
        assert CurveOptions(x_bins=4).x_bins == 4 and CurveOptions(x_bins=4).explicit_edges is None

    @pytest.mark.parametrize("field, value, allowed", [
        ("degree", 9, r"\[0, 8\] \(or 'auto'\)"), ("degree", "two", "'auto'"), ("min_per_bin", 0, r"\[1, inf\)"),
        ("min_per_bin", 2.5, "integer"), ("clip_sigma", 0.0, r"> 0 \(or None\)"), ("check_sigma", -1.0, "> 0"),
        ("surface_degree", (9, 0), "degree_x"), ("surface_degree", (1, 3), "degree_inclination"),
        ("surface_degree", "cubic", "'auto'"), ("x_bins", 0, "sequence of edges"), ("x_bins", [2.0, 1.0], "increasing"),
        ("x_bins", ["a", "b"], "increasing")])
    def test_invalid_named(self, field, value, allowed):
        with pytest.raises(ConfigError, match=field) as err:
            CurveOptions(**{field: value})
        assert err.match(allowed)


def test_curve_warnings_point_at_the_caller():
    """The stack level of every warning of derive_curves names this file, not the package."""
    one_inclination = synthetic(seed=3, inclinations=[10.0, 30.0, 50.0])
    one_inclination["inclination"][np.asarray(one_inclination["grad_z_true"]) == -0.2] = 30.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError):
            derive_curves(synthetic(n_per=2, n_failed=0), provenance=PROV)  # no curve anywhere
        derive_curves(synthetic(seed=5, snr_slope=0.10), provenance=PROV)  # a flagged check
        derive_curves(one_inclination, provenance=PROV)  # no surface for one sign
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("no curve") for m in messages) and any("one inclination only" in m for m in messages)
    assert CurvesCheckWarning in {type(w.message) for w in caught}
    assert all(w.filename == __file__ for w in caught), [(w.filename, str(w.message)) for w in caught]


def test_public_names_reexported_from_their_modules():
    import mockzgrad.corrections.curves as curves
    from mockzgrad.corrections import binning, columns, curveset, polyfit

    homes = {name: mod for mod in (binning, columns, curveset, polyfit) for name in mod.__all__}
    for name in curves.__all__:
        obj = getattr(curves, name)
        if name in homes:
            assert obj is getattr(homes[name], name), name
    assert {"CorrectionCurves", "derive_curves", "suite_provenance", "assign_groups"} <= set(curves.__all__)
