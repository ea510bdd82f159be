"""Make the planner walk-through figure (docs/guide/planner.md): the z ~ 5 design map.

Runs the z ~ 5 plan of ``mockzgrad plan --example`` (examples/plan_target_z5.toml,
examples/plan_setups_z5.toml) and copies its design map to ``-o``::

    python examples/plan_figure.py -o docs/guide/planner_design_map.png
    python examples/plan_figure.py -o map.png --n-mocks 2 --no-solve   # quick check

The figure is not committed; the Sphinx build runs this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

from mockzgrad.corrections import plan as PL

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True, help="PNG to write (the design map)")
    p.add_argument("--n-mocks", type=int, default=None, help="mocks per depth and |grad_z| (default: the file's)")
    p.add_argument("--no-solve", action="store_true", help="leave out sigma_target (no exposure solver)")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    target = PL.load_target(HERE / "plan_target_z5.toml")
    if args.no_solve:
        target = dataclasses.replace(target, sigma_target=None)
    setups = PL.load_setups(HERE / "plan_setups_z5.toml")
    if args.n_mocks:
        setups = tuple(dataclasses.replace(s, n_mocks=args.n_mocks) for s in setups)
    with tempfile.TemporaryDirectory() as tmp:
        rows = PL.run_plan(target, setups, tmp, workers=args.workers)
        PL._print(rows)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "design_map.png", out.with_name(f".{out.name}.tmp"))
        out.with_name(f".{out.name}.tmp").replace(out)
    print(f"design map written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
