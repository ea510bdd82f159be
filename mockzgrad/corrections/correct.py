"""Apply beam-smearing correction curves to a table of measured gradients.

For a galaxy with measured gradient ``m`` (dex/kpc) observed at resolution
``x = 2 r_eff / psf_fwhm`` the correction curves of a suite
(:class:`~mockzgrad.corrections.curves.CorrectionCurves`) give ``ratio_g(x)``, the
median measured / intrinsic gradient of mocks with intrinsic ``|grad_z| = g``.

Two corrections are reported.

Fixed intrinsic gradient
    For every ``g`` of the curves: ``grad_corr_g{g} = m / ratio_g(x)`` -
    the intrinsic gradient if the galaxy's intrinsic ``|grad_z|`` were ``g``.
Self-consistent
    The intrinsic gradients ``G`` whose predicted measurement equals the
    observed one, ``ratio(x, |G|) G = m``. ``ratio(x, a)`` is interpolated
    *linearly in a = |G|* between the curves' ``g`` values and held flat
    (equal to the nearest curve) below the smallest and above the largest
    ``g``. Only sign-consistent roots (``sign(G) = sign(m)``; the opposite
    sign would need a negative ratio) with ``|G| <= 2 max(g)`` are sought.
    On each interval between two ``g`` values the equation is a quadratic in
    ``|G|`` and is solved exactly (equivalent to an infinitely fine grid of
    ``G``); outside them it is linear. Curves for different ``g`` may cross,
    so there may be several roots: all are reported (``roots``,
    ``n_roots``), ``grad_selfcons`` is the root only when it is unique, and
    the row is flagged - none is ever picked.

Resolution ``x``
    Per row from an ``x`` column, or from ``r_eff`` and ``psf_fwhm`` columns
    (both arcsec; ``x = 2 r_eff / psf_fwhm``), or one sample-wide value, or a
    sample-wide range ``(lo, hi)`` (also the string ``"lo:hi"``). A given
    ``x`` argument takes precedence over the columns. For a range, the
    galaxy's ``x`` is taken as uniform in ``[lo, hi]``: the central values
    are evaluated at its median, the midpoint ``(lo + hi) / 2``, and the
    range widens the errors through the Monte Carlo below.

Errors (Monte Carlo, ``n_mc`` draws per row)
    The measured gradient is drawn from the two halves of a normal of widths
    ``err_minus`` below and ``err_plus`` above ``m``, each half carrying
    probability 1/2, so that its 15.87 / 50 / 84.13 percentiles are exactly
    ``m - err_minus``, ``m``, ``m + err_plus`` (the published 16/84
    convention; the continuous-density split normal would move the median
    off ``m``); ``x`` is drawn uniform in the range (fixed for a single
    value); the coefficients of every curve are drawn from the Gaussian of
    their fit covariance (independently per curve). The errors are the
    distances from the central value to the 15.87th and 84.13th percentiles
    of the drawn corrected gradients (clipped at 0). For the self-consistent
    gradient only draws with exactly one root are used; their fraction is
    ``grad_selfcons_unique_frac``. The curve uncertainty is that of the mean
    curve; the scatter of single mocks about it is not added.

Output columns (added to a copy of the input; existing ones replaced)
    ``x_resolution``, ``x_resolution_lo``, ``x_resolution_hi``;
    for each ``g``: ``grad_corr_g{g}``, ``grad_corr_g{g}_err_minus``,
    ``grad_corr_g{g}_err_plus`` with ``{g}`` formatted by
    :func:`format_abs_grad` (e.g. ``grad_corr_g0.05``);
    ``grad_selfcons``, ``grad_selfcons_err_minus``,
    ``grad_selfcons_err_plus``, ``grad_selfcons_unique_frac``, ``n_roots``,
    ``roots`` (all roots, dex/kpc, ``";"``-joined, ascending; ``""`` if none),
    ``flag`` (``"ok"`` or ``";"``-joined flags of :data:`FLAGS`). All
    gradients in dex/kpc.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Mapping

import numpy as np
from astropy.table import Table

from .curves import (
    GRAD_DECIMALS,
    PERCENTILES,
    CorrectionCurves,
    CurvesWarning,
    OutsideCurvesWarning,
    _as_table,
    _numeric_column,
    _yaml_safe,
)
from ..errors import ConfigError, DataError

__all__ = [
    "correct_table",
    "solve_self_consistent",
    "read_gradient_table",
    "write_table",
    "parse_x",
    "format_abs_grad",
    "DEFAULT_COLUMNS",
    "FLAGS",
    "SelfConsistencyWarning",
]

#: Default map from roles to column names; reads examples/observed_gradients_lee2026.csv directly.
DEFAULT_COLUMNS = {
    "id": "id",
    "gradient": "gradient_dex_per_kpc",
    "err_minus": "err_minus",
    "err_plus": "err_plus",
    "x": "x_resolution",
    "r_eff": "r_eff",
    "psf_fwhm": "psf_fwhm",
    "inclination": "inclination",
}
#: Row flags written in the ``flag`` column.
FLAGS = (
    "multiple_roots",        # several self-consistent roots: grad_selfcons is NaN, see roots
    "no_root",               # no self-consistent root with |G| <= 2 max(g)
    "x_outside_curves",      # x (or part of the x range) outside the mocks' x range
    "extrapolated",          # a root lies below the smallest or above the largest g (ratio held flat)
    "inclination_outside_curves",  # the row's inclination is outside the mocks' inclinations
    "ratio_nonpositive",     # a curve's ratio at x is <= 0: that correction is undefined (NaN)
)
_ROOT_SEARCH_FACTOR = 2.0
_TOL = 1e-9


class SelfConsistencyWarning(CurvesWarning):
    """Some rows have no or several self-consistent intrinsic gradients."""


def format_abs_grad(g: float) -> str:
    """The ``{g}`` of the column names: ``|g|`` rounded to 1e-6 dex/kpc in ``%g`` form (0.05 -> "0.05")."""
    return format(round(abs(float(g)), GRAD_DECIMALS), ".6g")


def parse_x(x):
    """Parse a sample-wide resolution ``x = 2 r_eff / psf_fwhm``.

    Parameters
    ----------
    x : float, (float, float), str or None
        A value, a range ``(lo, hi)``, or a string ``"2.5"`` / ``"1.2:4.5"``.

    Returns
    -------
    (float, float) or None
        ``(lo, hi)``; ``lo == hi`` for a single value.
    """
    if x is None:
        return None
    given = x
    if isinstance(x, str):
        parts = x.split(":")
        if len(parts) not in (1, 2):
            raise ConfigError(f"x = {given!r}; allowed a number or 'lo:hi'")
        x = parts
    try:
        vals = [float(v) for v in (x if isinstance(x, (list, tuple, np.ndarray)) else [x])]
    except (TypeError, ValueError):
        raise ConfigError(f"x = {given!r}; allowed a number > 0, (lo, hi) or 'lo:hi'") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or not all(math.isfinite(v) and v > 0 for v in vals) or vals[0] > vals[1]:
        raise ConfigError(f"x = {given!r}; allowed finite values > 0 with lo <= hi")
    return (vals[0], vals[1])


# --------------------------------------------------------------------------- self-consistent roots


def solve_self_consistent(measured, abs_grads, ratios, *, max_factor: float = _ROOT_SEARCH_FACTOR):
    """All sign-consistent ``G`` with ``ratio(|G|) G = measured``.

    Parameters
    ----------
    measured : float or array_like, shape (n,)
        Measured gradients, dex/kpc.
    abs_grads : array_like, shape (k,)
        The curves' intrinsic ``|grad_z|`` values, dex/kpc, > 0, ascending.
    ratios : array_like, shape (k,) or (n, k)
        ``ratio_g(x)`` of each curve for each measurement.
    max_factor : float
        Roots are sought for ``|G| <= max_factor * max(abs_grads)``.

    Returns
    -------
    roots : ndarray, shape (n, m)
        Roots in dex/kpc, ascending along each row, NaN-padded.
    n_roots : ndarray of int, shape (n,)
    extrapolated : ndarray of bool, shape (n,)
        Some root lies outside ``[min(abs_grads), max(abs_grads)]``, where
        the ratio is held flat.

    Notes
    -----
    ``ratio(a)`` is linear in ``a = |G|`` between consecutive ``abs_grads``
    and constant outside, so ``a ratio(a) = |measured|`` is a quadratic (or
    linear) equation on each interval, solved in closed form with the
    numerically stable root formula.
    """
    m = np.atleast_1d(np.asarray(measured, dtype=float))
    g = np.asarray(abs_grads, dtype=float)
    r = np.asarray(ratios, dtype=float)
    r = np.broadcast_to(r, (m.size, g.size)) if r.ndim == 1 else r
    if g.ndim != 1 or g.size < 1 or np.any(g <= 0) or np.any(np.diff(g) <= 0):
        raise ConfigError(f"abs_grads = {abs_grads!r}; allowed: >= 1 ascending values > 0 (dex/kpc)")
    if r.shape != (m.size, g.size):
        raise ConfigError(f"ratios shape {r.shape}; expected {(m.size, g.size)}")
    c = np.abs(m)
    top = max_factor * g[-1]
    tol = _TOL * g[-1]
    cands = []
    with np.errstate(divide="ignore", invalid="ignore"):
        # below the first node: ratio held at r[:, 0]
        a = np.where(c == 0, 0.0, np.where(r[:, 0] > 0, c / r[:, 0], np.nan))
        cands.append(np.where((a >= -tol) & (a <= g[0] + tol), np.clip(a, 0.0, g[0]), np.nan))
        for k in range(g.size - 1):
            g0, g1 = g[k], g[k + 1]
            s = (r[:, k + 1] - r[:, k]) / (g1 - g0)
            b = r[:, k] - s * g0
            linear = np.abs(s) * g1 <= 1e-14 * np.maximum(np.abs(b), 1e-300)
            a_lin = np.where(b != 0, c / b, np.nan)
            disc = b * b + 4.0 * s * c
            sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
            q = -0.5 * (b + np.copysign(sq, b))
            a1 = np.where(linear, a_lin, q / s)
            a2 = np.where(linear, np.nan, np.where(q != 0, -c / q, np.nan))
            for a in (a1, a2):
                inside = (a >= g0 - tol) & (a <= g1 + tol)
                cands.append(np.where(inside, np.clip(a, g0, g1), np.nan))
        # above the last node: ratio held at r[:, -1]
        a = c / r[:, -1]
        cands.append(np.where((r[:, -1] > 0) & (a >= g[-1] - tol) & (a <= top + tol), a, np.nan))
    roots = np.sort(np.stack(cands, axis=1), axis=1)  # NaN last
    dup = np.zeros(roots.shape, bool)
    dup[:, 1:] = np.abs(np.diff(roots, axis=1)) <= max(tol, 1e-15)
    roots = np.sort(np.where(dup, np.nan, roots), axis=1)
    n_roots = np.sum(np.isfinite(roots), axis=1)
    keep = max(int(n_roots.max()) if n_roots.size else 0, 1)
    roots = roots[:, :keep]
    extrap = np.any((roots < g[0] * (1 - _TOL)) | (roots > g[-1] * (1 + _TOL)), axis=1)
    sign = np.where(m < 0, -1.0, 1.0)[:, None]
    signed = np.sort(roots * sign, axis=1)
    return signed, n_roots, extrap


# --------------------------------------------------------------------------- I/O


def read_gradient_table(path) -> Table:
    """Read a table of measured gradients from CSV (``.csv``) or ECSV (``.ecsv``).

    An ``id`` column is read as text (so ``"02"`` keeps its zero).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"path = {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".csv":
            return Table.read(path, format="ascii.csv", converters={"id": str})
        if ext == ".ecsv":
            return Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds for malformed files
        raise DataError(f"path = {path!r}: cannot be read as {ext[1:].upper()} ({exc})") from exc
    raise DataError(f"path = {path!r}: extension {ext!r}; allowed '.csv', '.ecsv'")


def write_table(table, path, *, overwrite: bool = False) -> None:
    """Write a table as CSV (``.csv``; meta dropped) or ECSV (``.ecsv``; meta kept)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(ext)
    if fmt is None:
        raise ConfigError(f"path = {path!r}: extension {ext!r}; allowed '.csv', '.ecsv'")
    if os.path.exists(path) and not overwrite:
        raise DataError(f"path = {path!r} exists; pass overwrite=True to replace it")
    _as_table(table).write(path, format=fmt, overwrite=overwrite)


# --------------------------------------------------------------------------- correction


def _resolve_columns(columns) -> dict:
    cmap = dict(DEFAULT_COLUMNS)
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise ConfigError(f"columns = {columns!r}; expected a mapping role -> column name")
        unknown = [k for k in columns if k not in DEFAULT_COLUMNS]
        if unknown:
            raise ConfigError(f"columns: unknown role(s) {unknown}; allowed {list(DEFAULT_COLUMNS)}")
        cmap.update({k: str(v) for k, v in columns.items()})
    return cmap


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng, "a Generator given by the caller"
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        ss = rng if isinstance(rng, np.random.SeedSequence) else np.random.SeedSequence(rng)
        return np.random.default_rng(ss), str(ss.entropy)
    raise ConfigError(f"rng = {rng!r}; allowed None, an int seed, a SeedSequence or a numpy Generator")


def _row_x(t, cmap, ids, x_arg):
    n = len(t)
    has_x = cmap["x"] in t.colnames
    has_sizes = cmap["r_eff"] in t.colnames and cmap["psf_fwhm"] in t.colnames
    if x_arg is not None:
        if has_x or has_sizes:
            warnings.warn(f"x = {x_arg} given: the table's per-row x / sizes are ignored", CurvesWarning,
                          stacklevel=3)
        lo, hi = x_arg
        return np.full(n, lo), np.full(n, hi), f"argument x = {lo:g}" + ("" if lo == hi else f":{hi:g}")
    if has_x:
        x = _numeric_column(t, cmap["x"], ids)
        src = f"column {cmap['x']!r}"
    elif has_sizes:
        r_eff = _column_arcsec(t, cmap["r_eff"], ids)
        fwhm = _column_arcsec(t, cmap["psf_fwhm"], ids)
        bad = [ids[i] for i in range(n) if not (fwhm[i] > 0 and r_eff[i] > 0)]
        if bad:
            raise DataError(f"columns {cmap['r_eff']!r}, {cmap['psf_fwhm']!r}: values must be > 0 arcsec; "
                            f"rows {bad[:10]}")
        x = 2.0 * r_eff / fwhm
        src = f"2 {cmap['r_eff']} / {cmap['psf_fwhm']} (arcsec)"
    else:
        raise DataError(f"no resolution x: give x=<value> or x=(lo, hi), or a column {cmap['x']!r}, or columns "
                        f"{cmap['r_eff']!r} and {cmap['psf_fwhm']!r} (arcsec); present: {t.colnames}")
    bad = [ids[i] for i in range(n) if not (math.isfinite(x[i]) and x[i] > 0)]
    if bad:
        raise DataError(f"x from {src}: values must be finite and > 0; rows {bad[:10]}")
    return x, x.copy(), src


def _column_arcsec(t, name, ids):
    col = t[name]
    unit = getattr(col, "unit", None)
    vals = _numeric_column(t, name, ids)
    if unit is not None:
        import astropy.units as u

        try:
            vals = (vals * u.Unit(unit)).to_value(u.arcsec)
        except u.UnitConversionError:
            raise DataError(f"column {name!r} has unit {unit}; expected an angle (arcsec)") from None
    return vals


def _draw_ratios(curve, x_draws, inc, use_surface, rng, n):
    if use_surface:
        coef = curve.surface.sample(rng, n)
        a = curve.surface.design(x_draws, inc)
    else:
        coef = curve.fit.sample(rng, n)
        a = x_draws[:, None] ** np.arange(coef.shape[1])
    return np.sum(a * coef, axis=1)


def correct_table(table, curves: CorrectionCurves, *, x=None, columns: Mapping | None = None,
                  sign: str = "auto", n_mc: int = 2000, rng=None) -> Table:
    """Correct measured gradients for beam smearing with a suite's curves.

    Parameters
    ----------
    table : `~astropy.table.Table` or convertible
        One row per galaxy. Needs the columns of roles ``gradient``,
        ``err_minus``, ``err_plus`` (dex/kpc; the errors are the distances to
        the 15.87th / 84.13th percentiles, >= 0); optionally ``id``,
        ``x`` (``2 r_eff / psf_fwhm``), ``r_eff`` and ``psf_fwhm`` (arcsec,
        or columns with angle units), ``inclination`` (deg, [0, 90]).
    curves : CorrectionCurves
        From :func:`~mockzgrad.corrections.curves.derive_curves` or
        :meth:`~mockzgrad.corrections.curves.CorrectionCurves.read`; they should be
        made with the recipe that measured the gradients.
    x : None, float, (float, float) or str
        Sample-wide ``x`` (see :func:`parse_x`); overrides the columns.
        ``None``: per row from the ``x`` column, else from ``r_eff`` and
        ``psf_fwhm``.
    columns : mapping, optional
        Role -> column name, overriding :data:`DEFAULT_COLUMNS` (which reads
        the shipped ``examples/observed_gradients_lee2026.csv`` directly).
    sign : {"auto", "both", "matched"}
        Which curves: ``"both"`` the pooled-sign curves; ``"matched"`` the
        ``pos`` / ``neg`` curve of the sign of each (drawn) measured
        gradient; ``"auto"``: ``"both"`` if present, else ``"matched"``.
    n_mc : int >= 100
        Monte Carlo draws per row.
    rng : None, int, `~numpy.random.SeedSequence` or `~numpy.random.Generator`
        Random numbers for the Monte Carlo. A seed (or None: fresh entropy)
        is recorded in the output meta so the run can be repeated.

    Returns
    -------
    `~astropy.table.Table`
        A copy of ``table`` with the columns of the module docstring and meta
        ``mockzgrad_correct`` (curves' provenance, x source, rules, seed).

    Raises
    ------
    DataError
        A needed column is missing (named, with those present), a value is
        not numeric or out of range (rows named by ``id``).
    ConfigError
        An option is invalid.

    Warns
    -----
    OutsideCurvesWarning
        ``x`` or the inclination of some rows lies outside the mocks' range.
    SelfConsistencyWarning
        Some rows have several or no self-consistent roots.
    """
    if not isinstance(curves, CorrectionCurves):
        raise ConfigError(f"curves of type {type(curves).__name__}; expected CorrectionCurves")
    if isinstance(n_mc, bool) or not isinstance(n_mc, (int, np.integer)) or n_mc < 100:
        raise ConfigError(f"n_mc = {n_mc!r}; allowed an integer >= 100")
    n_mc = int(n_mc)
    if sign not in ("auto", "both", "matched"):
        raise ConfigError(f"sign = {sign!r}; allowed 'auto', 'both', 'matched'")
    if sign == "auto":
        sign = "both" if "both" in curves.signs else "matched"
    if sign == "both" and "both" not in curves.signs:
        raise ConfigError(f"sign = 'both' but the curves have only {curves.signs}; use sign='matched'")
    if sign == "matched":
        if not {"pos", "neg"} <= set(curves.signs):
            raise ConfigError(f"sign = 'matched' needs 'pos' and 'neg' curves; present {curves.signs}")
        if not np.array_equal(curves.abs_grads("pos"), curves.abs_grads("neg")):
            raise ConfigError(f"sign = 'matched': pos curves at |grad_z| {curves.abs_grads('pos').tolist()} and neg "
                              f"at {curves.abs_grads('neg').tolist()} differ; allowed: the same values")
    x_arg = parse_x(x)
    cmap = _resolve_columns(columns)
    gen, seed_note = _rng(rng)

    t = Table(_as_table(table), copy=True)
    n = len(t)
    need = [r for r in ("gradient", "err_minus", "err_plus") if cmap[r] not in t.colnames]
    if need:
        raise DataError("gradient table lacks " + ", ".join(f"column {cmap[r]!r} (role {r!r})" for r in need)
                        + f"; present: {t.colnames}")
    ids = np.asarray(t[cmap["id"]]).astype(str) if cmap["id"] in t.colnames else \
        np.array([f"row {i}" for i in range(n)])
    m = _numeric_column(t, cmap["gradient"], ids)
    em = _numeric_column(t, cmap["err_minus"], ids)
    ep = _numeric_column(t, cmap["err_plus"], ids)
    for name, arr in ((cmap["gradient"], m), (cmap["err_minus"], em), (cmap["err_plus"], ep)):
        bad = [ids[i] for i in range(n) if not math.isfinite(arr[i])]
        if bad:
            raise DataError(f"column {name!r}: non-finite values in rows {bad[:10]}")
    bad = [ids[i] for i in range(n) if em[i] < 0 or ep[i] < 0]
    if bad:
        raise DataError(f"columns {cmap['err_minus']!r} / {cmap['err_plus']!r}: errors must be >= 0; rows {bad[:10]}")
    x_lo, x_hi, x_src = _row_x(t, cmap, ids, x_arg)
    x_ref = 0.5 * (x_lo + x_hi)

    inc = None
    if cmap["inclination"] in t.colnames:
        inc = _numeric_column(t, cmap["inclination"], ids)
        bad = [ids[i] for i in range(n) if not 0.0 <= inc[i] <= 90.0]
        if bad:
            raise DataError(f"column {cmap['inclination']!r}: inclination must be in [0, 90] deg; rows {bad[:10]}")
    use_surface = inc is not None and curves.has_surface

    used_signs = ("both",) if sign == "both" else ("pos", "neg")
    nodes = curves.abs_grads(used_signs[0])
    node_curves = {s: [curves.curve(g, s) for g in nodes] for s in used_signs}

    # ranges covered by the mocks
    xr = [curves.x_range(None, s) for s in used_signs]
    x_min, x_max = max(r[0] for r in xr), min(r[1] for r in xr)
    tol = 1e-9 * x_max
    outside_x = (x_lo < x_min - tol) | (x_hi > x_max + tol)
    outside_inc = np.zeros(n, bool)
    if inc is not None:
        if use_surface:
            rngs = [c.surface.inclination_range for s in used_signs for c in node_curves[s]]
        else:
            rngs = [c.inclination_range for s in used_signs for c in node_curves[s]
                    if all(math.isfinite(v) for v in c.inclination_range)]
        if rngs:
            i_lo, i_hi = max(r[0] for r in rngs), min(r[1] for r in rngs)
            outside_inc = (inc < i_lo - 1e-9) | (inc > i_hi + 1e-9)

    def central_ratios(s, i):
        inc_i = inc[i] if use_surface else None
        return np.array([float(c.ratio(x_ref[i], inc_i)) for c in node_curves[s]])

    g_names = [format_abs_grad(g) for g in nodes]
    out_corr = np.full((n, nodes.size), np.nan)
    out_cm = np.full((n, nodes.size), np.nan)
    out_cp = np.full((n, nodes.size), np.nan)
    sc = np.full(n, np.nan)
    sc_m = np.full(n, np.nan)
    sc_p = np.full(n, np.nan)
    sc_frac = np.full(n, np.nan)
    n_roots = np.zeros(n, np.int64)
    roots_str = []
    flags = []
    for i in range(n):
        row_flags = []
        s_c = "both" if sign == "both" else ("neg" if m[i] < 0 else "pos")
        r_c = central_ratios(s_c, i)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(r_c > 0, m[i] / r_c, np.nan)
        if np.any(r_c <= 0):
            row_flags.append("ratio_nonpositive")
        roots, nr, extrap = solve_self_consistent(m[i], nodes, r_c[None, :])
        nr = int(nr[0])
        rts = roots[0][np.isfinite(roots[0])]
        # Monte Carlo
        u = gen.standard_normal(n_mc)
        m_d = m[i] + np.where(u < 0, em[i], ep[i]) * u
        x_d = gen.uniform(x_lo[i], x_hi[i], n_mc) if x_hi[i] > x_lo[i] else np.full(n_mc, x_lo[i])
        inc_i = inc[i] if use_surface else None
        draws = {s: np.stack([_draw_ratios(c, x_d, inc_i, use_surface, gen, n_mc) for c in node_curves[s]], axis=1)
                 for s in used_signs}
        if sign == "both":
            r_d = draws["both"]
        else:
            r_d = np.where((m_d < 0)[:, None], draws["neg"], draws["pos"])
        with np.errstate(divide="ignore", invalid="ignore"):
            c_d = np.where(r_d > 0, m_d[:, None] / r_d, np.nan)
        for k in range(nodes.size):
            out_corr[i, k] = corr[k]
            if math.isfinite(corr[k]):
                col = c_d[:, k][np.isfinite(c_d[:, k])]
                if col.size:
                    p16, p84 = np.percentile(col, PERCENTILES)
                    out_cm[i, k] = max(corr[k] - p16, 0.0)
                    out_cp[i, k] = max(p84 - corr[k], 0.0)
        n_roots[i] = nr
        roots_str.append(";".join(format(v, ".10g") for v in rts))
        if nr == 1:
            sc[i] = rts[0]
            rd, nrd, _ = solve_self_consistent(m_d, nodes, r_d)
            one = nrd == 1
            sc_frac[i] = float(one.mean())
            if one.any():
                p16, p84 = np.percentile(rd[one, 0], PERCENTILES)
                sc_m[i] = max(sc[i] - p16, 0.0)
                sc_p[i] = max(p84 - sc[i], 0.0)
        elif nr == 0:
            row_flags.append("no_root")
        else:
            row_flags.append("multiple_roots")
        if extrap[0]:
            row_flags.append("extrapolated")
        if outside_x[i]:
            row_flags.append("x_outside_curves")
        if outside_inc[i]:
            row_flags.append("inclination_outside_curves")
        flags.append(";".join(f for f in FLAGS if f in row_flags) or "ok")

    if outside_x.any():
        warnings.warn(f"x outside the curves' range [{x_min:.3g}, {x_max:.3g}] for rows "
                      f"{_list_ids(ids[outside_x])}: the curves are extrapolated there (flag x_outside_curves)",
                      OutsideCurvesWarning, stacklevel=2)
    if outside_inc.any():
        warnings.warn(f"inclination outside the mocks' range for rows {_list_ids(ids[outside_inc])} "
                      "(flag inclination_outside_curves)", OutsideCurvesWarning, stacklevel=2)
    multi = n_roots > 1
    none = n_roots == 0
    if multi.any() or none.any():
        parts = []
        if multi.any():
            parts.append(f"several self-consistent roots for rows {_list_ids(ids[multi])}")
        if none.any():
            parts.append(f"no self-consistent root for rows {_list_ids(ids[none])}")
        warnings.warn("; ".join(parts) + ": grad_selfcons is NaN there, all roots are in column 'roots'",
                      SelfConsistencyWarning, stacklevel=2)

    desc_x = "2 r_eff / psf_fwhm used (midpoint of the range)"
    _put(t, "x_resolution", x_ref, desc_x)
    _put(t, "x_resolution_lo", x_lo, "lower end of the x range (= x_resolution for a single value)")
    _put(t, "x_resolution_hi", x_hi, "upper end of the x range")
    for k, gname in enumerate(g_names):
        base = f"grad_corr_g{gname}"
        _put(t, base, out_corr[:, k], f"measured / ratio_g(x) for intrinsic |grad_z| = {gname} dex/kpc, dex/kpc")
        _put(t, base + "_err_minus", out_cm[:, k], "distance to the 15.87th percentile, dex/kpc")
        _put(t, base + "_err_plus", out_cp[:, k], "distance to the 84.13th percentile, dex/kpc")
    _put(t, "grad_selfcons", sc, "self-consistent intrinsic gradient if the root is unique, else NaN; dex/kpc")
    _put(t, "grad_selfcons_err_minus", sc_m, "distance to the 15.87th percentile, dex/kpc")
    _put(t, "grad_selfcons_err_plus", sc_p, "distance to the 84.13th percentile, dex/kpc")
    _put(t, "grad_selfcons_unique_frac", sc_frac, "fraction of Monte Carlo draws with exactly one root")
    _put(t, "n_roots", n_roots, "number of self-consistent roots")
    _put(t, "roots", np.array(roots_str, dtype=str) if n else np.zeros(0, "U1"),
         "all self-consistent roots, dex/kpc, ';'-joined")
    _put(t, "flag", np.array(flags, dtype=str) if n else np.zeros(0, "U2"), "ok or ';'-joined flags")

    t.meta["mockzgrad_correct"] = _yaml_safe({
        "curves_provenance": curves.provenance,
        "curves_created": curves.created,
        "curves_mockzgrad_version": curves.mockzgrad_version,
        "abs_grads": [float(g) for g in nodes],
        "sign": sign,
        "x_source": x_src,
        "x_range_curves": [float(x_min), float(x_max)],
        "inclination": ("surface ratio(x, inclination) at the row's inclination" if use_surface else
                        "curves of x alone (the suite's inclinations)"),
        "columns": cmap,
        "n_mc": n_mc,
        "seed_entropy": seed_note,
        "column_pattern": "grad_corr_g{g}[_err_minus|_err_plus], {g} = |grad_z| rounded to 1e-6 in %g form",
        "ratio_interpolation": "linear in |G| between the curves' |grad_z|, flat outside; roots with "
                               f"|G| <= {_ROOT_SEARCH_FACTOR:g} max|grad_z|, sign(G) = sign(measured)",
        "error_model": "Monte Carlo: measured from two half-normals (err_minus below, err_plus above, 1/2 each); "
                       "x uniform in [x_lo, x_hi]; curve coefficients Gaussian with their covariance; errors = "
                       "central value to 15.87th / 84.13th percentiles",
        "flags": list(FLAGS),
    }, "meta")
    return t


def _put(t, name, values, description):
    if name in t.colnames:
        t.remove_column(name)
    t[name] = values
    t[name].description = description


def _list_ids(ids, limit=10):
    ids = [str(v) for v in ids]
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
