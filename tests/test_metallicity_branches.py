"""Method I's branch choice where a bin's diagnostics do not break a double-valued calibration.

The synthetic galaxy has Z(r) = 8.30 - 0.10 r (known, not from the code under
test), fluxes exactly on the Sanders et al. (2025) curves; beyond 3 kpc the
[OII] and [NeIII] lines are below the S/N gate, so those bins have R3 alone,
which has two roots: the truth and its mirror across R3's turnover.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from _metallicity_data import KEYS, NAMES, R3, exact_fluxes

from mockzgrad.budget import flattening_budget, step_configs
from mockzgrad.config import load_config, load_recipe
from mockzgrad.observation import observe
from mockzgrad.suites.job import measure_mock

from mockzgrad.recovery.metallicity import BinFluxes, log_ratios, method_one
from mockzgrad.recovery.metallicity.branches import choose_branches, find_branches

RADIUS = np.arange(0.25, 5.01, 0.25)  # kpc
Z_TRUE = 8.30 - 0.10 * RADIUS


def _turnover():
    zz = np.linspace(*R3.valid_range, 200001)
    return zz[np.argmax(R3.log_ratio(zz))]


def _galaxy(r3_only, z=Z_TRUE):
    flux = exact_fluxes(z)
    err = flux / 50.0
    err[r3_only, 2:] = flux[r3_only, 2:] / 1.0  # [OII], [NeIII] at S/N 1: gated out
    return log_ratios(BinFluxes.from_errors(NAMES, flux, err), KEYS)


def _mirror(z):
    """The other root of R3 at the true ratio (independent bisection on the calibration)."""
    zt = _turnover()
    target = R3.log_ratio(z)
    lo, hi = (zt, R3.valid_range[1]) if z < zt else (R3.valid_range[0], zt)
    if (R3.log_ratio(lo) - target) * (R3.log_ratio(hi) - target) > 0:
        return None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if (R3.log_ratio(lo) - target) * (R3.log_ratio(mid) - target) <= 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def test_r3_alone_takes_the_branch_of_the_inner_bins():
    outer = RADIUS >= 3.0
    res = method_one(_galaxy(outer), scatter=False, radius=RADIUS)
    assert res.valid.all()
    assert all(u == ("S25_R3",) for u, o in zip(res.diagnostics_used, outer) if o)
    # the test's premise: every R3-alone bin has a second root inside the range, most > 0.1 dex away
    mirrors = [_mirror(z) for z in Z_TRUE[outer]]
    assert all(m is not None for m in mirrors)
    assert sum(abs(m - z) > 0.1 for m, z in zip(mirrors, Z_TRUE[outer])) > outer.sum() / 2
    np.testing.assert_allclose(res.z, Z_TRUE, atol=2e-3)
    zt = _turnover()
    want = ["lower" if z < zt else "upper" for z in Z_TRUE[outer]]
    got = [b for b, o in zip(res.branch, outer) if o]
    near = np.abs(Z_TRUE[outer] - zt) < 0.01  # at the turnover the two roots merge into one minimum
    assert [g for g, n in zip(got, near) if not n] == [w for w, n in zip(want, near) if not n]
    assert all(g == "single" or g == w for g, w in zip(got, want))
    assert all(c.startswith("Z(r) of the") and "inner" in c
               for c, b, o in zip(res.chosen_by, res.branch, outer) if o and b != "single")
    assert set(b for b, o in zip(res.branch, outer) if not o) == {"single"}
    # the posterior is the chosen branch's: its interval does not reach the mirror root
    for b in np.flatnonzero(outer):
        m = _mirror(Z_TRUE[b])
        if abs(m - Z_TRUE[b]) > 0.02:
            assert not (res.z_lo[b] <= m <= res.z_hi[b])
    recs = res.to_records()
    assert recs[-1]["branch"] == want[-1] and "inner" in recs[-1]["chosen_by"]


def test_innermost_ambiguous_bins_take_the_outer_trend():
    inner = RADIUS <= 1.0  # R3 alone at the centre (upper branch), all lines beyond
    res = method_one(_galaxy(inner), scatter=False, radius=RADIUS)
    np.testing.assert_allclose(res.z, Z_TRUE, atol=2e-3)
    assert all("outer" in c for c, i in zip(res.chosen_by, inner) if i)
    assert all(b == "upper" for b, i in zip(res.branch, inner) if i)


def test_no_unambiguous_bin_keeps_the_best_fit_and_says_so():
    z = 7.80 - 0.04 * RADIUS  # 7.6-7.79: every bin's mirror root (8.0-8.2) is inside R3's range
    assert all(_mirror(v) is not None and abs(_mirror(v) - v) > 0.1 for v in z)
    res = method_one(_galaxy(np.ones(RADIUS.size, bool), z), scatter=False, radius=RADIUS)
    assert res.valid.all()
    assert set(res.branch) == {"ambiguous"}
    assert set(res.chosen_by) == {"best fit (no unambiguous bin)"}


def test_find_branches_of_a_double_well():
    grid = np.linspace(-2, 2, 4001)
    chi2 = (grid ** 2 - 1) ** 2 * 10  # minima at -1 and +1, maximum at 0
    br = find_branches(grid, chi2)
    assert [round(grid[k], 6) for k, _, _ in br] == [-1.0, 1.0]
    assert grid[br[0][2]] == pytest.approx(0.0) and grid[br[1][1]] == pytest.approx(0.0)
    # a shallow second well (Delta chi^2 > 4) is not a branch
    br = find_branches(grid, chi2 + 3.0 * (grid + 2))
    assert len(br) == 1 and grid[br[0][0]] < 0
    choice = choose_branches(grid, np.stack([chi2, (grid - 1.0) ** 2]), np.array([True, True]),
                             radius=[2.0, 1.0])
    assert choice.branch == ("upper", "single")
    assert choice.lo[0] == pytest.approx(0.0) and np.isnan(choice.lo[1])


FLAGSHIP = Path(__file__).resolve().parents[1] / "examples" / "flagship_z5.toml"


@pytest.mark.slow
def test_flagship_s_n_gate_at_negligible_psf_keeps_the_gradient():
    """Issue 24: PSF 0.02" (x ~ 30), noise-free, flagship: the S/N gate (budget step e1) leaves R3
    alone beyond ~3 kpc; with the branch choice it no longer flattens (0.934 before).

    Tolerance: e1 and the gate-free pipeline on the same bins differ only in
    which diagnostics enter each bin, and each carries the binning bias (the
    budget's a2 floor, 1 - ratio(a2)) at most once, so they agree within
    twice that floor.
    """
    cfg = load_config(FLAGSHIP).replace(**{"instrument.psf.fwhm": 0.02})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = flattening_budget(cfg, realisations=1, alternatives=False)
        cfgs = step_configs(cfg)
        prod = observe(cfgs["d"], keep_noise_free=False)
        rec = load_recipe("lee2026")
        gated = measure_mock(prod, cfgs["d"], rec).to_dict()["bins"]
        free = measure_mock(prod, cfgs["d"], rec.replace(**{"gating.snr_min": 0.0})).to_dict()["bins"]
    floor = 1.0 - b.step("a2").ratio
    assert 0.0 < floor < 0.01  # the premise: a small, positive binning floor
    kept = [i for i, x in enumerate(gated) if x["metallicity"]["I"].get("z") is not None]
    alone = [i for i in kept if gated[i]["metallicity"]["I"]["diagnostics"] == ["S25_R3"]]
    assert len(alone) >= 3  # the premise: the gate leaves R3 alone in several annuli
    r = np.array([free[i]["radius_kpc"] for i in kept])
    m = [free[i]["metallicity"]["I"] for i in kept]
    z = np.array([x["z"] for x in m])
    w = 1.0 / (0.5 * (np.array([x["z_hi"] for x in m]) - np.array([x["z_lo"] for x in m])))
    ratio_free_same_bins = np.polyfit(r, z, 1, w=w)[0] / b.grad_z_true
    assert abs(b.step("e1").ratio - ratio_free_same_bins) <= 2.0 * floor
    # every R3-alone bin sits on the branch of the three-diagnostic (gate-free) metallicity
    zt = _turnover()
    for i in alone:
        zg, zf = gated[i]["metallicity"]["I"]["z"], free[i]["metallicity"]["I"]["z"]
        if abs(zf - zt) > 0.02:
            assert (zg - zt) * (zf - zt) > 0, (i, zg, zf)
        assert gated[i]["metallicity"]["I"]["branch"] in ("lower", "upper", "single")
