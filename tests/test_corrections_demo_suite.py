"""The shipped quickstart suite (the demo's): ratio curves within bounds, transfer function from real mocks,
an injected offset moved exactly into b(x), and the demo's transfer-function correction of the Lee et al. table."""

import json

import numpy as np
import pytest
from astropy.table import Table

from mockzgrad.corrections.calibration_range import choose_mocks
from mockzgrad.corrections.transfer import fit_transfer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mockzgrad.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    paths = run_demo(out, workers=1, progress=False)
    return out, paths


def test_curves_within_bounds(demo):
    from mockzgrad.corrections.curveset import CorrectionCurves

    out, paths = demo
    c = CorrectionCurves.read(paths["correction curves"])
    assert min(c.abs_grads(c.signs[0])) == pytest.approx(0.01)  # the grid reaches |grad_z| = 0.01
    for cv in c.curves:
        xx = np.linspace(*cv.x_range, 300)
        y = cv.fit(xx)
        bad = [p for p in c.checks["shape"] if p["abs_grad"] == cv.abs_grad and p["sign"] == cv.sign]
        # a curve leaves [0, 1.2] only if it is reported as not admissible
        assert (0 <= y.min() and y.max() <= 1.2) or bad, (cv.abs_grad, cv.sign)


def _kept(out):
    """The demo's mocks that `mockzgrad curves` keeps by default (the calibrations' range)."""
    kept, left, _ = choose_mocks(Table.read(out / "suite_results.csv", format="ascii.csv"))
    return kept, left


def test_demo_leaves_out_the_clipped_mocks(demo):
    # the +0.2 mocks take 30 % of their line flux from outside the calibrations' range (the others <= 4.8 %)
    out, paths = demo
    _, left = _kept(out)
    assert left.n_total == 80 and left.n_left_out == 10
    assert [(lo, hi, n) for lo, hi, n, _, _ in left.by_grad] == [(0.2, 0.2, 10)]
    saved = json.loads(paths["transfer function"].read_text())
    assert saved["provenance"]["calibration_range"]["n_left_out"] == 10
    assert saved["grad_range_by_sign"]["positive"][1] == pytest.approx(0.1)


def test_transfer_from_real_mocks_and_injected_offset(demo):
    out, paths = demo
    t, _ = _kept(out)
    tf0 = fit_transfer(t)
    saved = json.loads(paths["transfer function"].read_text())
    assert saved["structure"] == tf0.structure.as_dict()
    xx = np.linspace(*tf0.x_range, 50)
    assert np.all((tf0.slope(xx) > 0) & (tf0.slope(xx) <= 1.2))
    # beam smearing: the slope rises with resolution
    assert tf0.slope(tf0.x_range[1]) > tf0.slope(tf0.x_range[0])
    shifted = t.copy()
    for c in ("grad_z_measured", "grad_z_measured_lo", "grad_z_measured_hi"):
        shifted[c] = np.asarray(t[c], float) + 0.05
    tf1 = fit_transfer(shifted)
    assert tf1.structure == tf0.structure
    np.testing.assert_allclose(tf1.offset(xx) - tf0.offset(xx), 0.05, atol=1e-6)
    np.testing.assert_allclose(tf1.slope(xx), tf0.slope(xx), atol=1e-6)
    assert not tf1.assessment["ratio_ok"] and tf1.assessment["transfer_ok"]


def test_demo_shows_both_corrections(demo):
    out, paths = demo
    corrected = Table.read(paths["corrected gradients"], format="ascii.csv")
    assert {"grad_post", "grad_post_err_minus", "grad_post_err_plus", "grad_selfcons"} <= set(corrected.colnames)
    # posterior intervals are proper and within the prior range (+-0.2 dex/kpc)
    assert np.all(np.asarray(corrected["grad_post_err_minus"]) > 0)
    assert np.all(np.abs(np.asarray(corrected["grad_post"])) <= 0.2)
    for name in ("transfer figure", "corrections figure", "curves figure"):
        assert paths[name].stat().st_size > 10_000


def _x_bin_z(tf, mocks):
    """Per x bin and sign: (bin slope - the same bin fit on the model's mean at the bin's mocks) / bin error,
    and the bound. The like-for-like model value, not a(median x): a(x) changes across a bin (on the flagship
    the first bin, x 0.6-1.6, differs by 0.03-0.1 between the two)."""
    from scipy.stats import norm

    from mockzgrad.plots import _x_bin_stats

    bins = _x_bin_stats(tf, mocks)
    keys = [k for k in ("a", "a_neg") if bins[k].size]
    z_max = float(norm.isf(0.05 / (2 * sum(bins[k].size for k in keys))))
    z = {k: (bins[k] - bins[k + "_model"]) / bins[k + "_err"] for k in keys}
    return bins, z, z_max


def test_transfer_slope_follows_the_x_bins_at_the_median_gradient(demo):
    # the model's slope against slopes fitted in x bins with the same terms and weights (the model passed
    # through the same bin fit, at the suite's median |grad_z|): within the Monte Carlo error of every bin, and
    # an abs(grad_z) term, if chosen, does not change
    # the slope below the largest level. The bound is per-bin z < z_max with a 5 % family-wise false-alarm
    # rate over all the bins compared (two-sided, Bonferroni: 2.64 for 6 bins, 2.87 for 12); a flat |z| < 2
    # would fail a correct model in ~25-40 % of suites. (The bin errors are scaled by the bin's own residuals,
    # n - p ~ 10 degrees of freedom: Student-t quantiles would be wider, so the normal bound is the stricter.)
    # Until round 5 the demo's curves kept the +0.2 dex/kpc mocks, whose lines come 30 % from outside the
    # calibrations' range: their measured gradient is a ceiling, and the admissible structure
    # a1b0+abs_grad>0.1+sign missed positive bins 1 and 5 by 3.07 and 3.61 SE. Left out (the default of
    # `mockzgrad curves`), the chosen structure follows every bin.
    from mockzgrad.corrections.transfer import (Structure, TransferFunction, _make, fit_structure,
                                                read_suite_mocks, references)

    out, paths = demo
    tf = TransferFunction.read(paths["transfer function"])
    mocks = read_suite_mocks(_kept(out)[0])
    bins, z, z_max = _x_bin_z(tf, mocks)
    assert bins["a"].size >= 4
    for key, zk in z.items():
        assert np.all(np.abs(zk) < z_max), (key, zk, z_max)
    # the bound can fail: a slope constant in x (no beam smearing) fitted to the same mocks misses the
    # extreme bins (measured 4.0 and 4.3 SE against a(median x))
    refs = references(mocks)
    flat = Structure(0, 0, (), "flat")
    _, z_flat, z_max_flat = _x_bin_z(_make(flat, fit_structure(flat, mocks, refs), refs, mocks, [], None), mocks)
    assert np.max(np.abs(z_flat["a"])) > z_max_flat
    if "abs_grad" in tf.structure.extras:
        xx = np.linspace(*tf.x_range, 20)
        np.testing.assert_allclose(tf.slope(xx, np.full_like(xx, 0.01)), tf.slope(xx, np.full_like(xx, 0.075)),
                                   atol=3 * float(np.max(tf.slope_std(xx))))
