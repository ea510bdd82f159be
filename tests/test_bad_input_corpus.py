"""Bad-input corpus: every user mistake, on every command, is one line on stderr and exit status 2.

Each case runs ``mockzgrad <command> ...`` (in this process through
:func:`mockzgrad.cli.main`, or as a subprocess ``python -m mockzgrad.cli``
where a real process matters: non-UTF-8 files, timeouts, the environment)
and asserts

* exit status 2, and nothing of a Python traceback;
* exactly one non-empty line on stderr, starting ``mockzgrad: error:``;
* that line names the field or the file, shows the value and says what is
  allowed: each case lists the substrings it needs (an inner tuple lists
  alternative spellings, any one of which will do; case-insensitive).

The inputs are built once per module (and per xdist worker) in a temporary
folder: configuration snippets, suite files, recipes, a small real cube and
its broken variants, results tables and correction curves. Cases about an
unwritable folder use ``chmod 0500``; where that does not bind (running as
root) they deny writing through ``os.access`` instead (subprocess cases are
skipped then).

Run ``python tests/test_bad_input_corpus.py`` for a report of every case
(tried / clean / tracebacks / silently accepted / other) in Markdown.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SUBPROCESS_TIMEOUT = 60.0  # s; a bad input is refused in ~10 s even on a busy machine, never after work

# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` with ``{d}`` (the corpus folder) and ``{o}`` (a fresh empty folder)."""

    id: str
    argv: tuple
    expect: tuple
    sub: bool = False          # run as a subprocess
    unwritable: bool = False   # needs chmod to bind (skipped as root)
    env: tuple = ()            # extra environment, subprocess only


CASES: list[Case] = []


def case(id, argv, *expect, **kw):
    CASES.append(Case(id, tuple(argv.split()) if isinstance(argv, str) else tuple(argv), tuple(expect), **kw))


# --- configuration files: `check` (and `cube`, which must run the same checks) --------------------

CONFIG_SNIPPETS = {
    # types
    "type_inclination_str": ('[galaxy]\ninclination = "twenty"\n', "galaxy.inclination", "twenty"),
    "type_r_eff_bool": ("[galaxy]\nr_eff = true\n", "galaxy.r_eff", "true"),
    "type_redshift_list": ("[galaxy]\nredshift = [5.0]\n", "galaxy.redshift", "[5.0]"),
    "type_oversample_float": ("[instrument]\noversample = 2.5\n", "instrument.oversample", "2.5"),
    "type_noise_enabled_str": ('[noise]\nenabled = "yes"\n', "noise.enabled", "yes"),
    "type_seed_negative": ("seed = -1\n", "seed", "-1"),
    "type_seed_float": ("seed = 1.5\n", "seed", "1.5"),
    "type_seed_str": ('seed = "abc"\n', "seed", "abc"),
    "type_lines_str": ('[lines]\nlines = "OIII_5008"\n', "lines.lines", "OIII_5008"),
    "type_galaxy_not_table": ("galaxy = 3\n", "galaxy", "3"),
    "type_psf_fwhm_str": ('[instrument.psf]\nfwhm = "0.2 arcsec"\n', "instrument.psf.fwhm", "0.2 arcsec"),
    # ranges
    "range_inclination_95": ("[galaxy]\ninclination = 95.0\n", "galaxy.inclination", "95"),
    "range_inclination_neg": ("[galaxy]\ninclination = -5.0\n", "galaxy.inclination", "-5"),
    "range_r_eff_zero": ("[galaxy]\nr_eff = 0.0\n", "galaxy.r_eff", "0"),
    "range_r_eff_neg": ("[galaxy]\nr_eff = -2.0\n", "galaxy.r_eff", "-2"),
    "range_redshift_25": ("[galaxy]\nredshift = 25.0\n", "galaxy.redshift", "25"),
    "range_sersic_n": ("[galaxy]\nsersic_n = 0.1\n", "galaxy.sersic_n", "0.1"),
    "range_pa": ("[galaxy]\npa = 400.0\n", "galaxy.pa", "400"),
    "range_q0_one": ("[galaxy]\nq0 = 1.0\n", "galaxy.q0", "1.0"),
    "range_sigma0": ("[galaxy]\nsigma0 = 600.0\n", "galaxy.sigma0", "600"),
    "range_grad_z": ("[galaxy.metallicity]\ngrad_z = 2.0\n", "galaxy.metallicity.grad_z", "2.0"),
    "range_z0": ("[galaxy.metallicity]\nz0 = 12.0\n", "galaxy.metallicity.z0", "12"),
    "range_r_break": ("[galaxy.metallicity]\nr_break = -1.0\n", "galaxy.metallicity.r_break", "-1"),
    "range_log_mbary": ("[galaxy.rotation]\nlog_mbary = 20.0\n", "galaxy.rotation.log_mbary", "20"),
    "range_x_offset": ("[galaxy]\nx_offset = 100.0\n", "galaxy.x_offset", "100"),
    "range_pixel_scale": ("[instrument]\npixel_scale = 0.0\n", "instrument.pixel_scale", "0"),
    "range_psf_fwhm": ("[instrument.psf]\nfwhm = -0.1\n", "instrument.psf.fwhm", "-0.1"),
    "range_psf_ref_wavelength": ("[instrument.psf]\nref_wavelength = 10.0\n", "instrument.psf.ref_wavelength",
                                 "10"),
    "range_lsf_sigma": ("[instrument]\nlsf_sigma = -5.0\n", "instrument.lsf_sigma", "-5"),
    "range_oversample_zero": ("[instrument]\noversample = 0\n", "instrument.oversample", "0"),
    "range_fov_flux_fraction": ("[instrument]\nfov_flux_fraction = 1.5\n", "instrument.fov_flux_fraction", "1.5"),
    "range_fov_tiny": ("[instrument]\nfov = 0.01\n", "instrument.fov", "0.01"),
    "range_channel_width": ("[instrument.spectral]\nchannel_width = 0.0\n", "instrument.spectral.channel_width",
                            "0"),
    "range_window": ("[instrument.spectral]\nwindow = 5.0\n", "instrument.spectral.window", "5"),
    "range_snr_zero": ("[noise]\nsnr = 0.0\n", "noise.snr", "0"),
    "range_h0": ("[cosmology]\nh0 = 10.0\n", "cosmology.h0", "10"),
    "range_om0": ("[cosmology]\nom0 = 0.0\n", "cosmology.om0", "0"),
    "range_a_v": ("[lines.dust]\na_v = -1.0\n", "lines.dust.a_v", "-1"),
    # not a number
    "nan_inclination": ("[galaxy]\ninclination = nan\n", "galaxy.inclination", "nan"),
    "nan_r_eff": ("[galaxy]\nr_eff = nan\n", "galaxy.r_eff", "nan"),
    "nan_snr": ("[noise]\nsnr = nan\n", "noise.snr", "nan"),
    "nan_psf_fwhm": ("[instrument.psf]\nfwhm = nan\n", "instrument.psf.fwhm", "nan"),
    "inf_h0": ("[cosmology]\nh0 = inf\n", "cosmology.h0", "inf"),
    "inf_grad_z": ("[galaxy.metallicity]\ngrad_z = -inf\n", "galaxy.metallicity.grad_z", "inf"),
    # choices
    "choice_profile": ('[galaxy.metallicity]\nprofile = "quadratic"\n', "galaxy.metallicity.profile", "quadratic"),
    "choice_rotation": ('[galaxy.rotation]\nkind = "flat2"\n', "galaxy.rotation.kind", "flat2"),
    "choice_psf_kind": ('[instrument.psf]\nkind = "airy2"\n', "instrument.psf.kind", "airy2"),
    "choice_spectral_grid": ('[instrument.spectral]\ngrid = "freq"\n', "instrument.spectral.grid", "freq"),
    "choice_instrument_kind": ('[instrument]\nkind = "slitless"\n', "instrument.kind", "slitless"),
    "choice_dust_law": ('[lines.dust]\nlaw = "cardelli"\n', "lines.dust.law", "cardelli"),
    # unknown keys and sections
    "unknown_key_r_efff": ("[galaxy]\nr_efff = 2.0\n", "galaxy.r_efff", ("did you mean", "allowed")),
    "unknown_section_galaxyy": ("[galaxyy]\nr_eff = 2.0\n", "galaxyy", ("did you mean", "allowed")),
    "unknown_top_key": ("sed = 1\n", "sed", ("did you mean", "allowed")),
    "unknown_subsection_psff": ("[instrument.psff]\nfwhm = 0.2\n", "psff", ("did you mean", "allowed")),
    "unknown_key_noise": ("[noise]\nsnr_ratio = 3.0\n", "noise.snr_ratio", ("did you mean", "allowed")),
    # lines and calibrations
    "unknown_line": ('[lines]\nlines = ["OIII_5008", "Hx"]\n', "Hx", ("allowed", "known", "available")),
    "unknown_reference_line": ('[lines]\nreference_line = "OIII_5007"\n', "OIII_5007",
                               ("allowed", "did you mean", "among", "known")),
    "unknown_calibration": ('[lines]\ngenerating_set = ["S25_R4"]\n', "S25_R4",
                            ("allowed", "did you mean", "available", "calibrations")),
    "snr_line_not_in_lines": ('[noise]\nsnr_line = "Ha"\n', "noise.snr_line", "Ha"),
    "generating_set_one_ratio": ('[lines]\ngenerating_set = ["S25_R3"]\n', "generating_set", "S25_R3"),
    # presets
    "unknown_spectral_preset": ('[instrument.spectral]\npreset = "nirspec_g999m"\n', "nirspec_g999m",
                                ("allowed", "available", "did you mean", "presets")),
    "preset_conflict": ('[instrument.spectral]\npreset = "nirspec_g395m"\ngrid = "velocity"\nchannel_width = 7.0\n',
                        "instrument.spectral", "nirspec_g395m"),
    # not TOML
    "toml_unclosed_table": ("[galaxy\n", "not valid TOML"),
    "toml_duplicate_key": ("[galaxy]\nr_eff = 2.0\nr_eff = 3.0\n", "not valid TOML"),
}

for _name, (_text, *_expect) in CONFIG_SNIPPETS.items():
    case(f"check-{_name}", f"check {{d}}/cfg/{_name}.toml", *_expect)
for _name in ("range_inclination_95", "nan_r_eff", "unknown_key_r_efff", "unknown_calibration",
              "generating_set_one_ratio", "type_seed_str", "choice_psf_kind", "toml_unclosed_table"):
    _text, *_expect = CONFIG_SNIPPETS[_name]
    case(f"cube-{_name}", f"cube {{d}}/cfg/{_name}.toml -o {{o}}/c.fits", *_expect)
case("check-missing-file", "check {d}/cfg/nope.toml", "nope.toml", ("does not exist", "no such file"))
case("check-directory", "check {d}/cfg", "cfg", ("directory", "not a file", "expected"))
case("check-binary-file", "check {d}/binary.toml", "binary.toml", ("utf-8", "text", "toml"))
case("check-latin1-file", "check {d}/latin1.toml", "latin1.toml", ("utf-8", "text", "toml"))

# --- cube: arguments and output paths -----------------------------------------------------------------

case("cube-seed-abc", "cube {d}/small.toml -o {o}/c.fits --seed abc", "--seed", "abc", ("int", "integer"))
case("cube-seed-negative", "cube {d}/small.toml -o {o}/c.fits --seed -5", "seed", "-5", ("allowed", ">="))
case("cube-no-output", "cube {d}/small.toml", "-o", ("required", "output"))
case("cube-output-exists", "cube {d}/small.toml -o {d}/cube.fits", "cube.fits", "exists", "overwrite")
case("cube-output-no-folder", "cube {d}/small.toml -o {d}/nodir/x.fits", "nodir", ("does not exist", "no such"))
case("cube-output-is-dir", "cube {d}/small.toml -o {d}/adir --overwrite", "adir", ("directory", "is a dir", "folder"))
case("cube-output-unwritable", "cube {d}/small.toml -o {d}/locked/x.fits", "locked",
     ("permission", "writable", "not writ"), unwritable=True)
case("cube-missing-config", "cube {d}/nope.toml -o {o}/c.fits", "nope.toml", ("does not exist", "no such file"))

# --- recover: cubes, recipes, arguments, output ---------------------------------------------------------

for _name, _expect in {
    "truncated": ("truncated.fits", ("truncated", "corrupt", "cannot be read", "incomplete")),
    "allzero": ("allzero.fits", ("allzero.fits", "VAR", "DATA"), ("zero", "no data", "no signal", "empty",
                                                                   "no positive")),
    "no_var": ("no_var.fits", "VAR", ("missing", "no ", "needs")),
    "no_spectral_wcs": ("no_wcs.fits", ("CTYPE3", "spectral", "wcs")),
    "not_fits": ("not_fits.fits", ("fits", "cannot be read")),
    "empty_file": ("empty.fits", ("fits", "empty", "cannot be read")),
    "no_data_ext": ("no_data.fits", "DATA", ("missing", "no ", "needs", "neither")),
    "data_2d": ("data_2d.fits", "DATA", ("3", "cube", "axes", "dimension")),
    "var_shape": ("var_shape.fits", "VAR", ("shape", "match")),
    "var_negative": ("var_negative.fits", ("var_negative.fits", "VAR"), ("negative", ">= 0", "> 0", "positive")),
}.items():
    case(f"recover-cube-{_name}", f"recover {{d}}/{_expect[0]} -o {{o}}/r.json", *_expect[1:])
case("recover-cube-missing", "recover {d}/nope.fits -o {o}/r.json", "nope.fits", ("does not exist", "no such"))
case("recover-cube-directory", "recover {d}/adir -o {o}/r.json", "adir", ("directory", "not a file", "expected"))

for _name, _expect in {
    "not_toml": ("not_toml.toml", "not_toml.toml", "not valid TOML"),
    "unknown_section": ("unknown_section.toml", "binnning", ("did you mean", "allowed")),
    "misspelt_key": ("misspelt_key.toml", "schemee", ("did you mean", "allowed")),
    "bad_method": ("bad_method.toml", "metallicity.method", "III", ("allowed", "expected")),
    "bad_scheme": ("bad_scheme.toml", "binning.scheme", "rings", ("allowed", "expected")),
    "nan_snr_outer": ("nan_snr_outer.toml", "binning.snr_outer", "nan"),
    "negative_snr_min": ("negative_snr_min.toml", "gating.snr_min", "-1"),
    "unknown_diagnostic": ("unknown_diagnostic.toml", "S25_R9", ("allowed", "did you mean", "available", "unknown")),
    "bad_gradient_fit": ("bad_gradient_fit.toml", "gradient.fit", "mcmc", ("allowed", "expected")),
    "binary": ("binary_recipe.toml", "binary_recipe.toml", ("utf-8", "text", "toml")),
}.items():
    case(f"recover-recipe-{_name}", f"recover {{d}}/cube.fits -o {{o}}/r.json --recipe {{d}}/recipes/{_expect[0]}",
         *_expect[1:])
case("recover-recipe-unknown-name", "recover {d}/cube.fits -o {o}/r.json --recipe lee2062", "lee2062",
     ("lee2026", "available", "allowed", "did you mean"))
case("recover-redshift-abc", "recover {d}/cube.fits -o {o}/r.json --redshift abc", "--redshift", "abc",
     ("float", "number"))
case("recover-redshift-negative", "recover {d}/cube.fits -o {o}/r.json --redshift -1", "redshift", "-1",
     ("allowed", "> 0", "expected"))
case("recover-redshift-nan", "recover {d}/cube.fits -o {o}/r.json --redshift nan", "redshift", "nan",
     ("allowed", "> 0", "expected"))
case("recover-redshift-far", "recover {d}/cube.fits -o {o}/r.json --redshift 1.0", "redshift", "1",
     ("outside", "band", "wavelength", "covers", "allowed"))
case("recover-psf-fwhm-zero", "recover {d}/cube.fits -o {o}/r.json --psf-fwhm 0", "fwhm", "0",
     ("allowed", "> 0", "expected"))
case("recover-psf-fwhm-neg", "recover {d}/cube.fits -o {o}/r.json --psf-fwhm -1", "fwhm", "-1",
     ("allowed", "> 0", "expected"))
case("recover-psf-fwhm-abc", "recover {d}/cube.fits -o {o}/r.json --psf-fwhm abc", "--psf-fwhm", "abc",
     ("float", "number"))
case("recover-seed-abc", "recover {d}/cube.fits -o {o}/r.json --seed abc", "--seed", "abc", ("int", "integer"))
case("recover-method-III", "recover {d}/cube.fits -o {o}/r.json --method III", "--method", "III", "choose")
case("recover-binning-rings", "recover {d}/cube.fits -o {o}/r.json --binning rings", "--binning", "rings", "choose")
case("recover-plot-suffix", "recover {d}/cube.fits -o {o}/r.json --plot {o}/p.xyz", "p.xyz",
     (".png", "png"))
case("recover-output-no-folder", "recover {d}/cube.fits -o {d}/nodir/r.json", "nodir", ("does not exist", "no such"))
case("recover-output-is-dir", "recover {d}/cube.fits -o {d}/adir", "adir", ("directory", "is a dir", "folder"))
case("recover-output-exists", "recover {d}/cube.fits -o {d}/exists.json", "exists.json", "exists", "overwrite")
case("recover-output-unwritable", "recover {d}/cube.fits -o {d}/locked/r.json", "locked",
     ("permission", "writable", "not writ"), unwritable=True)

# --- suite: suite files, [recovery], arguments, output --------------------------------------------------

SUITE_HEAD = '[suite]\nname = "bad"\nseed = 1\nn_mocks = 2\n\n[fixed]\nbase = "../small.toml"\n\n'
SUITE_GRID = '[grid]\n"galaxy.metallicity.grad_z" = [-0.1, 0.1]\n\n'
SUITE_SNIPPETS = {
    "not_toml": ("[suite\n", "not valid TOML"),
    "misspelt_table": ('[suitee]\nname = "x"\n', "suitee", ("did you mean", "allowed")),
    "unknown_suite_key": ('[suite]\nname = "bad"\nseed = 1\nnmocks = 2\n', "nmocks", ("did you mean", "allowed")),
    "no_seed": ('[suite]\nname = "bad"\nn_mocks = 2\n', "seed", ("missing", "needs")),
    "seed_negative": ('[suite]\nname = "bad"\nseed = -1\nn_mocks = 2\n', "seed", "-1"),
    "seed_float": ('[suite]\nname = "bad"\nseed = 1.5\nn_mocks = 2\n', "seed", "1.5"),
    "n_mocks_not_multiple": ('[suite]\nname = "bad"\nseed = 1\nn_mocks = 3\n[fixed]\nbase = "../small.toml"\n'
                             + SUITE_GRID, "n_mocks", "3", ("multiple", "allowed")),
    "n_mocks_zero": ('[suite]\nname = "bad"\nseed = 1\nn_mocks = 0\n', "n_mocks", "0"),
    "grid_empty": (SUITE_HEAD + '[grid]\n"galaxy.metallicity.grad_z" = []\n', "galaxy.metallicity.grad_z",
                   "[]", ("non-empty", "expected")),
    "grid_not_list": (SUITE_HEAD + '[grid]\n"galaxy.metallicity.grad_z" = 0.1\n', "galaxy.metallicity.grad_z",
                      "0.1", ("list", "expected")),
    "grid_unknown_param": (SUITE_HEAD + '[grid]\n"galaxy.r_efff" = [1.0, 2.0]\n', "galaxy.r_efff",
                           ("did you mean", "allowed", "unknown")),
    "grid_value_out_of_range": (SUITE_HEAD + '[grid]\n"galaxy.inclination" = [20.0, 95.0]\n',
                                "galaxy.inclination", "95"),
    "grid_value_str": (SUITE_HEAD + '[grid]\n"galaxy.inclination" = [20.0, "flat"]\n', "galaxy.inclination",
                       "flat"),
    "grid_value_nan": (SUITE_HEAD + '[grid]\n"galaxy.r_eff" = [2.0, nan]\n', "galaxy.r_eff", "nan"),
    "grid_and_sample": (SUITE_HEAD + SUITE_GRID + '[sample]\n"galaxy.metallicity.grad_z" = '
                        '{dist = "uniform", low = -0.1, high = 0.1}\n', "galaxy.metallicity.grad_z",
                        ("both", "one place")),
    "grid_seed": (SUITE_HEAD + '[grid]\nseed = [1, 2]\n', "seed", ("cannot", "derived")),
    "sample_unknown_dist": (SUITE_HEAD + '[sample]\n"galaxy.inclination" = {dist = "normal", mean = 20.0}\n',
                            "galaxy.inclination", "normal", ("allowed", "uniform")),
    "sample_no_dist": (SUITE_HEAD + '[sample]\n"galaxy.inclination" = {low = 0.0, high = 60.0}\n',
                       "galaxy.inclination", "dist", "allowed"),
    "sample_low_ge_high": (SUITE_HEAD + '[sample]\n"galaxy.inclination" = {dist = "uniform", low = 60.0, '
                           'high = 10.0}\n', "galaxy.inclination", "60", ("low < high", "need")),
    "sample_loguniform_zero": (SUITE_HEAD + '[sample]\nx_resolution = {dist = "loguniform", low = 0.0, '
                               'high = 6.0}\n', "x_resolution", "0", ("0 < low", "need")),
    "sample_out_of_bounds": (SUITE_HEAD + '[sample]\n"galaxy.inclination" = {dist = "uniform", low = 80.0, '
                             'high = 100.0}\n', "galaxy.inclination", "100", ("allowed", "90")),
    "sample_out_of_bounds_neg": (SUITE_HEAD + '[sample]\n"noise.snr" = {dist = "uniform", low = -10.0, '
                                 'high = 50.0}\n', "noise.snr", "-10", ("allowed", "> 0")),
    "sample_choice_empty": (SUITE_HEAD + '[sample]\n"galaxy.pa" = {dist = "choice", values = []}\n',
                            "galaxy.pa", "values", "non-empty"),
    "sample_choice_bad_value": (SUITE_HEAD + '[sample]\n"galaxy.pa" = {dist = "choice", values = [0.0, 500.0]}\n',
                                "galaxy.pa", "500", ("allowed", "360")),
    "sample_nan_bound": (SUITE_HEAD + '[sample]\n"galaxy.pa" = {dist = "uniform", low = nan, high = 10.0}\n',
                         "galaxy.pa", "nan"),
    "derived_unknown": (SUITE_HEAD + SUITE_GRID + '[derived]\nx_res = 3.0\n', "x_res",
                        ("did you mean", "allowed", "unknown")),
    "derived_negative": (SUITE_HEAD + SUITE_GRID + '[derived]\nx_resolution = -3.0\n', "x_resolution", "-3",
                         ("allowed", "> 0")),
    "fixed_bad_value": ('[suite]\nname = "bad"\nseed = 1\nn_mocks = 2\n[fixed]\nbase = "../small.toml"\n'
                        'galaxy.sersic_n = 20.0\n' + SUITE_GRID, "galaxy.sersic_n", "20"),
    "fixed_seed": ('[suite]\nname = "bad"\nseed = 1\nn_mocks = 2\n[fixed]\nbase = "../small.toml"\nseed = 3\n'
                   + SUITE_GRID, "seed", ("derived", "cannot")),
    "base_missing": ('[suite]\nname = "bad"\nseed = 1\nn_mocks = 2\n[fixed]\nbase = "nope.toml"\n' + SUITE_GRID,
                     "fixed.base", "nope.toml"),
    "keep_cubes_bad": (SUITE_HEAD + SUITE_GRID + '[output]\nkeep_cubes = "all"\n', "keep_cubes", "all",
                       ("expected", "list")),
    "output_unknown_key": (SUITE_HEAD + SUITE_GRID + '[output]\nkeep_cube = [0]\n', "keep_cube",
                           ("allowed", "did you mean")),
    # [recovery]: checked before any mock is made
    "recovery_misspelt_key": (SUITE_HEAD + SUITE_GRID + '[recovery]\nrecipie = "wang2017"\n', "recipie",
                              ("did you mean", "allowed")),
    "recovery_unknown_recipe": (SUITE_HEAD + SUITE_GRID + '[recovery]\nrecipe = "lee2062"\n', "lee2062",
                                ("lee2026", "available", "allowed", "did you mean")),
    "recovery_unknown_override": (SUITE_HEAD + SUITE_GRID + '[recovery]\nrecipe = "lee2026"\n'
                                  '[recovery.overrides]\n"binning.schemee" = "annuli"\n', "schemee",
                                  ("did you mean", "allowed", "unknown")),
    "recovery_bad_override_value": (SUITE_HEAD + SUITE_GRID + '[recovery]\nrecipe = "lee2026"\n'
                                    '[recovery.overrides]\n"metallicity.method" = "III"\n', "metallicity.method",
                                    "III", ("allowed", "expected")),
    "recovery_recipe_not_str": (SUITE_HEAD + SUITE_GRID + '[recovery]\nrecipe = 3\n', "recipe", "3"),
}
for _name, (_text, *_expect) in SUITE_SNIPPETS.items():
    case(f"suite-{_name}", f"suite {{d}}/suites/{_name}.toml -o {{o}}/run --executor serial --no-progress",
         *_expect)
case("suite-every-mock-fails", "suite {d}/suites/all_fail.toml -o {o}/run --executor serial --no-progress",
     "failed", ("1 of 1", "all", "every"))
case("suite-binary-file", "suite {d}/binary.toml -o {o}/run --executor serial --no-progress", "binary.toml",
     ("utf-8", "text", "toml"))
case("suite-missing-file", "suite {d}/nope.toml -o {o}/run --executor serial", "nope.toml",
     ("does not exist", "no such"))
case("suite-workers-zero", "suite {d}/suites/good.toml -o {o}/run --workers 0 --no-progress", "workers", "0",
     ("allowed", ">= 1", "at least"))
case("suite-workers-abc", "suite {d}/suites/good.toml -o {o}/run --workers abc", "--workers", "abc",
     ("int", "integer"))
case("suite-executor-bad", "suite {d}/suites/good.toml -o {o}/run --executor threads", "--executor", "threads",
     "choose")
case("suite-scheduler-unreachable", "suite {d}/suites/good.toml -o {o}/run --scheduler tcp://127.0.0.1:1 "
     "--no-progress", "127.0.0.1:1", ("unreachable", "cannot connect", "could not connect", "no scheduler"),
     sub=True)
case("suite-serial-and-scheduler", "suite {d}/suites/good.toml -o {o}/run --executor serial --scheduler "
     "tcp://127.0.0.1:1 --no-progress", "scheduler", ("serial", "dask"), sub=True)
case("suite-output-is-file", "suite {d}/suites/good.toml -o {d}/exists.json --executor serial --no-progress",
     "exists.json", ("not a directory", "folder", "directory"))
case("suite-results-is-dir", "suite {d}/suites/good.toml -o {d}/sqlite_dir --executor serial --no-progress",
     "results.sqlite", ("directory", "not a file"))
case("suite-output-unwritable", "suite {d}/suites/good.toml -o {d}/locked/run --executor serial --no-progress",
     "locked", ("permission", "writable", "not writ"), unwritable=True)
case("suite-export-no-folder", "suite {d}/suites/good.toml -o {o}/run --executor serial --no-progress "
     "--export {d}/nodir/x.csv", "nodir", ("does not exist", "no such"))
case("suite-export-suffix", "suite {d}/suites/good.toml -o {o}/run --executor serial --no-progress "
     "--export {o}/x.xlsx", "x.xlsx", (".csv", "allowed"))

# --- curves: results tables, arguments, output ------------------------------------------------------------

for _name, _expect in {
    "missing": ("nope.csv", "nope.csv", ("does not exist", "do not exist", "no such")),
    "garbage_ecsv": ("tables/garbage.ecsv", ("cannot be read", "ecsv", "utf-8")),
    "text_ecsv": ("tables/text.ecsv", ("cannot be read", "ecsv")),
    "header_only": ("tables/header_only.csv", ("no rows", "empty", "no mocks", "0 rows")),
    "missing_column": ("tables/no_measured.csv", "grad_z_measured", ("missing", "column")),
    "all_failed": ("tables/all_failed.csv", ("no ", "failed", "ok")),
    "empty_dir": ("adir", ("results.sqlite", "no results")),
}.items():
    case(f"curves-{_name}", f"curves {{d}}/{_expect[0]} -o {{o}}/c.ecsv", *_expect[1:])
case("curves-degree-abc", "curves {d}/tables/results.csv -o {o}/c.ecsv --degree abc", "degree", "abc",
     ("auto", "integer"))
case("curves-degree-negative", "curves {d}/tables/results.csv -o {o}/c.ecsv --degree=-1", "degree", "-1",
     ("allowed", "auto", "0"))
case("curves-degree-nine", "curves {d}/tables/results.csv -o {o}/c.ecsv --degree 9", "degree", "9",
     ("allowed", "auto", "4"))
case("curves-degree-float", "curves {d}/tables/results.csv -o {o}/c.ecsv --degree 2.5", "degree", "2.5",
     ("auto", "integer"))
case("curves-plot-suffix", "curves {d}/tables/results.csv -o {o}/c.ecsv --plot {o}/p.xyz", "p.xyz",
     (".png", "png"))
case("curves-output-suffix", "curves {d}/tables/results.csv -o {o}/c.csv", "c.csv", ".ecsv")
case("curves-output-exists", "curves {d}/tables/results.csv -o {d}/curves.ecsv", "curves.ecsv", "exists",
     "overwrite")
case("curves-output-no-folder", "curves {d}/tables/results.csv -o {d}/nodir/c.ecsv", "nodir",
     ("does not exist", "no such"))
case("curves-output-is-dir", "curves {d}/tables/results.csv -o {d}/adir.ecsv --overwrite", "adir.ecsv",
     ("directory", "is a dir", "folder"))
case("curves-output-unwritable", "curves {d}/tables/results.csv -o {d}/locked/c.ecsv", "locked",
     ("permission", "writable", "not writ"), unwritable=True)

# --- correct: gradient tables, curves, arguments, output ------------------------------------------------

_CORRECT = "correct {d}/tables/gradients.csv --curves {d}/curves.ecsv --x 2.5"
for _name, _expect in {
    "missing": ("nope.csv", "nope.csv", ("does not exist", "no such")),
    "garbage": ("tables/garbage.csv", ("cannot be read", "csv", "utf-8")),
    "garbage_ecsv": ("tables/garbage.ecsv", ("cannot be read", "ecsv", "utf-8")),
    "header_only": ("tables/grad_header_only.csv", ("no rows", "empty")),
    "missing_column": ("tables/grad_no_gradient.csv", "gradient_dex_per_kpc", ("missing", "column")),
    "non_numeric": ("tables/grad_non_numeric.csv", "gradient_dex_per_kpc", "steep"),
    "bad_suffix": ("tables/gradients.txt", "gradients.txt", (".csv", "allowed")),
    "wrong_recipe": ("tables/grad_wang2017.csv", "recipe", "wang2017", "lee2026"),
}.items():
    case(f"correct-table-{_name}", f"correct {{d}}/{_expect[0]} --curves {{d}}/curves.ecsv --x 2.5 -o {{o}}/g.csv",
         *_expect[1:])
for _name, _expect in {
    "missing": ("nope.ecsv", "nope.ecsv", ("does not exist", "no such")),
    "garbage": ("tables/garbage.ecsv", ("cannot be read", "ecsv", "utf-8")),
    "csv": ("tables/gradients.csv", ("ecsv", "curves")),
    "not_curves": ("tables/results.ecsv", ("curves", "not", "missing")),
}.items():
    case(f"correct-curves-{_name}", f"correct {{d}}/tables/gradients.csv --curves {{d}}/{_expect[0]} --x 2.5 "
         f"-o {{o}}/g.csv", *_expect[1:])
for _name, (_arg, *_expect) in {
    "x_abc": ("--x abc", ("--x", "x = "), "abc", ("allowed", "expected")),
    "x_zero": ("--x 0", ("--x", "x = "), "0", ("> 0", "allowed")),
    "x_negative": ("--x=-1", ("--x", "x = "), "-1", ("> 0", "allowed")),
    "x_nan": ("--x nan", ("--x", "x = "), "nan", ("> 0", "allowed", "number")),
    "x_reversed": ("--x 5:1", ("--x", "x = "), "5:1", ("lo <= hi", "low", "<")),
    "x_three_parts": ("--x 1:2:3", ("--x", "x = "), "1:2:3", ("allowed", "expected")),
    "column_no_equals": ("--column gradient", "--column", "gradient", "ROLE=NAME"),
    "column_unknown_role": ("--column slope=gradient_dex_per_kpc", "slope", ("roles", "allowed")),
    "column_absent": ("--column gradient=grad", "grad", ("column", "missing", "not in")),
    "seed_abc": ("--seed abc", "--seed", "abc", ("int", "integer")),
    "seed_negative": ("--seed -3", "seed", "-3", (">= 0", "allowed", "negative")),
    "plot_suffix": ("--plot {o}/p.xyz", "p.xyz", (".png", "png")),
    "output_suffix": ("-o {o}/g.xlsx", "g.xlsx", (".csv", "allowed")),
    "output_exists": ("-o {d}/exists.csv", "exists.csv", "exists", "overwrite"),
    "output_no_folder": ("-o {d}/nodir/g.csv", "nodir", ("does not exist", "no such")),
    "output_is_dir": ("-o {d}/adir.csv --overwrite", "adir.csv", ("directory", "is a dir", "folder")),
}.items():
    _out = "" if "-o " in _arg else " -o {o}/g.csv"
    _base = _CORRECT.replace(" --x 2.5", "") if _arg.startswith("--x") else _CORRECT
    case(f"correct-{_name}", f"{_base} {_arg}{_out}", *_expect)
case("correct-output-unwritable", f"{_CORRECT} -o {{d}}/locked/g.csv", "locked",
     ("permission", "writable", "not writ"), unwritable=True)

# --- calibrations, demo, top level ------------------------------------------------------------------------

case("calibrations-unknown-set", "calibrations --set NONEXISTENT", "NONEXISTENT",
     ("available", "allowed", "did you mean"))
case("calibrations-json-unknown-set", "calibrations --json --set NONEXISTENT", "NONEXISTENT",
     ("available", "allowed", "did you mean"))
case("calibrations-one-unknown-set", "calibrations --set sanders2025 NONEXISTENT", "NONEXISTENT",
     ("available", "allowed", "did you mean"))
case("calibrations-bad-json-file", "calibrations", "broken.json", ("json", "cannot be read"), sub=True,
     env=(("MOCKZGRAD_CALIBRATION_PATH", "{d}/calibs_bad"),))
case("demo-outdir-is-file", "demo --outdir {d}/exists.json --workers 1 --no-progress", "exists.json",
     ("not a directory", "folder", "directory"), sub=True)
case("demo-outdir-unwritable", "demo --outdir {d}/locked/demo --workers 1 --no-progress", "locked",
     ("permission", "writable", "not writ"), sub=True, unwritable=True)
case("demo-workers-zero", "demo --outdir {o}/demo --workers 0 --no-progress", "workers", "0",
     ("allowed", ">= 1", "at least"), sub=True)
case("demo-workers-abc", "demo --outdir {o}/demo --workers abc", "--workers", "abc", ("int", "integer"))
case("top-unknown-command", "frobnicate", "frobnicate", "choose")
case("top-unknown-option", "check {d}/small.toml --frobnicate", "--frobnicate", ("unrecognized", "unknown"))

# a few of the above once more as a real process (argparse, stderr, exit status as the shell sees them)
# (a subprocess costs 2-8 s on a busy 2-core machine: only a few)
for _c in [c for c in CASES if c.id in ("cube-seed-abc", "recover-cube-truncated")]:
    CASES.append(Case(f"sub-{_c.id}", _c.argv, _c.expect, sub=True, unwritable=_c.unwritable))


# ---------------------------------------------------------------------------
# the inputs
# ---------------------------------------------------------------------------

def _small_config_text() -> str:
    """The flagship mock on a small field without oversampling: a real cube in a second."""
    text = (EXAMPLES / "flagship_z5.toml").read_text()
    return text.replace("oversample = 3", "oversample = 1\nfov = 2.4\nfov_flux_fraction = 0.9")


def _write_cubes(d: Path) -> None:
    from astropy.io import fits

    from mockzgrad.config import load_config
    from mockzgrad.observation import observe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observe(load_config(d / "small.toml")).write(d / "cube.fits")
    raw = (d / "cube.fits").read_bytes()
    (d / "truncated.fits").write_bytes(raw[: len(raw) // 2])
    (d / "not_fits.fits").write_text("this is not a FITS file\n")
    (d / "empty.fits").write_bytes(b"")

    def variant(name, edit):
        with fits.open(d / "cube.fits") as h:
            h = fits.HDUList([hdu.copy() for hdu in h])
            edit(h)
            h.writeto(d / name)

    def gaps_zero(h):
        h["DATA"].data = np.nan_to_num(h["DATA"].data, nan=0.0)
        h["VAR"].data = np.nan_to_num(h["VAR"].data, nan=0.0)

    def allzero(h):
        h["DATA"].data = np.zeros_like(h["DATA"].data)
        h["VAR"].data = np.zeros_like(h["VAR"].data)

    def no_wcs(h):
        for key in ("CTYPE3", "CRVAL3", "CDELT3", "CRPIX3", "CUNIT3"):
            for ext in ("DATA", "VAR"):
                h[ext].header.pop(key, None)

    def no_data(h):
        del h["DATA"]

    def data_2d(h):
        h["DATA"].data = np.asarray(h["DATA"].data[0])

    def var_shape(h):
        h["VAR"].data = np.asarray(h["VAR"].data[:, :-1])

    def var_negative(h):
        h["VAR"].data = -np.abs(h["VAR"].data)

    def truth_not_json(h):
        h["TRUTH"].data = np.frombuffer(b"\xff\xfe not json {", dtype=np.uint8).copy()

    def no_var(h):
        del h["VAR"]

    for name, edit in (("gaps_zero.fits", gaps_zero), ("allzero.fits", allzero), ("no_wcs.fits", no_wcs),
                       ("no_data.fits", no_data), ("data_2d.fits", data_2d), ("var_shape.fits", var_shape),
                       ("var_negative.fits", var_negative), ("truth_not_json.fits", truth_not_json),
                       ("no_var.fits", no_var)):
        variant(name, edit)


RECIPES = {
    "not_toml.toml": "[recipe\n",
    "unknown_section.toml": '[recipe]\nname = "x"\n[binnning]\nscheme = "annuli"\n',
    "misspelt_key.toml": '[recipe]\nname = "x"\n[binning]\nschemee = "annuli"\n',
    "bad_method.toml": '[recipe]\nname = "x"\n[metallicity]\nmethod = "III"\n',
    "bad_scheme.toml": '[recipe]\nname = "x"\n[binning]\nscheme = "rings"\n',
    "nan_snr_outer.toml": '[recipe]\nname = "x"\n[binning]\nsnr_outer = nan\n',
    "negative_snr_min.toml": '[recipe]\nname = "x"\n[gating]\nsnr_min = -1.0\n',
    "unknown_diagnostic.toml": '[recipe]\nname = "x"\n[metallicity]\ndiagnostics = ["S25_R3", "S25_R9"]\n',
    "bad_gradient_fit.toml": '[recipe]\nname = "x"\n[gradient]\nfit = "mcmc"\n',
    "n2_only.toml": '[recipe]\nname = "n2_only"\n[metallicity]\ndiagnostics = ["C20_N2"]\nalso = []\n',
}


def _synthetic_results(n=240, seed=3):
    """A suite-like results table: ratio = 1 - exp(-x / 1.5) + noise."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    g = rng.choice([-0.2, -0.1, -0.05, 0.05, 0.1, 0.2], n)
    x = rng.uniform(0.6, 6.4, n)
    r = 1 - np.exp(-x / 1.5) + rng.normal(0, 0.02, n)
    gm = g * r
    return Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": gm,
                  "grad_z_measured_lo": gm - 0.01, "grad_z_measured_hi": gm + 0.01, "x_resolution": x,
                  "snr": rng.uniform(20, 100, n), "inclination": np.full(n, 20.0)})


def _write_tables(d: Path) -> None:
    from mockzgrad.corrections.curves import derive_curves

    t = d / "tables"
    t.mkdir()
    results = _synthetic_results()
    results.write(t / "results.csv", format="ascii.csv")
    results.write(t / "results.ecsv", format="ascii.ecsv")
    lines = (t / "results.csv").read_text().splitlines()
    (t / "header_only.csv").write_text(lines[0] + "\n")
    results[[c for c in results.colnames if c != "grad_z_measured"]].write(t / "no_measured.csv", format="ascii.csv")
    rows = [ln.split(",") for ln in lines[1:]]
    rows[3][2] = "high"  # grad_z_measured of the fourth mock
    (t / "non_numeric.csv").write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    failed = results.copy()
    failed["status"] = ["failed"] * len(failed)
    failed["grad_z_measured"] = np.nan
    failed.write(t / "all_failed.csv", format="ascii.csv")
    (t / "garbage.ecsv").write_bytes(bytes(range(256)) * 8)
    (t / "garbage.csv").write_bytes(b"\x00\x01\xff\xfe" * 500)
    (t / "text.ecsv").write_text("# %ECSV 1.0\n# ---\n# this: [is, not\nnot a table at all\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = derive_curves(results, provenance={"suite": "corpus", "recipe": "lee2026",
                                                    "calibrations": ["S25_R3", "S25_O32", "S25_Ne3O2"],
                                                    "package_version": "0.1.0"})
    curves.write(d / "curves.ecsv")
    lee = (EXAMPLES / "observed_gradients_lee2026.csv").read_text()
    (t / "gradients.csv").write_text(lee)
    (t / "gradients.txt").write_text(lee)
    head, *rows = lee.splitlines()
    (t / "grad_header_only.csv").write_text(head + "\n")
    cols = head.split(",")
    k = cols.index("gradient_dex_per_kpc")
    (t / "grad_no_gradient.csv").write_text(
        "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != k) for r in [head, *rows]) + "\n")
    bad = [r.split(",") for r in rows]
    bad[2][k] = "steep"
    (t / "grad_non_numeric.csv").write_text("\n".join([head, *(",".join(r) for r in bad)]) + "\n")
    (t / "grad_wang2017.csv").write_text(
        "\n".join([head + ",recipe", *(r + ",wang2017" for r in rows)]) + "\n")
    (t / "grad_bom.csv").write_bytes(b"\xef\xbb\xbf" + lee.encode())


def build_corpus(d: Path) -> Path:
    """Write every input of the corpus into the folder ``d``; return ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "small.toml").write_text(_small_config_text())
    (d / "cfg").mkdir()
    for name, (text, *_) in CONFIG_SNIPPETS.items():
        (d / "cfg" / f"{name}.toml").write_text(text)
    (d / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 40)
    (d / "latin1.toml").write_bytes("[galaxy]\n# d\xe9j\xe0 vu\nr_eff = 2.0\n".encode("latin-1"))
    (d / "suites").mkdir()
    for name, (text, *_) in SUITE_SNIPPETS.items():
        (d / "suites" / f"{name}.toml").write_text(text)
    (d / "suites" / "good.toml").write_text(SUITE_HEAD + SUITE_GRID)
    # valid up front, but no mock can be measured: N2 needs Ha and [NII], which the mocks do not render
    (d / "suites" / "all_fail.toml").write_text(
        SUITE_HEAD.replace("n_mocks = 2", "n_mocks = 1")
        + f'[recovery]\nrecipe = "{(d / "recipes" / "n2_only.toml").as_posix()}"\n')
    (d / "recipes").mkdir()
    for name, text in RECIPES.items():
        (d / "recipes" / name).write_text(text)
    (d / "recipes" / "binary_recipe.toml").write_bytes(b"\xff\xfe\x00[recipe]\x00" * 30)
    for name in ("adir", "adir.ecsv", "adir.csv", "sqlite_dir/results.sqlite", "locked"):
        (d / name).mkdir(parents=True)
    (d / "exists.json").write_text("{}\n")
    (d / "exists.csv").write_text("id\n1\n")
    calibs = d / "calibs_bad"
    calibs.mkdir()
    (calibs / "broken.json").write_text('{"name": "broken", "diagnostics": [1, 2,')
    _write_cubes(d)
    _write_tables(d)
    os.chmod(d / "locked", 0o500)
    return d


def chmod_binds(d: Path) -> bool:
    """Whether a folder of mode 0500 refuses a new file here (False when running as root)."""
    try:
        (d / "locked" / "probe").write_text("x")
    except PermissionError:
        return True
    (d / "locked" / "probe").unlink()
    return False


# ---------------------------------------------------------------------------
# running a case
# ---------------------------------------------------------------------------

@dataclass
class Outcome:
    returncode: object
    stdout: str
    stderr: str
    crashed: bool = False  # an exception escaped main() / a traceback / a timeout


def _fill(value: str, d: Path, o: Path) -> str:
    return value.replace("{d}", str(d)).replace("{o}", str(o))


@contextlib.contextmanager
def _locked_by_access(d: Path):
    """Make ``os.access`` deny writing to ``d/locked`` (as chmod 0500 does, where root ignores it)."""
    real, locked = os.access, str(d / "locked")

    def access(path, mode, *args, **kw):
        if mode & os.W_OK and os.path.abspath(os.fspath(path)).startswith(locked):
            return False
        return real(path, mode, *args, **kw)

    os.access = access
    try:
        yield
    finally:
        os.access = real


def run_case(c: Case, d: Path, o: Path, *, fake_lock: bool = False) -> Outcome:
    """Run ``c`` with the corpus in ``d`` and a fresh empty folder ``o``.

    ``fake_lock``: deny writing to ``d/locked`` through ``os.access`` (in-process cases only).
    """
    if fake_lock:
        with _locked_by_access(d):
            return run_case(c, d, o)
    argv = [_fill(a, d, o) for a in c.argv]
    if c.sub:
        env = {**os.environ, **{k: _fill(v, d, o) for k, v in c.env}}
        try:
            r = subprocess.run([sys.executable, "-m", "mockzgrad.cli", *argv], capture_output=True, text=True,
                               cwd=o, timeout=SUBPROCESS_TIMEOUT, env=env)
        except subprocess.TimeoutExpired as exc:
            return Outcome("timeout", str(exc.stdout or ""), f"(timed out after {SUBPROCESS_TIMEOUT} s)", True)
        return Outcome(r.returncode, r.stdout, r.stderr, "Traceback" in r.stderr)
    from mockzgrad.cli import main
    from mockzgrad.errors import MockzgradWarning

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    crashed = False
    try:
        os.chdir(o)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # as in a fresh interpreter: each warning shown once
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code
            except Exception:  # noqa: BLE001 - a traceback is what the corpus looks for
                crashed = True
                rc = "exception"
                err.write(traceback.format_exc())
    finally:
        os.chdir(cwd)
    # warnings are lines on stderr too (the command line prints each as 'mockzgrad: warning: ...')
    err.write("".join(f"mockzgrad: warning: {w.message}\n" if issubclass(w.category, MockzgradWarning)
                      else f"{w.category.__name__}: {w.message}\n" for w in caught))
    return Outcome(rc, out.getvalue(), err.getvalue(), crashed or "Traceback" in err.getvalue())


def problems(c: Case, r: Outcome) -> list[str]:
    """What is wrong with the outcome ``r`` of case ``c`` (empty: a clean one-line error)."""
    if r.crashed:
        return ["traceback" if r.returncode != "timeout" else "timeout"]
    if r.returncode == 0:
        return ["silently accepted (exit 0)"]
    found = []
    if r.returncode != 2:
        found.append(f"exit status {r.returncode}, expected 2")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr, expected 1")
    line = (lines[-1] if lines else "").lower()
    if lines and not lines[0].startswith("mockzgrad: error:"):
        found.append("stderr does not start with 'mockzgrad: error:'")
    for piece in c.expect:
        alternatives = piece if isinstance(piece, tuple) else (piece,)
        if not any(a.lower() in line for a in alternatives):
            found.append(f"message lacks {' or '.join(map(repr, alternatives))}")
    return found


def classify(found: list[str]) -> str:
    if not found:
        return "clean"
    if found[0] in ("traceback", "timeout"):
        return found[0]
    if found[0].startswith("silently"):
        return "silently accepted"
    return "other"


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = build_corpus(tmp_path_factory.mktemp("corpus"))
    yield d
    os.chmod(d / "locked", 0o700)


def test_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES if c.argv}
    assert commands >= {"check", "cube", "recover", "suite", "curves", "correct", "calibrations", "demo"}


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_exit_2(c, corpus, tmp_path):
    fake_lock = c.unwritable and not chmod_binds(corpus)
    if fake_lock and c.sub:
        pytest.skip("chmod does not bind here (running as root) and a subprocess cannot be patched")
    r = run_case(c, corpus, tmp_path, fake_lock=fake_lock)
    found = problems(c, r)
    assert not found, f"{c.id}: {'; '.join(found)}\nexit {r.returncode}\nstderr:\n{r.stderr[-3000:]}"


def test_cubes_that_are_not_mistakes_are_recovered(corpus, tmp_path, capsys):
    """Gap channels written as 0 instead of NaN, or a TRUTH extension that is not JSON (recovery never
    reads the truth: a warning), give the same gradient as the cube itself."""
    from mockzgrad.cli import main
    from mockzgrad.errors import MockzgradWarning

    def grad(name):
        assert main(["recover", str(corpus / name), "-o", str(tmp_path / f"{name}.json")]) == 0
        return json.loads((tmp_path / f"{name}.json").read_text())["grad_z"]

    reference = grad("cube.fits")
    assert grad("gaps_zero.fits") == reference
    with pytest.warns(MockzgradWarning, match="TRUTH"):
        assert grad("truth_not_json.fits") == reference
    capsys.readouterr()


def test_bom_csv_keeps_ids_and_column_names(corpus, tmp_path):
    """A CSV exported by Excel starts with a UTF-8 BOM: ids stay text ('02'), the column is 'id'."""
    from mockzgrad.corrections.correct import read_gradient_table

    t = read_gradient_table(corpus / "tables" / "grad_bom.csv")
    assert t.colnames[0] == "id"
    assert "02" in [str(v) for v in t["id"]]


# ---------------------------------------------------------------------------
# report: python tests/test_bad_input_corpus.py
# ---------------------------------------------------------------------------

def report() -> str:
    """Run every case; Markdown with the figures and every failing case with its output."""
    with tempfile.TemporaryDirectory() as tmp:
        d = build_corpus(Path(tmp) / "corpus")
        binds = chmod_binds(d)
        counts = {"clean": 0, "traceback": 0, "timeout": 0, "silently accepted": 0, "other": 0, "skipped": 0}
        failing = []
        for i, c in enumerate(CASES):
            if c.unwritable and not binds and c.sub:
                counts["skipped"] += 1
                continue
            o = Path(tmp) / f"o{i}"
            o.mkdir()
            r = run_case(c, d, o, fake_lock=c.unwritable and not binds)
            found = problems(c, r)
            counts[classify(found)] += 1
            if found:
                failing.append((c, r, found))
        os.chmod(d / "locked", 0o700)
    tried = len(CASES) - counts["skipped"]
    out = [f"# Bad-input corpus: {tried} tried, {counts['clean']} clean, {counts['traceback']} tracebacks, "
           f"{counts['timeout']} timeouts, {counts['silently accepted']} silently accepted, "
           f"{counts['other']} other (wrong lines or message), {counts['skipped']} skipped (root)", "",
           "Regenerate: `python tests/test_bad_input_corpus.py > this file`.", ""]
    for c, r, found in failing:
        out += [f"## {c.id}: {classify(found)}", "", f"`mockzgrad {' '.join(c.argv)}`", "",
                f"problems: {'; '.join(found)}", "", f"expected substrings: {c.expect!r}", "",
                f"exit {r.returncode}; stderr (last 1500 chars):", "", "```",
                r.stderr[-1500:].rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(report())
