"""Radial metallicity profile figure, like the panels observers publish."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["plot_profile", "posterior_draws"]

_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]

#: Extensions a profile figure can be saved with.
FORMATS = (".png", ".pdf")


def check_figure_path(path, overwrite: bool = True) -> Path:
    """A figure path: extension in :data:`FORMATS`, a writable folder (one-line errors)."""
    from ..errors import ConfigError
    from ..fileio import check_output_path

    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"path = {str(path)!r}: extension {path.suffix.lower()!r}; allowed {FORMATS}")
    return check_output_path(path, overwrite)


def posterior_draws(gradient: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of (grad_z, z0) from a gradient record's Gaussian posterior.

    ``gradient["covariance"]`` is ordered (grad_z, z0), as in
    :class:`~mockzgrad.recovery.gradient.GradientFit`.
    """
    mean = np.array([gradient["grad_z"], gradient["z0"]])
    return rng.multivariate_normal(mean, np.array(gradient["covariance"]), size=n)


def plot_profile(result, path, *, n_draws: int = 100, rng: np.random.Generator | None = None,
                 truth: dict | None = None) -> Path:
    """Per-bin 12+log(O/H) against radius with the fitted gradients.

    Parameters
    ----------
    result : RecoveryResult
    path : str or Path
        Output file; the format follows the extension (.png, .pdf).
    n_draws : int
        Posterior draws of the primary gradient shown as thin lines.
    rng : numpy.random.Generator, optional
        For the draws (default: seed 0, so figures are reproducible).
    truth : dict, optional
        ``{"z0": ..., "grad_z": ...}`` of a mock, drawn as a dashed line.
    """
    from matplotlib.figure import Figure

    from ..fileio import atomic_write

    check_figure_path(path)
    rng = rng or np.random.default_rng(0)
    fig = Figure(figsize=(6.0, 4.2), constrained_layout=True)
    ax = fig.add_subplot()
    labels = []
    for b in result.bins:
        labels.extend(b.get("metallicity", {}).keys())
    labels = list(dict.fromkeys(labels))
    r_all = [b["radius_kpc"] for b in result.bins]
    r_line = np.linspace(0.0, max(r_all) * 1.05 if r_all else 1.0, 50)
    for k, label in enumerate(labels):
        r, z, lo, hi = [], [], [], []
        for b in result.bins:
            m = b.get("metallicity", {}).get(label)
            if m and m.get("z") is not None:
                r.append(b["radius_kpc"]); z.append(m["z"]); lo.append(m["z_lo"]); hi.append(m["z_hi"])
        if not r:
            continue
        color = "k" if label == result.method else _COLORS[k % len(_COLORS)]
        z = np.array(z)
        # a bimodal bin's best fit can lie outside its 16-84 % interval
        yerr = np.clip(np.vstack([z - np.array(lo), np.array(hi) - z]), 0.0, None)
        shift = 0.0 if label == result.method else 0.02 * (k + 1) * (r_line[-1] or 1.0) / 5
        ax.errorbar(np.array(r) + shift, z, yerr=yerr, fmt="o" if label == result.method else "s",
                    ms=5 if label == result.method else 3, color=color, capsize=2,
                    label=f"Method {label}" if not label.startswith("II:") else label[3:])
        g = result.gradients.get(label, {})
        if g.get("grad_z") is not None:
            ax.plot(r_line, g["z0"] + g["grad_z"] * r_line, color=color, lw=1.5 if color == "k" else 0.8)
    g = result.gradients.get(result.method, {})
    cov = g.get("covariance")
    if g.get("grad_z") is not None and cov is not None and n_draws > 0:
        for gz, z0 in posterior_draws(g, n_draws, rng):
            ax.plot(r_line, z0 + gz * r_line, color="k", alpha=0.03, lw=1)
    if truth and truth.get("grad_z") is not None:
        ax.plot(r_line, truth["z0"] + truth["grad_z"] * r_line, "--", color="0.4", label="intrinsic")
    title = f"{result.recipe['recipe']['name']}: grad_z = "
    title += (f"{result.grad_z:+.3f} +{result.grad_z_hi - result.grad_z:.3f} "
              f"-{result.grad_z - result.grad_z_lo:.3f} dex/kpc" if math.isfinite(result.grad_z)
              else "none")
    ax.set_title(title, fontsize=9)
    lensed = bool(((result.recipe or {}).get("lensing") or {}).get("use"))
    # a lensed recipe measures radii in the source plane (observer's lens model)
    ax.set_xlabel(("source-plane " if lensed else "") + "deprojected radius [kpc]")
    ax.set_ylabel("12 + log(O/H)")
    ax.legend(fontsize=7, frameon=False)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130), overwrite=True)
