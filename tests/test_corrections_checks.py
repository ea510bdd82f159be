"""S/N and sign checks: the look-elsewhere correction, and halves that do or do not differ."""

import math

import numpy as np
import pytest
from _seed import seeded
from scipy.stats import norm

from mockzgrad.corrections.checks import (
    CHECK_RULE,
    CheckReport,
    Comparison,
    GroupCheck,
    compare_halves,
    global_sigma,
    group_checks,
)


class TestGlobalSigma:
    @pytest.mark.parametrize("z", [0.5, 2.0, 3.5, 5.0])
    @pytest.mark.parametrize("n", [1, 2, 7, 30])
    def test_matches_normal_tail(self, z, n):
        p_one = 2 * norm.sf(z)
        p_any = 1 - (1 - p_one) ** n
        assert global_sigma(z, n) == pytest.approx(norm.isf(p_any / 2), rel=1e-6)

    def test_one_bin_is_unchanged_and_more_bins_lower(self):
        assert global_sigma(3.0, 1) == pytest.approx(3.0, rel=1e-10)
        values = [global_sigma(3.0, n) for n in (1, 2, 5, 20)]
        assert all(a > b for a, b in zip(values, values[1:]))
        assert global_sigma(math.inf, 4) == math.inf


def halves(offset, seed=0, n=400, noise=0.02):
    rng = np.random.default_rng(seed)
    xa, xb = rng.uniform(0.5, 6.0, n), rng.uniform(0.5, 6.0, n)
    return xa, rng.normal(0, noise, n), xb, offset + rng.normal(0, noise, n)


class TestCompareHalves:
    def test_same_distribution_not_flagged(self):
        flags = [compare_halves(*halves(0.0, seed=seeded(s)), 5, 3.0) for s in range(10)]
        assert all(c.applicable for c in flags)
        assert sum(c.flag for c in flags) <= 1  # a 3-sigma global threshold: rarely by chance
        # under the null the global p-value is uniform: global_sigma = isf(p / 2) has median isf(1/4) =
        # 0.67 and exceeds 2.2 with probability 2 sf(2.2) = 0.028; the median of 10 exceeds 2.2 only if
        # >= 5 of them do: binomial probability 4e-6 (any seed), while a miscalibrated check fails it
        assert np.median([c.global_sigma for c in flags]) < 2.2

    def test_offset_found(self):
        c = compare_halves(*halves(0.03, seed=seeded(0)), 5, 3.0)
        assert c.flag and c.global_sigma > 5
        # the largest of ~12 bin differences: the offset plus up to a few standard errors (~0.006 each)
        assert 0.03 <= c.max_diff <= 0.055
        # effect size: an offset of 1.5 single-mock scatters (0.03 / 0.02), plus the noise of ~12 bins
        assert 1.2 < c.max_diff_scatter < 4.0
        assert 0.5 <= c.x_at_max <= 6.0 and c.n_bins >= 2

    def test_too_few(self):
        xa, ra, xb, rb = halves(0.0, n=20)
        c = compare_halves(xa[:3], ra[:3], xb, rb, 5, 3.0)
        assert not c.applicable and "fewer than min_per_bin" in c.reason
        assert c.as_dict() == {"applicable": False, "reason": c.reason}


class TestGroupChecks:
    def test_snr_split_and_sign(self):
        rng = np.random.default_rng(3)
        n = 600
        x = rng.uniform(0.5, 6.0, n)
        snr = rng.uniform(10, 90, n)
        sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        residual = rng.normal(0, 0.02, n) - 0.04 * (snr < np.median(snr))  # low S/N loses more
        snr_check, sign_check = group_checks(0.1, x, residual, sign, snr, 5, 3.0)
        assert snr_check.kind == "snr" and snr_check.split_snr == np.median(snr)
        assert snr_check.flagged and not sign_check.flagged
        assert snr_check.message().startswith("snr check at |grad_z| = 0.1 dex/kpc")
        d = snr_check.as_dict()
        assert list(d)[:3] == ["abs_grad", "split_snr", "applicable"] and d["flag"]

    def test_not_applicable_reasons(self):
        x = np.linspace(1, 5, 40)
        snr_check, sign_check = group_checks(0.2, x, np.zeros(40), np.ones(40), None, 5, 3.0)
        assert snr_check.as_dict() == {"abs_grad": 0.2, "applicable": False, "reason": "no 'snr' column"}
        assert sign_check.as_dict() == {"abs_grad": 0.2, "applicable": False, "reason": "one sign only"}
        snr_check, _ = group_checks(0.2, x, np.zeros(40), np.ones(40), np.full(40, 50.0), 5, 3.0)
        assert snr_check.as_dict()["reason"] == "one S/N value only" and snr_check.split_snr == 50.0


def test_report_as_dict_and_flag_order():
    yes = Comparison(applicable=True, n_bins=3, max_diff=0.1, max_diff_scatter=2.0, max_diff_sigma=6.0,
                     global_sigma=5.5, x_at_max=2.0, flag=True)
    no = Comparison.not_applicable("one sign only")
    report = CheckReport(threshold_sigma=3, snr=(GroupCheck("snr", 0.1, no, split_snr=40.0),
                                                 GroupCheck("snr", 0.2, yes, split_snr=41.0)),
                         sign=(GroupCheck("sign", 0.1, yes), GroupCheck("sign", 0.2, no)))
    assert [(c.kind, c.abs_grad) for c in report.flagged] == [("snr", 0.2), ("sign", 0.1)]
    d = report.as_dict()
    assert list(d) == ["threshold_sigma", "rule", "snr", "sign", "any_flagged"]
    assert d["threshold_sigma"] == 3.0 and isinstance(d["threshold_sigma"], float)
    assert d["rule"] == CHECK_RULE and d["any_flagged"] is True
    assert d["snr"][1] == {"abs_grad": 0.2, "split_snr": 41.0, **yes.as_dict()}
    assert not CheckReport(threshold_sigma=3.0, snr=(GroupCheck("snr", 0.1, no),)).as_dict()["any_flagged"]
