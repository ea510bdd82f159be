"""The budget's files: the table (ECSV) and the waterfall figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..fileio import atomic_write, check_output_path

__all__ = ["write_budget", "waterfall_figure"]


def waterfall_figure(budget):
    """Waterfall of the ratio measured / intrinsic: one bar per cumulative step (its change), dots for f, g, h.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s in budget.steps if ":" not in s.key]
    alts = [s for s in budget.steps if ":" in s.key and math.isfinite(s.ratio)]  # alternatives that ran
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.7 * (len(steps) + len(alts)), 14.0), 4.2))
    prev = 1.0
    for i, s in enumerate(steps):
        if not math.isfinite(s.ratio):
            ax.text(i, prev, "n/a", ha="center", va="bottom", fontsize=8)
            continue
        colour = "0.6" if s.key == "a0" else ("tab:red" if s.ratio < prev else "tab:blue")
        base, height = (0.0, s.ratio) if s.key == "a0" else (prev, s.ratio - prev)
        ax.bar(i, height, bottom=base, color=colour, width=0.7)
        if s.key == "e":
            ax.errorbar(i, s.ratio, yerr=[[s.ratio - s.ratio_lo], [s.ratio_hi - s.ratio]], color="k", capsize=3)
        # the value sits at the bar's new level, beside the error bar where there is one
        dx, ha = (0.12, "left") if s.key == "e" else (0.0, "center")
        below = s.key != "a0" and s.ratio < prev
        ax.text(i + dx, s.ratio + (-0.01 if below else 0.01), f"{s.ratio:.3f}", ha=ha,
                va="top" if below else "bottom", fontsize=8)
        prev = s.ratio
    for j, s in enumerate(alts):
        x = len(steps) + j
        ax.plot(x, s.ratio, "o", color="tab:green")
        ax.text(x, s.ratio + 0.01, f"{s.ratio:.3f}", ha="center", va="bottom", fontsize=8)
    if alts:
        ax.axvline(len(steps) - 0.5, color="0.5", lw=0.8)
        ax.text(len(steps) - 0.4, 0.02, "alternatives on the noise-free mock (e1)", fontsize=8, color="0.3")
    labels = [_tick_label(s) for s in steps] + [_tick_label(s) for s in alts]
    ax.set_xticks(np.arange(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_ylabel("measured / intrinsic gradient")
    ax.set_title(f"flattening budget: grad_z = {budget.grad_z_true:g} dex/kpc, x = {budget.x_resolution:.3g}, "
                 f"recipe {budget.recipe}", fontsize=9)
    fig.tight_layout()
    return fig


#: short tick labels of the cumulative steps (the table has the full descriptions)
_SHORT = {"a0": "truth", "a1": "a1: annulus radius", "a2": "a2: summed fluxes", "b": "b: + PSF",
          "c": "c: + pixels, LSF, fits", "d": "d: + clipping", "e1": "e1: + S/N gate", "e": "e: + noise"}


def _tick_label(step) -> str:
    if ":" in step.key:
        kind, name = step.key.split(":", 1)
        return {"f": "method ", "g": "recipe ", "h": "gate "}.get(kind, "") + name
    return _SHORT.get(step.key, step.key)


def write_budget(budget, out_dir, *, figure: bool = True, overwrite: bool = True) -> dict:
    """Write ``budget.ecsv`` (and ``budget.png``) into ``out_dir`` (created), atomically.

    Returns
    -------
    dict
        ``{"table": path, "figure": path or None}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "budget.ecsv"
    check_output_path(table, overwrite=overwrite)
    t = budget.to_table()
    atomic_write(table, lambda tmp: t.write(tmp, format="ascii.ecsv", overwrite=True), overwrite=overwrite)
    png = None
    if figure:
        png = out / "budget.png"
        fig = waterfall_figure(budget)
        atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=120, format="png"), overwrite=overwrite)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return {"table": table, "figure": png}
