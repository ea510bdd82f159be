"""Figure of a lensed suite: measured / intrinsic gradient against resolution and magnification.

A lensed galaxy is resolved better in its source plane than the image-plane
PSF says: x_resolution_source = 2 r_eff / (FWHM / sqrt|mu_t mu_r|) (issue
17). Whether that one number carries the whole effect of lensing on a
recovered gradient is what :func:`plot_lensing` shows, from a suite's
results (``mockzgrad suite``; columns ``grad_z_true``,
``grad_z_measured``, ``x_resolution``, ``x_resolution_source``, ``mu``).

Each point is a bin of mocks fitted as measured = a x intrinsic + b from the
medians of the mocks of each sign (:func:`slope_offset`): ``a`` is the
measured / intrinsic ratio with any additive bias taken out (an offset
``b``, e.g. from noise in the outer bins, raises the ratio of positive
gradients and lowers that of negative ones), ``b`` is drawn below it.

(a) a and b against the image-plane x (2 r_eff / FWHM, the lens ignored),
    per magnification group;
(b) the same against the source-plane x: if x_resolution_source holds the
    lensing effect, the groups coincide here and not in (a);
(c) the same against |mu| at fixed source-plane x (bins of x holding equal
    numbers of mocks): flat lines mean no effect of mu beyond the
    resolution it buys.

Errors are standard errors of the medians (1.2533 x the 16-84 % half-width
/ sqrt(N)). Every mock with status ``ok`` and a finite measured gradient is
used; a suite needs both signs of each intrinsic |grad_z| for ``a`` and
``b`` (with one sign, ``a`` is the median ratio and ``b`` is not drawn).

Run::

    python -m mockzgrad.plots_lensing RESULTS -o lensed_vs_mu.png
    python -m mockzgrad.plots_lensing RESULTS_A RESULTS_B -o compare.png   # a of each against each x

``RESULTS``: a suite output folder, its results.sqlite or an exported
table. With several, :func:`plot_compare` draws the slope a of each suite
against the image-plane, source-plane and radial x (``x_resolution_r`` =
2 r_eff |mu_r| / FWHM): the column on which suites of different lens
geometry coincide is the resolution their gradients follow.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["lensing_ratios", "median_with_error", "slope_offset", "summary", "plot_lensing", "compare_lines",
           "plot_compare", "X_LABELS", "COMPARE_COLUMNS", "x_label", "main"]

#: Relative width of the |mu| groups: mocks whose |mu| agree within this factor form one group.
_MU_GROUP = 1.15
#: Fewest mocks a running-median bin is drawn with.
MIN_PER_BIN = 4


def lensing_ratios(table, x_column: str = "x_resolution_source") -> dict:
    """Per-mock measured / intrinsic gradient of a lensed suite's results.

    Parameters
    ----------
    table : astropy.table.Table or mapping of columns
        Suite results (:func:`mockzgrad.suites.store.load_results_table`).
    x_column : str
        Source-plane resolution column.

    Returns
    -------
    dict
        Arrays over the mocks used: ``ratio`` (measured / true gradient),
        ``err`` (half the measured 16-84 % interval over |true|; NaN when
        absent), ``x_image`` (``x_resolution``), ``x_source``, ``mu`` (|mu|
        at the image of the centre), ``grad_true`` (dex/kpc), and
        ``n_dropped`` (mocks not ok or without a gradient).

    Raises
    ------
    DataError
        A needed column is missing (e.g. an unlensed suite: no ``mu``).
    """
    names = list(getattr(table, "colnames", None) or table.keys())
    need = ("grad_z_true", "grad_z_measured", "x_resolution", x_column, "mu")
    missing = [c for c in need if c not in names]
    if missing:
        raise DataError(f"results lack column(s) {', '.join(missing)}: a lensed suite's results are needed "
                        f"(has {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")

    from .corrections.columns import soft_numeric, status_ok

    def col(name):
        return soft_numeric(table, name) if name in names else np.full(len(table), np.nan)

    status = status_ok(table) if "status" in names else np.ones(len(table), dtype=bool)
    true, meas = col("grad_z_true"), col("grad_z_measured")
    ok = status & np.isfinite(meas) & np.isfinite(true) & (true != 0.0)
    lo, hi = col("grad_z_measured_lo"), col("grad_z_measured_hi")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = meas / true
        err = 0.5 * np.abs(hi - lo) / np.abs(true)
    return {"x_column": x_column, "ratio": ratio[ok], "meas": meas[ok], "err": err[ok],
            "x_image": col("x_resolution")[ok], "x_source": col(x_column)[ok],
            "x": {c: col(c)[ok] for c in X_LABELS if c in names},
            "mu": np.abs(col("mu"))[ok], "grad_true": true[ok], "n_dropped": int((~ok).sum())}


#: Axis labels of the resolution columns of a lensed suite's results.
X_LABELS = {
    "x_resolution": r"image-plane $x = 2\,r_\mathrm{eff}/\mathrm{FWHM}$ (lens ignored)",
    "x_resolution_source": r"source-plane $x = 2\,r_\mathrm{eff}\sqrt{|\mu_t\mu_r|}/\mathrm{FWHM}$",
    "x_resolution_r": r"radial $x = 2\,r_\mathrm{eff}|\mu_r|/\mathrm{FWHM}$",
    "x_resolution_t": r"tangential $x = 2\,r_\mathrm{eff}|\mu_t|/\mathrm{FWHM}$",
}


def x_label(column) -> str:
    """Axis label of a resolution column (:data:`X_LABELS`; else the column's name)."""
    return X_LABELS.get(str(column or "x_resolution_source"), str(column))


def _check_output(path) -> None:
    """ConfigError unless ``path`` ends in .png or .pdf."""
    ext = os.path.splitext(path)[1]
    if ext.lower() not in (".png", ".pdf"):
        raise ConfigError(f"output = {path!r}: extension {ext!r}; allowed .png, .pdf")


def median_with_error(values) -> tuple[float, float, int]:
    """(median, its standard error, N) of finite ``values``: 1.2533 x half the 16-84 % width / sqrt(N)
    (the large-N error of a median, a Gaussian's sigma estimated robustly); NaNs when N < 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan, int(v.size)
    p16, p50, p84 = np.percentile(v, [16, 50, 84])
    return float(p50), float(1.2533 * 0.5 * (p84 - p16) / math.sqrt(v.size)), int(v.size)


def _mu_groups(mu: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Mocks grouped by |mu| (values within a factor :data:`_MU_GROUP` of the group's smallest): (median mu,
    mask) per group, ascending."""
    order = np.argsort(mu)
    groups, start = [], None
    for i in order:
        if start is None or mu[i] > _MU_GROUP * start:
            groups.append([])
            start = mu[i]
        groups[-1].append(i)
    out = []
    for g in groups:
        m = np.zeros(mu.size, dtype=bool)
        m[g] = True
        out.append((float(np.median(mu[m])), m))
    return out


def _plain_log_ticks(ax) -> None:
    """Log x axis labelled 1, 2, 3, 5, 10 (no 2 x 10^0)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(FixedLocator([0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _x_bins(x: np.ndarray, n: int) -> np.ndarray:
    """``n + 1`` log-spaced bin edges spanning ``x``."""
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    return np.geomspace(lo, hi * (1 + 1e-9), n + 1)


def _x_source_bins(x: np.ndarray, n: int = 3) -> np.ndarray:
    """Edges of ``n`` source-plane x bins holding about equal numbers of mocks (quantiles)."""
    return np.quantile(x, np.linspace(0.0, 1.0, n + 1)) * np.r_[1.0, np.ones(n - 1), 1.0 + 1e-9]


def slope_offset(meas, true, min_n: int = MIN_PER_BIN) -> tuple[float, float, float, float, int]:
    """Sign-symmetric measured / intrinsic slope ``a`` and offset ``b`` (dex/kpc) of mocks measured = a true + b.

    For each intrinsic ``|grad|`` present with both signs (>= 2 mocks each),
    a = (median(+) - median(-)) / (2 |grad|) and b = (median(+) + median(-)) / 2,
    with errors from :func:`median_with_error`; the levels are combined by
    inverse-variance weights. An additive bias (e.g. from noise in the
    outer bins) moves b and leaves a, where the plain ratio would fold it in
    with opposite signs for the two signs. With one sign only: a = the median
    ratio, b = NaN.

    Returns
    -------
    (a, a_err, b, b_err, n) : n the mocks used.
    """
    meas, true = np.asarray(meas, float), np.asarray(true, float)
    ok = np.isfinite(meas) & np.isfinite(true) & (true != 0.0)
    meas, true = meas[ok], true[ok]
    if meas.size < min_n:
        return math.nan, math.nan, math.nan, math.nan, int(meas.size)
    rows = []
    for level in np.unique(np.round(np.abs(true), 9)):
        pos, neg = np.isclose(true, level), np.isclose(true, -level)
        if pos.sum() >= 2 and neg.sum() >= 2:
            mp, ep, _ = median_with_error(meas[pos])
            mn, en, _ = median_with_error(meas[neg])
            e = math.hypot(ep, en)
            rows.append(((mp - mn) / (2 * level), e / (2 * level), 0.5 * (mp + mn), 0.5 * e))
    if not rows:
        a, a_err, _ = median_with_error(meas / true)
        return a, a_err, math.nan, math.nan, int(meas.size)
    v = np.array(rows)
    wa, wb = 1.0 / np.maximum(v[:, 1], 1e-12) ** 2, 1.0 / np.maximum(v[:, 3], 1e-12) ** 2
    return (float(np.sum(wa * v[:, 0]) / wa.sum()), float(wa.sum() ** -0.5),
            float(np.sum(wb * v[:, 2]) / wb.sum()), float(wb.sum() ** -0.5), int(meas.size))


def summary(r: dict, n_x: int = 3) -> list[str]:
    """Printable lines: slope a and offset b (:func:`slope_offset`) per |mu| group, and per source-plane x bin
    and |mu| group."""
    lines = [f"{r['ratio'].size} mocks used ({r['n_dropped']} not ok or without a gradient); median per-mock "
             f"error of the ratio {np.nanmedian(r['err']):.3f}"]
    lines.append(f"{'|mu|':>6s} {'N':>4s} {'x_src (16-84 %)':>17s} {'a = measured/intrinsic':>24s} "
                 f"{'b offset, dex/kpc':>20s}")
    for mu, m in _mu_groups(r["mu"]):
        a, ae, b, be, n = slope_offset(r["meas"][m], r["grad_true"][m])
        x16, x84 = np.percentile(r["x_source"][m], [16, 84])
        lines.append(f"{mu:6.2f} {n:4d} {x16:8.2f}-{x84:<8.2f} {a:14.3f} +- {ae:.3f} {b:+12.4f} +- {be:.4f}")
    edges = _x_source_bins(r["x_source"], n_x)
    for lo, hi in zip(edges[:-1], edges[1:]):
        inb = (r["x_source"] >= lo) & (r["x_source"] < hi)
        cells = []
        for mu, m in _mu_groups(r["mu"]):
            a, ae, b, be, n = slope_offset(r["meas"][m & inb], r["grad_true"][m & inb])
            cells.append(f"mu {mu:.1f}: a {a:.2f}+-{ae:.2f} b {b:+.3f}+-{be:.3f} ({n})" if math.isfinite(a)
                         else f"mu {mu:.1f}: - ({n})")
        lines.append(f"x_src {lo:5.2f}-{hi:5.2f}: " + "; ".join(cells))
    return lines


def _binned(x, meas, true, edges):
    """:func:`slope_offset` in bins of ``x``: arrays (x median, a, a_err, b, b_err) of the bins that have one."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inb = (x >= lo) & (x < hi)
        a, ae, b, be, n = slope_offset(meas[inb], true[inb])
        if math.isfinite(a):
            out.append((float(np.median(x[inb])), a, ae, b, be))
    return np.array(out).reshape(-1, 5)


def plot_lensing(r: dict, path, *, title: str = "", n_x: int = 3, n_bins: int = 6):
    """Measured / intrinsic gradient of a lensed suite (module docstring) from :func:`lensing_ratios`: the
    slope a (top) and offset b (bottom) of :func:`slope_offset` against image-plane x, source-plane x (per
    |mu| group) and |mu| (per source-plane x bin); saved to ``path`` (.png or .pdf) atomically; returns the
    figure."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from .plots import _save

    path = os.fspath(path)
    _check_output(path)
    if r["ratio"].size < MIN_PER_BIN:
        raise DataError(f"{r['ratio'].size} usable mocks; a figure needs at least {MIN_PER_BIN}")
    meas, true, mu, xs, xi = r["meas"], r["grad_true"], r["mu"], r["x_source"], r["x_image"]
    groups = _mu_groups(mu)
    mu_cmap, x_cmap = colormaps["viridis"], colormaps["plasma"]
    mu_norm = LogNorm(vmin=min(m for m, _ in groups) / 1.1, vmax=max(m for m, _ in groups) * 1.25)
    fig = Figure(figsize=(15.0, 8.0))
    FigureCanvasAgg(fig)
    axs = fig.subplots(2, 3, sharex="col", sharey="row")
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.08, top=0.9, wspace=0.06, hspace=0.08)
    for j, (x, name) in enumerate(((xi, X_LABELS["x_resolution"]), (xs, x_label(r.get("x_column"))))):
        edges = _x_bins(x, n_bins)
        for k, (m_mu, m) in enumerate(groups):
            v = _binned(x[m], meas[m], true[m], edges)
            if not v.size:
                continue
            shift = 1.0 + 0.015 * (k - 0.5 * (len(groups) - 1))  # display only: error bars side by side
            style = dict(color=mu_cmap(mu_norm(m_mu)), marker="o", ms=4.5, lw=1.5, capsize=2)
            axs[0, j].errorbar(v[:, 0] * shift, v[:, 1], yerr=v[:, 2], label=rf"$|\mu|$ = {m_mu:.1f} "
                               rf"({int(m.sum())})", **style)
            axs[1, j].errorbar(v[:, 0] * shift, v[:, 3], yerr=v[:, 4], **style)
        axs[1, j].set_xscale("log")
        _plain_log_ticks(axs[1, j])
        axs[1, j].set_xlabel(name)
    edges = _x_source_bins(xs, n_x)
    x_norm = LogNorm(vmin=float(xs.min()), vmax=float(xs.max()))
    mus = np.array([m for m, _ in groups])
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inb = (xs >= lo) & (xs < hi)
        pts = [(m_mu, *slope_offset(meas[m & inb], true[m & inb])) for m_mu, m in groups]
        pts = np.array([(m_mu * (1.0 + 0.03 * (k - 0.5 * (n_x - 1))), a, ae, b, be)
                        for m_mu, a, ae, b, be, n in pts if math.isfinite(a)]).reshape(-1, 5)
        if pts.size:
            style = dict(color=x_cmap(x_norm(math.sqrt(lo * hi)) * 0.85), marker="s", ms=4.5, lw=1.5, capsize=2)
            axs[0, 2].errorbar(pts[:, 0], pts[:, 1], yerr=pts[:, 2], label=rf"$x_\mathrm{{src}}$ {lo:.1f}-{hi:.1f} "
                               rf"({int(inb.sum())})", **style)
            axs[1, 2].errorbar(pts[:, 0], pts[:, 3], yerr=pts[:, 4], **style)
    axs[1, 2].set_xscale("log")
    axs[1, 2].set_xticks(mus)
    axs[1, 2].set_xticklabels([f"{m:.1f}" for m in mus])
    axs[1, 2].minorticks_off()
    axs[1, 2].set_xlabel(r"$|\mu|$ at the image of the galaxy centre")
    for ax in axs[0]:
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    for ax in axs[1]:
        ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    axs[0, 0].set_ylabel("$a$: measured / intrinsic (sign-symmetric)")
    axs[1, 0].set_ylabel(r"$b$: offset, dex kpc$^{-1}$")
    axs[0, 0].set_title("(a) against image-plane resolution", fontsize=10)
    axs[0, 1].set_title("(b) against " + ("source-plane" if r.get("x_column", "x_resolution_source") ==
                                           "x_resolution_source" else str(r.get("x_column"))) + " resolution",
                        fontsize=10)
    axs[0, 2].set_title(r"(c) against $|\mu|$, at fixed source-plane $x$", fontsize=10)
    axs[0, 1].legend(loc="lower right", fontsize=7.5, ncol=2)
    axs[0, 2].legend(loc="lower right", fontsize=7.5)
    levels = ", ".join(f"{g:+g}" for g in np.unique(np.round(true, 6)))
    fig.suptitle((title + ": " if title else "") + f"{true.size} mocks, intrinsic gradients {levels} dex/kpc; "
                 r"measured = $a$ x intrinsic + $b$ per bin, from the medians of each sign"
                 "\n(errors: standard errors of those medians; median per-mock error of the ratio "
                 f"{np.nanmedian(r['err']):.2f})", fontsize=10)
    _save(fig, path)
    return fig


#: Resolution columns the comparison figure (:func:`plot_compare`) draws, one panel each.
COMPARE_COLUMNS = ("x_resolution", "x_resolution_source", "x_resolution_r")


def compare_lines(runs: dict, columns=COMPARE_COLUMNS, n_bins: int = 6) -> list[str]:
    """Printable lines: the slope a (:func:`slope_offset`) of each run in common bins of each column."""
    out = []
    for c in columns:
        have = [r["x"][c] for r in runs.values() if c in r["x"]]
        if not have:
            continue
        edges = _x_bins(np.concatenate(have), n_bins)
        out.append(f"a in bins of {c}: " + " ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])))
        for label, r in runs.items():
            if c not in r["x"]:
                continue
            cells = []
            for lo, hi in zip(edges[:-1], edges[1:]):
                inb = (r["x"][c] >= lo) & (r["x"][c] < hi)
                a, ae, _, _, n = slope_offset(r["meas"][inb], r["grad_true"][inb])
                cells.append(f"{a:5.2f}+-{ae:4.2f} ({n:3d})" if math.isfinite(a) else f"{'-':>16s}")
            out.append(f"  {label:24s} " + " ".join(cells))
    return out


def plot_compare(runs: dict, path, *, columns=COMPARE_COLUMNS, n_bins: int = 6):
    """Slope a (:func:`slope_offset`) of several lensed suites against each resolution column, one line per
    suite in common log bins (e.g. a tangential-only stretch against an isotropic magnification: the column
    on which the suites coincide is the resolution the recovered gradient follows); saved atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import _save

    path = os.fspath(path)
    _check_output(path)
    columns = [c for c in columns if any(c in r["x"] for r in runs.values())]
    fig = Figure(figsize=(5.0 * len(columns), 4.6))
    FigureCanvasAgg(fig)
    axs = np.atleast_1d(fig.subplots(1, len(columns), sharey=True))
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.15, top=0.85, wspace=0.06)
    for ax, c in zip(axs, columns):
        edges = _x_bins(np.concatenate([r["x"][c] for r in runs.values() if c in r["x"]]), n_bins)
        for k, (label, r) in enumerate(runs.items()):
            if c not in r["x"]:
                continue
            v = _binned(r["x"][c], r["meas"], r["grad_true"], edges)
            if v.size:
                ax.errorbar(v[:, 0] * (1.0 + 0.02 * (k - 0.5 * (len(runs) - 1))), v[:, 1], yerr=v[:, 2],
                            marker="os^Dv"[k % 5], ms=5, lw=1.6, capsize=2, color=f"C{k}",
                            label=f"{label} ({r['meas'].size})")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_xlabel(x_label(c))
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    axs[0].set_ylabel("$a$: measured / intrinsic (sign-symmetric)")
    axs[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Which resolution do lensed gradients follow? Slope $a$ of measured = $a$ x intrinsic + $b$ "
                 "in bins of each column\n(medians of each sign; errors: standard errors of those medians)",
                 fontsize=10)
    _save(fig, path)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mockzgrad.plots_lensing", description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="suite output folder, results.sqlite, or an exported table; "
                                               "several: the comparison figure (plot_compare)")
    ap.add_argument("-o", "--output", required=True, help="figure (.png or .pdf)")
    ap.add_argument("--x-column", default="x_resolution_source", help="resolution column of panel (b)")
    ap.add_argument("--x-bins", type=int, default=3, help="source-plane x bins of panel (c)")
    args = ap.parse_args(argv)
    _check_output(args.output)  # before any work
    from .suites.store import load_results_table

    runs, title = {}, ""
    for path in args.results:
        table, meta = load_results_table(path)
        label = str(meta.get("suite_name", "") or os.path.basename(os.path.normpath(path)))
        runs[label if label not in runs else f"{label} ({path})"] = lensing_ratios(table, args.x_column)
        title = label
    if len(runs) > 1:
        for line in compare_lines(runs):
            print(line)
        plot_compare(runs, args.output)
    else:
        r = next(iter(runs.values()))
        for line in summary(r, args.x_bins):
            print(line)
        plot_lensing(r, args.output, title=title, n_x=args.x_bins)
    print(f"wrote {args.output}")
    return 0


def _run(argv=None) -> int:
    """:func:`main`, with a bad input (ConfigError, DataError) reported as one line on stderr, status 2."""
    import sys

    try:
        return main(argv)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_run())
