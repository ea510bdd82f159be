"""Method II's branch references come from one batched Method I call over only the bins that need one.

Reference: Method I over *all* bins with the usable mask of the old code (one
call per double-valued diagnostic without it, one with every diagnostic), as
:func:`method_one_grid` is documented to do; the batched references must give
the same best fit and validity in every multi-root bin, and Method II the
same results as picking the root closest to those full-call references.
"""

import numpy as np
import pytest
from _metallicity_data import KEYS, NAMES, exact_fluxes, noisy
from _seed import seeded

from mockzgrad.recovery.metallicity import BinFluxes, log_ratios, method_two
from mockzgrad.recovery.metallicity.method_i import method_one_grid
from mockzgrad.recovery.metallicity.method_ii import _batched_references

Z_TRUE = np.linspace(7.42, 8.58, 40)


def _ratio_sets():
    flux = exact_fluxes(Z_TRUE)
    out = {"noise-free, 2 % errors": log_ratios(BinFluxes.from_errors(NAMES, flux, 0.02 * flux), KEYS)}
    for k, snr in enumerate((3.0, 8.0, 30.0)):  # low S/N: the gate drops diagnostics bin by bin
        rng = np.random.default_rng(seeded(230 + k))
        out[f"noisy S/N {snr:g}"] = log_ratios(noisy(rng, flux, snr), KEYS)
    # zero errors on [OIII] and Hb: R3's variance is its scatter alone; no error at all on Ne3O2 lines
    err = 0.02 * flux
    err[:, 0:2] = 0.0
    out["zero errors"] = log_ratios(BinFluxes.from_errors(NAMES, flux, err), KEYS, snr_min=0.0)
    # R3 with Ne3O2 alone: the references without R3 live on Ne3O2's narrower range (two grids)
    pair = ["S25_R3", "S25_Ne3O2"]
    out["R3 + Ne3O2, S/N 10"] = log_ratios(noisy(np.random.default_rng(seeded(233)), flux, 10.0), pair)
    # ... and with no error on Ne3O2's lines (no published scatter): it is dropped, no reference without R3
    err = 0.02 * flux
    err[:, 2:] = 0.0
    out["R3 + Ne3O2 without variance"] = log_ratios(BinFluxes.from_errors(NAMES, flux, err), pair,
                                                    snr_min=0.0)
    return out


RATIO_SETS = _ratio_sets()


def _multi(rs):
    """Bins with several roots, per diagnostic."""
    out = {}
    for j, d in enumerate(rs.diagnostics):
        u = rs.usable[:, j]
        if d.needs_logu:  # single-valued surfaces
            continue
        roots = d.z_roots(np.where(u, rs.log_ratio[:, j], np.nan))
        m = u & (np.sum(np.isfinite(roots), axis=1) >= 2)
        if m.any():
            out[j] = m
    return out


@pytest.mark.parametrize("z_grid", [None, np.linspace(7.0, 9.0, 801)])
@pytest.mark.parametrize("name", list(RATIO_SETS))
def test_batched_references_equal_full_method_one(name, z_grid):
    rs = RATIO_SETS[name]
    multi = _multi(rs)
    assert multi, "the test needs double-valued bins"
    others, every = _batched_references(rs, z_grid, None, multi)
    union = np.zeros(rs.n_bins, dtype=bool)
    for j, m in multi.items():
        mask = rs.usable.copy()
        mask[:, j] = False
        full = method_one_grid(rs, mask, z_grid=z_grid, scatter=True, covariance=True, logu=None)
        np.testing.assert_array_equal(others[j][1][m], full.valid[m])
        np.testing.assert_allclose(others[j][0][m], full.z[m], rtol=0, atol=1e-12)
        union |= m
    full = method_one_grid(rs, rs.usable, z_grid=z_grid, scatter=True, covariance=True, logu=None)
    np.testing.assert_array_equal(every[1][union], full.valid[union])
    np.testing.assert_allclose(every[0][union], full.z[union], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(RATIO_SETS))
def test_method_two_branches_as_full_references(name):
    """Root closest to the full-call Method I of the other diagnostics (else of all)."""
    rs = RATIO_SETS[name]
    res = method_two(rs)
    for j, m in _multi(rs).items():
        d = rs.diagnostics[j]
        mask = rs.usable.copy()
        mask[:, j] = False
        ref_o = method_one_grid(rs, mask, z_grid=None, scatter=True, covariance=True, logu=None)
        ref_a = method_one_grid(rs, rs.usable, z_grid=None, scatter=True, covariance=True, logu=None)
        ref = np.where(ref_o.valid, ref_o.z, ref_a.z)
        roots = d.z_roots(rs.log_ratio[:, j])
        r = res[d.key]
        for b in np.flatnonzero(m & r.valid):
            finite = roots[b][np.isfinite(roots[b])]
            if np.isfinite(ref[b]):
                assert r.z[b] == finite[np.argmin(np.abs(finite - ref[b]))]
            want = "other diagnostics" if ref_o.valid[b] else "all"
            assert r.chosen_by[b] == want


def test_batched_references_with_logu_per_bin():
    """A log U surface among the other diagnostics: each bin keeps its own log U in the batch."""
    flux = exact_fluxes(Z_TRUE)
    names = NAMES + ("OIII_4960",)
    flux = np.concatenate([flux, flux[:, :1] / 2.98], axis=1)
    rng = np.random.default_rng(seeded(234))
    err = 0.05 * flux
    bins = BinFluxes.from_errors(names, flux + err * rng.standard_normal(flux.shape), err)
    rs = log_ratios(bins, ["S25_R3", "K19_R23"], snr_min=0.0)
    logu = np.linspace(-3.2, -2.2, rs.n_bins)
    multi = _multi(rs)
    assert 0 in multi and rs.usable[:, 1].any()
    others, every = _batched_references(rs, None, logu, multi)
    mask = rs.usable.copy()
    mask[:, 0] = False
    full = method_one_grid(rs, mask, z_grid=None, scatter=True, covariance=True, logu=logu)
    assert full.valid[multi[0]].any()
    np.testing.assert_array_equal(others[0][1][multi[0]], full.valid[multi[0]])
    np.testing.assert_allclose(others[0][0][multi[0]], full.z[multi[0]], rtol=0, atol=1e-12)
    res = method_two(rs, logu=logu)
    assert res["S25_R3"].valid.any()
