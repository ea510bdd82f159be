"""The shipped NIRISS grism suite (examples/niriss_suite.toml) stays inside its recipe's calibrations.

Bian et al. 2018's R3, O32 and Ne3O2 share the validity range 12+log(O/H) = 7.8-8.4
(0.6 dex; the common range quoted for the wang2022 recipe). With ``z0_mode`` "centred" the
truth Z(r) over 0..r_valid r_eff is centred in that range, so it stays inside only when
|grad_z| r_valid r_eff <= 0.6 dex. The first shipped suite (grad_z up to 0.1 dex/kpc, r_eff up
to 3 kpc: 0.9 dex) clipped Z(r) in its large mocks and gave no usable correction curve.
"""

from pathlib import Path

from mockzgrad.suites.suite import load_suite

SUITE = Path(__file__).resolve().parents[1] / "examples" / "niriss_suite.toml"
B18_COMMON_RANGE = (7.8, 8.4)  # Bian et al. 2018, dex


def test_every_mock_keeps_z_inside_the_bian2018_common_range():
    spec = load_suite(SUITE)
    width = B18_COMMON_RANGE[1] - B18_COMMON_RANGE[0]
    spans = []
    for mock in spec.mocks():
        cfg = mock.mock_config()
        met = cfg.galaxy.metallicity
        assert met.z0 is None and met.z0_mode in (None, "centred")
        spans.append(abs(met.grad_z) * met.r_valid * cfg.galaxy.r_eff)
    assert len(spans) == spec.n_mocks
    assert max(spans) <= width + 1e-9, f"Z(r) spans {max(spans):.3f} dex over R_fit (> {width:.1f})"


def test_noise_reaches_wang2022_bin_counts():
    # Wang et al. 2022 (S4 Sect. 3.1): >= 50 Voronoi bins of [OIII] S/N 10 on a GLASS-depth map. With the
    # extraction returning ~0.3x the nominal per-pixel S/N (measured: 2.6-4.4 for noise.snr = 10, r_eff
    # 0.7-2.8 kpc), noise.snr = 10 gave 0-15 bins; the suite's S/N must be well above it.
    spec = load_suite(SUITE)
    snrs = {mock.mock_config().noise.snr for mock in spec.mocks()}
    assert min(snrs) >= 30.0
