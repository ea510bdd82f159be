"""geometry.line_map sums views of a contiguous run of channels when nothing is masked: the same maps, bit for bit,
as the masked sums (written out below) on finite, NaN-holding, inf-holding and non-contiguous cubes."""

from types import SimpleNamespace

import numpy as np
import pytest

from mockzgrad.recovery.geometry import line_map

C_KMS = 299792.458


def _masked_sums(cube, lam, hw):
    centres = 0.5 * (cube.edges_lo + cube.edges_hi)
    sel = np.abs(centres / lam - 1.0) * C_KMS <= hw
    d, v = cube.data[sel], cube.variance[sel]
    ok = np.isfinite(d) & np.isfinite(v)
    flux = np.where(ok, d, 0.0).sum(axis=0)
    err = np.sqrt(np.where(ok, v, 0.0).sum(axis=0))
    flux[~ok.any(axis=0)] = np.nan
    err[~ok.any(axis=0)] = np.nan
    return flux, err


def _cube(kind):
    rng = np.random.default_rng(3)
    lo = 30000.0 * np.exp(np.arange(40) * 106.0 / C_KMS)
    hi = lo * np.exp(106.0 / C_KMS)
    data = rng.normal(0, 1e-19, (40, 13, 11)) + 1e-18
    var = np.full(data.shape, 1e-38) * rng.uniform(0.5, 2.0, data.shape)
    if kind == "nan":
        data[20, 3, 4] = np.nan
        var[21, :, 2] = np.nan
        data[18:24, 5, 5] = np.nan  # a spaxel with nothing left
    elif kind == "inf":
        var[19, 1, 1] = np.inf
    elif kind == "view":
        data, var = data[:, :, ::-1], var[:, ::2, :][:, :, :][:, :, :]
        data = data[:, ::2, :]
    return SimpleNamespace(data=data, variance=var, edges_lo=lo, edges_hi=hi)


@pytest.mark.parametrize("kind", ["finite", "nan", "inf", "view"])
@pytest.mark.parametrize("hw", [120.0, 300.0, 1000.0])
def test_line_map_equals_the_masked_sums(kind, hw):
    cube = _cube(kind)
    lam = 0.5 * (cube.edges_lo[20] + cube.edges_hi[20])
    got = line_map(cube, lam, half_width_kms=hw)
    want = _masked_sums(cube, lam, hw)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.view(np.uint64), w.view(np.uint64))
