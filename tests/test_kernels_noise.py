"""The compiled noise kernel draws numpy's own deviates: cubes with noise are the same to the bit as
``z = rng.standard_normal(shape); z *= sigma; z += cube`` (the definition, written out here), and the
generator is left in the same state."""

import numpy as np
import pytest

from mockzgrad.kernels.noise import add_noise_nb, add_noise_ref
from mockzgrad.observation.noise import add_noise


def _numpy_noise(cube, sigma, rng):
    z = np.empty(np.shape(cube))
    rng.standard_normal(out=z)
    z *= sigma if np.ndim(sigma) == 0 else np.asarray(sigma, dtype=float)[:, None, None]
    z += cube
    return z


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("per_channel", [False, True])
def test_noisy_cube_equals_numpy_draws_to_the_bit(seed, per_channel):
    r = np.random.default_rng(1000 + seed)
    shape = (int(r.integers(1, 30)), int(r.integers(1, 40)), int(r.integers(1, 40)))
    cube = r.normal(1e-18, 3e-19, shape)
    sigma = r.uniform(1e-19, 1e-18, shape[0]) if per_channel else float(r.uniform(1e-19, 1e-18))
    ga, gb, gc = (np.random.default_rng([seed, 7]) for _ in range(3))
    want = _numpy_noise(cube, sigma, ga)
    assert _same_bits(add_noise(cube, sigma, gb), want)
    assert _same_bits(add_noise(cube, sigma, gc, use_numba=False), want)
    # the generators moved on by the same draws
    assert ga.standard_normal() == gb.standard_normal() == gc.standard_normal()


def test_a_million_deviates_include_the_ziggurat_tails_and_match():
    # ~1e6 draws reach the ziggurat's rare branches (wedges, the |z| > 3.65 tail) many times
    cube = np.zeros((10, 317, 317))
    got = add_noise(cube, 1.0, np.random.default_rng(20261205))
    want = _numpy_noise(cube, 1.0, np.random.default_rng(20261205))
    assert np.count_nonzero(np.abs(want) > 3.7) > 100
    assert _same_bits(got, want)


def test_float32_and_non_contiguous_cubes():
    r = np.random.default_rng(3)
    cube = r.normal(0, 1, (5, 12, 14))
    for c in (cube.astype(np.float32), cube[:, ::2, ::-1], np.asfortranarray(cube)):
        assert _same_bits(add_noise(c, 0.5, np.random.default_rng(4)), _numpy_noise(c, 0.5, np.random.default_rng(4)))


def test_twins_agree_on_the_flat_layout():
    cube = np.random.default_rng(5).normal(0, 1, (4, 50))
    sig = np.array([0.1, 1.0, 2.0, 0.0])
    a = add_noise_nb(cube, sig, np.random.default_rng(6), np.empty_like(cube))
    b = add_noise_ref(cube, sig, np.random.default_rng(6), np.empty_like(cube))
    assert _same_bits(a, b)
    assert np.array_equal(a[3], cube[3])  # sigma 0: the channel is unchanged


def test_any_bit_generator_and_any_shape():
    for bg in (np.random.PCG64, np.random.SFC64, np.random.Philox, np.random.MT19937):
        cube = np.random.default_rng(0).random((3, 9, 7))
        got = add_noise(cube, 0.3, np.random.Generator(bg(5)))
        assert _same_bits(got, _numpy_noise(cube, 0.3, np.random.Generator(bg(5))))
    for cube in (np.float64(2.0), np.zeros(5), np.zeros((4, 6))):
        got = add_noise(cube, 1.5, np.random.default_rng(8))
        assert got.shape == np.shape(cube)
        assert _same_bits(np.atleast_1d(got), np.atleast_1d(_numpy_noise(cube, 1.5, np.random.default_rng(8))))
