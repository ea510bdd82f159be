"""The dispersion kernels (mockzgrad.kernels.disperse): compiled vs numpy twin, adjoint, linear split."""

import numpy as np
import pytest

from mockzgrad.kernels.disperse import disperse_adjoint_nb, disperse_adjoint_ref, disperse_nb, disperse_ref


def _inputs(seed, n_w=7, n_pix=60, shape=(23, 41), spill=True):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    lo = -3.0 if spill else 1.0  # spill: some positions fall outside the frame
    bx = rng.uniform(lo, nx - 2 - lo - 12, n_pix)
    by = rng.uniform(lo, ny - 2 - lo - 3, n_pix)
    dx = np.sort(rng.uniform(0.0, 12.0, n_w))
    dy = rng.uniform(0.0, 3.0, n_w)
    values = rng.normal(size=(n_w, n_pix))
    return values, bx, by, dx, dy, shape


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_kernel_equals_numpy_twin(seed):
    values, bx, by, dx, dy, shape = _inputs(seed)
    a, b = np.zeros(shape), np.zeros(shape)
    disperse_nb(values, bx, by, dx, dy, a)
    disperse_ref(values, bx, by, dx, dy, b)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    image = np.random.default_rng(seed + 10).normal(size=shape)
    ga, gb = np.zeros(values.shape), np.zeros(values.shape)
    disperse_adjoint_nb(image, bx, by, dx, dy, ga)
    disperse_adjoint_ref(image, bx, by, dx, dy, gb)
    np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-13)


@pytest.mark.parametrize("forward,adjoint", [(disperse_nb, disperse_adjoint_nb), (disperse_ref, disperse_adjoint_ref)])
def test_adjoint_identity(forward, adjoint):
    """<D x, y> = <x, D^T y>, also where weights fall off the frame."""
    values, bx, by, dx, dy, shape = _inputs(5)
    y = np.random.default_rng(6).normal(size=shape)
    dxv = np.zeros(shape)
    forward(values, bx, by, dx, dy, dxv)
    dty = np.zeros(values.shape)
    adjoint(y, bx, by, dx, dy, dty)
    lhs, rhs = float((dxv * y).sum()), float((values * dty).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


def test_sum_is_conserved_inside_the_frame():
    values, bx, by, dx, dy, shape = _inputs(7, spill=False)
    out = np.zeros(shape)
    disperse_nb(np.abs(values), bx, by, dx, dy, out)
    assert out.sum() == pytest.approx(np.abs(values).sum(), rel=1e-12)


@pytest.mark.parametrize("x,y", [(3.0, 4.0), (5.25, 2.75), (7.9, 6.01)])
def test_linear_split_puts_the_centroid_at_the_position(x, y):
    """A single value lands on at most 4 pixels whose centroid is exactly (x, y)."""
    out = np.zeros((12, 15))
    disperse_nb(np.array([[2.0]]), np.array([x]), np.array([y]), np.array([0.0]), np.array([0.0]), out)
    yy, xx = np.mgrid[0:12, 0:15]
    assert out.sum() == pytest.approx(2.0, rel=1e-14)
    assert (out * xx).sum() / out.sum() == pytest.approx(x, abs=1e-12)
    assert (out * yy).sum() / out.sum() == pytest.approx(y, abs=1e-12)
    assert np.count_nonzero(out) <= 4
