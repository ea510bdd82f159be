"""``mockzgrad budget CONFIG.toml [--recipe R] [--realisations N] -o DIR``: the handler behind the command."""

from __future__ import annotations

import math

from ..config import load_config
from .output import write_budget
from .run import flattening_budget

__all__ = ["run_command", "format_budget"]


def format_budget(budget) -> str:
    """The budget as aligned text lines: step, ratio (16-84 %), gradient, note."""
    lines = [f"# intrinsic grad_z = {budget.grad_z_true:g} dex/kpc, x = {budget.x_resolution:.3g}, "
             f"recipe {budget.recipe}, z0 = {budget.meta.get('z0', math.nan):.3f} "
             f"({budget.meta.get('z0_mode', '')}), flux share outside the calibrations' range "
             f"{budget.meta.get('outside_flux_frac', math.nan):.3f}"]
    for s in budget.steps:
        spread = f" [{s.ratio_lo:.3f}, {s.ratio_hi:.3f}]" if s.n > 1 else ""
        lines.append(f"{s.key:16s} {s.ratio:7.4f}{spread:17s} {s.grad_z:+.5f}  {s.label}"
                     + (f"  ({s.note})" if s.note else ""))
    return "\n".join(lines)


def run_command(args) -> int:
    """Run the budget of ``args.config`` and write ``budget.ecsv`` and ``budget.png`` into ``args.output``."""
    cfg = load_config(args.config)
    budget = flattening_budget(cfg, args.recipe, realisations=args.realisations,
                               alternatives=not args.no_alternatives)
    paths = write_budget(budget, args.output)
    print(format_budget(budget))
    print(f"# wrote {paths['table']} and {paths['figure']}")
    return 0
