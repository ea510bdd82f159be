"""estimate_redshift's channel sums skip nansum's NaN-replaced copy when there is no NaN: same sums bit for bit."""

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
