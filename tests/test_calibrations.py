"""Tests of mockzgrad.physics.calibrations: round trips, published values, file handling.

Numbers pinned here come from the publications (cited at each use), not
from the code under test.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from mockzgrad.physics import calibrations as cal
from mockzgrad.errors import CalibrationError, CalibrationRangeWarning, MockzgradWarning

REPO = Path(__file__).resolve().parents[1]
# the collected reference the calibration files are generated from (a copy kept in the checkout)
REFERENCE = Path(os.environ.get("MOCKZGRAD_REFERENCE", REPO / "tools" / "reference" / "calibrations.json"))
EXPECTED_SETS = {
    "sanders2025", "sanders2024", "maiolino2008", "jones2015", "curti2017", "curti2020",
    "bian2018", "nakajima2022", "pettini_pagel2004", "marino2013", "kewley_dopita2002",
    "kewley2019",
}
LOGU_GRID = (-3.98, -3.48, -2.98, -2.48, -1.98)


@pytest.fixture(autouse=True)
def _no_user_path(monkeypatch):
    """Tests see only the built-in calibrations unless they set the path themselves."""
    monkeypatch.delenv(cal.ENV_VAR, raising=False)


def _builtin():
    os.environ.pop(cal.ENV_VAR, None)
    return cal.all_diagnostics()


ALL = _builtin()
USABLE = [d for d in ALL.values() if d.usable]


def _logus(d):
    return LOGU_GRID if d.needs_logu else (None,)


def _minimal_set(set_name="mycal", key="MY_R3"):
    """A small, valid user calibration file (a made-up quadratic R3 curve)."""
    return {
        "schema_version": 1,
        "set": set_name,
        "reference": "Test et al. 2030",
        "diagnostics": [{
            "key": key,
            "name": "R3",
            "reference": "Test et al. 2030",
            "ratio": {"label": "R3", "terms": [
                {"weight": 1.0,
                 "parts": [{"numerator": {"OIII_5008": 1.0}, "denominator": {"Hb": 1.0}}]}]},
            "form": "poly_in_x",
            "x0": 8.0,
            "coefficients": [0.8, 0.0, -1.0],
            "valid_range": [7.0, 9.0],
            "status": "SINGLE-SOURCE",
        }],
    }


def _write(directory: Path, data: dict, stem: str | None = None) -> Path:
    path = directory / f"{stem or data['set']}.json"
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------
# inventory
# ---------------------------------------------------------------------------
def test_every_published_set_is_present():
    assert EXPECTED_SETS <= set(cal.available_sets())
    for name in EXPECTED_SETS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MockzgradWarning)  # sanders2024 holds a SUSPECT entry
            cs = cal.load_set(name)
        assert cs.name == name and Path(cs.path).stem == name
        assert cs.diagnostics and all(d.set_name == name for d in cs.diagnostics.values())
        assert all(d.status in ("VERIFIED", "SINGLE-SOURCE", "SUSPECT")
                   for d in cs.diagnostics.values())


def test_kewley2019_surfaces_and_skipped_sulphur_iii():
    cs = cal.load_set("kewley2019")
    assert set(cs.diagnostics) == {"N2O2", "R23", "N2Ha", "S2Ha", "N2S2", "O3N2", "O2S2",
                                   "O2Hb"}
    assert all(d.needs_logu and d.logu_range == (-3.98, -1.98)
               for d in cs.diagnostics.values())
    skipped = {e["key"] for e in cs.not_encoded}
    assert {"K19_S23", "K19_logU_S32"} <= skipped


def test_maiolino2008_includes_wang2017_s2_with_its_own_reference():
    d = cal.get_diagnostic("maiolino2008:S2")
    assert d.key == "W17_S2_Jones15"
    assert "Wang et al. 2017" in d.reference and "Jones et al. 2015" in d.reference


# ---------------------------------------------------------------------------
# invariants for every usable diagnostic
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("d", USABLE, ids=lambda d: d.key)
class TestEveryDiagnostic:
    def test_round_trip(self, d):
        z = np.linspace(*d.valid_range, 2001)
        for logu in _logus(d):
            lr = d.log_ratio(z, logu=logu)
            assert np.all(np.isfinite(lr)), "forward model must be defined over the range"
            roots = d.z_roots(lr, logu=logu)
            assert roots.shape == z.shape + (d.max_roots,)
            assert np.all(np.nanmin(np.abs(roots - z[:, None]), axis=1) < 1e-6)
            finite = roots[np.isfinite(roots)]
            assert np.all((finite >= d.valid_range[0] - 1e-9)
                          & (finite <= d.valid_range[1] + 1e-9))
            # ascending, NaN-padded
            assert np.all(np.diff(np.where(np.isnan(roots), np.inf, roots), axis=-1) > 0)

    def test_root_count_matches_brute_force(self, d):
        """Independent count: sign changes of R(Z) - target on a dense Z grid."""
        zz = np.linspace(*d.valid_range, 40001)
        for logu in _logus(d):
            curve = d.log_ratio(zz, logu=logu)
            lo, hi = curve.min(), curve.max()
            span = hi - lo
            targets = np.linspace(lo - 0.1 * span, hi + 0.1 * span, 97)
            # stay away from tangencies (local extrema and end values), where a
            # grid count is ambiguous
            interior = curve[1:-1]
            extrema = interior[(np.diff(np.sign(np.diff(curve))) != 0)]
            special = np.concatenate([extrema, curve[[0, -1]]])
            keep = np.min(np.abs(targets[:, None] - special[None, :]), axis=1) > 1e-3 * span
            targets = targets[keep]
            s = np.sign(curve[None, :] - targets[:, None])
            s[s == 0] = 1.0  # a grid point exactly on the target counts once
            brute = np.count_nonzero(np.diff(s, axis=1) != 0, axis=1)
            roots = d.z_roots(targets, logu=logu)
            n = np.count_nonzero(np.isfinite(roots), axis=1)
            np.testing.assert_array_equal(n, brute)
            r = roots[np.isfinite(roots)]
            t = np.broadcast_to(targets[:, None], roots.shape)[np.isfinite(roots)]
            np.testing.assert_allclose(d.log_ratio(r, logu=logu, policy="clip"
                                                   if d.needs_logu else "ignore"), t,
                                       atol=1e-8)

    def test_derivative_matches_finite_differences(self, d):
        lo, hi = d.valid_range
        z = np.linspace(lo + 0.02 * (hi - lo), hi - 0.02 * (hi - lo), 41)
        h = 1e-5
        for logu in _logus(d):
            fd = (d.log_ratio(z + h, logu=logu) - d.log_ratio(z - h, logu=logu)) / (2 * h)
            np.testing.assert_allclose(d.dlog_ratio_dz(z, logu=logu), fd, rtol=1e-5,
                                       atol=1e-6)


def test_double_valued_r3_has_two_roots():
    """S25 R3 turns over inside 7.3-8.6, so some R3 values have two metallicities."""
    d = cal.get_diagnostic("S25_R3")
    assert d.max_roots == 2
    z = np.linspace(*d.valid_range, 2001)
    roots = d.z_roots(d.log_ratio(z))
    two = np.count_nonzero(np.isfinite(roots), axis=1) == 2
    assert two.any()
    # both roots reproduce the same ratio
    r = roots[two]
    np.testing.assert_allclose(d.log_ratio(r[:, 0]), d.log_ratio(r[:, 1]), atol=1e-9)
    # a ratio above the peak has no root
    assert np.all(np.isnan(d.z_roots(d.log_ratio(z).max() + 0.01)))


def test_vectorised_shapes_and_broadcasting():
    d = cal.get_diagnostic("S25_R3")
    assert d.z_roots(np.zeros((3, 4))).shape == (3, 4, 2)
    assert d.log_ratio(np.full((2, 5), 8.0)).shape == (2, 5)
    k = cal.get_diagnostic("K19_N2Ha")
    out = k.log_ratio(np.array([[8.0], [8.2]]), logu=np.array([-3.0, -2.5, -2.0]))
    assert out.shape == (2, 3)
    assert k.z_roots(out, logu=np.array([-3.0, -2.5, -2.0])).shape == (2, 3, 1)
    big = np.random.default_rng(3).uniform(*d.valid_range, 100_000)
    roots = d.z_roots(d.log_ratio(big))
    assert np.all(np.nanmin(np.abs(roots - big[:, None]), axis=1) < 1e-6)


@pytest.mark.parametrize("key", ["S25_N2", "PP04_N2_cubic", "M13_N2", "KD02_N2O2"])
def test_nitrogen_ratios_rise_with_metallicity(key):
    """[NII]/Ha and [NII]/[OII] increase with O/H over these calibrations' ranges."""
    d = cal.get_diagnostic(key)
    z = np.linspace(*d.valid_range, 101)
    assert np.all(d.dlog_ratio_dz(z) > 0)


def test_k19_n2ha_rises_with_metallicity_at_fixed_logu():
    d = cal.get_diagnostic("K19_N2Ha")
    z = np.linspace(*d.valid_range, 101)
    for logu in LOGU_GRID:
        assert np.all(np.diff(d.log_ratio(z, logu=logu)) > 0)


# ---------------------------------------------------------------------------
# published spot values
# ---------------------------------------------------------------------------
def test_pettini_pagel_2004_cubic_n2():
    """PP04 (MNRAS 348, L59): Z = 9.37 + 2.03 N2 + 1.26 N2^2 + 0.32 N2^3 gives 8.28 at N2 = -1."""
    d = cal.get_diagnostic("PP04_N2_cubic")
    assert d.z_roots(-1.0)[0] == pytest.approx(8.28, abs=0.01)
    assert d.log_ratio(8.28) == pytest.approx(-1.0, abs=1e-6)
    # the validity range -2.5 < N2 < -0.3 quoted with the calibration, mapped to O/H
    pp04 = lambda n2: 9.37 + 2.03 * n2 + 1.26 * n2**2 + 0.32 * n2**3  # noqa: E731
    assert d.valid_range == pytest.approx((pp04(-2.5), pp04(-0.3)), abs=1e-9)


def test_marino_2013_n2():
    """Marino et al. 2013 (A&A 559, A114): 12+log(O/H) = 8.743 + 0.462 N2."""
    d = cal.get_diagnostic("M13_N2")
    assert d.z_roots(-1.0)[0] == pytest.approx(8.743 - 0.462, abs=1e-9)
    assert np.isnan(d.z_roots(-0.1)[0])  # outside -1.6 < N2 < -0.2


# ---------------------------------------------------------------------------
# ratios from line fluxes
# ---------------------------------------------------------------------------
FLUXES = {
    "OIII_5008": np.array([3.0, 5.0]), "OIII_4960": np.array([1.0, 1.7]),
    "Hb": np.array([1.0, 1.2]), "Ha": np.array([2.86, 3.4]),
    "NII_6585": np.array([0.5, 0.2]), "OII_3727": np.array([0.8, 0.6]),
    "OII_3730": np.array([1.1, 0.7]), "SII_6718": np.array([0.2, 0.1]),
    "SII_6733": np.array([0.15, 0.08]), "NeIII_3870": np.array([0.1, 0.2]),
}


def test_o3n2_from_fluxes():
    f = FLUXES
    expected = np.log10(f["OIII_5008"] / f["Hb"]) - np.log10(f["NII_6585"] / f["Ha"])
    for key in ("PP04_O3N2", "S25_O3N2", "C20_O3N2"):
        np.testing.assert_allclose(cal.get_diagnostic(key).log_ratio_from_fluxes(f), expected)


def test_rs32_from_fluxes():
    """Curti et al. 2020: RS32 = log([OIII]5007/Hb + [SII]6717,31/Ha)."""
    f = FLUXES
    expected = np.log10(f["OIII_5008"] / f["Hb"] + (f["SII_6718"] + f["SII_6733"]) / f["Ha"])
    np.testing.assert_allclose(cal.get_diagnostic("C20_RS32").log_ratio_from_fluxes(f),
                               expected)


def test_rhat_from_fluxes():
    """R-hat = 0.47 log(R2) + 0.88 log(R3) (Laseter et al. 2024 projection used by Sanders+25)."""
    f = FLUXES
    expected = (0.47 * np.log10((f["OII_3727"] + f["OII_3730"]) / f["Hb"])
                + 0.88 * np.log10(f["OIII_5008"] / f["Hb"]))
    np.testing.assert_allclose(cal.get_diagnostic("S25_Rhat").log_ratio_from_fluxes(f),
                               expected)


def test_r23_uses_both_doublets():
    f = FLUXES
    expected = np.log10((f["OII_3727"] + f["OII_3730"] + f["OIII_4960"] + f["OIII_5008"])
                        / f["Hb"])
    for key in ("S25_R23", "M08_R23", "C20_R23"):
        np.testing.assert_allclose(cal.get_diagnostic(key).log_ratio_from_fluxes(f), expected)


def test_fluxes_broadcast_missing_and_nonpositive():
    d = cal.get_diagnostic("S25_R3")
    out = d.log_ratio_from_fluxes({"OIII_5008": np.array([[1.0], [10.0]]), "Hb": 1.0})
    np.testing.assert_allclose(out, [[0.0], [1.0]])
    assert np.isnan(d.log_ratio_from_fluxes({"OIII_5008": -1.0, "Hb": 1.0}))
    with pytest.raises(CalibrationError, match="Hb"):
        d.log_ratio_from_fluxes({"OIII_5008": 1.0})


# ---------------------------------------------------------------------------
# out-of-range policies
# ---------------------------------------------------------------------------
def test_policy_raise_names_key_value_and_range():
    d = cal.get_diagnostic("S25_R3")
    with pytest.raises(CalibrationError) as exc:
        d.log_ratio([8.0, 9.1])
    msg = str(exc.value)
    assert "S25_R3" in msg and "9.1" in msg and "[7.3, 8.6]" in msg


def test_policy_warn_evaluates_anyway():
    d = cal.get_diagnostic("S25_R3")
    with pytest.warns(CalibrationRangeWarning, match=r"S25_R3.*9\.1.*\[7\.3, 8\.6\]"):
        out = d.log_ratio(9.1, policy="warn")
    # the published polynomial (Sanders et al. 2025 Table 3, x = Z - 8.0), extrapolated
    x = 9.1 - 8.0
    assert out == pytest.approx(0.852 - 0.162 * x - 1.149 * x**2 - 0.553 * x**3, abs=1e-12)


def test_policy_clip_and_ignore():
    d = cal.get_diagnostic("S25_R3")
    with pytest.warns(CalibrationRangeWarning, match="clipped"):
        clipped = d.log_ratio([7.0, 9.0], policy="clip")
    np.testing.assert_allclose(clipped, d.log_ratio([7.3, 8.6]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d.log_ratio(9.0, policy="ignore")
    with pytest.raises(CalibrationError, match="policy"):
        d.log_ratio(8.0, policy="extrapolate")


def test_policy_on_inverted_form_and_logu():
    d = cal.get_diagnostic("PP04_N2_cubic")
    with pytest.raises(CalibrationError, match="PP04_N2_cubic"):
        d.log_ratio(9.2)
    k = cal.get_diagnostic("K19_R23")
    with pytest.raises(CalibrationError, match="logu"):
        k.log_ratio(8.5)
    with pytest.raises(CalibrationError, match=r"log U = -1.*\[-3\.98, -1\.98\]"):
        k.log_ratio(8.5, logu=-1.0)
    with pytest.warns(CalibrationRangeWarning):
        k.log_ratio(8.5, logu=-1.5, policy="clip")


# ---------------------------------------------------------------------------
# look-up errors, stand-in, SUSPECT
# ---------------------------------------------------------------------------
def test_unknown_set_lists_available():
    with pytest.raises(CalibrationError, match="sanders2099.*sanders2025"):
        cal.load_set("sanders2099")


def test_unknown_diagnostic_suggests_close_matches():
    with pytest.raises(CalibrationError, match="S25_R4.*S25_R3"):
        cal.get_diagnostic("S25_R4")
    with pytest.raises(CalibrationError, match="R4.*R3"):
        cal.get_diagnostic("sanders2025:R4")


def test_set_name_lookup_is_the_same_diagnostic():
    assert cal.get_diagnostic("sanders2025:R3") is cal.get_diagnostic("S25_R3")
    assert cal.load_set("sanders2025")["R3"] is cal.get_diagnostic("S25_R3")


def test_sanders2025_ne3o2_is_a_recorded_stand_in():
    d = cal.get_diagnostic("S25_Ne3O2")
    s24 = cal.get_diagnostic("S24_Ne3O2")
    assert d.stand_in["for"] == "S25_Ne3O2" and d.stand_in["uses"] == "S24_Ne3O2"
    assert d.stand_in["reason"]
    assert d.coefficients == s24.coefficients and d.x0 == s24.x0
    # the S24 coefficients over the S25 range of Lee et al. 2026, Table 2 (S24's own: 7.4-8.3)
    assert d.valid_range == (7.4, 8.6) and s24.valid_range == (7.4, 8.3)
    assert "Lee et al. 2026 (Table 2)" in d.stand_in["reason"]
    assert d is cal.load_set("sanders2025")["Ne3O2"]
    record = json.loads(json.dumps(d.provenance()))
    assert record["stand_in"]["uses"] == "S24_Ne3O2"
    assert cal.get_diagnostic("S25_R3").stand_in is None


def test_suspect_entry_is_flagged_and_refuses():
    with pytest.warns(MockzgradWarning, match="S24_R23"):
        d = cal.get_diagnostic("S24_R23")
    assert d.status == "SUSPECT" and not d.usable
    with pytest.raises(CalibrationError, match="S24_R23.*unusable"):
        d.log_ratio(8.0)
    with pytest.raises(CalibrationError, match="S24_R23"):
        d.z_roots(1.0)
    with pytest.warns(MockzgradWarning, match="S24_R23"):
        cal.load_set("sanders2024")


def test_diagnostics_pickle_for_parallel_executors():
    for key in ("S25_R3", "PP04_N2_cubic", "K19_N2S2", "KD02_N2O2"):
        d = cal.get_diagnostic(key)
        d2 = pickle.loads(pickle.dumps(d))
        assert d2 == d
        logu = -3.0 if d.needs_logu else None
        z = np.mean(d.valid_range)
        assert d2.log_ratio(z, logu=logu) == d.log_ratio(z, logu=logu)


# ---------------------------------------------------------------------------
# user calibration files
# ---------------------------------------------------------------------------
def test_user_file_found_via_environment(tmp_path, monkeypatch):
    _write(tmp_path, _minimal_set())
    monkeypatch.setenv(cal.ENV_VAR, os.pathsep.join([str(tmp_path), ""]))
    assert "mycal" in cal.available_sets()
    assert tmp_path.resolve() in cal.calibration_dirs()
    d = cal.get_diagnostic("MY_R3")
    assert d.set_name == "mycal" and d.max_roots == 2  # the quadratic peaks at Z = 8.0
    z = np.linspace(7.0, 9.0, 101)
    roots = d.z_roots(d.log_ratio(z))
    assert np.all(np.nanmin(np.abs(roots - z[:, None]), axis=1) < 1e-6)
    monkeypatch.delenv(cal.ENV_VAR)
    assert "mycal" not in cal.available_sets()


def test_user_file_found_via_extra_dirs(tmp_path):
    _write(tmp_path, _minimal_set("other", "OTHER_R3"))
    assert "other" in cal.available_sets(extra_dirs=[tmp_path])
    cs = cal.load_set("other", extra_dirs=[tmp_path])
    assert cs["R3"].key == "OTHER_R3"
    assert "OTHER_R3" in cal.all_diagnostics(extra_dirs=[tmp_path])
    assert cal.get_diagnostic("other:R3", extra_dirs=[tmp_path]).key == "OTHER_R3"
    with pytest.raises(CalibrationError, match="not a directory"):
        cal.available_sets(extra_dirs=[tmp_path / "missing"])


def test_user_key_overrides_builtin_stand_in(tmp_path):
    data = _minimal_set("my_ne3o2", "S25_Ne3O2")
    _write(tmp_path, data)
    d = cal.get_diagnostic("S25_Ne3O2", extra_dirs=[tmp_path])
    assert d.set_name == "my_ne3o2" and d.stand_in is None
    assert cal.get_diagnostic("S25_Ne3O2").stand_in is not None  # built-in unchanged


def _malformed(tmp_path, mutate, stem="broken"):
    data = _minimal_set(stem, "BAD_R3")
    mutate(data)
    path = _write(tmp_path, data, stem)
    with pytest.raises(CalibrationError) as exc:
        cal.load_set(stem, extra_dirs=[tmp_path])
    msg = str(exc.value)
    assert str(path) in msg
    return msg


@pytest.mark.parametrize("mutate, fields", [
    (lambda d: d["diagnostics"][0].update(coefficients="abc"),
     ["diagnostics[0] (BAD_R3).coefficients", "expected array"]),
    (lambda d: d["diagnostics"][0].pop("form"), ["diagnostics[0] (BAD_R3).form", "required"]),
    (lambda d: d["diagnostics"][0].update(form="spline"), ["form", "spline", "poly_in_x"]),
    (lambda d: d["diagnostics"][0].update(valid_range=[9.0, 7.0]), ["valid_range", "low < high"]),
    (lambda d: d["diagnostics"][0].update(x0=None), ["x0"]),
    (lambda d: d["diagnostics"][0].update(status="SUSPECT", usable=True),
     ["usable", "SUSPECT"]),
    (lambda d: d["diagnostics"][0].update(colour="red"), ["colour", "unknown field"]),
    (lambda d: d["diagnostics"][0]["ratio"]["terms"][0]["parts"][0]["numerator"].update(
        OIII_5007=1.0), ["ratio.terms[0].parts[0].numerator", "OIII_5007"]),
    (lambda d: d.update(set="something_else"), ["set", "stem"]),
])
def test_malformed_file_names_file_and_field(tmp_path, mutate, fields):
    msg = _malformed(tmp_path, mutate)
    for text in fields:
        assert text in msg


def test_invalid_json_and_nan_are_rejected(tmp_path):
    (tmp_path / "garbled.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="garbled.json.*not valid JSON"):
        cal.load_set("garbled", extra_dirs=[tmp_path])
    text = json.dumps(_minimal_set("nanfile")).replace("0.8, 0.0, -1.0", "NaN, 0.0, -1.0")
    (tmp_path / "nanfile.json").write_text(text)
    with pytest.raises(CalibrationError, match="nanfile.json.*NaN"):
        cal.load_set("nanfile", extra_dirs=[tmp_path])


def test_inverted_user_file_with_ratio_range(tmp_path):
    data = _minimal_set("lin", "LIN_N2")
    diag = data["diagnostics"][0]
    diag.update(form="inverted_poly", x0=None, coefficients=[9.0, 0.5], valid_range=None,
                valid_range_in_ratio=[-2.0, -0.4],
                ratio={"terms": [{"weight": 1.0, "parts": [
                    {"numerator": {"NII_6585": 1.0}, "denominator": {"Ha": 1.0}}]}]})
    _write(tmp_path, data)
    d = cal.get_diagnostic("LIN_N2", extra_dirs=[tmp_path])
    assert d.valid_range == pytest.approx((8.0, 8.8))
    assert d.log_ratio(8.5) == pytest.approx(-1.0)
    both = copy.deepcopy(data)
    both["set"] = "lin2"
    both["diagnostics"][0].update(key="LIN2_N2", valid_range=[8.0, 8.8])
    _write(tmp_path, both)
    with pytest.raises(CalibrationError, match="not both"):
        cal.load_set("lin2", extra_dirs=[tmp_path])


# ---------------------------------------------------------------------------
# the committed files are what the build script makes from the reference
# ---------------------------------------------------------------------------
@pytest.mark.skipif(not REFERENCE.is_file(), reason="collected reference not available")
def test_files_are_reproducible_from_reference():
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "build_calibration_files.py"), "--check",
         "--reference", str(REFERENCE)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not REFERENCE.is_file(), reason="collected reference not available")
def test_coefficients_equal_the_reference_entries():
    ref = {e["name"]: e for e in json.loads(REFERENCE.read_text())}
    for key, d in ALL.items():
        source = ref[d.stand_in["uses"]] if d.stand_in else ref[key]
        assert list(d.coefficients) == source["coefficients"], key
        assert d.status == source["status"], key
        if source["status"] == "SUSPECT":
            assert not d.usable


# -- the numerics and the schema check, each against an independent answer ---------------
def test_real_roots_match_numpy():
    from mockzgrad.physics._roots import real_roots

    rng = np.random.default_rng(3)
    for _ in range(50):
        c = rng.normal(size=rng.integers(2, 6))
        expected = np.roots(c[::-1])  # numpy wants the highest order first
        expected = np.sort(expected[np.abs(expected.imag) < 1e-9].real)
        expected = expected[(expected > -3) & (expected < 3)]
        got = real_roots(c, -3.0, 3.0)
        assert len(got) == len(expected)
        np.testing.assert_allclose(got, expected, atol=1e-8)


def test_piece_inverts_a_monotonic_cubic():
    from mockzgrad.physics._roots import Piece, polyder, polyval

    c = (0.3, -1.0, 0.0, 1.0)  # t^3 - t + 0.3, increasing on [0.6, 2]
    f = lambda t: polyval(c, t)  # noqa: E731
    df = lambda t: polyval(polyder(c), t)  # noqa: E731
    piece = Piece.build(f, 0.6, 2.0)
    x_true = np.linspace(0.6, 2.0, 97)
    x = piece.solve(f, df, f(x_true))
    np.testing.assert_allclose(x, x_true, rtol=0, atol=1e-10)
    assert np.isnan(piece.solve(f, df, [f(0.6) - 1.0, f(2.0) + 1.0])).all()  # outside the image


def test_safe_newton_survives_overshooting_steps():
    from mockzgrad.physics._roots import safe_newton

    # Newton on arctan diverges from |x0| > 1.39; the bracket keeps it converging
    target = np.array([0.0, 1.2, -1.4])
    x = safe_newton(lambda x, _i: np.arctan(x), lambda x, _i: 1.0 / (1.0 + x * x), target,
                    np.full(3, -50.0), np.full(3, 50.0), np.array([40.0, -45.0, 30.0]))
    np.testing.assert_allclose(x, np.tan(target), atol=1e-10)


def test_schema_check_names_the_deepest_location():
    from mockzgrad.physics._schema import SchemaProblem, validate_json

    schema = {
        "type": "object", "required": ["items"], "additionalProperties": False,
        "properties": {"items": {"type": "array", "minItems": 1, "items": {"$ref": "#/defs/item"}}},
        "defs": {"item": {"type": "object", "properties": {
            "key": {"type": "string", "minLength": 1},
            "x": {"oneOf": [{"type": "null"}, {"type": "number", "minimum": 0}]}}}},
    }
    validate_json({"items": [{"key": "a", "x": None}, {"key": "b", "x": 2}]}, schema)
    cases = [
        ({"items": [{"key": "a", "x": -1}]}, "items[0] (a).x", "-1"),
        ({"items": [{"key": "", "x": 1}]}, "items[0] ().key", "must not be empty"),
        ({"items": []}, "items", "at least 1"),
        ({"items": [{}], "extra": 1}, "extra", "unknown field"),
        ({}, "items", "required field missing"),
        ({"items": [{"key": 3}]}, "items[0].key", "expected string"),
    ]
    for doc, loc, problem in cases:
        with pytest.raises(SchemaProblem) as info:
            validate_json(doc, schema)
        assert info.value.loc == loc and problem in info.value.problem


def test_public_names_stay_in_calibrations():
    from mockzgrad.physics import diagnostic

    assert cal.Diagnostic is diagnostic.Diagnostic
    for name in cal.__all__:
        assert hasattr(cal, name)
