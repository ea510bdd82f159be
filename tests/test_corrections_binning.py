"""Grouping in |grad_z|, bins in x and running medians, against direct computations."""

import numpy as np
import pytest

from mockzgrad.corrections.binning import (
    GRAD_DECIMALS,
    PERCENTILES,
    assign_groups,
    auto_edges,
    bin_index,
    local_scatter,
    local_stats,
    make_grouping,
    readonly_array,
    running_median,
)
from mockzgrad.errors import ConfigError


def test_percentiles_are_one_sigma():
    from scipy.stats import norm

    np.testing.assert_allclose(PERCENTILES, [100 * norm.cdf(-1), 100 * norm.cdf(1)], rtol=1e-12)


def test_readonly_array_is_a_frozen_copy():
    src = [1.0, 2.0]
    arr = readonly_array(src)
    with pytest.raises(ValueError):
        arr[0] = 5.0
    base = np.array([1.0, 2.0])
    arr = readonly_array(base)
    base[0] = 9.0
    assert arr[0] == 1.0


class TestBinIndex:
    def naive(self, v, edges):
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= v < edges[i + 1] or (last and v == edges[-1]):
                return i
        return -1

    def test_matches_direct_comparison(self):
        rng = np.random.default_rng(1)
        edges = np.array([0.5, 1.0, 1.7, 3.0, 6.0])
        x = np.concatenate([rng.uniform(0.0, 7.0, 500), edges, [np.nan, np.inf, -np.inf]])
        got = bin_index(x, edges)
        expect = [self.naive(v, edges) for v in x]
        np.testing.assert_array_equal(got, expect)

    def test_degenerate_edges(self):
        np.testing.assert_array_equal(bin_index([1.0, 2.0], [2.0, 2.0]), [-1, 0])
        np.testing.assert_array_equal(bin_index([1.0], [2.0]), [-1])


class TestAutoEdges:
    @pytest.mark.parametrize("min_per_bin", [1, 5, 20])
    def test_every_subset_filled(self, min_per_bin):
        rng = np.random.default_rng(min_per_bin)
        a, b = rng.uniform(0.5, 6.0, 150), rng.exponential(1.5, 90) + 0.5  # b crowds at small x
        edges, ok = auto_edges([a, b], min_per_bin)
        assert ok
        assert edges[0] == min(a.min(), b.min()) and edges[-1] == max(a.max(), b.max())
        assert np.all(np.diff(edges) > 0)
        for s in (a, b):
            idx = bin_index(s, edges)
            assert np.all(idx >= 0)
            assert np.bincount(idx, minlength=edges.size - 1).min() >= min_per_bin

    def test_impossible(self):
        edges, ok = auto_edges([np.linspace(1, 2, 4)], 5)
        assert not ok and edges.size == 2

    def test_requested_bins(self):
        x = np.linspace(0.0, 1.0, 101)
        edges, ok = auto_edges([x], 5, n_bins=4)
        assert ok
        np.testing.assert_allclose(edges, [0.0, 0.25, 0.5, 0.75, 1.0])


class TestRunningMedian:
    def test_against_masks(self):
        rng = np.random.default_rng(4)
        x = rng.uniform(0.0, 4.0, 400)
        r = np.sin(x) + rng.normal(0, 0.1, 400)
        edges = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # the last bin is empty
        run = running_median(x, r, edges, 5)
        assert run.n_bins == 5
        for i in range(4):
            sel = (x >= edges[i]) & (x < edges[i + 1])
            assert run.n[i] == sel.sum()
            assert run.median[i] == np.median(r[sel])
            assert run.x_center[i] == np.median(x[sel])
            np.testing.assert_array_equal([run.p16[i], run.p84[i]], np.percentile(r[sel], PERCENTILES))
        assert run.n[4] == 0 and np.isnan(run.median[4]) and np.isnan(run.x_center[4])
        np.testing.assert_array_equal(run.scatter, 0.5 * (run.p84 - run.p16))

    def test_sparse_bin_keeps_centre(self):
        x = np.array([0.1, 0.2, 0.3, 1.5])
        run = running_median(x, x, [0.0, 1.0, 2.0], 2)
        assert np.isnan(run.median[1]) and run.x_center[1] == 1.5 and run.n[1] == 1


class TestLocalStats:
    def test_interpolates_between_bin_centres(self):
        x = np.repeat([1.0, 2.0, 3.0], 11)
        r = np.concatenate([np.linspace(-1, 1, 11) * s + m for m, s in ((0.2, 0.1), (0.6, 0.3), (0.8, 0.2))])
        run = running_median(x, r, [0.5, 1.5, 2.5, 3.5], 5)
        stats = local_stats(np.array([1.0, 1.5, 2.0, 3.0, 0.0, 9.0]), run)
        np.testing.assert_allclose(stats.median, [0.2, 0.4, 0.6, 0.8, 0.2, 0.8], atol=1e-12)
        half = 0.5 * (np.percentile(np.linspace(-1, 1, 11), PERCENTILES[1])
                      - np.percentile(np.linspace(-1, 1, 11), PERCENTILES[0]))
        np.testing.assert_allclose(stats.scatter[[0, 2, 3]], half * np.array([0.1, 0.3, 0.2]), rtol=1e-12)
        np.testing.assert_allclose(stats.scatter[1], 0.5 * half * (0.1 + 0.3), rtol=1e-12)

    def test_none_without_statistics(self):
        run = running_median(np.array([1.0, 2.0]), np.array([1.0, 1.0]), [0.0, 3.0], 5)
        assert local_stats(np.array([1.0]), run) is None


class TestLocalScatter:
    def test_gaussian_noise(self):
        rng = np.random.default_rng(7)
        x = rng.uniform(0.5, 6.0, 3000)
        noise = rng.normal(0, 0.05, x.size)
        s = local_scatter(x, noise, np.array([1.0, 3.0, 5.0]), 5)
        np.testing.assert_allclose(s, 0.05, rtol=0.15)

    def test_falls_back_to_std(self):
        r = np.array([0.0, 1.0, 3.0])
        s = local_scatter(np.array([1.0, 2.0, 3.0]), r, np.array([1.0, 2.0]), 10)
        np.testing.assert_array_equal(s, [np.std(r)] * 2)


class TestGrouping:
    def test_discrete_when_few_values(self):
        g = np.repeat([0.05, 0.1, 0.2], 30) * (1 + 1e-9)
        grouping = make_grouping(g)
        assert grouping["mode"] == "discrete"
        np.testing.assert_array_equal(np.unique(assign_groups(g, grouping)), [0.05, 0.1, 0.2])

    def test_auto_bins_equal_count_labelled_by_median(self):
        rng = np.random.default_rng(2)
        g = rng.uniform(0.02, 0.2, 1000)
        grouping = make_grouping(g)
        assert grouping["mode"] == "bins" and len(grouping["labels"]) == 4
        labels = assign_groups(g, grouping)
        for lab in grouping["labels"]:
            members = g[labels == lab]
            assert 240 <= members.size <= 260
            assert lab == round(float(np.median(members)), GRAD_DECIMALS)

    def test_values_nearest_and_edges(self):
        g = np.array([0.04, 0.06, 0.11, 0.3])
        grouping = make_grouping(g, [0.2, 0.05, 0.1])
        assert grouping["values"] == [0.05, 0.1, 0.2]
        np.testing.assert_array_equal(assign_groups(g, grouping), [0.05, 0.05, 0.1, 0.2])
        binned = make_grouping(g, {"edges": [0.0, 0.1, 0.2]})
        labels = assign_groups(g, binned)
        assert labels[0] == labels[1] == 0.05 and labels[2] == 0.11 and np.isnan(labels[3])

    @pytest.mark.parametrize("bad", ["foo", 0, {"edges": [0.2, 0.1]}, {"foo": 1}, [0.0, 0.1], True])
    def test_invalid(self, bad):
        with pytest.raises(ConfigError, match="grad_bins"):
            make_grouping(np.array([0.1, 0.2]), bad)

    def test_unknown_mode(self):
        with pytest.raises(ConfigError, match="mode"):
            assign_groups([0.1], {"mode": "nearest"})
