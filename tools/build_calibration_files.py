#!/usr/bin/env python
"""Build the calibration data files in ``calibration_curves/`` from the reference.

Every coefficient, offset, scatter value and validity range written by this
script is read from the collected reference
``shared/reference/calibrations.json`` (each entry with its status and
sources, see ``shared/reference/calibrations.md``); no coefficient is typed
here. What this script adds is structure: which published entries form which
set (one file per published set), how each ratio is built from the line ids
of :mod:`mockzgrad.physics.lines`, and notes on choices. Validity ranges that the
reference states only in an entry's notes (for example "Valid -1.6 < N2 <
-0.2") are parsed from those notes with a regular expression, and the script
fails if the text changes.

One supplement is not in the reference JSON and is marked as such in the
data file: the metallicity range over which Nakajima et al. (2022) derive
their relations, 12+log(O/H) ~ 6.9-8.9, stated in that paper's title and
abstract (arXiv:2206.02824).

Usage
-----
::

    python tools/build_calibration_files.py [--reference PATH] [--out DIR] [--check]

``--check`` rebuilds in memory and exits with status 1 if any committed file
differs (for CI); without it the files are (re)written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = Path(
    os.environ.get("MOCKZGRAD_REFERENCE", Path(__file__).resolve().parent / "reference" / "calibrations.json")
)
DEFAULT_OUT = REPO / "calibration_curves"
SCHEMA_VERSION = 1
GENERATED_BY = (
    "tools/build_calibration_files.py from shared/reference/calibrations.json; "
    "edit the script or the reference, not this file"
)

# --------------------------------------------------------------------------
# Line groups (ids from mockzgrad/lines.py) and ratio builders
# --------------------------------------------------------------------------
OIII5008 = {"OIII_5008": 1.0}
OIII_DOUBLET = {"OIII_4960": 1.0, "OIII_5008": 1.0}
OII = {"OII_3727": 1.0, "OII_3730": 1.0}  # [OII] 3727,3730 doublet sum
NII6585 = {"NII_6585": 1.0}
SII = {"SII_6718": 1.0, "SII_6733": 1.0}  # [SII] 6718,6733 doublet sum
NEIII = {"NeIII_3870": 1.0}
HB = {"Hb": 1.0}
HA = {"Ha": 1.0}
R23_NUM = {**OII, **OIII_DOUBLET}


def part(num, den):
    return {"numerator": dict(num), "denominator": dict(den)}


def simple(num, den):
    """log10(num / den): one term of weight 1 with one part."""
    return [{"weight": 1.0, "parts": [part(num, den)]}]


def difference(num1, den1, num2, den2):
    """log10(num1/den1) - log10(num2/den2), e.g. O3N2."""
    return [
        {"weight": 1.0, "parts": [part(num1, den1)]},
        {"weight": -1.0, "parts": [part(num2, den2)]},
    ]


R3 = simple(OIII5008, HB)
O2 = simple(OII, HB)
R23 = simple(R23_NUM, HB)
O32 = simple(OIII5008, OII)
N2 = simple(NII6585, HA)
S2 = simple(SII, HA)
NE3O2 = simple(NEIII, OII)
O3N2 = difference(OIII5008, HB, NII6585, HA)
O3S2 = difference(OIII5008, HB, SII, HA)
RS32 = [{"weight": 1.0, "parts": [part(OIII5008, HB), part(SII, HA)]}]
N2O2 = simple(NII6585, OII)
M08_O3N2 = simple(OIII5008, NII6585)  # Maiolino+08 "O3N2" has no Balmer lines
N2S2 = simple(NII6585, SII)
O2S2 = simple(OII, SII)


def rhat_from_reference(entry):
    """Sanders Rhat = a*log(R2) + b*log(R3); weights parsed from the reference text."""
    m = re.fullmatch(
        r"Rhat = ([0-9.]+)\*log\(\[OII\]/Hb\) \+ ([0-9.]+)\*log\(\[OIII\]5008/Hb\)",
        entry["ratio"],
    )
    if not m:
        raise SystemExit(f"cannot parse the Rhat definition {entry['ratio']!r}")
    return [
        {"weight": float(m.group(1)), "parts": [part(OII, HB)]},
        {"weight": float(m.group(2)), "parts": [part(OIII5008, HB)]},
    ]


# --------------------------------------------------------------------------
# Bibliographic data per set. Journal and arXiv strings are checked against
# the reference text of every entry of the set.
# --------------------------------------------------------------------------
CITATIONS = {
    "sanders2025": {
        "authors": "Sanders et al.", "year": 2025,
        "title": "The AURORA Survey: High-Redshift Empirical Metallicity Calibrations "
                 "from Electron Temperature Measurements at z=2-10",
        "journal": None, "arxiv": "2508.10099", "table": "Table 3",
    },
    "sanders2024": {
        "authors": "Sanders et al.", "year": 2024,
        "title": "Direct Te-based metallicities of z=2-9 galaxies with JWST/NIRSpec",
        "journal": "ApJ 962, 24", "arxiv": "2303.08149", "table": None,
    },
    "maiolino2008": {
        "authors": "Maiolino et al.", "year": 2008, "title": None,
        "journal": "A&A 488, 463", "arxiv": None, "table": "Table 4",
    },
    "jones2015": {
        "authors": "Jones, Martin & Cooper", "year": 2015, "title": None,
        "journal": "ApJ 813, 126", "arxiv": None, "table": None,
    },
    "curti2017": {
        "authors": "Curti et al.", "year": 2017, "title": None,
        "journal": "MNRAS 465, 1384", "arxiv": None, "table": "Table 2",
    },
    "curti2020": {
        "authors": "Curti et al.", "year": 2020, "title": None,
        "journal": "MNRAS 491, 944", "arxiv": None, "table": "Table 2",
    },
    "bian2018": {
        "authors": "Bian, Kewley & Dopita", "year": 2018, "title": None,
        "journal": "ApJ 859, 175", "arxiv": None, "table": None,
    },
    "nakajima2022": {
        "authors": "Nakajima et al.", "year": 2022, "title": None,
        "journal": "ApJS 262, 3", "arxiv": None, "table": None,
    },
    "pettini_pagel2004": {
        "authors": "Pettini & Pagel", "year": 2004, "title": None,
        "journal": "MNRAS 348, L59", "arxiv": None, "table": None,
    },
    "marino2013": {
        "authors": "Marino et al.", "year": 2013, "title": None,
        "journal": "A&A 559, A114", "arxiv": None, "table": None,
    },
    "kewley_dopita2002": {
        "authors": "Kewley & Dopita", "year": 2002, "title": None,
        "journal": "ApJS 142, 35", "arxiv": None, "table": None,
    },
    "kewley2019": {
        "authors": "Kewley, Nicholls & Sutherland", "year": 2019, "title": None,
        "journal": "ARA&A 57, 511", "arxiv": None, "table": "Table for log(P/k) = 5.0",
    },
}

#: Supplement not in calibrations.json (see module docstring).
NAKAJIMA2022_RANGE = {
    "range": [6.9, 8.9],
    "source": "Nakajima et al. 2022, title and abstract (arXiv:2206.02824): relations "
              "derived 'over the range of 12+log(O/H)=~6.9-8.9' "
              "(https://tomesphere.com/paper/2206.02824)",
}

# --------------------------------------------------------------------------
# Sets: (reference entry, diagnostic name, ratio, options)
# --------------------------------------------------------------------------
C20_SCATTER = {
    "map": {"sigma_ratio": "RMS"},
    "basis": "sigma_ratio = RMS, labelled in the sources as the rms of the fit residuals in "
             "log R. The sources' 'sigma' column is kept under as_published but not mapped: "
             "its meaning (dispersion in log R or in 12+log(O/H)) is not confirmed; that it "
             "exceeds RMS for the flat R23 (0.12 vs 0.06) hints at 12+log(O/H).",
}
S25_SCATTER = {
    "map": {"sigma_ratio": "sigma_R_int", "sigma_z": "sigma_OH_int"},
    "basis": "sigma_ratio = sigma_R_int (intrinsic scatter in log R), sigma_z = sigma_OH_int "
             "(intrinsic scatter in 12+log(O/H)); sigma_R_fit is the fit uncertainty. "
             "Scatter values from a single source (jwspecfit).",
}
PP04_SCATTER = {
    "map": {"sigma_z": "sigma_OH_int"},
    "basis": "sigma_z = 0.18 dex: systematic 1-sigma uncertainty of the PP04 N2 calibration in "
             "12+log(O/H), as quoted by Ju et al. (MSA-3D, Sect. 3.1).",
}
K19_SCATTER = {
    "map": {},
    "basis": "The source gives the fit RMS as a percentage (rms_percent), not in dex; it is "
             "kept as published and not converted.",
}

K19_NOTE = ("Surface form: 12+log(O/H) = A + Bx + Cy + Dxy + Ex^2 + Fy^2 + Gxy^2 + Hyx^2 + "
            "Ix^3 + Jy^3 with x = log ratio and y = log U (caller supplies logu). For the "
            "forward model the cubic in x is solved on the monotonic branch that contains, "
            "for each log U, the root closest to x = 0 of Z = middle of valid_range.")

SETS = {
    "sanders2025": {
        "description": "AURORA Te-based calibrations at z = 2-10 (flagship set for z > 3).",
        "diagnostics": [
            ("S25_R3", "R3", R3, {"scatter": S25_SCATTER}),
            ("S25_O2", "O2", O2, {"scatter": S25_SCATTER}),
            ("S25_R23", "R23", R23, {
                "scatter": S25_SCATTER,
                "note": "Numerator: [OII]3727,3730 + [OIII]4960 + [OIII]5008 (doublet sum), "
                        "following the reference's resolution of the numerator caveat.",
            }),
            ("S25_O32", "O32", O32, {"scatter": S25_SCATTER}),
            ("S25_N2", "N2", N2, {}),
            ("S25_S2", "S2", S2, {}),
            ("S25_O3N2", "O3N2", O3N2, {}),
            ("S25_O3S2", "O3S2", O3S2, {}),
            ("S25_Rhat", "Rhat", "rhat", {}),
            ("S25_Ne3O2", "Ne3O2", NE3O2, {"stand_in_from": "S24_Ne3O2",
                                           "range_of_target": True}),
        ],
    },
    "sanders2024": {
        "description": "Te-based calibrations of z = 2-9 galaxies with JWST/NIRSpec.",
        "diagnostics": [
            ("S24_R3", "R3", R3, {}),
            ("S24_O2", "O2", O2, {}),
            ("S24_R23", "R23", R23, {}),  # SUSPECT: encoded with usable = false
            ("S24_O32", "O32", O32, {}),
            ("S24_Ne3O2", "Ne3O2", NE3O2, {}),
        ],
    },
    "maiolino2008": {
        "description": "Maiolino et al. 2008 Table 4 polynomials (x = 12+log(O/H) - 8.69), "
                       "with the [SII]/Ha relation of Wang et al. 2017 (following Jones et al. "
                       "2015) that is printed beside them.",
        "diagnostics": [
            ("M08_R23", "R23", R23, {}),
            ("M08_N2", "N2", N2, {}),
            ("M08_R3", "R3", R3, {}),
            ("M08_O2", "O2", O2, {
                "note": "[OII]3727 in Maiolino et al. 2008 is the [OII] 3727,3730 doublet sum."}),
            ("M08_O32", "O32", O32, {
                "note": "[OII]3727 in Maiolino et al. 2008 is the [OII] 3727,3730 doublet sum."}),
            ("M08_Ne3O2", "Ne3O2", NE3O2, {
                "note": "[OII]3727 in Maiolino et al. 2008 is the [OII] 3727,3730 doublet sum."}),
            ("M08_O3N2", "O3N2", M08_O3N2, {
                "note": "This is [OIII]5008/[NII]6585 with no Balmer lines, not the PP04 O3N2."}),
            ("W17_S2_Jones15", "S2", S2, {}),
        ],
    },
    "jones2015": {
        "description": "DEEP2 z ~ 0.8 direct-method calibrations (ratio as a polynomial in "
                       "absolute 12+log(O/H)).",
        "diagnostics": [
            ("J15_R23", "R23", R23, {}),
            ("J15_R3", "R3", R3, {}),
            ("J15_O2", "O2", O2, {}),
            ("J15_O32", "O32", O32, {}),
        ],
    },
    "curti2017": {
        "description": "Curti et al. 2017 Te-based calibrations of SDSS stacks "
                       "(x = 12+log(O/H) - 8.69).",
        "diagnostics": [
            ("C17_R2", "R2", O2, {}),
            ("C17_R3", "R3", R3, {}),
            ("C17_O32", "O32", O32, {}),
            ("C17_R23", "R23", R23, {}),
        ],
    },
    "curti2020": {
        "description": "Curti et al. 2020 Table 2 calibrations (x = 12+log(O/H) - 8.69).",
        "range_note": "valid_range [7.6, 8.9] is the generic range applied by one source "
                      "(single-source); per-diagnostic Curti et al. 2020 ranges NOT FOUND.",
        "diagnostics": [
            ("C20_R2", "R2", O2, {"scatter": C20_SCATTER}),
            ("C20_R3", "R3", R3, {"scatter": C20_SCATTER}),
            ("C20_O32", "O32", O32, {"scatter": C20_SCATTER}),
            ("C20_R23", "R23", R23, {"scatter": C20_SCATTER}),
            ("C20_N2", "N2", N2, {"scatter": C20_SCATTER}),
            ("C20_O3N2", "O3N2", O3N2, {"scatter": C20_SCATTER}),
            ("C20_S2", "S2", S2, {"scatter": C20_SCATTER}),
            ("C20_RS32", "RS32", RS32, {"scatter": C20_SCATTER}),
            ("C20_O3S2", "O3S2", O3S2, {"scatter": C20_SCATTER}),
        ],
    },
    "bian2018": {
        "description": "Bian, Kewley & Dopita 2018 calibrations from local analogues of z ~ 2 "
                       "galaxies. No [SII] or [OII]/Hb calibration exists in this paper; N2 "
                       "was not found.",
        "diagnostics": [
            ("B18_R23", "R23", R23, {}),
            ("B18_R3", "R3", R3, {}),
            ("B18_O32_inv", "O32", O32, {"z_range_from": "B18_R23"}),
            ("B18_O3N2_inv", "O3N2", O3N2, {"z_range_from": "B18_R23"}),
            ("B18_Ne3O2_inv", "Ne3O2", NE3O2, {"z_range_from": "B18_R23"}),
        ],
    },
    "nakajima2022": {
        "description": "EMPRESS V calibrations; only the R3 relations were found.",
        "diagnostics": [
            ("N22_R3_all", "R3", R3, {"supplement_range": NAKAJIMA2022_RANGE}),
            ("N22_R3_largeEW", "R3_largeEW", R3, {"supplement_range": NAKAJIMA2022_RANGE}),
            ("N22_R3_smallEW", "R3_smallEW", R3, {"supplement_range": NAKAJIMA2022_RANGE}),
        ],
    },
    "pettini_pagel2004": {
        "description": "Pettini & Pagel 2004 N2 and O3N2 (12+log(O/H) as a function of the "
                       "log ratio).",
        "diagnostics": [
            ("PP04_N2_cubic", "N2_cubic", N2, {"scatter": PP04_SCATTER,
                                               "ratio_range": "field"}),
            ("PP04_N2_linear", "N2_linear", N2, {"ratio_range_from": "PP04_N2_cubic"}),
            ("PP04_O3N2", "O3N2", O3N2, {
                "ratio_range": (r"SPAX uses (-?[0-9.]+) < O3N2 < ([0-9.]+)", None),
                "range_note": "Upper bound O3N2 < 1.9 from PP04; the lower bound -1 is the one "
                              "applied by spaxelsleuth (reference notes).",
            }),
        ],
    },
    "marino2013": {
        "description": "Marino et al. 2013 (CALIFA + Te) N2 and O3N2 (12+log(O/H) as a linear "
                       "function of the log ratio).",
        "diagnostics": [
            ("M13_N2", "N2", N2, {"ratio_range": (r"Valid (-?[0-9.]+) < N2 < (-?[0-9.]+)",
                                                  None)}),
            ("M13_O3N2", "O3N2", O3N2, {
                "ratio_range": (r"Valid (-?[0-9.]+) < O3N2 < (-?[0-9.]+)", None)}),
        ],
    },
    "kewley_dopita2002": {
        "description": "Kewley & Dopita 2002 [NII]/[OII] calibration (q = 2e7 cm/s solution).",
        "diagnostics": [
            ("KD02_N2O2", "N2O2", N2O2, {
                "note": "Forward model on the branch where Z increases with [NII]/[OII] "
                        "(x above the vertex of the quadratic)."}),
        ],
    },
    "kewley2019": {
        "description": "Kewley, Nicholls & Sutherland 2019 photoionisation-model surfaces "
                       "Z(log ratio, log U) for log(P/k) = 5.0. S23 and the log U surfaces are "
                       "not encoded (see not_encoded).",
        "diagnostics": [
            ("K19_N2O2", "N2O2", N2O2, {"k19": True}),
            ("K19_R23", "R23", R23, {"k19": True}),
            ("K19_N2Ha", "N2Ha", N2, {"k19": True}),
            ("K19_S2Ha", "S2Ha", S2, {"k19": True}),
            ("K19_N2S2", "N2S2", N2S2, {"k19": True}),
            ("K19_O3N2", "O3N2", O3N2, {"k19": True}),
            ("K19_O2S2", "O2S2", O2S2, {"k19": True}),
            ("K19_O2Hb", "O2Hb", O2, {"k19": True}),
        ],
    },
}

#: Reference entries deliberately not encoded, with the reason (written into the files).
NOT_ENCODED = {
    "sanders2025": [
        ("S25_Ne3O2", "Coefficients NOT FOUND in any searchable source; the diagnostic "
                      "'Ne3O2' of this file is a labelled stand-in (see its stand_in field): "
                      "the Sanders et al. 2024 coefficients over the S25 range [7.4, 8.6] of "
                      "Lee et al. 2026, Table 2."),
    ],
    "curti2017": [
        ("C17_N2, C17_O3N2", "Not independently confirmed in the reference (presumed equal to "
                             "C20); not in calibrations.json."),
    ],
    "bian2018": [
        ("B18_N2_inv", "NOT FOUND."),
        ("B18_S2", "DOES NOT EXIST: Bian et al. 2018 give no [SII]/Ha (nor [OII]/Hb) "
                   "calibration."),
    ],
    "nakajima2022": [
        ("N22_other", "R23, R2, O32, Ne3O2, N2, S2 and the EW(Hb) bin definitions NOT FOUND."),
    ],
    "kewley_dopita2002": [
        ("KE08_N2O2", "Kewley & Ellison 2008 recast of KD02 N2O2 is a different paper; not "
                      "part of this set."),
    ],
    "kewley2019": [
        ("K19_S23", "Needs [SIII] 9069,9531, which is not in the line catalogue "
                    "(mockzgrad.physics.lines)."),
        ("K19_logU_S32", "Needs [SIII] 9069,9531, which is not in the line catalogue."),
        ("K19_logU_O32", "A log U calibration (log U as a function of O32 and Z), not a "
                         "metallicity diagnostic; callers set log U directly."),
    ],
}

FORM_MAP = [
    (re.compile(r"^poly_in_x$"), "poly_in_x"),
    (re.compile(r"^poly_in_y \(y = 12\+log\(O/H\)"), "poly_in_y"),
    (re.compile(r"^INVERTED (poly|linear)"), "inverted_poly"),
    (re.compile(r"^12\+log\(O/H\) = log10\(c0 \+ c1\*x \+ c2\*x\^2\) \+ 8\.93$"), "kd02_n2o2"),
    (re.compile(r"^surface \(INVERTED\): 12\+log\(O/H\) = A \+ Bx \+ Cy \+ Dxy \+ Ex\^2 \+ "
                r"Fy\^2 \+ Gxy\^2 \+ Hyx\^2 \+ Ix\^3 \+ Jy\^3$"), "k19_surface"),
]

ENCODABLE = {"VERIFIED", "SINGLE-SOURCE", "SUSPECT"}


def map_form(entry):
    for rx, form in FORM_MAP:
        if rx.search(entry["form"]):
            return form
    raise SystemExit(f"{entry['name']}: unrecognised form {entry['form']!r}")


def scatter_block(entry, spec):
    published = entry.get("scatter_dex") or {}
    out = {"sigma_ratio": None, "sigma_z": None, "as_published": dict(published)}
    if spec is None:
        out["basis"] = "No scatter value found (reference: NOT FOUND)." if not published else ""
        if published:
            raise SystemExit(f"{entry['name']}: published scatter present but no mapping given")
        return out
    for field, label in spec["map"].items():
        if label not in published:
            raise SystemExit(f"{entry['name']}: scatter label {label!r} not in {published}")
        out[field] = float(published[label])
    out["basis"] = spec["basis"]
    return out


def _stand_in(entry, opts, by_name):
    """The entry whose coefficients are used, its stand-in record and the notes.

    Without ``stand_in_from`` that is the entry itself; with it, another
    entry stands in for one whose coefficients were NOT FOUND.
    """
    key = entry["name"]
    notes = [entry["notes"].strip()] if entry["notes"].strip() else []
    if "stand_in_from" not in opts:
        return entry, None, notes
    if entry["status"] != "NOT FOUND" or entry["coefficients"] is not None:
        raise SystemExit(f"{key}: stand-in requested but the entry has coefficients")
    uses = by_name[opts["stand_in_from"]]
    lo, hi = uses["valid_range"]
    if opts.get("range_of_target"):
        tlo, thi = entry["valid_range"]
        range_text = (
            f"over the validity range [{tlo}, {thi}] that Lee et al. 2026 (Table 2) give for "
            f"{key}; {uses['name']}'s own range is [{lo}, {hi}], so above {hi} the "
            f"{uses['name']} relation is extrapolated"
        )
    else:
        range_text = (f"with its own validity range [{lo}, {hi}]; the range "
                      f"{entry['valid_range']} quoted for {key} does not apply to these "
                      "coefficients")
    stand_in = {
        "for": key,
        "uses": uses["name"],
        "reason": (
            f"{key} coefficients NOT FOUND in any searchable source (reference status "
            f"{entry['status']}). {uses['name']} ({uses['reference']}) is used in its place "
            f"{range_text}."
        ),
    }
    what = ("coefficients, status and sources are those of " f"{uses['name']}; the validity "
            f"range is the one given for {key}" if opts.get("range_of_target") else
            f"coefficients, range, status and sources are those of {uses['name']}")
    notes = [f"STAND-IN for {key}: {what}. Reference note on {key}: {entry['notes'].strip()}"]
    if uses["notes"].strip():
        notes.append(f"{uses['name']} note: {uses['notes'].strip()}")
    return uses, stand_in, notes


def _validity_range(entry, coeffs_entry, opts, by_name, set_name):
    """(valid_range, valid_range_in_ratio, basis): the range the file states, and why."""
    key = entry["name"]
    valid_range = coeffs_entry["valid_range"]
    valid_range_in_ratio = coeffs_entry.get("valid_range_in_ratio")
    basis = "valid_range from the reference entry."
    if opts.get("range_of_target"):
        valid_range = entry["valid_range"]
        basis = (f"valid_range of the reference entry {key} (Lee et al. 2026, Table 2), "
                 f"applied to the stand-in coefficients of {coeffs_entry['name']} (own range "
                 f"{coeffs_entry['valid_range']}).")
    if "supplement_range" in opts:
        if valid_range is not None:
            raise SystemExit(f"{key}: supplement given but the reference has a range")
        valid_range = list(opts["supplement_range"]["range"])
        basis = ("Per-diagnostic range NOT FOUND in the reference; adopted the range of the "
                 "whole paper. Supplement, not in calibrations.json: "
                 + opts["supplement_range"]["source"] + ".")
    if "z_range_from" in opts:
        if valid_range is not None:
            raise SystemExit(f"{key}: z_range_from given but the reference has a range")
        other = by_name[opts["z_range_from"]]
        valid_range = list(other["valid_range"])
        basis = (f"Validity range NOT FOUND for this diagnostic; adopted the range of "
                 f"{other['name']} from the same paper and sample ({valid_range}).")
    if opts.get("ratio_range") == "field":
        if valid_range_in_ratio is None:
            raise SystemExit(f"{key}: expected valid_range_in_ratio in the reference")
        basis = ("valid_range_in_ratio from the reference; valid_range (12+log(O/H)) is its "
                 "image under the formula, computed by the loader.")
    elif isinstance(opts.get("ratio_range"), tuple):
        rx, _ = opts["ratio_range"]
        m = re.search(rx, entry["notes"])
        if not m:
            raise SystemExit(f"{key}: cannot parse the ratio range from {entry['notes']!r}")
        valid_range_in_ratio = [float(m.group(1)), float(m.group(2))]
        basis = (f"valid_range_in_ratio parsed from the reference notes ({m.group(0)!r}); "
                 "valid_range (12+log(O/H)) is its image under the formula, computed by the "
                 "loader.")
    if "ratio_range_from" in opts:
        other = by_name[opts["ratio_range_from"]]
        valid_range_in_ratio = list(other["valid_range_in_ratio"])
        basis = (f"Validity range NOT FOUND for this diagnostic; adopted the ratio range "
                 f"{valid_range_in_ratio} of {other['name']} (same paper and sample); "
                 "valid_range is its image under the formula, computed by the loader.")
    if opts.get("range_note"):
        basis += " " + opts["range_note"]
    if SETS[set_name].get("range_note"):
        basis += " " + SETS[set_name]["range_note"]
    if valid_range_in_ratio is not None:
        valid_range = None
    if valid_range is None and valid_range_in_ratio is None:
        raise SystemExit(f"{key}: no validity range")
    return valid_range, valid_range_in_ratio, basis


def _x0(key, coeffs_entry, form):
    """x0 as the loader expects it: None for inverted forms, 0 for poly_in_y."""
    x0 = coeffs_entry["x0"]
    if form in ("inverted_poly", "kd02_n2o2", "k19_surface"):
        if x0 not in (None, 0.0):
            raise SystemExit(f"{key}: unexpected x0 for form {form}")
        return None
    if form == "poly_in_y":
        return 0.0
    return float(x0)


def build_diagnostic(entry, name, ratio_terms, opts, by_name, set_name):
    key = entry["name"]
    if entry["status"] not in ENCODABLE and "stand_in_from" not in opts:
        raise SystemExit(f"{key}: status {entry['status']!r} cannot be encoded")
    coeffs_entry, stand_in, notes = _stand_in(entry, opts, by_name)
    form = map_form(coeffs_entry)
    status = coeffs_entry["status"]
    if coeffs_entry["coefficients"] is None:
        raise SystemExit(f"{key}: no coefficients")
    if ratio_terms == "rhat":
        ratio_terms = rhat_from_reference(entry)
    valid_range, valid_range_in_ratio, basis = _validity_range(entry, coeffs_entry, opts, by_name,
                                                               set_name)
    logu_range = None
    if form == "k19_surface":
        m = re.search(r"(-?[0-9.]+) < log U < (-?[0-9.]+)", entry["notes"])
        if not m:
            raise SystemExit(f"{key}: cannot parse the log U range from the notes")
        logu_range = [float(m.group(1)), float(m.group(2))]
        notes.append(K19_NOTE)
    if opts.get("note"):
        notes.append(opts["note"])
    scatter = scatter_block(
        coeffs_entry, K19_SCATTER if form == "k19_surface" else opts.get("scatter")
    )
    return {
        "key": key,
        "name": name,
        "reference": coeffs_entry["reference"],
        "ratio": {"label": entry["ratio"], "terms": ratio_terms},
        "form": form,
        "form_as_published": coeffs_entry["form"],
        "x0": _x0(key, coeffs_entry, form),
        "coefficients": [float(c) for c in coeffs_entry["coefficients"]],
        "scatter": scatter,
        "valid_range": valid_range,
        "valid_range_in_ratio": valid_range_in_ratio,
        "valid_range_basis": basis,
        "logu_range": logu_range,
        "status": status,
        "usable": status != "SUSPECT",
        "stand_in": stand_in,
        "sources": list(coeffs_entry["source_urls_or_repos"]),
        "notes": " ".join(notes),
    }


def build_all(reference_path: Path) -> dict[str, dict]:
    entries = json.loads(reference_path.read_text())
    by_name = {}
    for e in entries:
        if e["name"] in by_name:
            raise SystemExit(f"duplicate reference entry {e['name']}")
        by_name[e["name"]] = e
    out = {}
    for set_name, spec in SETS.items():
        cit = CITATIONS[set_name]
        diags = []
        for src, name, ratio_terms, opts in spec["diagnostics"]:
            entry = by_name[src]
            for token in (cit["journal"], cit["arxiv"]):
                if token and token not in entry["reference"] and src != "W17_S2_Jones15":
                    raise SystemExit(
                        f"{src}: {token!r} not in its reference {entry['reference']!r}"
                    )
            diags.append(build_diagnostic(entry, name, ratio_terms, opts, by_name, set_name))
        reference = ", ".join(
            x for x in (f"{cit['authors']} {cit['year']}", cit["journal"],
                        f"arXiv:{cit['arxiv']}" if cit["arxiv"] else None, cit["table"]) if x
        )
        out[set_name] = {
            "schema_version": SCHEMA_VERSION,
            "set": set_name,
            "reference": reference,
            "citation": cit,
            "description": spec["description"],
            "generated_by": GENERATED_BY,
            "not_encoded": [{"key": k, "reason": r} for k, r in NOT_ENCODED.get(set_name, [])],
            "diagnostics": diags,
        }
    return out


def dumps(obj, indent=0) -> str:
    """JSON with numeric lists and line-weight maps kept on one line (readable rows)."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if all(isinstance(v, (int, float)) for v in obj.values()):
            return json.dumps(obj, ensure_ascii=False)
        items = [f'{pad}  {json.dumps(k)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list):
        if all(v is None or isinstance(v, (int, float)) for v in obj):
            return json.dumps(obj, ensure_ascii=False)
        items = [f"{pad}  {dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(obj, ensure_ascii=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing them")
    args = ap.parse_args(argv)
    if not args.reference.is_file():
        sys.stderr.write(f"reference file {args.reference} not found (use --reference)\n")
        return 2
    files = {f"{k}.json": dumps(v) + "\n" for k, v in build_all(args.reference).items()}
    if args.check:
        stale = [n for n, text in files.items()
                 if not (args.out / n).is_file() or (args.out / n).read_text() != text]
        if stale:
            sys.stderr.write(f"out of date: {', '.join(stale)}\n")
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (args.out / n).write_text(text)
    sys.stdout.write(f"wrote {len(files)} files to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
