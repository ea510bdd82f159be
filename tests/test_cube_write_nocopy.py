"""Writing a cube scales each array only when needed and keeps float64 only when float32 overflows."""

import numpy as np

from mockzgrad.products.cube import _divided, _stored


def test_divided_is_the_array_itself_when_every_factor_is_one():
    arr = np.arange(24.0).reshape(2, 3, 4)
    assert _divided(arr, np.ones((2, 1, 1)), 2) is arr
    f = np.array([2.0, 4.0])[:, None, None]
    np.testing.assert_array_equal(_divided(arr, f, 1), arr / f)
    np.testing.assert_array_equal(_divided(arr, f, 2), arr / f**2)


def test_stored_ignores_non_finite_values_and_overflowing_ones_stay_float64():
    arr = np.array([1.0, np.nan, np.inf, -np.inf, 3e37])
    out = _stored(arr)
    assert out.dtype == np.float32 and out is not arr
    assert _stored(np.array([np.nan, -2e38])).dtype == np.float64
    assert _stored(np.full(3, np.nan)).dtype == np.float32
