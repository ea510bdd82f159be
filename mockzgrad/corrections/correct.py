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
    For a non-circular PSF, ``x`` (and ``psf_fwhm``) must follow the
    convention of the suites' ``x_resolution``
    (:mod:`mockzgrad.config.resolution`): ``psf_fwhm`` is the FWHM of the
    PSF's profile along the galaxy's major axis, for an elliptical Gaussian
    ``1 / sqrt(cos^2 d / F_major^2 + sin^2 d / F_minor^2)`` with ``d`` the
    angle between the PSF's and the galaxy's major axes.

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
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from astropy.table import Table

from ..errors import ConfigError, DataError
from ..validate import integer, is_number
from .binning import GRAD_DECIMALS, PERCENTILES
from .columns import RECIPE_KEY, as_table, header_recipe, numeric_column, read_text
from .curveset import CorrectionCurves, CurvesWarning, OutsideCurvesWarning, yaml_safe
from .roots import ROOT_SEARCH_FACTOR, solve_self_consistent

__all__ = [
    "correct_table",
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
    if len(vals) != 2 or not all(is_number(v) and v > 0 for v in vals) or vals[0] > vals[1]:
        raise ConfigError(f"x = {given!r}; allowed finite values > 0 with lo <= hi")
    return (vals[0], vals[1])


# --------------------------------------------------------------------------- I/O


def read_gradient_table(path) -> Table:
    """Read a table of measured gradients from CSV (``.csv``) or ECSV (``.ecsv``).

    The file is read as UTF-8 (a byte-order mark, as Excel writes, is
    dropped). An ``id`` column of a CSV is read as text (so ``"02"`` keeps its
    zero). Lines of a CSV starting with ``#`` are comments; ``# recipe: NAME``
    among them declares the recipe that measured the gradients (kept as
    ``meta["recipe"]``; a ``recipe`` column or ECSV meta key does the same, see
    :func:`~mockzgrad.corrections.columns.check_recipe`).

    Raises
    ------
    DataError
        A missing file, another extension, text that is not UTF-8 or not a
        table, or a table without rows (nothing to correct).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"path = {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".ecsv"):
        raise DataError(f"path = {path!r}: extension {ext!r}; allowed '.csv', '.ecsv'")
    lines = read_text(path, "gradients table").splitlines()
    try:
        if ext == ".csv":
            body = [ln for ln in lines if not ln.lstrip().startswith("#")]
            table = Table.read(body, format="ascii.csv", converters={"id": str})
            recipe = header_recipe(ln for ln in lines if ln.lstrip().startswith("#"))
            if recipe:
                table.meta[RECIPE_KEY] = recipe
        else:
            table = Table.read(lines, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds for malformed files
        msg = " ".join(str(exc).split())
        raise DataError(f"path = {path!r}: cannot be read as {ext[1:].upper()} ({msg})") from None
    if len(table) == 0:
        raise DataError(f"path = {path!r}: the table has columns ({', '.join(table.colnames) or 'none'}) "
                        "but no rows; nothing to correct")
    return table


def write_table(table, path, *, overwrite: bool = False) -> None:
    """Write a table as CSV (``.csv``; meta dropped) or ECSV (``.ecsv``; meta kept)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}.get(ext)
    if fmt is None:
        raise ConfigError(f"path = {path!r}: extension {ext!r}; allowed '.csv', '.ecsv'")
    from ..fileio import atomic_write, check_output_path

    check_output_path(path, overwrite)
    out = as_table(table)
    atomic_write(path, lambda tmp: out.write(tmp, format=fmt, overwrite=True), overwrite=overwrite)


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
            # stack: _row_x < _read_observations < correct_table < its caller
            warnings.warn(f"x = {x_arg} given: the table's per-row x / sizes are ignored", CurvesWarning,
                          stacklevel=4)
        lo, hi = x_arg
        return np.full(n, lo), np.full(n, hi), f"argument x = {lo:g}" + ("" if lo == hi else f":{hi:g}")
    if has_x:
        x = numeric_column(t, cmap["x"], ids)
        src = f"column {cmap['x']!r}"
    elif has_sizes:
        r_eff = _column_arcsec(t, cmap["r_eff"], ids)
        fwhm = _column_arcsec(t, cmap["psf_fwhm"], ids)
        bad = [ids[i] for i in range(n) if not (fwhm[i] > 0 and r_eff[i] > 0)]
        if bad:
            raise DataError(f"columns {cmap['r_eff']!r}, {cmap['psf_fwhm']!r}: values must be > 0 arcsec; "
                            f"rows {bad[:10]}")
        # both sizes are angles already: no cosmology needed (config.resolution converts a mock's kpc r_eff)
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
    vals = numeric_column(t, name, ids)
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
        a = curve.fit.design(x_draws)
    return np.sum(a * coef, axis=1)


@dataclass(frozen=True, eq=False)
class _Observations:
    """The galaxies of a gradient table, one entry per row.

    ``gradient``, ``err_minus``, ``err_plus`` in dex/kpc; ``x_lo`` / ``x_hi``
    the range of ``x`` (equal for a single value), ``x_ref`` its midpoint;
    ``inclination`` in deg or None; ``x_source`` says where ``x`` came from.
    """

    ids: np.ndarray
    gradient: np.ndarray
    err_minus: np.ndarray
    err_plus: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    x_ref: np.ndarray
    x_source: str
    inclination: np.ndarray | None

    @property
    def n(self) -> int:
        return int(self.gradient.size)


@dataclass(frozen=True, eq=False)
class _Nodes:
    """The curves a correction uses: ``sign`` mode ("both", "matched", "pos" or "neg"), the ``|grad_z|`` nodes
    (dex/kpc, ascending), the curves at the nodes for each sign used, and whether surfaces are evaluated."""

    sign: str
    abs_grads: np.ndarray
    by_sign: dict
    use_surface: bool

    @property
    def signs(self) -> tuple:
        return tuple(self.by_sign)

    def row_sign(self, measured: float) -> str:
        """The curves' sign for a measured gradient."""
        return ("neg" if measured < 0 else "pos") if self.sign == "matched" else self.sign


@dataclass(frozen=True, eq=False)
class _Coverage:
    """The x range every used curve covers, and the rows outside it (or outside the mocks' inclinations)."""

    x_min: float
    x_max: float
    outside_x: np.ndarray
    outside_inc: np.ndarray


@dataclass(frozen=True, eq=False)
class _RowCorrection:
    """The corrections of one row: per node ``corr`` and its errors; the self-consistent gradient
    (NaN unless the root is unique), its errors and unique fraction; the roots and the row's flags."""

    corr: np.ndarray
    corr_err_minus: np.ndarray
    corr_err_plus: np.ndarray
    selfcons: float
    selfcons_err_minus: float
    selfcons_err_plus: float
    unique_frac: float
    n_roots: int
    roots: str
    flag: str


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
        :meth:`~mockzgrad.corrections.curveset.CorrectionCurves.read`; they should be
        made with the recipe that measured the gradients.
    x : None, float, (float, float) or str
        Sample-wide ``x`` (see :func:`parse_x`); overrides the columns.
        ``None``: per row from the ``x`` column, else from ``r_eff`` and
        ``psf_fwhm``.
    columns : mapping, optional
        Role -> column name, overriding :data:`DEFAULT_COLUMNS` (which reads
        the shipped ``examples/observed_gradients_lee2026.csv`` directly).
    sign : {"auto", "pooled", "positive", "negative", "matched", "both"}
        Which curves: ``"pooled"`` (or ``"both"``) the pooled-sign curves;
        ``"matched"`` the ``pos`` / ``neg`` curve of the sign of each
        (drawn) measured gradient; ``"positive"`` / ``"negative"`` those
        curves for every row; ``"auto"``: ``"matched"`` (the sign of the
        measured gradient) when the curves have per-sign curves at the same
        ``|grad_z|``, else the pooled ones (the suite had too few mocks per
        sign; see the curves' ``settings["per_sign"]``).
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
    n_mc = integer("n_mc", n_mc, 100)
    sign = _resolve_sign(sign, curves)
    x_arg = parse_x(x)
    cmap = _resolve_columns(columns)
    gen, seed_note = _rng(rng)
    t = Table(as_table(table), copy=True)
    obs = _read_observations(t, cmap, x_arg)
    nodes = _node_curves(curves, sign, obs.inclination is not None and curves.has_surface)
    cover = _coverage(curves, nodes, obs)
    rows = [_correct_row(i, obs, nodes, cover, gen, n_mc) for i in range(obs.n)]
    _warn_rows(obs.ids, cover, np.array([r.n_roots for r in rows], np.int64))
    _warn_grad_range(obs.ids, rows, nodes.abs_grads)
    _put_columns(t, obs, nodes, rows)
    t.meta["mockzgrad_correct"] = _meta(curves, nodes, obs, cover, cmap, n_mc, seed_note)
    return t


# --------------------------------------------------------------------------- steps


#: Accepted ``sign`` values and the mode each means ("both": pooled curves; "matched": the curves of the
#: measured gradient's sign; "pos" / "neg": those curves for every row).
SIGN_MODES = {"auto": "auto", "pooled": "both", "both": "both", "matched": "matched", "positive": "pos",
              "negative": "neg"}


def _per_sign_usable(curves: CorrectionCurves) -> bool:
    return {"pos", "neg"} <= set(curves.signs) and np.array_equal(curves.abs_grads("pos"), curves.abs_grads("neg"))


def _resolve_sign(sign: str, curves: CorrectionCurves) -> str:
    """ "both", "matched", "pos" or "neg", checked against the signs the curves have."""
    if sign not in SIGN_MODES:
        raise ConfigError(f"sign = {sign!r}; allowed {', '.join(repr(k) for k in SIGN_MODES)}")
    sign = SIGN_MODES[sign]
    if sign == "auto":
        sign = "matched" if _per_sign_usable(curves) else ("both" if "both" in curves.signs else "matched")
    if sign in ("pos", "neg") and sign not in curves.signs:
        raise ConfigError(f"sign = {sign!r} but the curves have only {curves.signs} (the suite had too few mocks "
                          "of that sign for per-sign curves); use sign='pooled'")
    if sign == "both" and "both" not in curves.signs:
        raise ConfigError(f"sign = 'pooled' ('both') but the curves have only {curves.signs}; use sign='matched'")
    if sign == "matched":
        if not {"pos", "neg"} <= set(curves.signs):
            raise ConfigError(f"sign = 'matched' needs 'pos' and 'neg' curves; present {curves.signs}")
        if not np.array_equal(curves.abs_grads("pos"), curves.abs_grads("neg")):
            raise ConfigError(f"sign = 'matched': pos curves at |grad_z| {curves.abs_grads('pos').tolist()} and neg "
                              f"at {curves.abs_grads('neg').tolist()} differ; allowed: the same values")
    return sign


def _read_observations(t: Table, cmap: Mapping, x_arg) -> _Observations:
    """Measured gradients, errors, x and inclination of every row, checked (rows named in errors)."""
    n = len(t)
    need = [r for r in ("gradient", "err_minus", "err_plus") if cmap[r] not in t.colnames]
    if need:
        raise DataError("gradient table lacks " + ", ".join(f"column {cmap[r]!r} (role {r!r})" for r in need)
                        + f"; present: {t.colnames}")
    ids = np.asarray(t[cmap["id"]]).astype(str) if cmap["id"] in t.colnames else \
        np.array([f"row {i}" for i in range(n)])
    m = numeric_column(t, cmap["gradient"], ids)
    em = numeric_column(t, cmap["err_minus"], ids)
    ep = numeric_column(t, cmap["err_plus"], ids)
    for name, arr in ((cmap["gradient"], m), (cmap["err_minus"], em), (cmap["err_plus"], ep)):
        bad = [ids[i] for i in range(n) if not math.isfinite(arr[i])]
        if bad:
            raise DataError(f"column {name!r}: non-finite values in rows {bad[:10]}")
    bad = [ids[i] for i in range(n) if em[i] < 0 or ep[i] < 0]
    if bad:
        raise DataError(f"columns {cmap['err_minus']!r} / {cmap['err_plus']!r}: errors must be >= 0; rows {bad[:10]}")
    x_lo, x_hi, x_src = _row_x(t, cmap, ids, x_arg)
    inc = None
    if cmap["inclination"] in t.colnames:
        inc = numeric_column(t, cmap["inclination"], ids)
        bad = [ids[i] for i in range(n) if not 0.0 <= inc[i] <= 90.0]
        if bad:
            raise DataError(f"column {cmap['inclination']!r}: inclination must be in [0, 90] deg; rows {bad[:10]}")
    return _Observations(ids=ids, gradient=m, err_minus=em, err_plus=ep, x_lo=x_lo, x_hi=x_hi,
                         x_ref=0.5 * (x_lo + x_hi), x_source=x_src, inclination=inc)


def _node_curves(curves: CorrectionCurves, sign: str, use_surface: bool) -> _Nodes:
    used_signs = ("pos", "neg") if sign == "matched" else (sign,)
    nodes = curves.abs_grads(used_signs[0])
    return _Nodes(sign=sign, abs_grads=nodes, by_sign={s: [curves.curve(g, s) for g in nodes] for s in used_signs},
                  use_surface=use_surface)


def _coverage(curves: CorrectionCurves, nodes: _Nodes, obs: _Observations) -> _Coverage:
    """Rows whose x range, or inclination, leaves what the mocks of every used curve cover."""
    xr = [curves.x_range(None, s) for s in nodes.signs]
    x_min, x_max = max(r[0] for r in xr), min(r[1] for r in xr)
    tol = 1e-9 * x_max
    outside_x = (obs.x_lo < x_min - tol) | (obs.x_hi > x_max + tol)
    outside_inc = np.zeros(obs.n, bool)
    if obs.inclination is not None:
        curves_used = [c for s in nodes.signs for c in nodes.by_sign[s]]
        if nodes.use_surface:
            rngs = [c.surface.inclination_range for c in curves_used]
        else:
            rngs = [c.inclination_range for c in curves_used if all(math.isfinite(v) for v in c.inclination_range)]
        if rngs:
            i_lo, i_hi = max(r[0] for r in rngs), min(r[1] for r in rngs)
            outside_inc = (obs.inclination < i_lo - 1e-9) | (obs.inclination > i_hi + 1e-9)
    return _Coverage(x_min=x_min, x_max=x_max, outside_x=outside_x, outside_inc=outside_inc)


def _correct_row(i: int, obs: _Observations, nodes: _Nodes, cover: _Coverage, gen, n_mc: int) -> _RowCorrection:
    """Central corrections and roots of row ``i``, and their errors from ``n_mc`` Monte Carlo draws."""
    m = obs.gradient[i]
    inc_i = obs.inclination[i] if nodes.use_surface else None
    r_c = np.array([float(c.ratio(obs.x_ref[i], inc_i)) for c in nodes.by_sign[nodes.row_sign(m)]])
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(r_c > 0, m / r_c, np.nan)
    roots, n_roots, extrap = solve_self_consistent(m, nodes.abs_grads, r_c[None, :])
    n_roots = int(n_roots[0])
    rts = roots[0][np.isfinite(roots[0])]
    m_d, r_d = _monte_carlo(i, obs, nodes, gen, n_mc)
    err_minus, err_plus = _fixed_g_errors(corr, m_d, r_d)
    sc, sc_m, sc_p, sc_frac = math.nan, math.nan, math.nan, math.nan
    if n_roots == 1:
        sc = float(rts[0])
        sc_m, sc_p, sc_frac = _selfcons_errors(sc, m_d, r_d, nodes.abs_grads)
    flags = {"ratio_nonpositive": bool(np.any(r_c <= 0)), "no_root": n_roots == 0, "multiple_roots": n_roots > 1,
             "extrapolated": bool(extrap[0]), "x_outside_curves": bool(cover.outside_x[i]),
             "inclination_outside_curves": bool(cover.outside_inc[i])}
    return _RowCorrection(corr=corr, corr_err_minus=err_minus, corr_err_plus=err_plus, selfcons=sc,
                          selfcons_err_minus=sc_m, selfcons_err_plus=sc_p, unique_frac=sc_frac, n_roots=n_roots,
                          roots=";".join(format(v, ".10g") for v in rts),
                          flag=";".join(f for f in FLAGS if flags[f]) or "ok")


def _monte_carlo(i: int, obs: _Observations, nodes: _Nodes, gen, n_mc: int):
    """Draws of the measured gradient (two half-normals) and of every node's ratio at drawn x; (n_mc,), (n_mc, k)."""
    u = gen.standard_normal(n_mc)
    m_d = obs.gradient[i] + np.where(u < 0, obs.err_minus[i], obs.err_plus[i]) * u
    x_lo, x_hi = obs.x_lo[i], obs.x_hi[i]
    x_d = gen.uniform(x_lo, x_hi, n_mc) if x_hi > x_lo else np.full(n_mc, x_lo)
    inc_i = obs.inclination[i] if nodes.use_surface else None
    # every used sign is drawn, whatever the row's sign, so the random stream does not depend on the data
    draws = {s: np.stack([_draw_ratios(c, x_d, inc_i, nodes.use_surface, gen, n_mc) for c in curves], axis=1)
             for s, curves in nodes.by_sign.items()}
    if nodes.sign != "matched":
        return m_d, draws[nodes.sign]
    return m_d, np.where((m_d < 0)[:, None], draws["neg"], draws["pos"])


def _fixed_g_errors(corr, m_d, r_d):
    """Distances from each fixed-g correction to the 15.87th / 84.13th percentiles of its draws (NaN if none)."""
    err_minus = np.full(corr.size, np.nan)
    err_plus = np.full(corr.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_d = np.where(r_d > 0, m_d[:, None] / r_d, np.nan)
    for k in range(corr.size):
        if math.isfinite(corr[k]):
            col = c_d[:, k][np.isfinite(c_d[:, k])]
            if col.size:
                p16, p84 = np.percentile(col, PERCENTILES)
                err_minus[k] = max(corr[k] - p16, 0.0)
                err_plus[k] = max(p84 - corr[k], 0.0)
    return err_minus, err_plus


def _selfcons_errors(sc: float, m_d, r_d, abs_grads):
    """Errors of a unique self-consistent root from the draws with exactly one root, and their fraction."""
    rd, nrd, _ = solve_self_consistent(m_d, abs_grads, r_d)
    one = nrd == 1
    if not one.any():
        return math.nan, math.nan, float(one.mean())
    p16, p84 = np.percentile(rd[one, 0], PERCENTILES)
    return max(sc - p16, 0.0), max(p84 - sc, 0.0), float(one.mean())


def _warn_rows(ids, cover: _Coverage, n_roots) -> None:
    """One warning per kind of trouble, naming the rows (stack level: the caller of correct_table)."""
    if cover.outside_x.any():
        warnings.warn(f"x outside the curves' range [{cover.x_min:.3g}, {cover.x_max:.3g}] for rows "
                      f"{_list_ids(ids[cover.outside_x])}: the curves are extrapolated there (flag x_outside_curves)",
                      OutsideCurvesWarning, stacklevel=3)
    if cover.outside_inc.any():
        warnings.warn(f"inclination outside the mocks' range for rows {_list_ids(ids[cover.outside_inc])} "
                      "(flag inclination_outside_curves)", OutsideCurvesWarning, stacklevel=3)
    multi = n_roots > 1
    none = n_roots == 0
    if multi.any() or none.any():
        parts = []
        if multi.any():
            parts.append(f"several self-consistent roots for rows {_list_ids(ids[multi])}")
        if none.any():
            parts.append(f"no self-consistent root for rows {_list_ids(ids[none])}")
        warnings.warn("; ".join(parts) + ": grad_selfcons is NaN there, all roots are in column 'roots'",
                      SelfConsistencyWarning, stacklevel=3)


def _warn_grad_range(ids, rows, abs_grads) -> None:
    """Name the rows whose self-consistent gradient lies outside the curves' |grad_z| (flag extrapolated)."""
    below, above = [], []
    for i, r in enumerate(rows):
        if "extrapolated" in r.flag.split(";"):
            roots = np.abs(np.array([float(v) for v in r.roots.split(";") if v]))
            (below if roots.size and roots.min() < abs_grads[0] else above).append(ids[i])
    parts = []
    if below:
        parts.append(f"below the smallest |grad_z| = {abs_grads[0]:g} dex/kpc for rows {_list_ids(below)}")
    if above:
        parts.append(f"above the largest |grad_z| = {abs_grads[-1]:g} dex/kpc for rows {_list_ids(above)}")
    if parts:
        warnings.warn("self-consistent gradient outside the curves' |grad_z| range: " + "; ".join(parts)
                      + " (ratio held flat there; flag extrapolated)", OutsideCurvesWarning, stacklevel=3)


def _put_columns(t: Table, obs: _Observations, nodes: _Nodes, rows) -> None:
    """Add (or replace) the output columns of the module docstring."""
    n, k = obs.n, nodes.abs_grads.size

    def stacked(name):
        return np.array([getattr(r, name) for r in rows]).reshape(n, k) if n else np.full((0, k), np.nan)

    def scalar(name, dtype=float):
        return np.array([getattr(r, name) for r in rows], dtype=dtype)

    _put(t, "x_resolution", obs.x_ref, "2 r_eff / psf_fwhm used (midpoint of the range)")
    _put(t, "x_resolution_lo", obs.x_lo, "lower end of the x range (= x_resolution for a single value)")
    _put(t, "x_resolution_hi", obs.x_hi, "upper end of the x range")
    corr, cm, cp = stacked("corr"), stacked("corr_err_minus"), stacked("corr_err_plus")
    for j, gname in enumerate(format_abs_grad(g) for g in nodes.abs_grads):
        base = f"grad_corr_g{gname}"
        _put(t, base, corr[:, j], f"measured / ratio_g(x) for intrinsic |grad_z| = {gname} dex/kpc, dex/kpc")
        _put(t, base + "_err_minus", cm[:, j], "distance to the 15.87th percentile, dex/kpc")
        _put(t, base + "_err_plus", cp[:, j], "distance to the 84.13th percentile, dex/kpc")
    _put(t, "grad_selfcons", scalar("selfcons"),
         "self-consistent intrinsic gradient if the root is unique, else NaN; dex/kpc")
    _put(t, "grad_selfcons_err_minus", scalar("selfcons_err_minus"), "distance to the 15.87th percentile, dex/kpc")
    _put(t, "grad_selfcons_err_plus", scalar("selfcons_err_plus"), "distance to the 84.13th percentile, dex/kpc")
    _put(t, "grad_selfcons_unique_frac", scalar("unique_frac"), "fraction of Monte Carlo draws with exactly one root")
    _put(t, "n_roots", scalar("n_roots", np.int64), "number of self-consistent roots")
    _put(t, "roots", np.array([r.roots for r in rows], dtype=str) if n else np.zeros(0, "U1"),
         "all self-consistent roots, dex/kpc, ';'-joined")
    _put(t, "flag", np.array([r.flag for r in rows], dtype=str) if n else np.zeros(0, "U2"), "ok or ';'-joined flags")


def _meta(curves: CorrectionCurves, nodes: _Nodes, obs: _Observations, cover: _Coverage, cmap: Mapping,
          n_mc: int, seed_note: str) -> dict:
    """The ``mockzgrad_correct`` meta: the curves' provenance and every rule the correction followed."""
    return yaml_safe({
        "curves_provenance": curves.provenance,
        "curves_created": curves.created,
        "curves_mockzgrad_version": curves.mockzgrad_version,
        "abs_grads": [float(g) for g in nodes.abs_grads],
        "sign": nodes.sign,
        "x_source": obs.x_source,
        "x_range_curves": [float(cover.x_min), float(cover.x_max)],
        "inclination": ("surface ratio(x, inclination) at the row's inclination" if nodes.use_surface else
                        "curves of x alone (the suite's inclinations)"),
        "columns": cmap,
        "n_mc": n_mc,
        "seed_entropy": seed_note,
        "column_pattern": "grad_corr_g{g}[_err_minus|_err_plus], {g} = |grad_z| rounded to 1e-6 in %g form",
        "ratio_interpolation": "linear in |G| between the curves' |grad_z|, flat outside; roots with "
                               f"|G| <= {ROOT_SEARCH_FACTOR:g} max|grad_z|, sign(G) = sign(measured)",
        "error_model": "Monte Carlo: measured from two half-normals (err_minus below, err_plus above, 1/2 each); "
                       "x uniform in [x_lo, x_hi]; curve coefficients Gaussian with their covariance; errors = "
                       "central value to 15.87th / 84.13th percentiles",
        "flags": list(FLAGS),
    }, "meta")


def _put(t, name, values, description):
    if name in t.colnames:
        t.remove_column(name)
    t[name] = values
    t[name].description = description


def _list_ids(ids, limit=10):
    ids = [str(v) for v in ids]
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
