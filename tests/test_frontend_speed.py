"""Speed-only changes of the recovery front end give the same results: estimate_redshift's channel sums
(no NaN-replaced copies when there is no NaN) and check_cube's short cut (the first value settles the checks)."""

import numpy as np
import pytest

from mockzgrad.recovery.frontend import _channel_nansum


def _cases():
    rng = np.random.default_rng(7)
    base = rng.normal(1.0, 3.0, (17, 23, 19)) * 10.0 ** rng.uniform(-20, -15, (17, 1, 1))
    with_nan = base.copy()
    with_nan[3, 4, 5] = np.nan
    with_nan[9] = np.nan
    with_inf = base.copy()
    with_inf[2, 0, 0], with_inf[5, 1, 1], with_inf[5, 2, 2] = np.inf, np.inf, -np.inf
    yield "plain", base
    yield "nan", with_nan
    yield "inf", with_inf
    yield "view", base[:, 2:, ::2]
    yield "fortran", np.asfortranarray(base)
    yield "float32", base.astype(np.float32)
    yield "big-endian", base.astype(">f8")


@pytest.mark.parametrize("name, a", list(_cases()))
def test_channel_sums_equal_nansum_bit_for_bit(name, a):
    got, want = _channel_nansum(a), np.nansum(a, axis=(1, 2))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def _cube(data, var):
    from types import SimpleNamespace

    return SimpleNamespace(data=data, variance=var, psf={"PSF_KIND": "gaussian", "PSF_FWHM": 0.2})


def _cases_check():
    good = np.ones((3, 4, 4))
    for name, first_d, first_v, rest_d, rest_v, ok in [
        ("finite", 1.0, 2.0, 1.0, 2.0, True),
        ("first data NaN", np.nan, 2.0, 1.0, 2.0, True),
        ("all data NaN", np.nan, 2.0, np.nan, 2.0, False),
        ("first var 0", 1.0, 0.0, 1.0, 2.0, True),
        ("first var NaN", 1.0, np.nan, 1.0, 2.0, True),
        ("first var negative, rest 0", 1.0, -1.0, 1.0, 0.0, False),
        ("var all NaN", 1.0, np.nan, 1.0, np.nan, False),
        ("var inf then 0", 1.0, np.inf, 1.0, 0.0, True),
        ("var all inf", 1.0, np.inf, 1.0, np.inf, False),
    ]:
        d, v = good * rest_d, good * rest_v
        d[0, 0, 0], v[0, 0, 0] = first_d, first_v
        yield name, d, v, ok


@pytest.mark.parametrize("name, data, var, ok", list(_cases_check()))
def test_check_cube_refuses_exactly_what_the_full_checks_refuse(name, data, var, ok):
    from mockzgrad.errors import DataError
    from mockzgrad.recovery.frontend import check_cube

    # the full checks, written out: some finite data; some finite variance and its largest finite value > 0
    full = bool(np.isfinite(data).any() and np.isfinite(var).any() and np.nanmax(var) > 0)
    assert full == ok
    if ok:
        check_cube(_cube(data, var))
    else:
        with pytest.raises(DataError):
            check_cube(_cube(data, var))
