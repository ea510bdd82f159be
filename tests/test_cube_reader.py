"""read_cube on damaged or re-saved cubes: one-line errors, or the same product (issue 21)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from mockzgrad.config import load_config
from mockzgrad.errors import DataError, MockzgradWarning
from mockzgrad.observation import observe
from mockzgrad.products.cube import read_cube

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    """A small flagship-like cube whose spectral grid has NaN gap channels between the lines."""
    cfg = load_config(ROOT / "examples" / "flagship_z5.toml").replace(seed=11)
    path = tmp_path_factory.mktemp("cube") / "cube.fits"
    observe(cfg).write(path)
    with fits.open(path) as h:
        gaps = np.isnan(h["DATA"].data).all(axis=(1, 2))
    assert 0 < gaps.sum() < gaps.size  # the fixture must have gaps to test them
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with fits.open(src) as h:
        edit(h)
        h.writeto(dst, overwrite=True)
    return dst


def assert_same_product(a, b):
    assert a.data.shape == b.data.shape
    assert np.array_equal(a.data, b.data, equal_nan=True)
    assert np.array_equal(a.variance, b.variance, equal_nan=True)
    assert np.array_equal(a.edges_lo, b.edges_lo) and np.array_equal(a.edges_hi, b.edges_hi)


def _zero_gaps(h):
    for name in ("DATA", "VAR"):
        h[name].data = np.nan_to_num(h[name].data, nan=0.0)


class TestZeroFilledGaps:
    def test_with_channels_table_reads_as_the_original(self, cube_file, tmp_path):
        assert_same_product(read_cube(_rewrite(cube_file, tmp_path / "z.fits", _zero_gaps)), read_cube(cube_file))

    def test_without_channels_table_reads_as_the_original(self, cube_file, tmp_path):
        nan = _rewrite(cube_file, tmp_path / "n.fits", lambda h: h.pop("CHANNELS"))

        def edit(h):
            h.pop("CHANNELS")
            _zero_gaps(h)

        zero = _rewrite(cube_file, tmp_path / "z.fits", edit)
        assert_same_product(read_cube(zero), read_cube(nan))
        assert read_cube(nan).data.shape[0] == read_cube(cube_file).data.shape[0]

    def test_channels_that_do_not_fall_on_the_wcs_are_refused(self, cube_file, tmp_path):
        def edit(h):
            _zero_gaps(h)
            h["CHANNELS"].data["WAVE_LO"] += 0.3 * (h["CHANNELS"].data["WAVE_HI"] - h["CHANNELS"].data["WAVE_LO"])
            h["CHANNELS"].data["WAVE_HI"] += 0.3 * (h["CHANNELS"].data["WAVE_HI"] - h["CHANNELS"].data["WAVE_LO"])

        with pytest.raises(DataError, match="do not fall on the WCS channels") as err:
            read_cube(_rewrite(cube_file, tmp_path / "bad.fits", edit))
        assert "\n" not in str(err.value)


class TestDamaged:
    def test_all_zero_cube(self, cube_file, tmp_path):
        def edit(h):
            h["DATA"].data = np.zeros_like(h["DATA"].data)

        with pytest.raises(DataError, match="DATA is zero \\(or NaN\\) everywhere") as err:
            read_cube(_rewrite(cube_file, tmp_path / "zero.fits", edit))
        assert "\n" not in str(err.value)

    @pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
    def test_truncated_cube(self, cube_file, tmp_path, fraction):
        raw = cube_file.read_bytes()
        path = tmp_path / "cut.fits"
        path.write_bytes(raw[: int(len(raw) * fraction)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no astropy "may have been truncated" noise either
            with pytest.raises(DataError, match="cut.fits") as err:
                read_cube(path)
        assert "\n" not in str(err.value)

    @pytest.mark.parametrize("payload", [b"\xff\xfe not json", b"[1, 2]", b"{broken"])
    def test_truth_that_is_not_json_is_ignored_with_a_warning(self, cube_file, tmp_path, payload):
        def edit(h):
            h["TRUTH"].data = np.frombuffer(payload, dtype=np.uint8)

        path = _rewrite(cube_file, tmp_path / "t.fits", edit)
        with pytest.warns(MockzgradWarning, match="TRUTH extension is .*truth ignored"):
            cube = read_cube(path)
        assert cube.truth == {}
        assert_same_product(cube, read_cube(cube_file))
        assert read_cube(cube_file).truth  # the intact file has its truth
