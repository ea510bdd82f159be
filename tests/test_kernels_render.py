"""Tests of the line-rendering kernels (mockzgrad.kernels.render) and their
checked wrappers (mockzgrad.source.render).

Invariants: the numba kernel agrees with its numpy twin; flux is conserved;
the channel-integrated profile has the right centroid and width (Sheppard's
correction); sub-pixels add up; a flipped velocity mirrors the spectrum.
Sizes are small so the file also runs under NUMBA_DISABLE_JIT=1.
"""

import math

import numba
import numpy as np
import pytest
from scipy.special import erfc, ndtr

from mockzgrad.errors import ConfigError
from mockzgrad.kernels import (
    bin_subpixels_nb,
    bin_subpixels_ref,
    normal_cdf_nb,
    normal_cdf_ref,
    render_lines_nb,
    render_lines_ref,
)
from mockzgrad.kernels.render import C_KMS
from mockzgrad.source.render import bin_subpixels, render_lines
from mockzgrad.physics.lines import C_KMS as LINES_C_KMS

REDSHIFT = 5.0
REST = np.array([3727.09, 3729.88, 4862.69, 4960.30, 5008.24, 6564.61])  # mockzgrad.physics.lines


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def velocity_grid(center, v_lo, v_hi, dv, log=False):
    """Contiguous channel edges (lo, hi) from v_lo to v_hi km/s around ``center`` Angstrom."""
    v = np.arange(v_lo, v_hi + 0.5 * dv, dv)
    edges = center * np.exp(v / C_KMS) if log else center * (1.0 + v / C_KMS)
    return edges[:-1].copy(), edges[1:].copy()


def grid_for(line_wave, kind, dv=106.0, half_width=1500.0):
    """Channel edges covering every line: one window per line, merged as needed."""
    los, his = [], []
    for lw in np.unique(line_wave):
        lo, hi = velocity_grid(lw, -half_width, half_width, dv, log=(kind == "log"))
        los.append(lo)
        his.append(hi)
    lo, hi = np.concatenate(los), np.concatenate(his)
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    # drop channels overlapping an earlier one (windows of close lines)
    keep = np.ones(lo.size, bool)
    last_hi = -np.inf
    for k in range(lo.size):
        if lo[k] < last_hi:
            keep[k] = False
        else:
            last_hi = hi[k]
    lo, hi = lo[keep], hi[keep]
    if kind == "gapped":
        # remove every third channel: non-contiguous channels everywhere
        keep = np.arange(lo.size) % 3 != 1
        lo, hi = lo[keep], hi[keep]
    return lo, hi


def random_inputs(rng, n_lines, os, ny=3, nx=4, zero_frac=0.2, unresolved_frac=0.05):
    nsy, nsx = ny * os, nx * os
    flux = rng.uniform(0.1, 2.0, (n_lines, nsy, nsx))
    flux[rng.random(flux.shape) < zero_frac] = 0.0
    flux[:, 0, :] = 0.0  # a sub-row with no flux at all
    vlos = rng.uniform(-300.0, 300.0, (nsy, nsx))
    sigma = rng.uniform(30.0, 250.0, (nsy, nsx))
    sigma[rng.random(sigma.shape) < unresolved_frac] = 0.0
    line_wave = REST[:n_lines] * (1.0 + REDSHIFT)
    return flux, vlos, sigma, line_wave


def run_both(flux, vlos, sigma, line_wave, lo, hi, os, n_sigma):
    ny, nx = flux.shape[1] // os, flux.shape[2] // os
    out_nb = np.zeros((lo.size, ny, nx))
    out_ref = np.zeros((lo.size, ny, nx))
    render_lines_nb(flux, vlos, sigma, line_wave, lo, hi, os, n_sigma, out_nb)
    render_lines_ref(flux, vlos, sigma, line_wave, lo, hi, os, n_sigma, out_ref)
    return out_nb, out_ref


def single_pixel(line_wave, vlos, sigma, lo, hi, flux=1.0, n_sigma=np.inf):
    """Spectrum (n_chan,) of one line in one pixel."""
    cube = render_lines(
        np.full((1, 1, 1), flux), np.full((1, 1), vlos), np.full((1, 1), sigma),
        np.array([line_wave]), lo, hi, 1, n_sigma=n_sigma,
    )
    return cube[:, 0, 0]


# ----------------------------------------------------------------------------
# normal CDF used by the kernel
# ----------------------------------------------------------------------------


def test_speed_of_light_matches_line_catalogue():
    assert C_KMS == LINES_C_KMS


def test_normal_cdf_matches_scipy():
    x = np.concatenate([np.linspace(-10.0, 10.0, 4001), np.linspace(-0.05, 0.05, 101), [0.0, -9.0, 9.0, 50.0, -50.0]])
    phi = np.array([normal_cdf_nb(float(v)) for v in x])
    assert np.max(np.abs(phi - ndtr(x))) < 1e-14
    # symmetry Phi(-x) = 1 - Phi(x), and range
    phi_neg = np.array([normal_cdf_nb(float(-v)) for v in x])
    assert np.max(np.abs(phi + phi_neg - 1.0)) < 4e-15  # a few ulp of 1
    assert phi.min() >= 0.0 and phi.max() <= 1.0
    # monotone on a fine grid
    xf = np.linspace(-8.0, 8.0, 2001)
    assert np.all(np.diff([normal_cdf_nb(float(v)) for v in xf]) >= 0.0)


def test_normal_cdf_twins_agree_and_ref_matches_scipy_in_the_tails():
    x = np.concatenate([np.linspace(-12.0, 12.0, 2401), [0.0, -40.0, 40.0]])
    ref = normal_cdf_ref(x)
    # the twin (math.erfc) has relative accuracy in both tails, where 1 - Phi cancels
    np.testing.assert_allclose(ref, ndtr(x), rtol=1e-13, atol=0)
    nb = np.array([normal_cdf_nb(float(v)) for v in x])
    assert np.max(np.abs(nb - ref)) < 1e-14


def test_kernel_module_imports_only_numpy_numba_and_the_standard_library():
    import ast
    import sys
    from pathlib import Path

    import mockzgrad.kernels.render as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("." if node.level else node.module.split(".")[0])
    allowed = {"numpy", "numba", "__future__"} | set(sys.stdlib_module_names)
    assert roots <= allowed, roots - allowed


# ----------------------------------------------------------------------------
# twin agreement
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "log", "gapped"])
@pytest.mark.parametrize("os", [1, 3])
@pytest.mark.parametrize("n_lines", [1, 3, 6])
def test_twins_agree(kind, os, n_lines):
    rng = np.random.default_rng([n_lines, os, ["linear", "log", "gapped"].index(kind)])
    flux, vlos, sigma, line_wave = random_inputs(rng, n_lines, os)
    lo, hi = grid_for(line_wave, kind)
    out_nb, out_ref = run_both(flux, vlos, sigma, line_wave, lo, hi, os, 6.0)
    assert out_ref.max() > 0.0
    assert np.max(np.abs(out_nb - out_ref)) / out_ref.max() < 1e-6


@pytest.mark.parametrize("kind", ["linear", "gapped"])
def test_twins_agree_untruncated(kind):
    # Without truncation there is no window boundary to round differently:
    # the kernels agree to the accuracy of the CDF approximation.
    rng = np.random.default_rng(7)
    flux, vlos, sigma, line_wave = random_inputs(rng, 3, 2)
    lo, hi = grid_for(line_wave, kind)
    out_nb, out_ref = run_both(flux, vlos, sigma, line_wave, lo, hi, 2, np.inf)
    assert np.max(np.abs(out_nb - out_ref)) / out_ref.max() < 1e-12


def test_wrapper_paths_agree_and_accumulate():
    # A full-band grid: most channels get no flux and must stay untouched.
    rng = np.random.default_rng(11)
    flux, vlos, sigma, line_wave = random_inputs(rng, 2, 2)
    edges = np.geomspace(line_wave.min() * 0.9, line_wave.max() * 1.1, 801)
    lo, hi = edges[:-1], edges[1:]
    cube_nb = render_lines(flux, vlos, sigma, line_wave, lo, hi, 2)
    cube_ref = render_lines(flux, vlos, sigma, line_wave, lo, hi, 2, use_numba=False)
    np.testing.assert_allclose(cube_nb, cube_ref, rtol=0, atol=1e-6 * cube_ref.max())
    assert np.count_nonzero(cube_nb.any(axis=(1, 2))) < lo.size // 4
    out = np.ones_like(cube_nb)
    res = render_lines(flux, vlos, sigma, line_wave, lo, hi, 2, out=out)
    assert res is out
    np.testing.assert_allclose(out, 1.0 + cube_nb, rtol=1e-15, atol=0)


def test_lines_outside_the_grid_and_one_channel_grids():
    lw = 5008.24 * (1 + REDSHIFT)
    # the line is 20 sigma away from the only channel: nothing lands
    lo, hi = np.array([lw * 1.01]), np.array([lw * 1.011])
    assert not single_pixel(lw, 0.0, 100.0, lo, hi, n_sigma=6.0).any()
    # a single channel holding the whole line
    lo, hi = np.array([lw * 0.98]), np.array([lw * 1.02])
    assert single_pixel(lw, 0.0, 100.0, lo, hi, flux=3.0, n_sigma=12.0)[0] == pytest.approx(3.0, rel=1e-14)
    # one channel covering half the profile
    lo, hi = np.array([lw]), np.array([lw * 1.02])
    assert single_pixel(lw, 0.0, 100.0, lo, hi)[0] == pytest.approx(0.5, rel=1e-13)


def test_result_independent_of_thread_count():
    rng = np.random.default_rng(3)
    flux, vlos, sigma, line_wave = random_inputs(rng, 3, 2, ny=4, nx=3)
    lo, hi = grid_for(line_wave, "linear")
    n0 = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = render_lines(flux, vlos, sigma, line_wave, lo, hi, 2)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = render_lines(flux, vlos, sigma, line_wave, lo, hi, 2)
    finally:
        numba.set_num_threads(n0)
    assert np.array_equal(one, many)


# ----------------------------------------------------------------------------
# flux conservation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("log", [False, True])
def test_flux_conserved_on_wide_grid(log):
    rng = np.random.default_rng(5)
    flux, vlos, sigma, line_wave = random_inputs(rng, 3, 2, unresolved_frac=0.1)
    # one contiguous grid covering every line well beyond 12 sigma
    w_lo = line_wave.min() * (1 - 3000.0 / C_KMS)
    w_hi = line_wave.max() * (1 + 3000.0 / C_KMS)
    n_chan = 400
    edges = np.geomspace(w_lo, w_hi, n_chan + 1) if log else np.linspace(w_lo, w_hi, n_chan + 1)
    lo, hi = edges[:-1], edges[1:]
    for li in range(line_wave.size):
        cube = render_lines(flux[li:li + 1], vlos, sigma, line_wave[li:li + 1], lo, hi, 2, n_sigma=12.0)
        assert cube.sum() == pytest.approx(flux[li].sum(), rel=1e-9)
        # each detector pixel conserves its own flux
        np.testing.assert_allclose(cube.sum(axis=0), bin_subpixels_ref(flux[li], 2), rtol=1e-9, atol=0)


def test_truncation_loses_at_most_the_gaussian_tail():
    lw = 5008.24 * (1 + REDSHIFT)
    lo, hi = velocity_grid(lw, -3000.0, 3000.0, 106.0)
    for n_sigma in (3.0, 6.0):
        total = single_pixel(lw, 17.0, 150.0, lo, hi, n_sigma=n_sigma).sum()
        lost = 1.0 - total
        assert -1e-14 <= lost <= erfc(n_sigma / math.sqrt(2.0)) + 1e-14


def test_zero_flux_gives_zero_cube():
    flux = np.zeros((2, 6, 6))
    vlos = np.zeros((6, 6))
    sigma = np.full((6, 6), 100.0)
    lo, hi = velocity_grid(30000.0, -1000.0, 1000.0, 100.0)
    cube = render_lines(flux, vlos, sigma, [30000.0, 30050.0], lo, hi, 3)
    assert cube.shape == (lo.size, 2, 2)
    assert not cube.any()


def test_unresolved_line_lands_in_one_channel():
    lw = 4862.69 * (1 + REDSHIFT)
    lo, hi = velocity_grid(lw, -1000.0, 1000.0, 100.0)
    spec = single_pixel(lw, 130.0, 0.0, lo, hi, flux=2.5)
    lc = lw * (1 + 130.0 / C_KMS)
    k = np.flatnonzero((lo <= lc) & (lc < hi))
    assert k.size == 1
    assert spec[k[0]] == 2.5
    assert np.count_nonzero(spec) == 1


# ----------------------------------------------------------------------------
# profile shape: centroid and width of the channel-integrated Gaussian
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("s_over_w", [1.0, 150.0 / 106.0, 3.0])
@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.77])
def test_centroid_and_width(s_over_w, phase):
    # Linear grid of channel width w; the line centre sits at ``phase`` of a
    # channel. For s >= w the flux-weighted mean of channel centres is lambda_c
    # and the variance is s^2 + w^2/12 (Sheppard's correction), up to aliasing
    # terms ~exp(-2 pi^2 s^2 / w^2) < 3e-9.
    lw = 5008.24 * (1 + REDSHIFT)
    w = lw * 106.0 / C_KMS
    v = 37.0
    lc = lw * (1 + v / C_KMS)
    s = s_over_w * w
    sigma = s * C_KMS / lc
    edges = lc - phase * w + w * np.arange(-60, 62)  # lc at `phase` of the way into channel 60
    lo, hi = edges[:-1], edges[1:]
    spec = single_pixel(lw, v, sigma, lo, hi)
    mid = 0.5 * (lo + hi)
    mean = np.sum(spec * mid) / spec.sum()
    var = np.sum(spec * (mid - mean) ** 2) / spec.sum()
    assert abs(mean - lc) < 1e-6 * w
    assert math.sqrt(var) == pytest.approx(math.sqrt(s**2 + w**2 / 12.0), rel=1e-6)


# ----------------------------------------------------------------------------
# sub-pixels
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("os", [2, 3])
def test_uniform_subpixels_equal_one_pixel(os):
    rng = np.random.default_rng(os)
    ny, nx, n_lines = 2, 3, 3
    flux = rng.uniform(0.5, 1.5, (n_lines, ny, nx))
    vlos = rng.uniform(-200, 200, (ny, nx))
    sigma = rng.uniform(50, 200, (ny, nx))
    line_wave = REST[[0, 1, 4]] * (1 + REDSHIFT)
    lo, hi = grid_for(line_wave, "log")
    coarse = render_lines(flux, vlos, sigma, line_wave, lo, hi, 1)
    rep = lambda a: np.repeat(np.repeat(a, os, axis=-2), os, axis=-1)  # noqa: E731
    fine = render_lines(rep(flux) / os**2, rep(vlos), rep(sigma), line_wave, lo, hi, os)
    np.testing.assert_allclose(fine, coarse, rtol=0, atol=1e-13 * coarse.max())


def test_subpixels_sum_into_their_pixel():
    # Rendering at os=3 equals rendering every sub-pixel as a pixel (os=1) and
    # summing 3x3 blocks channel by channel.
    rng = np.random.default_rng(21)
    flux, vlos, sigma, line_wave = random_inputs(rng, 2, 3, ny=2, nx=2)
    lo, hi = grid_for(line_wave, "gapped")
    binned = render_lines(flux, vlos, sigma, line_wave, lo, hi, 3)
    per_sub = render_lines(flux, vlos, sigma, line_wave, lo, hi, 1)
    summed = np.array([bin_subpixels(ch, 3) for ch in per_sub])
    np.testing.assert_allclose(binned, summed, rtol=0, atol=1e-13 * summed.max())


@pytest.mark.parametrize("os", [1, 2, 5])
def test_bin_subpixels_twins(os):
    img = np.random.default_rng(os).normal(size=(3 * os, 4 * os))
    np.testing.assert_allclose(bin_subpixels_nb(img, os), bin_subpixels_ref(img, os), rtol=1e-14, atol=1e-14)
    assert bin_subpixels(img, os, use_numba=False).shape == (3, 4)
    assert bin_subpixels_ref(img, os).sum() == pytest.approx(img.sum(), rel=1e-12)


# ----------------------------------------------------------------------------
# mirror symmetry
# ----------------------------------------------------------------------------


def test_flipped_velocity_mirrors_spectrum():
    # On a velocity-symmetric grid, lambda_c -> 2 lw - lambda_c under v -> -v.
    # The width s = lambda_c sigma / c changes by the factor (1 - v/c)/(1 + v/c)
    # unless sigma is compensated; with it the mirror is exact.
    lw = 5008.24 * (1 + REDSHIFT)
    u = np.arange(-20, 21) * 53.0  # km/s, symmetric
    edges = lw * (1 + u / C_KMS)
    lo, hi = edges[:-1], edges[1:]
    for v, sigma in [(40.0, 120.0), (-85.0, 60.0), (200.0, 150.0)]:
        red = single_pixel(lw, v, sigma, lo, hi, n_sigma=6.0)
        sigma_flip = sigma * (1 + v / C_KMS) / (1 - v / C_KMS)
        blue = single_pixel(lw, -v, sigma_flip, lo, hi, n_sigma=6.0)
        np.testing.assert_allclose(blue, red[::-1], rtol=0, atol=1e-11 * red.max())
        # without compensation: mirrored to first order in v/c
        approx = single_pixel(lw, -v, sigma, lo, hi, n_sigma=6.0)
        np.testing.assert_allclose(approx, red[::-1], rtol=0, atol=8 * abs(v) / C_KMS * red.max())


def test_flipped_velocity_field_mirrors_pixel_spectrum():
    # A pixel made of sub-pixels with a spread of velocities: flipping every
    # velocity (PA + 180 deg) mirrors the pixel's spectrum.
    rng = np.random.default_rng(9)
    lw = 4862.69 * (1 + REDSHIFT)
    u = np.arange(-15, 16) * 100.0
    edges = lw * (1 + u / C_KMS)
    lo, hi = edges[:-1], edges[1:]
    os = 4
    flux = rng.uniform(0.2, 1.0, (1, os, os))
    vlos = rng.uniform(-150, 150, (os, os))
    sigma0 = 110.0
    sigma = np.full((os, os), sigma0)
    sigma_flip = sigma0 * (1 + vlos / C_KMS) / (1 - vlos / C_KMS)
    red = render_lines(flux, vlos, sigma, [lw], lo, hi, os)[:, 0, 0]
    blue = render_lines(flux, -vlos, sigma_flip, [lw], lo, hi, os)[:, 0, 0]
    np.testing.assert_allclose(blue, red[::-1], rtol=0, atol=1e-11 * red.max())


# ----------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------


def _good_args():
    flux = np.ones((2, 4, 4))
    vlos = np.zeros((4, 4))
    sigma = np.full((4, 4), 100.0)
    line_wave = np.array([30000.0, 30100.0])
    lo, hi = velocity_grid(30050.0, -3000.0, 3000.0, 100.0)
    return dict(flux_sub=flux, vlos_sub=vlos, sigma_sub=sigma, line_wave=line_wave, edges_lo=lo, edges_hi=hi, os=2)


def _set(key, value):
    def f(a):
        a[key] = value(a) if callable(value) else value
        return a

    return f


BAD = [
    ("flux_sub", _set("flux_sub", np.ones((4, 4)))),
    ("flux_sub", _set("flux_sub", lambda a: a["flux_sub"].astype(complex))),
    ("flux_sub", _set("flux_sub", lambda a: np.where(a["flux_sub"] > 0, np.nan, 0.0))),
    ("vlos_sub", _set("vlos_sub", np.zeros((4, 2)))),
    ("vlos_sub", _set("vlos_sub", np.full((4, 4), np.nan))),
    ("vlos_sub", _set("vlos_sub", np.full((4, 4), 4e5))),
    ("sigma_sub", _set("sigma_sub", np.full((4, 4), -1.0))),
    ("sigma_sub", _set("sigma_sub", np.zeros((2, 2)))),
    ("line_wave", _set("line_wave", np.array([30000.0]))),
    ("line_wave", _set("line_wave", np.array([30000.0, -1.0]))),
    ("os", _set("os", 3)),
    ("os", _set("os", 0)),
    ("os", _set("os", 2.0)),
    ("edges_hi", _set("edges_hi", lambda a: a["edges_hi"][:-1])),
    ("edges_lo", _set("edges_lo", lambda a: a["edges_hi"].copy())),  # lo == hi
    ("edges_lo", _set("edges_lo", lambda a: a["edges_lo"] - 5.0)),  # overlapping channels
    ("edges_lo", _set("edges_lo", lambda a: a["edges_lo"][::-1].copy())),
    ("n_sigma", _set("n_sigma", 0.0)),
    ("n_sigma", _set("n_sigma", np.nan)),
    ("out", _set("out", np.zeros((3, 2, 2)))),
    ("out", _set("out", lambda a: np.zeros((a["edges_lo"].size, 2, 2), dtype=np.float32))),
]


@pytest.mark.parametrize("name,mutate", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_input_names_the_argument(name, mutate):
    args = mutate(_good_args())
    with pytest.raises(ConfigError, match=name):
        render_lines(**args)


def test_good_input_and_integer_arrays_accepted():
    args = _good_args()
    args["flux_sub"] = np.ones((2, 4, 4), dtype=np.int32)
    cube = render_lines(**args)
    assert cube.shape == (args["edges_lo"].size, 2, 2)
    assert cube.sum() == pytest.approx(2 * 16, rel=1e-6)


def test_bin_subpixels_checks_input():
    with pytest.raises(ConfigError, match="os"):
        bin_subpixels(np.ones((5, 4)), 2)
    with pytest.raises(ConfigError, match="img_sub"):
        bin_subpixels(np.ones(4), 2)
