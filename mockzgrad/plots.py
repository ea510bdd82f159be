"""Figures of correction curves, surfaces and corrected gradients.

Every function builds its own :class:`matplotlib.figure.Figure` on an Agg
canvas (no pyplot, no global state), saves it to ``path`` in the format of
the extension (``.png`` or ``.pdf``) and returns the figure.
"""

from __future__ import annotations

import os
import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .corrections.binning import assign_groups
from .corrections.columns import as_table, canonical_columns, column_map, soft_numeric, status_ok
from .corrections.correct import DEFAULT_COLUMNS
from .corrections.curveset import CorrectionCurves
from .errors import ConfigError, DataError

__all__ = ["plot_curves", "plot_surface", "plot_corrections", "FORMATS"]

#: Extensions a figure can be saved with.
FORMATS = (".png", ".pdf")
_SIGN_STYLE = {
    "both": {"color": "k", "ls": "-", "label": "pooled"},
    "pos": {"color": "C0", "ls": "--", "label": "positive"},
    "neg": {"color": "C3", "ls": ":", "label": "negative"},
}
_X_LABEL = r"$x = 2\,r_\mathrm{eff}\,/\,\mathrm{FWHM}_\mathrm{PSF}$"
_RATIO_LABEL = r"$\nabla Z_\mathrm{measured}\,/\,\nabla Z_\mathrm{intrinsic}$"


def _check_path(path) -> str:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ConfigError(f"path = {path!r}: extension {ext!r}; allowed {FORMATS}")
    from .fileio import check_output_path

    check_output_path(path, overwrite=True)
    return path


def _new_figure(n_panels, *, panel_size=(4.2, 3.4), max_cols=3):
    ncols = min(max_cols, max(n_panels, 1))
    nrows = int(np.ceil(max(n_panels, 1) / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _save(fig, path):
    from .fileio import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120), overwrite=True)
    return fig


def plot_curves(curves: CorrectionCurves, path, *, table=None) -> Figure:
    """Plot the correction curves, one panel per intrinsic ``|grad_z|``.

    Parameters
    ----------
    curves : CorrectionCurves
    path : str or path-like
        Output file, ``.png`` or ``.pdf``.
    table : `~astropy.table.Table` or convertible, optional
        The suite's results table (columns as for
        :func:`~mockzgrad.corrections.curves.derive_curves`); its mocks are drawn as
        points (positive intrinsic gradients up-triangles, negative
        down-triangles), grouped as the curves were.

    Returns
    -------
    `~matplotlib.figure.Figure`

    Notes
    -----
    Each panel shows per sign (pooled black solid, positive blue dashed,
    negative red dotted) the running median (markers) with its 15.87-84.13
    percentile band (shaded for the pooled curve, error bars otherwise) and
    the fitted polynomial over the mocks' x range.
    """
    path = _check_path(path)
    grads = sorted({c.abs_grad for c in curves.curves})
    fig, axes = _new_figure(len(grads))
    mocks = _mock_ratios(curves, table) if table is not None else None
    for ax, g in zip(axes, grads):
        if mocks is not None:
            _draw_mocks(ax, g, *mocks)
        for c in curves.curves:
            if c.abs_grad == g:
                _draw_curve(ax, c)
        ax.axhline(1.0, color="0.5", lw=0.6)
        ax.set_title(rf"$|\nabla Z| = {g:g}$ dex/kpc", fontsize=10)
        ax.set_xlabel(_X_LABEL)
        ax.set_ylabel(_RATIO_LABEL)
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _draw_mocks(ax, g, x, r, label, sgn):
    """The mocks of group ``g``: positive intrinsic gradients up-triangles, negative down-triangles."""
    sel = np.isclose(label, g, rtol=0, atol=1e-6)
    for s, marker, color in ((1, "^", "C0"), (-1, "v", "C3")):
        k = sel & (sgn == s)
        if k.any():
            ax.scatter(x[k], r[k], s=6, marker=marker, color=color, alpha=0.3, lw=0, rasterized=True)


def _draw_curve(ax, c):
    """One curve: running median with its 16-84 band (pooled) or error bars (one sign), and the polynomial."""
    st = _SIGN_STYLE[c.sign]
    run = c.running
    ok = np.isfinite(run.median)
    if ok.any():
        if c.sign == "both":
            ax.fill_between(run.x_center[ok], run.p16[ok], run.p84[ok], color="0.6", alpha=0.35, lw=0)
            ax.plot(run.x_center[ok], run.median[ok], "o", color=st["color"], ms=3)
        else:
            off = 0.01 * (c.x_range[1] - c.x_range[0]) * (1 if c.sign == "pos" else -1)
            ax.errorbar(run.x_center[ok] + off, run.median[ok],
                        yerr=[run.median[ok] - run.p16[ok], run.p84[ok] - run.median[ok]],
                        fmt="o", color=st["color"], ms=2.5, lw=0.8, capsize=0)
    xx = np.linspace(c.x_range[0], c.x_range[1], 200)
    ax.plot(xx, c.fit(xx), color=st["color"], ls=st["ls"], lw=1.4, label=f"{st['label']} (deg {c.fit.degree})")


def _mock_ratios(curves, table):
    cols = curves.settings.get("columns")
    cmap = column_map({k: v for k, v in cols.items() if k in column_map(None)} if cols else None)
    t = canonical_columns(as_table(table), cmap)
    g_true = soft_numeric(t, "grad_z_true")
    g_meas = soft_numeric(t, "grad_z_measured")
    x = soft_numeric(t, "x_resolution")
    ok = status_ok(t) & np.isfinite(g_true) & (g_true != 0) & np.isfinite(g_meas) & np.isfinite(x) & (x > 0)
    grouping = curves.settings.get("grouping", {"mode": "discrete"})
    label = assign_groups(np.abs(g_true[ok]), grouping)
    return x[ok], g_meas[ok] / g_true[ok], label, np.sign(g_true[ok])


def plot_surface(curves: CorrectionCurves, path, *, sign: str = "both") -> Figure:
    """Plot the ``ratio(x, inclination)`` surfaces, one panel per ``|grad_z|``.

    Parameters
    ----------
    curves : CorrectionCurves
        Must have surfaces (a suite that varied inclination).
    path : str or path-like
        ``.png`` or ``.pdf``.
    sign : {"both", "pos", "neg"}

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    path = _check_path(path)
    sel = [c for c in curves.curves if c.sign == sign]
    if not sel:
        raise ConfigError(f"sign = {sign!r}; allowed for these curves: {curves.signs}")
    if not any(c.surface is not None for c in sel):
        raise ConfigError("the curves have no (x, inclination) surface: the suite did not vary inclination "
                          "(>= 3 distinct values needed)")
    sel = [c for c in sel if c.surface is not None]
    fig, axes = _new_figure(len(sel))
    for ax, c in zip(axes, sel):
        s = c.surface
        xx = np.linspace(c.x_range[0], c.x_range[1], 120)
        ii = np.linspace(s.inclination_range[0], s.inclination_range[1], 90)
        gx, gi = np.meshgrid(xx, ii)
        z = s(gx, gi)
        mesh = ax.pcolormesh(gx, gi, z, shading="auto", cmap="viridis")
        cs = ax.contour(gx, gi, z, levels=8, colors="w", linewidths=0.6)
        ax.clabel(cs, fontsize=6, fmt="%.2f")
        fig.colorbar(mesh, ax=ax, label=_RATIO_LABEL)
        ax.set_title(rf"$|\nabla Z| = {c.abs_grad:g}$ dex/kpc ({sign}; deg {s.degree_x}, {s.degree_inclination})",
                     fontsize=9)
        ax.set_xlabel(_X_LABEL)
        ax.set_ylabel("inclination (deg)")
    return _save(fig, path)


_CORR_RE = re.compile(r"^grad_corr_g([0-9.eE+-]+)$")


def plot_corrections(corrected_table, path, *, gradient_column: str | None = None) -> Figure:
    """Observed vs corrected gradients of a table from :func:`~mockzgrad.corrections.correct.correct_table`.

    Left: per galaxy, the measured gradient and every correction
    (``grad_corr_g*`` and the self-consistent one where unique) with their
    15.87-84.13 percentile errors. Right: histograms of the same.

    Parameters
    ----------
    corrected_table : `~astropy.table.Table` or convertible
    path : str or path-like
        ``.png`` or ``.pdf``.
    gradient_column : str, optional
        Column of the measured gradient; default from the table's meta
        (the column map used) or ``gradient_dex_per_kpc``.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    path = _check_path(path)
    t = as_table(corrected_table)
    meta = t.meta.get("mockzgrad_correct", {}) if hasattr(t, "meta") else {}
    cmap = meta.get("columns", DEFAULT_COLUMNS)
    series = _correction_series(t, cmap, gradient_column or cmap.get("gradient", DEFAULT_COLUMNS["gradient"]))
    ids = (np.asarray(t[cmap.get("id", "id")]).astype(str) if cmap.get("id", "id") in t.colnames
           else np.arange(len(t)).astype(str))
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax, axh = fig.subplots(1, 2, width_ratios=(2.2, 1))
    allvals = _draw_gradients(ax, t, series)
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xticks(np.arange(len(t)))
    ax.set_xticklabels(ids, rotation=60, fontsize=7)
    ax.set_ylabel(r"$\nabla Z$ (dex/kpc)")
    ax.set_title(f"x: {meta.get('x_source', 'per row')}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    _draw_histograms(axh, t, series, allvals)
    return _save(fig, path)


def _correction_series(t, cmap, gcol):
    """(label, value column, err_minus column, err_plus column) of the measured and every corrected gradient."""
    corr = [(m.group(1), name) for name in t.colnames for m in [_CORR_RE.match(name)] if m]
    missing = [c for c in (gcol, cmap.get("err_minus", "err_minus"), cmap.get("err_plus", "err_plus"))
               if c not in t.colnames]
    if missing or not corr:
        raise DataError(f"corrected table lacks {missing or 'grad_corr_g* columns'}; present: {t.colnames}")
    series = [("measured", gcol, cmap.get("err_minus", "err_minus"), cmap.get("err_plus", "err_plus"))]
    series += [(rf"$g = {g}$", name, name + "_err_minus", name + "_err_plus") for g, name in corr]
    if "grad_selfcons" in t.colnames:
        series.append(("self-consistent", "grad_selfcons", "grad_selfcons_err_minus", "grad_selfcons_err_plus"))
    return series


def _series_color(k, col):
    return "k" if k == 0 else ("C3" if col == "grad_selfcons" else f"C{(k - 1) % 10}")


def _draw_gradients(ax, t, series):
    """Every series per galaxy with its errors, side by side; returns the finite values drawn per series."""
    n = len(t)
    idx = np.arange(n)
    width = 0.7
    allvals = []
    for k, (label, col, cm, cp) in enumerate(series):
        y = soft_numeric(t, col)
        em = soft_numeric(t, cm) if cm in t.colnames else np.zeros(n)
        ep = soft_numeric(t, cp) if cp in t.colnames else np.zeros(n)
        off = (k - (len(series) - 1) / 2) * width / max(len(series), 1)
        marker = "s" if k == 0 else ("D" if col == "grad_selfcons" else "o")
        ok = np.isfinite(y)
        ax.errorbar(idx[ok] + off, y[ok], yerr=[np.nan_to_num(em[ok]), np.nan_to_num(ep[ok])], fmt=marker,
                    color=_series_color(k, col), ms=3.5, lw=0.8, capsize=0, label=label)
        allvals.append(y[ok])
    return allvals


def _draw_histograms(axh, t, series, allvals):
    """Histograms of every series on common bins spanning all values drawn."""
    finite = np.concatenate([v for v in allvals if v.size]) if any(v.size for v in allvals) else np.zeros(1)
    lo, hi = float(np.min(finite)), float(np.max(finite))
    if hi <= lo:
        lo, hi = lo - 0.05, hi + 0.05
    bins = np.linspace(lo, hi, 16)
    for k, (label, col, _, _) in enumerate(series):
        y = soft_numeric(t, col)
        y = y[np.isfinite(y)]
        if y.size:
            axh.hist(y, bins=bins, histtype="step", color=_series_color(k, col), lw=1.6 if k == 0 else 1.0,
                     label=label)
    axh.set_xlabel(r"$\nabla Z$ (dex/kpc)")
    axh.set_ylabel("galaxies")
