"""Common random numbers across depths and the noise-free cache of the planner (issue 19, round 2)."""

import math

import numpy as np
import pytest

from mockzgrad.config import config_from_dict
from mockzgrad.corrections import plan as PL
from mockzgrad.corrections import plan_cache as PC
from mockzgrad.observation import observe

from _seed import seeded

TARGET = {"redshift": 2.2, "r_eff": 2.0, "sersic_n": 1.0, "inclination": 40.0, "reference_line": "Ha",
          "reference_flux": 1e-16, "grad_z": [0.1], "lines": ["NII_6550", "Ha", "NII_6585"],
          "generating_set": ["C20_N2"]}
SETUP = {"name": "nirspec", "preset": "nirspec_ifu_g235m", "snr": [8.0, 16.0], "recipe": "lee2026", "n_mocks": 2,
         "overrides": {"metallicity.diagnostics": ["C20_N2"], "metallicity.also": [], "gating.line": "Ha"}}


def _cfg(**noise):
    target, setup = PL.target_from_dict(TARGET), PL.setup_from_dict(SETUP, "setup")
    table = PL._fixed(target, setup)
    table["noise"].update(noise)
    return config_from_dict(dict(table, seed=seeded(5)))


def test_cached_observation_equals_observe_at_every_depth():
    PC.clear()
    for snr in (8.0, 16.0, 8.0):
        cfg = _cfg(snr=snr)
        a, b = PC.observe_cached(cfg, keep_noise_free=False), observe(cfg, keep_noise_free=False)
        assert np.array_equal(a.data, b.data) and np.array_equal(a.variance, b.variance)
        assert a.unit == b.unit and a.truth == b.truth
    assert PC.stats() == {"hits": 2, "misses": 1, "cubes": 1}


def test_depths_share_the_noise_deviates():
    """Common random numbers: the noise at S/N 16 is the noise at S/N 8 times sigma(16) / sigma(8) = 1/2."""
    c8, c16 = (observe(_cfg(snr=s)) for s in (8.0, 16.0))
    assert np.array_equal(c8.noise_free, c16.noise_free)
    assert c16.truth["noise_sigma"] / c8.truth["noise_sigma"] == pytest.approx(0.5, rel=1e-12)
    assert np.allclose(c16.data - c16.noise_free, 0.5 * (c8.data - c8.noise_free), rtol=1e-9, atol=1e-32)


def test_cache_key_ignores_the_depth_only(tmp_path):
    base = PC.cache_key(_cfg(snr=8.0))
    assert PC.cache_key(_cfg(snr=30.0)) == base
    assert PC.cache_key(_cfg(snr=None, sigma=1e-20)) == base
    assert PC.cache_key(_cfg(snr=8.0, windows={"w": {"lines": ["NII_6585"], "scale": 2.0}})) == base
    assert PC.cache_key(_cfg(snr=8.0, snr_line="NII_6585")) != base  # the grid is anchored at snr_line
    assert PC.cache_key(dict_cfg := _cfg(snr=8.0).replace(seed=seeded(6))) != base, dict_cfg
    # a preset value: two user presets that differ in one value only give different keys
    keys = []
    for k, fwhm in enumerate((0.30, 0.31)):
        path = tmp_path / f"p{k}.toml"
        path.write_text('[preset]\nname = "p"\nkind = "ifu"\nstatus = "approximate"\nsources = ["t"]\n'
                        f'[instrument]\npixel_scale = 0.1\n[instrument.psf]\nfwhm = {fwhm}\n')
        setup = PL.setup_from_dict(dict(SETUP, preset=str(path)), "setup")
        keys.append(PC.cache_key(config_from_dict(PL._fixed(PL.target_from_dict(TARGET), setup))))
    assert keys[0] != keys[1]


def test_cached_and_uncached_plans_give_identical_tables(tmp_path):
    PC.clear()
    target, setup = PL.target_from_dict(TARGET), PL.setup_from_dict(SETUP, "setup")
    cached = PL.run_plan(target, [setup], tmp_path / "c", workers=1, plot=False)
    hits = PC.stats()["hits"]
    plain = PL.run_plan(target, [setup], tmp_path / "u", workers=1, plot=False, cache=False)
    assert hits == setup.n_mocks  # the second depth re-noises the first depth's cubes
    assert PC.stats()["hits"] == hits  # --no-cache: the shipped job, the cache untouched
    assert len(cached) == len(plain) == 2
    for a, b in zip(cached, plain):
        for k in PL._COLUMNS:
            va, vb = a[k], b[k]
            assert (va == vb) or (isinstance(va, float) and math.isnan(va) and math.isnan(vb)), (k, va, vb)
    assert (tmp_path / "c" / "plan.ecsv").read_text() == (tmp_path / "u" / "plan.ecsv").read_text()


def test_suites_of_a_setup_share_their_mocks(tmp_path):
    """Every depth's suite has mock j at the same seed and position angle (the solver's check suites too)."""
    from mockzgrad.suites.store import ResultsStore

    target, setup = PL.target_from_dict(TARGET), PL.setup_from_dict(SETUP, "setup")
    ctx = PL._Context(target, setup, tmp_path, 1, seed=seeded(21))
    ctx.suite("s", [0.1], PL._depths(setup))
    ctx.suite("solve", [0.1], [PL.depth_at(setup, 11.0**2)])
    cols = []
    for folder in ("s/g0.1_d0", "s/g0.1_d1", "solve/g0.1_d0"):
        with ResultsStore(tmp_path / "suites" / folder / "results.sqlite", readonly=True) as store:
            rows = sorted(store.rows(), key=lambda r: int(r["mock_index"]))
        cols.append([(r["seed"], str(r["params"]), r["noise_sigma"] * r["snr"]) for r in rows])
    assert len({c[0] for c in cols[0]}) == setup.n_mocks and "pa" in cols[0][0][1]  # mocks differ from each other
    for other in cols[1:]:
        assert [c[:2] for c in other] == [c[:2] for c in cols[0]]
        # sigma x S/N = mean signal in the S/N channel inside r_eff: the same noise-free cube
        assert [c[2] for c in other] == pytest.approx([c[2] for c in cols[0]], rel=1e-12)
