"""mockzgrad.plots_lensing: slope and offset of measured against intrinsic gradients, and the lensed-suite figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table

from mockzgrad.errors import DataError
from mockzgrad.plots_lensing import lensing_ratios, main, median_with_error, plot_lensing, slope_offset, summary

A, B, SIGMA = 0.6, 0.04, 0.02  # measured = A true + B + N(0, SIGMA), dex/kpc
LEVELS = np.array([-0.1, -0.05, 0.05, 0.1])


def _mocks(n_per_level, rng):
    true = np.repeat(LEVELS, n_per_level)
    return A * true + B + SIGMA * rng.standard_normal(true.size), true


def test_slope_and_offset_come_back_within_their_errors():
    """a and b from the medians of each sign recover the generating A and B: the pulls of 200 independent
    suites have mean ~0 and standard deviation ~1 (the quoted errors are right, not just small)."""
    rng = np.random.default_rng(1)
    pulls_a, pulls_b = [], []
    for _ in range(200):
        a, ae, b, be, n = slope_offset(*_mocks(30, rng))
        assert n == 120
        pulls_a.append((a - A) / ae)
        pulls_b.append((b - B) / be)
    for p in (np.array(pulls_a), np.array(pulls_b)):
        assert abs(p.mean()) < 4 * 1.2 / math.sqrt(p.size)  # sd of the mean of 200 pulls ~0.07-0.08
        assert 0.75 < p.std() < 1.3  # the median's large-N error at n = 30 is ~10 % optimistic/pessimistic


def test_the_plain_ratio_folds_the_offset_in_and_slope_offset_does_not():
    rng = np.random.default_rng(2)
    meas, true = _mocks(200, rng)
    neg, pos = true < 0, true > 0
    assert np.median(meas[neg] / true[neg]) < A - 0.2 and np.median(meas[pos] / true[pos]) > A + 0.2
    a, ae, b, be, _ = slope_offset(meas, true)
    assert abs(a - A) < 4 * ae and abs(b - B) < 4 * be


def test_one_sign_gives_the_median_ratio_and_no_offset():
    true = np.full(10, -0.1)
    meas = np.linspace(-0.09, -0.05, 10)
    a, ae, b, be, n = slope_offset(meas, true)
    assert a == pytest.approx(np.median(meas / true)) and math.isnan(b) and n == 10


def test_median_error_matches_the_scatter_of_medians():
    rng = np.random.default_rng(3)
    meds, errs = [], []
    for _ in range(400):
        m, e, n = median_with_error(rng.standard_normal(50))
        meds.append(m)
        errs.append(e)
    assert np.std(meds) == pytest.approx(np.mean(errs), rel=0.15)  # sqrt(pi/2)/sqrt(50) = 0.177


def _table(rng, n_per=20):
    rows = []
    for mu in (1.5, 3.0, 8.0):
        for g in LEVELS:
            fwhm = np.exp(rng.uniform(np.log(0.06), np.log(0.3), n_per))
            x_img = 0.26 / fwhm
            x_src = x_img * math.sqrt(mu)
            meas = (1 - np.exp(-x_src / 2)) * g + B + SIGMA * rng.standard_normal(n_per)
            for i in range(n_per):
                rows.append({"status": "ok", "grad_z_true": g, "grad_z_measured": meas[i],
                             "grad_z_measured_lo": meas[i] - SIGMA, "grad_z_measured_hi": meas[i] + SIGMA,
                             "x_resolution": x_img[i], "x_resolution_source": x_src[i], "mu": mu})
    rows.append({**rows[0], "status": "failed", "grad_z_measured": np.nan})
    return Table(rows=rows)


def test_figure_and_summary_from_a_results_table(tmp_path):
    t = _table(np.random.default_rng(4))
    r = lensing_ratios(t)
    assert r["ratio"].size == len(t) - 1 and r["n_dropped"] == 1
    lines = summary(r)
    assert lines[0].startswith(f"{len(t) - 1} mocks used (1 not ok")
    assert len(lines) == 2 + 3 + 3  # header lines, 3 |mu| groups, 3 x bins
    out = tmp_path / "f.png"
    plot_lensing(r, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = tmp_path / "r.csv"
    t.write(csv, format="ascii.csv")
    assert main([str(csv), "-o", str(tmp_path / "g.pdf")]) == 0
    assert (tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"


def test_unlensed_results_are_a_one_line_error():
    t = Table({"grad_z_true": [-0.1], "grad_z_measured": [-0.05], "x_resolution": [2.0]})
    with pytest.raises(DataError) as e:
        lensing_ratios(t)
    assert "x_resolution_source, mu" in str(e.value) and "\n" not in str(e.value)


def _suite(rng, geometry, n_per=25):
    """Mocks whose slope follows the radial x (= 2 r_eff |mu_r| / FWHM) only: a = 1 - exp(-x_r / 2)."""
    rows = []
    for mu in (1.5, 3.0, 8.0):
        mu_t, mu_r = (mu, 1.0) if geometry == "tangential" else (math.sqrt(mu), math.sqrt(mu))
        for g in LEVELS:
            x_img = 0.26 / np.exp(rng.uniform(np.log(0.06), np.log(0.3), n_per))
            x_r = x_img * mu_r
            meas = (1 - np.exp(-x_r / 2)) * g + B + SIGMA * rng.standard_normal(n_per)
            for i in range(n_per):
                rows.append({"status": "ok", "grad_z_true": g, "grad_z_measured": meas[i], "mu": mu,
                             "x_resolution": x_img[i], "x_resolution_source": x_img[i] * math.sqrt(mu_t * mu_r),
                             "x_resolution_r": x_r[i], "x_resolution_t": x_img[i] * mu_t})
    return Table(rows=rows)


def test_compare_finds_the_column_the_suites_share(tmp_path):
    """Two suites whose slope follows the radial x: in bins of x_resolution_r their a agree within errors,
    in bins of x_resolution_source the tangential one (less radial resolution there) lies below."""
    from mockzgrad.plots_lensing import _x_bins, compare_lines, plot_compare

    rng = np.random.default_rng(5)
    runs = {k: lensing_ratios(_suite(rng, k, n_per=100)) for k in ("tangential", "isotropic")}
    for col, agree in (("x_resolution_r", True), ("x_resolution_source", False)):
        edges = _x_bins(np.concatenate([r["x"][col] for r in runs.values()]), 8)
        pulls = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            (at, et, _, _, nt), (ai, ei, _, _, ni) = (
                slope_offset(r["meas"][(r["x"][col] >= lo) & (r["x"][col] < hi)],
                             r["grad_true"][(r["x"][col] >= lo) & (r["x"][col] < hi)]) for r in runs.values())
            if min(nt, ni) >= 40:  # the median's error is a large-N one
                pulls.append((at - ai) / math.hypot(et, ei))
        pulls = np.array(pulls)
        assert pulls.size >= 4
        if agree:  # rms of the pulls ~1 when they agree (20 seeds: 0.3-2.0)
            assert np.sqrt(np.mean(pulls**2)) < 2.5
        else:  # the tangential suite's slope lies below at the same source-plane x (20 seeds: mean pull -3.9 to -5.2)
            assert pulls.mean() < -2.5
    lines = compare_lines(runs)
    assert any(line.startswith("a in bins of x_resolution_r") for line in lines)
    assert sum("tangential" in line for line in lines) == 3
    out = tmp_path / "c.png"
    plot_compare(runs, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line_with_status_2(tmp_path, capsys):
    from mockzgrad.plots_lensing import _run

    csv = tmp_path / "r.csv"
    Table({"grad_z_true": [-0.1], "grad_z_measured": [-0.05], "x_resolution": [2.0]}).write(csv, format="ascii.csv")
    assert _run([str(csv), "-o", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: results lack column(s) x_resolution_source, mu") and "\n" not in err
    assert _run([str(tmp_path / "missing"), "-o", str(tmp_path / "f.png")]) == 2
    assert _run([str(csv), "-o", str(tmp_path / "f.txt")]) == 2
    assert "extension '.txt'; allowed .png, .pdf" in capsys.readouterr().err
