"""Design map of a plan: the verdict over depth x |grad_z|, one panel per setup.

Each measured (setup, depth, |grad_z|) of a plan is a cell coloured by its
verdict and labelled with the median measured/intrinsic ratio and sigma(grad);
depths the exposure solver ran are drawn too, and the solved depth for
``sigma_target`` is marked per |grad_z| (its contour on the map). The depth
axis is the exposure time (s) when the setup has one, else the S/N.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["VERDICT_COLOURS", "plot_design_map", "depth_axis_value"]

#: Cell colour per verdict.
VERDICT_COLOURS = {"ok": "#4daf4a", "calibration floor": "#ff7f00", "too faint": "#999999",
                   "unresolved": "#e41a1c", "outside band": "#984ea3"}


def depth_axis_value(row: dict) -> float:
    """Exposure (s) of a row when it has one, else its S/N (from the depth label ``S/N=v``); NaN if neither."""
    t = row.get("exposure_s", math.nan)
    if t is not None and math.isfinite(t):
        return float(t)
    label = str(row.get("depth", ""))
    if label.startswith("S/N="):
        return float(label[4:])
    return math.nan


def _axis_label(rows: list[dict]) -> str:
    finite = [r for r in rows if math.isfinite(r.get("exposure_s", math.nan) or math.nan)]
    return "exposure time [s]" if finite else "S/N of the reference line (mockzgrad definition)"


def _panel(ax, rows: list[dict], grads) -> None:
    ys = {g: k for k, g in enumerate(grads)}
    for r in rows:
        d = depth_axis_value(r)
        if not math.isfinite(d):
            continue
        y = ys[r["grad_z_abs"]]
        if r.get("solved"):  # the solver's suites: small cells below the row, no text (they can crowd)
            ax.scatter([d], [y - 0.32], s=60, marker="s", color=VERDICT_COLOURS.get(r["verdict"], "white"),
                       edgecolor="k", linewidth=0.8, zorder=2)
            continue
        ax.scatter([d], [y], s=900, marker="s", color=VERDICT_COLOURS.get(r["verdict"], "white"), zorder=2)
        text = (f"{r['ratio_median']:.2f}\n{r['sigma_grad_median']:.3f}"
                if math.isfinite(r.get("ratio_median", math.nan)) else r["verdict"].replace(" ", "\n"))
        ax.text(d, y, text, ha="center", va="center", fontsize=6, zorder=3)
    for g in grads:  # the solved depth for sigma_target (the target contour)
        sol = [r for r in rows if r["grad_z_abs"] == g and r.get("solved")]
        best = [r for r in sol if math.isfinite(r.get("exposure_for_target", math.nan))
                or math.isfinite(r.get("snr_for_target", math.nan))]
        if best:
            r = best[0]
            d = r["exposure_for_target"] if math.isfinite(r["exposure_for_target"]) else r["snr_for_target"]
            ax.plot([d, d], [ys[g] - 0.45, ys[g] + 0.45], color="C0", lw=2, zorder=4)
            at = min(sol, key=lambda x: abs(math.log(depth_axis_value(x) / d)) if depth_axis_value(x) > 0 else math.inf)
            ax.text(d * 1.04, ys[g] + 0.3, f"{r.get('sigma_target', math.nan):g} at {d:.3g}\n(suite mean {at.get('sigma_grad_mean', math.nan):.3f})",
                    fontsize=6, color="C0", va="center")
        elif sol:
            last = sol[-1]
            floor = (f" {last['sigma_floor']:.3f} dex/kpc" if last["verdict"] == "calibration floor"
                     and math.isfinite(last.get("sigma_floor", math.nan)) else "")
            ax.text(0.98, ys[g] + 0.35, f"target: {last['verdict']}{floor}", transform=ax.get_yaxis_transform(),
                    ha="right", fontsize=7, color="C3")
    ax.set_xscale("log")
    ax.set_yticks(range(len(grads)), [f"{g:g}" for g in grads])
    ax.set_ylim(-0.7, len(grads) - 0.3)
    ax.set_ylabel("|grad_z| [dex/kpc]")
    ax.set_xlabel(_axis_label(rows))
    d = [depth_axis_value(r) for r in rows]
    d = [v for v in d if math.isfinite(v)]
    if d:
        ax.set_xlim(min(d) / 1.6, max(d) * 1.6)


def plot_design_map(rows: list[dict], path, title: str = "") -> None:
    """Write the design map (PNG) of a plan's rows, one panel per setup.

    Cells: verdict colour, median ratio (top) and sigma(grad) in dex/kpc
    (bottom); small black-edged cells: depths the solver ran; blue bar: the
    solved depth reaching ``sigma_target`` (with its suite's mean sigma, the
    solver's estimator).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    setups = list(dict.fromkeys(r["setup"] for r in rows))
    grads = sorted({r["grad_z_abs"] for r in rows})
    fig, axes = plt.subplots(len(setups), 1, figsize=(7.5, 1.2 + 1.1 * len(grads) * len(setups)), squeeze=False)
    for ax, name in zip(axes[:, 0], setups):
        sub = [r for r in rows if r["setup"] == name]
        _panel(ax, sub, grads)
        x = sub[0]["x_resolution"]
        ax.set_title(f"{name} ({sub[0]['preset']}, {sub[0]['preset_status']}); x = 2 r_eff / FWHM = "
                     f"{x:.2f}" if np.isfinite(x) else name, fontsize=8)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", fontsize=7, ncol=4)
    fig.suptitle(title + "\ncell: median measured/intrinsic, median sigma(grad); small cells: solver suites; bar: depth for sigma_target",
                 fontsize=8, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))
    tmp = Path(path).with_name(f".{Path(path).stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
