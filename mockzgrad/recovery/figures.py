"""Radial metallicity profile figure, like the panels observers publish."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["plot_profile", "posterior_draws", "true_profile", "method_name", "METHOD_NAMES",
           "profile_figure"]

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


#: Legend names of the metallicity methods (labels of the recovery result).
METHOD_NAMES = {"I": "Method I (all diagnostics jointly)",
                "II": "Method II (median of single-diagnostic gradients)",
                "flux": "line-flux fit (Z and A_V jointly)"}


def method_name(label: str) -> str:
    """Legend name of a metallicity label: ``"II:<key>"`` is ``"<key> alone"``."""
    if label.startswith("II:"):
        return f"{label[3:]} alone"
    return METHOD_NAMES.get(label, f"Method {label}")


def true_profile(truth: dict, r_kpc: np.ndarray) -> np.ndarray | None:
    """The mock's intrinsic 12+log(O/H) at ``r_kpc`` from a truth record (None without one).

    Linear ``z0 + grad_z r``; for ``z_profile = "broken_linear"`` the slope
    changes to ``grad_z_outer`` at ``r_break`` (kpc), as the source model does.
    """
    if not truth or truth.get("grad_z") is None or truth.get("z0") is None:
        return None
    r = np.asarray(r_kpc, dtype=float)
    z0, g = float(truth["z0"]), float(truth["grad_z"])
    if truth.get("z_profile") == "broken_linear":
        rb, go = float(truth["r_break"]), float(truth["grad_z_outer"])
        return z0 + g * np.minimum(r, rb) + go * np.maximum(r - rb, 0.0)
    return z0 + g * r


def _bin_points(result, label):
    """Radius, z, lo, hi and the pinned flag of the bins with a metallicity under ``label``."""
    r, z, lo, hi, edge = [], [], [], [], []
    for b in result.bins:
        m = b.get("metallicity", {}).get(label)
        if m and m.get("z") is not None:
            r.append(b["radius_kpc"]); z.append(m["z"]); lo.append(m["z_lo"]); hi.append(m["z_hi"])
            edge.append(bool(m.get("at_range_edge")))
    return (np.array(r, dtype=float), np.array(z, dtype=float), np.array(lo, dtype=float),
            np.array(hi, dtype=float), np.array(edge, dtype=bool))


def _draw_method(ax, result, label, k, r_line) -> bool:
    """Points and fitted line of one label; True when a pinned bin was drawn (open symbol)."""
    r, z, lo, hi, edge = _bin_points(result, label)
    primary = label == result.method
    color = "k" if primary else _COLORS[k % len(_COLORS)]
    if r.size:
        # a bimodal bin's best fit can lie outside its 16-84 % interval
        yerr = np.clip(np.vstack([z - lo, hi - z]), 0.0, None)
        r = r + (0.0 if primary else 0.02 * (k + 1) * (r_line[-1] or 1.0) / 5)
        fmt, ms = ("o", 5) if primary else ("s", 3)
        for sel, face in ((~edge, color), (edge, "none")):
            if sel.any():
                ax.errorbar(r[sel], z[sel], yerr=yerr[:, sel], fmt=fmt, ms=ms, color=color, mfc=face,
                            capsize=2, label=method_name(label) if face == color or not (~edge).any()
                            else None)
    g = result.gradients.get(label, {})
    if g.get("grad_z") is not None and g.get("z0") is not None:
        ax.plot(r_line, g["z0"] + g["grad_z"] * r_line, color=color, lw=1.5 if primary else 0.8,
                label=None if r.size else method_name(label))
    return bool(edge.any())


def plot_profile(result, path, *, n_draws: int = 100, rng: np.random.Generator | None = None,
                 truth: dict | None = None) -> Path:
    """Per-bin 12+log(O/H) against radius with the fitted gradients.

    Bins whose metallicity is pinned at a calibration limit (a validity-range
    edge or a calibration extreme: ``at_range_edge`` in the bin record) are
    drawn with open symbols: they are bounds, not measurements.

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
        A mock's truth (``z0``, ``grad_z``; optionally ``z_profile``,
        ``r_break``, ``grad_z_outer`` and ``z_valid_range``, as in the
        cube's TRUTH): the intrinsic Z(r) is drawn dashed, and the generating
        calibrations' common range (beyond which line ratios were clipped)
        dotted.
    """
    from ..fileio import atomic_write

    check_figure_path(path)
    fig = profile_figure(result, n_draws=n_draws, rng=rng, truth=truth)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130), overwrite=True)


def _lensed(result) -> bool:
    return bool(((result.recipe or {}).get("lensing") or {}).get("use"))


def radius_label(result) -> str:
    """x-axis label of the profile: a lensed recovery's radii are source-plane elliptical radii of the
    spaxels' ray-traced centres (observer's lens model), not an image-plane deprojection."""
    return "source-plane radius [kpc]" if _lensed(result) else "deprojected radius [kpc]"


def plane_note(result) -> str:
    """Figure note of a lensed recovery with azimuthal sectors: their azimuths are image-plane ("" otherwise)."""
    binning = (result.recipe or {}).get("binning") or {}
    if _lensed(result) and binning.get("sectors"):
        return "sectors: azimuth measured in the image plane"
    return ""


def profile_figure(result, *, n_draws: int = 100, rng: np.random.Generator | None = None,
                   truth: dict | None = None):
    """The matplotlib Figure of :func:`plot_profile` (same parameters, nothing written)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rng = rng or np.random.default_rng(0)
    fig = Figure(figsize=(6.0, 4.2), constrained_layout=True)
    ax = fig.add_subplot()
    labels = []
    for b in result.bins:
        labels.extend(b.get("metallicity", {}).keys())
    labels = list(dict.fromkeys(labels))
    if result.method not in labels and result.gradients.get(result.method, {}).get("grad_z") is not None:
        labels.append(result.method)  # Method II: the median has a line but no bins of its own
    r_all = [b["radius_kpc"] for b in result.bins]
    r_line = np.linspace(0.0, max(r_all) * 1.05 if r_all else 1.0, 50)
    pinned = False
    for k, label in enumerate(labels):
        pinned |= _draw_method(ax, result, label, k, r_line)
    g = result.gradients.get(result.method, {})
    cov = g.get("covariance")
    if g.get("grad_z") is not None and cov is not None and n_draws > 0:
        for gz, z0 in posterior_draws(g, n_draws, rng):
            ax.plot(r_line, z0 + gz * r_line, color="k", alpha=0.03, lw=1)
    z_true = true_profile(truth or {}, r_line)
    if z_true is not None:
        ax.plot(r_line, z_true, "--", color="0.35", lw=1.2, label="true Z(r) of the mock")
        vr = (truth or {}).get("z_valid_range")
        if vr is not None and len(vr) == 2 and all(v is not None and math.isfinite(v) for v in vr):
            for v in vr:
                ax.axhline(v, ls=":", color="0.6", lw=0.8)
            ax.plot([], [], ls=":", color="0.6", lw=0.8, label="generating calibrations' range")
    handles, names = ax.get_legend_handles_labels()
    if pinned:
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", color="0.3"))
        names.append("pinned at a calibration limit (a bound)")
    title = f"{result.recipe['recipe']['name']}: grad_z = "
    title += (f"{result.grad_z:+.3f} +{result.grad_z_hi - result.grad_z:.3f} "
              f"-{result.grad_z - result.grad_z_lo:.3f} dex/kpc ({method_name(result.method)})"
              if math.isfinite(result.grad_z) else "none")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(radius_label(result))
    note = plane_note(result)
    if note:
        ax.annotate(note, (0.01, 0.01), xycoords="axes fraction", fontsize=6, color="0.4")
    ax.set_ylabel("12 + log(O/H) [dex]")
    ax.legend(handles, names, fontsize=7, frameon=False)
    return fig
