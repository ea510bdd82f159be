"""Mocks whose Z(r) runs beyond the calibrations' range: left out of curves by default, and `correct` flags
gradients beyond the range of the mocks kept, per sign."""

import json
import re

import numpy as np
import pytest
from astropy.table import Table

from mockzgrad.cli import _MAX_OUTSIDE_FLUX_HELP, main
from mockzgrad.corrections.calibration_range import (MAX_OUTSIDE_FLUX, OUTSIDE_COLUMN, choose_mocks,
                                                     split_outside_range)
from mockzgrad.errors import ConfigError

# the flagship's measured share of line flux from outside the calibrations' range per intrinsic gradient
# (2026-12-06, 1500 mocks; the same for every PSF and S/N of a level)
FLAGSHIP_SHARE = {-0.2: 0.045, -0.1: 0.007, -0.05: 0.0, 0.05: 0.001, 0.1: 0.048, 0.2: 0.30}
ERR = 0.01  # dex/kpc, every synthetic mock's reported 1-sigma error and its true noise


def _suite(seed: int, n_per: int = 40) -> Table:
    """A flagship-like suite: slope a(x) = 1.1 - 0.5 / x for every gradient but +0.2, whose lines come 30 %
    from outside the calibrations' range and which measures a ceiling just above +0.1's mean (0.1 a(x) +
    0.012 dex/kpc), as the flagship's +0.2 mocks do (0.065 vs 0.055 dex/kpc at x < 0.8)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(list(FLAGSHIP_SHARE), n_per)
    x = rng.uniform(0.6, 6.4, g.size)
    a = 1.1 - 0.5 / x
    mean = a * g
    top = g > 0.15
    mean[top] = 0.1 * a[top] + 0.012
    m = mean + rng.normal(0.0, ERR, g.size)
    return Table({"mock_index": np.arange(g.size), "status": ["ok"] * g.size, "grad_z_true": g,
                  "grad_z_measured": m, "grad_z_measured_lo": m - ERR, "grad_z_measured_hi": m + ERR,
                  "x_resolution": x, "snr": rng.uniform(20.0, 100.0, g.size),
                  OUTSIDE_COLUMN: [FLAGSHIP_SHARE[v] for v in g]})


def test_split_counts_and_names_what_it_leaves_out():
    t = Table({"grad_z_true": [0.2, 0.2, 0.1, -0.2, 0.05], OUTSIDE_COLUMN: [0.3, 0.3, 0.048, 0.06, np.nan]})
    kept, left = split_outside_range(t)
    assert list(kept["grad_z_true"]) == [0.1, 0.05]  # NaN (not recorded) is kept
    assert (left.n_total, left.n_left_out, left.max_frac) == (5, 3, MAX_OUTSIDE_FLUX)
    assert left.by_grad == ((-0.2, -0.2, 1, 1, 0.06), (0.2, 0.2, 2, 2, 0.3))
    text = left.describe()
    assert "left out 3 of 5" in text and "grad_z = +0.2: 2 of 2" in text and "--outside-range keep" in text
    assert json.loads(json.dumps(left.as_dict()))["n_left_out"] == 3
    kept, left = split_outside_range(t, 0.5)
    assert len(kept) == 5 and left.n_left_out == 0
    kept, left = split_outside_range(t, None)
    assert len(kept) == 5 and "kept all 5" in left.describe()


def test_split_without_the_column_keeps_everything_and_says_so():
    t = Table({"grad_z_true": [0.2, -0.1]})
    kept, left = split_outside_range(t)
    assert len(kept) == 2 and not left.column_present and "no 'outside_flux_frac' column" in left.describe()


def test_continuous_gradients_are_summarised_per_sign():
    g = np.linspace(-0.2, 0.2, 81)
    t = Table({"grad_z_true": g, OUTSIDE_COLUMN: np.where(g > 0.12, 0.2, 0.0)})
    _, left = split_outside_range(t)
    (lo, hi, n, n_in, share), = left.by_grad
    assert (lo, hi, share) == pytest.approx((0.125, 0.2, 0.2)) and n == n_in == 16
    assert "grad_z +0.125 to +0.2: 16 of 16" in left.describe()


def test_bad_threshold_is_named():
    with pytest.raises(ConfigError, match="max_outside_flux"):
        split_outside_range(Table({"grad_z_true": [0.1], OUTSIDE_COLUMN: [0.0]}), 1.5)


def test_cli_help_states_the_default():
    assert float(_MAX_OUTSIDE_FLUX_HELP) == MAX_OUTSIDE_FLUX


def test_bad_mode_is_named():
    with pytest.raises(ConfigError, match="outside_range = 'drop'"):
        choose_mocks(Table({"grad_z_true": [0.1], OUTSIDE_COLUMN: [0.0]}), mode="drop")


@pytest.mark.slow
def test_auto_keeps_them_when_the_others_alone_cannot_be_corrected():
    """As on the KURVS-like suite: the mocks within the share have gradients too small to discriminate
    (0.005 dex/kpc against 0.02 errors), those above it (0.1 dex/kpc, share 0.2) follow the same linear
    transfer function: `auto` keeps them and says why; `leave-out` does not."""
    rng = np.random.default_rng(7)
    g = np.repeat([-0.1, -0.005, 0.005, 0.1], 40)
    x = rng.uniform(1.0, 6.0, g.size)
    m = (1.1 - 0.5 / x) * g + rng.normal(0.0, 0.02, g.size)
    t = Table({"status": ["ok"] * g.size, "grad_z_true": g, "grad_z_measured": m, "grad_z_measured_lo": m - 0.02,
               "grad_z_measured_hi": m + 0.02, "x_resolution": x, OUTSIDE_COLUMN: np.where(np.abs(g) > 0.05, 0.2, 0.0)})
    kept, left, tf = choose_mocks(t)
    assert len(kept) == 160 and left.n_left_out == 0 and left.n_above == 80
    assert "scatter too large" in left.fallback and tf.assessment["transfer_ok"]
    assert "kept 80 of 160" in left.describe()
    kept, left, tf = choose_mocks(t, mode="leave-out")
    assert len(kept) == 80 and left.n_left_out == 80 and tf is None


@pytest.mark.slow
def test_default_command_leaves_out_the_clipped_mocks_and_is_accepted(tmp_path, capsys):
    """Fails on the old default (every mock kept): the suite is refused without --force, as the flagship was.

    Left in, the +0.2 ceiling makes every admissible transfer structure miss a cell by > MISFIT_MAX (or turn
    the mean over) and the ratio model sees an offset; left out, one slope per sign describes the suite."""
    results = tmp_path / "results.ecsv"
    _suite(3).write(results, format="ascii.ecsv")
    out = tmp_path / "c.ecsv"
    assert main(["curves", str(results), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"left out 40 of 240 mocks .*grad_z = \+0\.2: 40 of 40", text), text
    tf = json.loads((tmp_path / "c_transfer.json").read_text())
    assert tf["assessment"]["transfer_ok"]
    assert tf["provenance"]["calibration_range"]["n_left_out"] == 40
    assert tf["grad_range_by_sign"] == {"positive": [0.05, 0.1], "negative": [0.05, 0.2]}
    assert tf["n_mocks"] == 200
    # the old default: kept, the same suite is refused
    assert main(["curves", str(results), "-o", str(tmp_path / "k.ecsv"), "--outside-range", "keep"]) == 2
    err = capsys.readouterr().err
    assert "neither the ratio curves nor the transfer function describe the suite" in err
    assert not (tmp_path / "k.ecsv").exists()


@pytest.mark.slow
def test_posterior_flags_gradients_beyond_the_range_of_their_sign():
    """Positive mocks reach +0.1, negative -0.2: a galaxy whose posterior median is +0.15 is flagged
    above_suite_grad, one at -0.15 is not (the old, sign-blind range +-0.2 flagged neither)."""
    from mockzgrad.corrections.posterior import correct_with_transfer
    from mockzgrad.corrections.transfer import fit_transfer

    kept, _ = split_outside_range(_suite(3))
    tf = fit_transfer(kept)
    assert tf.sign_grad_range(1.0) == (0.05, 0.1) and tf.sign_grad_range(-1.0) == (0.05, 0.2)
    x = 5.0
    rows = Table({"id": ["pos", "neg", "pos_in"],
                  "gradient_dex_per_kpc": [float(tf.mean(x, 0.15)), float(tf.mean(x, -0.15)),
                                           float(tf.mean(x, 0.08))],
                  "err_minus": [0.005] * 3, "err_plus": [0.005] * 3})
    out = correct_with_transfer(rows, tf, x=x)
    flags = dict(zip(out["id"], out["grad_post_flag"]))
    assert out["grad_post"][0] == pytest.approx(0.15, abs=0.02)
    assert "above_suite_grad" in flags["pos"].split(";")
    assert "above_suite_grad" not in flags["neg"].split(";") and "above_suite_grad" not in flags["pos_in"]
    meta = out.meta["mockzgrad_transfer"]["grad_range_suite_by_sign"]
    assert meta == {"positive": [0.05, 0.1], "negative": [0.05, 0.2]}


def test_cli_names_a_bad_share(tmp_path, capsys):
    results = tmp_path / "results.ecsv"
    _suite(1, n_per=3).write(results, format="ascii.ecsv")
    assert main(["curves", str(results), "-o", str(tmp_path / "c.ecsv"), "--max-outside-flux", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "max_outside_flux" in err and "1.5" in err and not (tmp_path / "c.ecsv").exists()
