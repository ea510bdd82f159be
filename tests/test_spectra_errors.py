"""Tests of the channel-grid helpers and the RMS error spectrum (mockzgrad.recovery.spectra).

The RMS error spectrum is compared with a slow, obvious twin written here
(one window at a time, ``numpy.polyfit``), and checked to recover the noise
level of synthetic spectra with strong lines masked.
"""

import math

import numpy as np
import pytest
from scipy.special import erf

from mockzgrad.errors import ConfigError
from mockzgrad.recovery.spectra import bin_spectra, channel_edges, contiguous_segments, rms_error_spectrum

C = 299792.458  # km/s


def channel_gaussian(lo, hi, centre, sigma_lambda):
    """Fraction of a unit Gaussian falling in each channel [lo, hi)."""
    s = math.sqrt(2.0) * sigma_lambda
    return 0.5 * (erf((hi - centre) / s) - erf((lo - centre) / s))


def gapped_grid(seg_lengths, width=5.0, gap=37.0, start=20000.0):
    """Touching channels in segments of the given lengths, separated by gaps, Angstrom."""
    lo, x = [], start
    for n in seg_lengths:
        lo.extend(x + width * np.arange(n))
        x += n * width + gap
    lo = np.array(lo)
    return lo, lo + width


def naive_rms(y, lo, hi, lines, mask_kms, window, min_channels):
    """One channel at a time: window inside the segment, mask, straight-line fit, RMS (n - 2 dof)."""
    mid = 0.5 * (lo + hi)
    masked = np.zeros(lo.size, dtype=bool)
    for lam in lines:
        masked |= np.abs(mid - lam) <= lam * mask_kms / C
    seg = np.zeros(lo.size, dtype=int)
    for i in range(1, lo.size):
        seg[i] = seg[i - 1] + (lo[i] - hi[i - 1] > 1e-6 * (hi[i - 1] - lo[i - 1]))
    out = np.full(y.shape, np.nan)
    for i in range(lo.size):
        members = np.nonzero(seg == seg[i])[0]
        n = members.size
        wlen = min(window, n)
        a = min(max(i - members[0] - wlen // 2, 0), n - wlen)
        chans = members[a : a + wlen]
        x = np.arange(n, dtype=float)[a : a + wlen]
        for s in range(y.shape[0]):
            use = np.isfinite(y[s, chans]) & ~masked[chans]
            if use.sum() < min_channels:
                continue
            coef = np.polyfit(x[use], y[s, chans][use], 1)
            r = y[s, chans][use] - np.polyval(coef, x[use])
            out[s, i] = math.sqrt(np.sum(r**2) / (use.sum() - 2))
    return out


# --------------------------------------------------------------------------
# Channel grids
# --------------------------------------------------------------------------


def test_channel_edges_returns_float_arrays_and_accepts_rounding_overlap():
    lo, hi = channel_edges([1, 2, 3], [2, 3, 4])
    assert lo.dtype == hi.dtype == np.float64
    np.testing.assert_array_equal(lo, [1.0, 2.0, 3.0])
    # an overlap of 1e-8 of a channel is rounding: accepted as touching
    lo2, hi2 = channel_edges([1.0, 2.0 - 1e-8], [2.0, 3.0])
    np.testing.assert_array_equal(hi2, [2.0, 3.0])


@pytest.mark.parametrize(
    "lo, hi",
    [
        ([1.0, 2.0], [2.0, 3.0, 4.0]),          # shapes differ
        ([1.0], [2.0]),                         # one channel
        ([1.0, np.nan], [2.0, 3.0]),            # not finite
        ([1.0, 3.0], [2.0, 3.0]),               # empty channel
        ([1.0, 1.5], [2.0, 3.0]),               # overlap
        ([2.0, 1.0], [3.0, 1.5]),               # decreasing
    ],
)
def test_channel_edges_refuses_bad_grids(lo, hi):
    with pytest.raises(ConfigError, match="edges_lo, edges_hi"):
        channel_edges(lo, hi)


def test_contiguous_segments_follow_the_gaps():
    lengths = [7, 1, 12, 3]
    lo, hi = gapped_grid(lengths)
    starts, stops = contiguous_segments(lo, hi)
    expected_stops = np.cumsum(lengths)
    np.testing.assert_array_equal(stops, expected_stops)
    np.testing.assert_array_equal(starts, np.concatenate([[0], expected_stops[:-1]]))
    # a contiguous grid is one segment; a gap below 1e-6 of a channel is no gap
    lo_c = 100.0 + np.arange(50.0)
    hi_c = lo_c + 1.0
    hi_c[20] -= 1e-8
    starts, stops = contiguous_segments(lo_c, hi_c)
    assert starts.tolist() == [0] and stops.tolist() == [50]


# --------------------------------------------------------------------------
# RMS error spectrum
# --------------------------------------------------------------------------


@pytest.mark.parametrize("window, min_channels", [(160, 10), (21, 5), (8, 3)])
def test_rms_error_spectrum_matches_naive_twin(window, min_channels):
    lo, hi = gapped_grid([60, 25, 90])
    mid = 0.5 * (lo + hi)
    rng = np.random.default_rng(17)
    lines = [mid[30], mid[70], mid[140]]
    y = 3.0 + 2e-3 * (mid - mid[0]) + 0.4 * rng.standard_normal((3, lo.size))
    y[1, [5, 6, 100]] = np.nan
    y[2, 60:85] = np.nan                      # a whole segment masked
    got = rms_error_spectrum(y, lo, hi, lines, mask_kms=300.0, window=window, min_channels=min_channels)
    want = naive_rms(y, lo, hi, lines, 300.0, window, min_channels)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-8)
    assert np.all(np.isnan(got[2, 60:85]))


def test_rms_error_spectrum_recovers_noise():
    rng = np.random.default_rng(3)
    n_chan = 900
    lo = 16000.0 + 6.0 * np.arange(n_chan)
    hi = lo + 6.0
    mid = 0.5 * (lo + hi)
    lines_obs = [mid[300], mid[620]]
    sigma_noise = 0.3
    clean = 2.0 + 1e-3 * (mid - mid[0])
    for lam in lines_obs:  # strong lines that would inflate an unmasked RMS
        clean = clean + 200.0 * channel_gaussian(lo, hi, lam, lam * 150.0 / C)
    data = clean[None, :] + sigma_noise * rng.standard_normal((4, n_chan))
    est = rms_error_spectrum(data, lo, hi, lines_obs, mask_kms=800.0, window=160)
    assert est.shape == data.shape
    assert np.all(np.isfinite(est))
    assert np.median(est) == pytest.approx(sigma_noise, rel=0.1)
    assert np.all(np.abs(est / sigma_noise - 1.0) < 0.3)
    # the 1-D form and a different window width
    est1 = rms_error_spectrum(data[0], lo, hi, lines_obs, mask_kms=800.0, window=60)
    assert est1.shape == (n_chan,)
    assert np.median(est1) == pytest.approx(sigma_noise, rel=0.1)
    # without the mask the lines inflate the estimate near them
    unmasked = rms_error_spectrum(data, lo, hi, lines_obs, mask_kms=0.0, window=160)
    assert np.median(unmasked[:, 280:320]) > 3.0 * sigma_noise


def test_rms_error_spectrum_on_gapped_grid():
    lo, hi = gapped_grid([45, 45, 45, 45])
    rng = np.random.default_rng(9)
    data = 0.2 * rng.standard_normal((3, lo.size)) + 1.0
    lines_obs = 0.5 * (lo + hi)[[22, 67, 112, 157]]
    est = rms_error_spectrum(data, lo, hi, lines_obs)  # windows shorter than 160: each used whole
    assert np.all(np.isfinite(est))
    assert np.median(est) == pytest.approx(0.2, rel=0.1)
    # each segment used whole: one value per segment and spectrum
    for a in range(0, 180, 45):
        assert np.ptp(est[:, a : a + 45], axis=1).max() == 0.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"window": 2}, "window"),
        ({"window": 10.5}, "window"),
        ({"min_channels": 2}, "min_channels"),
        ({"mask_kms": -1.0}, "mask_kms"),
        ({"mask_kms": float("nan")}, "mask_kms"),
    ],
)
def test_rms_error_spectrum_checks_its_parameters(kwargs, field):
    lo, hi = gapped_grid([40])
    with pytest.raises(ConfigError, match=field):
        rms_error_spectrum(np.ones((2, 40)), lo, hi, [lo[20]], **kwargs)


def test_rms_error_spectrum_checks_the_shape():
    lo, hi = gapped_grid([40])
    with pytest.raises(ConfigError, match="spectra"):
        rms_error_spectrum(np.ones((2, 39)), lo, hi, [lo[20]])


def test_bin_spectra_checks_n_bins():
    data = np.ones((3, 2, 2))
    labels = np.zeros((2, 2), dtype=int)
    for bad in (-1, 1.0, True):
        with pytest.raises(ConfigError, match="n_bins"):
            bin_spectra(data, data, labels, bad)
