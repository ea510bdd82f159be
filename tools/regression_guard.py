"""Regression guard for refactors: same inputs, same outputs, before and after.

Runs the flagship cube (seed 7), ``recover`` on it and the demo (72-mock
quickstart suite, its curves and the corrected Lee et al. 2026 table) with
the ``mockzgrad`` command found on PATH, then compares two such output
folders. Values that legitimately change (timings, dates, package version,
file paths) are left out of the comparison; everything else must be
identical: FITS data byte for byte, JSON values, table rows.

Usage::

    python tools/regression_guard.py run OUTDIR        # with the mockzgrad on PATH
    python tools/regression_guard.py compare BEFORE AFTER
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
#: keys/columns whose values are allowed to differ between two runs
VOLATILE = ("time", "date", "version", "created", "path", "host", "elapsed", "started", "finished")
#: config fields added since the baseline, with the default that keeps old behaviour;
#: the CONFIG extension is compared as parsed TOML without them
NEW_CONFIG_FIELDS = {("instrument", "kind"): "ifu"}


def run(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    steps = [
        ["mockzgrad", "cube", str(ROOT / "examples/flagship_z5.toml"), "-o", str(outdir / "cube.fits"),
         "--seed", "7", "--overwrite"],
        ["mockzgrad", "recover", str(outdir / "cube.fits"), "-o", str(outdir / "recover.json"), "--overwrite"],
        ["mockzgrad", "demo", "--outdir", str(outdir / "demo")],
    ]
    for cmd in steps:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _volatile(key: str) -> bool:
    key = key.lower()
    return any(v in key for v in VOLATILE)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not _volatile(k)}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _compare_fits(a: Path, b: Path) -> list[str]:
    out = []
    with fits.open(a) as ha, fits.open(b) as hb:
        if [h.name for h in ha] != [h.name for h in hb]:
            return [f"{a.name}: HDU names {[h.name for h in ha]} != {[h.name for h in hb]}"]
        for x, y in zip(ha, hb):
            if x.name == "CONFIG":
                if _config(x) != _config(y):
                    out.append(f"{a.name}[CONFIG]: configurations differ")
                continue
            if x.data is None and y.data is None:
                pass
            elif x.data is None or y.data is None or np.asarray(x.data).tobytes() != np.asarray(y.data).tobytes():
                out.append(f"{a.name}[{x.name}]: data differ")
            kx = {k: v for k, v in x.header.items() if not _volatile(k) and k not in ("COMMENT", "HISTORY")}
            ky = {k: v for k, v in y.header.items() if not _volatile(k) and k not in ("COMMENT", "HISTORY")}
            for k in sorted(set(kx) | set(ky)):
                if kx.get(k) != ky.get(k):
                    out.append(f"{a.name}[{x.name}] {k}: {kx.get(k)!r} != {ky.get(k)!r}")
    return out


def _config(hdu) -> dict:
    import tomllib

    cfg = tomllib.loads(bytes(hdu.data).decode())
    for (section, key), default in NEW_CONFIG_FIELDS.items():
        if cfg.get(section, {}).get(key) == default:
            del cfg[section][key]
    return cfg


def _read_rows(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    delim = " " if path.suffix == ".ecsv" else ","
    rows = list(csv.DictReader(lines, delimiter=delim))
    return [{k: v for k, v in r.items() if k is not None and not _volatile(k)} for r in rows]


def _compare_rows(a: Path, b: Path) -> list[str]:
    ra, rb = _read_rows(a), _read_rows(b)
    if len(ra) != len(rb):
        return [f"{a.name}: {len(ra)} rows != {len(rb)}"]
    out = [f"{a.name} row {i}: {sorted(set(x.items()) ^ set(y.items()))[:4]}"
           for i, (x, y) in enumerate(zip(ra, rb)) if x != y]
    return out[:10]


def compare(before: Path, after: Path) -> int:
    problems = _compare_fits(before / "cube.fits", after / "cube.fits")
    ja = _strip(json.loads((before / "recover.json").read_text()))
    jb = _strip(json.loads((after / "recover.json").read_text()))
    if ja != jb:
        problems.append("recover.json differs: " + ", ".join(
            k for k in sorted(set(ja) | set(jb)) if ja.get(k) != jb.get(k)))
    for name in ("suite_results.csv", "curves.ecsv", "corrected_lee2026.csv"):
        problems += _compare_rows(before / "demo" / name, after / "demo" / name)
    for p in problems:
        print(p)
    print("identical" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
