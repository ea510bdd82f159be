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

__all__ = ["plot_curves", "plot_surface", "plot_corrections", "plot_transfer", "FORMATS"]

#: Extensions a figure can be saved with.
FORMATS = (".png", ".pdf")
_SIGN_STYLE = {
    "both": {"color": "k", "ls": "-", "label": "pooled"},
    "pos": {"color": "C0", "ls": "--", "label": "positive"},
    "neg": {"color": "C3", "ls": ":", "label": "negative"},
}
_X_LABEL = r"$x = 2\,r_\mathrm{eff}\,/\,\mathrm{FWHM}_\mathrm{PSF}$"
_X_LABEL_SOURCE = r"$x = 2\,r_\mathrm{eff}\,/\,\mathrm{FWHM}_\mathrm{PSF}$, source plane"
#: Ratio axis limits shown at least; mocks beyond the drawn limits are drawn at the edge (open markers).
_RATIO_VIEW = (0.0, 1.2)
_RATIO_LABEL = r"$\nabla Z_\mathrm{measured}\,/\,\nabla Z_\mathrm{intrinsic}$"
#: gid of a fitted curve's line: its legend entry goes in the panel (with its form), not below the figure.
_FIT_GID = "ratio_fit"


def x_label(columns=None) -> str:
    """Axis label of x for the results column used as x (``columns["x_resolution"]``).

    A column named ``*source*`` (e.g. ``x_resolution_source`` of lensed
    suites) is the source-plane resolution, and the label says so.
    """
    name = str((columns or {}).get("x_resolution") or "x_resolution")
    if "source" in name:
        return _X_LABEL_SOURCE
    if name != "x_resolution":
        return _X_LABEL + f" ({name})"
    return _X_LABEL


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
    the fitted polynomial over the mocks' x range, labelled in the panel with
    its form ("deg 2 in x", "deg 1 in 1/x"; a polynomial in x has open
    squares along it, one in 1/x is a plain line); a curve that is not
    admissible (leaves the ratio bounds or turns over, ``checks["shape"]``)
    is drawn thin and grey and says so in the legend; a pooled curve whose
    mocks are all of one sign (the other sign's left out, e.g. for the
    calibrations' range) is drawn once and labelled "pooled (negative mocks
    only)". The ratio axis spans at
    least [0, 1.2] and the running bands and curves; mocks beyond it (the
    ratio of a weak gradient is dominated by noise) are drawn at the edge as
    open markers and counted in the panel. The x label names the source plane
    when the curves were made from a source-plane x column.
    """
    path = _check_path(path)
    grads = sorted({c.abs_grad for c in curves.curves})
    fig, axes = _new_figure(len(grads))
    mocks = _mock_ratios(curves, table) if table is not None else None
    bad = {(float(p["abs_grad"]), str(p["sign"])) for p in (curves.checks or {}).get("shape", [])}
    xlab = x_label((curves.settings or {}).get("columns"))
    for ax, g in zip(axes, grads):
        mine = [c for c in curves.curves if c.abs_grad == g]
        lims = _ratio_limits(mine)
        n_out = _draw_mocks(ax, g, *mocks, lims=lims) if mocks is not None else (0, 0)
        for c in _distinct_curves(mine):
            only = _one_sign_only(c, mine)
            _draw_curve(ax, c, admissible=(float(c.abs_grad), c.sign) not in bad,
                        label=None if only is None else f"pooled ({_SIGN_STYLE[only]['label']} mocks only)")
        ax.set_ylim(*lims)
        ax.axhline(1.0, color="0.5", lw=0.6)
        note = (f"\n{n_out[0]} of {n_out[1]} mocks beyond the axis (open markers)"
                if n_out[0] else "")
        ax.set_title(rf"$|\nabla Z| = {g:g}$ dex/kpc" + note, fontsize=10 if not note else 8.5)
        ax.set_xlabel(xlab)
        ax.set_ylabel(_RATIO_LABEL)
        fits = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels()) if h.get_gid() == _FIT_GID]
        if fits:  # the fitted curves of this panel, each with its form (never an empty legend box)
            ax.legend(*zip(*fits), fontsize=6.5, loc="lower right", framealpha=0.8, handlelength=3.2)
    _figure_legend(fig, axes)
    prov = curves.provenance or {}
    if prov.get("suite"):
        fig.suptitle(f"ratio curves of suite {prov['suite']!r}" + (f", recipe {prov['recipe']}" if prov.get("recipe")
                                                                  else ""), fontsize=10)
    return _save(fig, path)


def _ratio_limits(curves_here) -> tuple:
    """Ratio axis limits: at least :data:`_RATIO_VIEW`, widened to the running bands and the fits, padded."""
    lo, hi = _RATIO_VIEW
    for c in curves_here:
        run = c.running
        ok = np.isfinite(run.p16) & np.isfinite(run.p84)
        if ok.any():
            lo, hi = min(lo, float(np.min(run.p16[ok]))), max(hi, float(np.max(run.p84[ok])))
        fx = c.fit(np.linspace(c.x_range[0], c.x_range[1], 50))
        lo, hi = min(lo, float(np.min(fx))), max(hi, float(np.max(fx)))
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def _figure_legend(fig, axes):
    """One legend below the panels for the entries every panel shares (mocks, band, running median)."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if h.get_gid() != _FIT_GID and lab not in seen:
                seen[lab] = h
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside lower center", ncol=min(len(seen), 5),
                   fontsize=8, frameon=False)


def _draw_mocks(ax, g, x, r, label, sgn, lims=None):
    """The mocks of group ``g``: positive intrinsic gradients up-triangles, negative down-triangles; those
    beyond ``lims`` at the edge as open markers, counted in the panel."""
    sel = np.isclose(label, g, rtol=0, atol=1e-6)
    lo, hi = lims if lims is not None else (-np.inf, np.inf)
    for s, marker, color in ((1, "^", "C0"), (-1, "v", "C3")):
        k = sel & (sgn == s)
        inside = k & (r >= lo) & (r <= hi)
        if inside.any():
            ax.scatter(x[inside], r[inside], s=14, marker=marker, color=color, alpha=0.55, lw=0, rasterized=True,
                       label="mocks, " + ("positive" if s > 0 else "negative") + r" $\nabla Z$")
        out = k & ~((r >= lo) & (r <= hi))
        if out.any():
            edge = np.where(r[out] > hi, hi - 0.012 * (hi - lo), lo + 0.012 * (hi - lo))
            ax.scatter(x[out], edge, s=16, marker=marker, facecolors="none", edgecolors=color,
                       lw=0.7, label="mocks beyond the axis (at its edge)")
    return int(np.sum(sel & ~((r >= lo) & (r <= hi)))), int(sel.sum())


def _one_sign_only(c, mine):
    """For a pooled curve whose mocks are all of one sign (the other's were left out, e.g. for the
    calibrations' range): that sign ("pos" or "neg"); else None."""
    if c.sign != "both":
        return None
    same = [o.sign for o in mine if o.sign in ("pos", "neg") and o.n_mocks == c.n_mocks]
    others = [o for o in mine if o.sign in ("pos", "neg")]
    return same[0] if len(others) == 1 and same else None


def _distinct_curves(mine):
    """The curves of one panel, without a one-sign curve identical to the pooled one (drawn once, as pooled)."""
    return [c for c in mine if not (c.sign in ("pos", "neg")
                                    and any(_one_sign_only(o, mine) == c.sign for o in mine))]


def _draw_curve(ax, c, admissible=True, label=None):
    """One curve: running median with its 16-84 band (pooled) or error bars (one sign), and the polynomial
    (thin grey, labelled, when it is not admissible); ``label`` replaces the sign's name in the legend."""
    st = dict(_SIGN_STYLE[c.sign])
    if label is not None:
        st["label"] = label
    run = c.running
    ok = np.isfinite(run.median)
    if ok.any():
        if c.sign == "both":
            ax.fill_between(run.x_center[ok], run.p16[ok], run.p84[ok], color="0.6", alpha=0.35, lw=0,
                            label="16-84 % of mocks")
            ax.plot(run.x_center[ok], run.median[ok], "o", color=st["color"], ms=3, label="running median")
        else:
            off = 0.01 * (c.x_range[1] - c.x_range[0]) * (1 if c.sign == "pos" else -1)
            ax.errorbar(run.x_center[ok] + off, run.median[ok],
                        yerr=[run.median[ok] - run.p16[ok], run.p84[ok] - run.median[ok]],
                        fmt="o", color=st["color"], ms=2.5, lw=0.8, capsize=0)
    xx = np.linspace(c.x_range[0], c.x_range[1], 200)
    form = fit_form_text(c.fit)
    # a polynomial in x carries open squares along it, one in 1/x is a plain line: forms told apart at a glance
    marks = {"marker": "s", "markevery": 40, "ms": 3.5, "mfc": "white"} if c.fit.variable == "x" else {}
    if admissible:
        ax.plot(xx, c.fit(xx), color=st["color"], ls=st["ls"], lw=1.4, label=f"{st['label']}, {form}", gid=_FIT_GID,
                **marks)
    else:
        ax.plot(xx, c.fit(xx), color="0.55", ls=st["ls"], lw=0.8, label=f"{st['label']}, {form} (NOT admissible)",
                gid=_FIT_GID, **marks)


def fit_form_text(fit) -> str:
    """The form of a fitted curve for a legend: ``"deg d in x"`` or ``"deg d in 1/x"``."""
    return f"deg {fit.degree} in {fit.variable}"


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
    grids = []
    for c in sel:
        xx = np.linspace(c.x_range[0], c.x_range[1], 120)
        ii = np.linspace(c.surface.inclination_range[0], c.surface.inclination_range[1], 90)
        gx, gi = np.meshgrid(xx, ii)
        grids.append((gx, gi, c.surface(gx, gi)))
    # one colour scale for every panel, spanning at least [0, 1]: a surface fitted to noise must not look
    # like structure on a stretched scale of its own
    vmin = min(0.0, *(float(np.nanmin(z)) for *_, z in grids))
    vmax = max(1.0, *(float(np.nanmax(z)) for *_, z in grids))
    for ax, c, (gx, gi, z) in zip(axes, sel, grids):
        s = c.surface
        mesh = ax.pcolormesh(gx, gi, z, shading="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        cs = ax.contour(gx, gi, z, levels=8, colors="w", linewidths=0.6)
        ax.clabel(cs, fontsize=6, fmt="%.2f")
        fig.colorbar(mesh, ax=ax, label=_RATIO_LABEL)
        ax.set_title(rf"$|\nabla Z| = {c.abs_grad:g}$ dex/kpc, {_SIGN_STYLE[sign]['label']}" + "\n"
                     f"polynomial degree {s.degree_x} in x, {s.degree_inclination} in inclination", fontsize=9)
        ax.set_xlabel(x_label((curves.settings or {}).get("columns")))
        ax.set_ylabel("inclination (deg)")
    return _save(fig, path)


_CORR_RE = re.compile(r"^grad_corr_g([0-9.eE+-]+)$")


def plot_corrections(corrected_table, path, *, gradient_column: str | None = None) -> Figure:
    """Observed vs corrected gradients of a table from :func:`~mockzgrad.corrections.correct.correct_table`.

    Left: per galaxy, the measured gradient and every correction
    (``grad_corr_g*``, the self-consistent one where unique and the
    transfer-function posterior ``grad_post`` when present) with their
    15.87-84.13 percentile errors; galaxies with a flag (columns ``flag``,
    ``grad_post_flag``) have their names in red and a shaded column. Right:
    histograms of the same, with a legend.

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
    flagged, common = _flagged_rows(t)
    for i in np.nonzero(flagged)[0]:
        ax.axvspan(i - 0.45, i + 0.45, color="C1", alpha=0.15, lw=0)
        ax.get_xticklabels()[i].set_color("C3")
    if flagged.any():
        ax.plot([], [], "s", color="C1", alpha=0.3, label="row with its own flag (see flag columns)")
    ax.set_ylabel(r"$\nabla Z$ (dex/kpc)")
    ax.set_xlabel("galaxy")
    title = _x_title(meta.get("x_source") or t.meta.get("mockzgrad_transfer", {}).get("x_source"))
    if common:
        title += "\nflags on every row: " + ", ".join(common)
    ax.set_title(title, fontsize=9)
    # below the panels: inside, it covers the galaxies' error bars
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=7, frameon=False)
    _draw_histograms(axh, t, series, allvals)
    axh.legend(fontsize=7)
    return _save(fig, path)


def _x_title(source) -> str:
    """Where the galaxies' resolution x came from, for a figure title."""
    x = r"$x = 2\,r_\mathrm{eff}/\mathrm{FWHM}_\mathrm{PSF}$"
    if not source:
        return f"{x} per galaxy"
    if source.startswith("argument x = "):
        value = source[len("argument x = "):].replace(":", "-")
        kind = "range" if "-" in value else "value"
        return f"{x} = {value} for every galaxy (sample-wide {kind})"
    return f"{x} per galaxy, from {source}"


def _flagged_rows(t):
    """Rows with a flag (in ``flag`` or ``grad_post_flag``) that not every row has, and the flags all rows share."""
    flags = [set() for _ in range(len(t))]
    for col in ("flag", "grad_post_flag"):
        if col in t.colnames:
            for i, v in enumerate(np.asarray(t[col]).astype(str)):
                flags[i] |= {f"{f} ({'ratio' if col == 'flag' else 'transfer'})" for f in v.split(";") if f != "ok"}
    common = set.intersection(*flags) if flags else set()
    return np.array([bool(f - common) for f in flags], bool), sorted(common)


def _correction_series(t, cmap, gcol):
    """(label, value column, err_minus column, err_plus column) of the measured and every corrected gradient."""
    corr = [(m.group(1), name) for name in t.colnames for m in [_CORR_RE.match(name)] if m]
    missing = [c for c in (gcol, cmap.get("err_minus", "err_minus"), cmap.get("err_plus", "err_plus"))
               if c not in t.colnames]
    if missing or not (corr or "grad_post" in t.colnames):
        raise DataError(f"corrected table lacks {missing or 'grad_corr_g* columns'}; present: {t.colnames}")
    series = [("measured", gcol, cmap.get("err_minus", "err_minus"), cmap.get("err_plus", "err_plus"))]
    series += [(rf"ratio, $|\nabla Z| = {g}$", name, name + "_err_minus", name + "_err_plus") for g, name in corr]
    if "grad_selfcons" in t.colnames:
        series.append(("self-consistent", "grad_selfcons", "grad_selfcons_err_minus", "grad_selfcons_err_plus"))
    if "grad_post" in t.colnames:
        series.append(("transfer posterior", "grad_post", "grad_post_err_minus", "grad_post_err_plus"))
    return series


#: Ratio corrections per assumed |grad_z|: light to dark blue with increasing |grad_z|.
_NODE_COLORS = ("#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b")


def _series_color(k, col):
    special = {"grad_selfcons": "C3", "grad_post": "C2"}
    return "k" if k == 0 else special.get(col, _NODE_COLORS[min(k - 1, len(_NODE_COLORS) - 1)])


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
        marker = "s" if k == 0 else {"grad_selfcons": "D", "grad_post": "*"}.get(col, "o")
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
            node = col.startswith("grad_corr_g")
            axh.hist(y, bins=bins, histtype="step", color=_series_color(k, col), lw=0.8 if node else 1.8,
                     ls="--" if node else "-", label=label)
    axh.set_xlabel(r"$\nabla Z$ (dex/kpc)")
    axh.set_ylabel("galaxies")


def plot_transfer(tf, path, *, table=None, columns=None) -> Figure:
    """The transfer function of a suite: measured = a(x) intrinsic + b(x), scatter s(x).

    Panels: the mocks' measured against intrinsic gradient coloured by x with
    the model at three x; the slope a(x), the offset b(x) and the scatter s(x)
    (model with its 1-sigma band from the covariance) against x with, from the
    mocks, least-squares slopes, intercepts and scatters in x bins (an
    independent check of the smooth forms) and, as open circles, the same
    bin fit applied to the model's mean at each bin's mocks (what the bin
    should measure if the model is right: a(x) changes across a wide bin, so
    the curve at the bin's median x is not the like value). The model is
    drawn in the first panel over each sign's own range of intrinsic
    gradients.

    Parameters
    ----------
    tf : `~mockzgrad.corrections.transfer.TransferFunction`
    path : str or path-like
        ``.png`` or ``.pdf``.
    table : `~astropy.table.Table` or convertible, optional
        The suite's results table (its mocks are drawn).
    columns : mapping, optional
        Column roles, as for the fit.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    from .corrections.transfer import read_suite_mocks

    path = _check_path(path)
    fig, axes = _new_figure(4, panel_size=(4.4, 3.5), max_cols=4)
    fig.get_layout_engine().set(wspace=0.06)  # room between the colour bar and the next panel's y label
    mocks = read_suite_mocks(table, columns) if table is not None else None
    xx = np.linspace(tf.x_range[0], tf.x_range[1], 200)
    _transfer_data_panel(axes[0], tf, mocks, x_label(columns))
    bins = _x_bin_stats(tf, mocks) if mocks is not None else None
    signs = (1.0, -1.0) if "sign" in tf.structure.extras else (1.0,)
    for s in signs:
        g = np.full_like(xx, s * tf.references["abs_grad"])
        at = f"model at |grad_z| = {tf.references['abs_grad']:g}" if "abs_grad" in tf.structure.extras else "model"
        medians = [e if e != "snr" else "S/N" for e in tf.structure.extras if e in ("inclination", "snr")]
        at += f" (suite's median {', '.join(medians)})" if medians else ""
        lab = at if len(signs) == 1 else (f"{at}, positive" if s > 0 else f"{at}, negative")
        a, sa = tf.slope(xx, g), tf.slope_std(xx, g)
        axes[1].plot(xx, a, color="k" if s > 0 else "C3", ls="-" if s > 0 else "--", label=lab)
        axes[1].fill_between(xx, a - sa, a + sa, color="k" if s > 0 else "C3", alpha=0.2, lw=0)
        if "abs_grad" in tf.structure.extras:  # the slope's spread over the suite's |grad_z|
            for ag, ls in zip(tf.sign_grad_range(s), ((0, (1, 1)), (0, (4, 1, 1, 1)))):
                a_ag = tf.slope(xx, np.full_like(xx, s * ag))
                if np.allclose(a_ag, a, rtol=0, atol=1e-9):  # below the knee: the same line, not drawn twice
                    continue
                axes[1].plot(xx, a_ag, color="k" if s > 0 else "C3", ls=ls,
                             lw=0.8, label=f"model at |grad_z| = {ag:g}" + ("" if len(signs) == 1 else
                                                                         (", positive" if s > 0 else ", negative")))
    b, sb = tf.offset(xx), tf.offset_std(xx)
    axes[2].plot(xx, b, "k", label="model")
    axes[2].fill_between(xx, b - sb, b + sb, color="k", alpha=0.2, lw=0)
    axes[2].axhline(0.0, color="0.5", lw=0.6)
    axes[3].plot(xx, tf.scatter(xx), "k", label="model s(x)" + (" (flat form)" if tf.structure.scatter == "flat"
                                                              else ""))
    if bins is not None:
        by_sign = "sign" in tf.structure.extras
        for ax, k, lab, color in ((axes[1], "a", "positive" if by_sign else "", "C0"),
                                  (axes[1], "a_neg", "negative", "C3"), (axes[2], "b", "", "C0"),
                                  (axes[3], "s", "", "C0")):
            if k in bins and bins[k].size:
                ax.errorbar(bins["x"], bins[k], yerr=bins[k + "_err"], fmt="o", color=color, ms=3.5, lw=0.8,
                            label="mocks per x bin" + (f", {lab}" if lab else "")
                            + (" (model's terms refitted per bin)" if k.startswith("a") and tf.structure.extras
                               else ""))
            if k + "_model" in bins and bins[k + "_model"].size:  # the like-for-like model value of each bin
                ax.plot(bins["x"], bins[k + "_model"], "o", mfc="none", mec=color, ms=6, mew=0.8,
                        label="model through the same bin fit" + (f", {lab}" if lab else ""))
        if bins["x"].size:
            axes[3].plot(bins["x"], bins["err"], "s", color="0.5", ms=3, label="mocks' own median error per x bin")
    if mocks is not None and mocks.has_errors:  # the comparison for s(x), also when no x bin has enough mocks
        axes[3].axhline(float(np.median(mocks.err)), color="0.5", ls="--", lw=0.8,
                        label="mocks' own median error (all)")
    _scatter_ylim(axes[3], tf.scatter(xx), bins, mocks)
    labels = (r"slope $a(x)$ (measured / intrinsic)", r"offset $b(x)$ (dex/kpc)",
              r"scatter $s(x)$ beyond the mocks' errors (dex/kpc)")
    xlab = x_label(columns)
    for ax, lab in zip(axes[1:], labels):
        ax.set_xlabel(xlab)
        ax.set_ylabel(lab, fontsize=8)
        ax.legend(fontsize=6)
    axes[1].set_ylim(0, 1.25)
    axes[1].axhline(1.0, color="0.5", lw=0.6)
    ok = "describes" if tf.assessment.get("transfer_ok") else "does NOT describe"
    fig.suptitle(f"transfer function {tf.structure.label()} ({tf.n_mocks} mocks, chosen by cross-validation); "
                 f"the transfer model {ok} the suite; ratio model "
                 f"{'ok' if tf.assessment.get('ratio_ok') else 'not ok'}", fontsize=9)
    return _save(fig, path)


def _short_x(xlab: str) -> str:
    """``$x$`` with the qualifier of a custom x label (e.g. 'source plane'), for the colour bar."""
    tail = xlab.rsplit("$", 1)[-1].strip(" ,") if xlab.count("$") >= 2 else ""  # the words after the math
    return r"$x$" + (f", {tail}" if tail else "") + " (colour)"


def _scatter_ylim(ax, s_model, bins, mocks):
    """y range of the scatter panel from 0 to above everything compared (model, bins, mocks' median error), so
    that a model at its floor and the mocks' errors are both on the axis."""
    tops = [float(np.max(s_model))]
    if bins is not None and bins["x"].size:
        tops += [float(np.max(bins["s"] + bins["s_err"])), float(np.max(bins["err"]))]
    if mocks is not None and mocks.has_errors:
        tops.append(float(np.median(mocks.err)))
    top = max(tops)
    ax.set_ylim(0.0, 1.25 * top if top > 0 else 1.0)


def _transfer_data_panel(ax, tf, mocks, xlab=_X_LABEL):
    # the model where it was measured: each sign up to its own mocks' largest |grad_z| (mocks left out for the
    # calibrations' range shorten one side)
    gg = np.linspace(-tf.sign_grad_range(-1.0)[1], tf.sign_grad_range(1.0)[1], 61)
    if mocks is not None:
        sc = ax.scatter(mocks.g, mocks.m, c=mocks.x, s=8, cmap="viridis", lw=0, alpha=0.7, rasterized=True)
        # the colour bar's label is the short symbol (its definition is on the other panels' x axes): the long
        # label ran into the next panel's y label
        cb = ax.figure.colorbar(sc, ax=ax, pad=0.02)
        cb.set_label(r"$x$ (colour)" if xlab == _X_LABEL else _short_x(xlab), fontsize=8)
    for x, ls in ((tf.x_range[0], ":"), (np.sqrt(tf.x_range[0] * tf.x_range[1]), "--"), (tf.x_range[1], "-")):
        ax.plot(gg, tf.mean(np.full_like(gg, x), gg), color="k", ls=ls, lw=1, label=f"model, x = {x:.2g}")
    ax.plot(gg, gg, color="0.6", lw=0.6, label="measured = intrinsic")
    ax.set_xlabel(r"intrinsic $\nabla Z$ (dex/kpc)")
    ax.set_ylabel(r"measured $\nabla Z$ (dex/kpc)")
    ax.legend(fontsize=6, loc="upper left")


def _x_bin_stats(tf, mocks, n_bins: int = 6) -> dict:
    """Per x quantile bin: weighted least-squares slope(s) and intercept of measured on intrinsic (the model's
    weights 1 / (s(x)^2 + err^2), so that a bin and the model average the mocks alike), with the model's
    extra slope terms refitted in the bin (so the bin's slope is at the same reference |grad_z|, sign,
    inclination and S/N as the model's a(x); one slope per sign when the model has a sign term), and the
    scatter about the model beyond the mocks' errors (each with a rough 1-sigma error); ``*_model``: the same
    bin estimator applied to the model's mean at the bin's mocks (the like-for-like model value of a bin)."""
    from .corrections.transfer import extra_values

    edges = np.quantile(mocks.x, np.linspace(0, 1, n_bins + 1))
    by_sign = "sign" in tf.structure.extras
    out = {k: [] for k in ("x", "a", "a_err", "a_neg", "a_neg_err", "b", "b_err", "s", "s_err", "err", "a_model",
                           "a_neg_model", "b_model")}
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mocks.x >= lo) & (mocks.x <= hi)
        n = int(sel.sum())
        g = mocks.g[sel]
        if n < 8 or np.unique(g).size < 2 or (by_sign and min(np.sum(g > 0), np.sum(g < 0)) < 3):
            continue
        inc = mocks.inclination[sel] if mocks.inclination is not None else None
        snr = mocks.snr[sel] if mocks.snr is not None else None
        # per-sign slopes are refitted per bin; the 1/x interactions are left out (x is nearly constant within
        # a bin, so they are collinear with their parent terms)
        terms = [g * extra_values(e, g, inc, snr, tf.references, mocks.x[sel]) for e in tf.structure.extras
                 if e != "sign" and not e.endswith("_inv_x")]
        terms = [t for t in terms if np.ptp(t) > 0]
        cols = ([g * (g > 0), g * (g < 0)] if by_sign else [g]) + terms + [np.ones(n)]
        if n < 2 * len(cols):
            continue
        a_mat = np.stack(cols, axis=1)
        sw = 1.0 / np.sqrt(tf.scatter(mocks.x[sel]) ** 2 + mocks.err[sel] ** 2)  # the model's weights
        sw = sw / np.mean(sw)
        coef, *_ = np.linalg.lstsq(a_mat * sw[:, None], mocks.m[sel] * sw, rcond=None)
        # the same estimator on the model's mean at the bin's own mocks: what the bin measures if the model is
        # right (a(x) changes across a wide bin, so the model at the bin's median x is not the like quantity)
        m_model = tf.mean(mocks.x[sel], g, inc, snr)
        coef_model, *_ = np.linalg.lstsq(a_mat * sw[:, None], m_model * sw, rcond=None)
        res = (mocks.m[sel] - a_mat @ coef) * sw
        cov = np.linalg.pinv((a_mat * sw[:, None]).T @ (a_mat * sw[:, None])) * float(np.sum(res**2)) \
            / max(n - a_mat.shape[1], 1)
        if by_sign:
            out["a_neg"].append(float(coef[1]))
            out["a_neg_err"].append(float(np.sqrt(cov[1, 1])))
            out["a_neg_model"].append(float(coef_model[1]))
        out["a_model"].append(float(coef_model[0]))
        out["b_model"].append(float(coef_model[-1]))
        r_model = mocks.m[sel] - m_model
        s2 = max(float(np.mean(r_model**2) - np.mean(mocks.err[sel] ** 2)), 0.0)
        out["x"].append(float(np.median(mocks.x[sel])))
        out["a"].append(float(coef[0]))
        out["a_err"].append(float(np.sqrt(cov[0, 0])))
        out["b"].append(float(coef[-1]))
        out["b_err"].append(float(np.sqrt(cov[-1, -1])))
        out["err"].append(float(np.median(mocks.err[sel])))
        out["s"].append(float(np.sqrt(s2)))
        out["s_err"].append(float(np.sqrt(s2) / np.sqrt(2 * n)))
    return {k: np.array(v) for k, v in out.items()}
