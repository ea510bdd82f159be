"""The correction curves of a suite as one object, and its ECSV file with provenance.

:class:`CorrectionCurves` holds one :class:`Curve` per intrinsic ``|grad_z|``
(dex/kpc) and sign (``"both"``: signs pooled, ``"pos"``, ``"neg"``), each a
polynomial ``ratio(x)`` (``ratio = grad_z_measured / grad_z_true``, ``x = 2
r_eff / psf_fwhm``), the running medians it was fitted to and, when the suite
varied inclination, a surface ``ratio(x, inclination)``; with the checks,
the settings of the derivation and the provenance (suite, package version,
recipe, calibrations).

File format: :meth:`CorrectionCurves.write` writes one ECSV file (astropy):
the table has one row per (``abs_grad``, ``sign``, x bin) with the running
medians; the polynomial and surface fits, the checks, the settings and the
full provenance are in the table meta (see :meth:`CorrectionCurves.to_table`).
Meta values are plain YAML types (:func:`yaml_safe`), so a file reads back
exactly.
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from astropy.table import Table

from ..errors import ConfigError, DataError, MockzgradWarning
from ..validate import positive
from .binning import GRAD_DECIMALS, RunningMedian
from .polyfit import DEGREE_RULE, INCLINATION_SCALE, PolynomialFit, SurfaceFit

__all__ = [
    "CorrectionCurves",
    "Curve",
    "CurvesWarning",
    "CurvesCheckWarning",
    "CurvesShapeWarning",
    "OutsideCurvesWarning",
    "SIGNS",
    "REQUIRED_PROVENANCE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TABLE_COLUMNS",
    "check_provenance",
    "suite_provenance",
    "yaml_safe",
]

#: Sign labels of the curves: signs pooled, positive and negative intrinsic gradients.
SIGNS = ("both", "pos", "neg")
#: Keys the provenance mapping must have (others are kept as given).
REQUIRED_PROVENANCE = ("suite", "package_version", "recipe", "calibrations")
#: Name and version written in the ECSV meta.
FORMAT_NAME = "mockzgrad.correction_curves"
FORMAT_VERSION = 1
#: Columns of the ECSV table, one row per (abs_grad, sign, x bin), with their descriptions.
TABLE_COLUMNS = {
    "abs_grad": "intrinsic |grad_z| of the curve, dex/kpc",
    "sign": "both (signs pooled), pos or neg intrinsic gradients",
    "bin": "index of the x bin",
    "x_lo": "lower edge of the bin in x = 2 r_eff / psf_fwhm",
    "x_hi": "upper edge of the bin in x",
    "x_center": "median x of the mocks in the bin",
    "n": "mocks in the bin",
    "ratio_median": "median of grad_z_measured / grad_z_true",
    "ratio_p16": "15.87th percentile of the ratio",
    "ratio_p84": "84.13th percentile of the ratio",
    "ratio_fit": "fitted polynomial at x_center",
}


class CurvesWarning(MockzgradWarning):
    """A correction curve could not be derived as asked, or is used where it is weak."""


class CurvesCheckWarning(CurvesWarning):
    """A consistency check (S/N or sign dependence of the curves) found a significant difference."""


class CurvesShapeWarning(CurvesWarning):
    """A fitted ratio curve leaves [0, 1.2] or turns over where the running medians do not."""


class OutsideCurvesWarning(CurvesWarning):
    """A correction is evaluated outside the x (or inclination) range covered by the mocks."""


@dataclass(frozen=True, eq=False)
class Curve:
    """One correction curve: one intrinsic ``|grad_z|`` and one sign.

    Attributes
    ----------
    abs_grad : float
        Intrinsic ``|grad_z|`` of the group, dex/kpc (for binned gradients,
        the median ``|grad_z_true|`` of the group), rounded to 1e-6.
    sign : str
        ``"both"``, ``"pos"`` or ``"neg"``.
    fit : PolynomialFit
        ``ratio(x)``.
    running : RunningMedian
        Running median of the mocks' ratios.
    x_range : tuple of float
        Smallest and largest ``x`` of the mocks (the valid range of the curve).
    n_mocks : int
        Mocks in the group and sign.
    grad_range : tuple of float
        Smallest and largest ``|grad_z_true|`` of the mocks, dex/kpc.
    inclination_range : tuple of float
        Inclinations of the mocks, deg; ``(nan, nan)`` if unknown.
    surface : SurfaceFit or None
        ``ratio(x, inclination)`` when the suite varied inclination.
    """

    abs_grad: float
    sign: str
    fit: PolynomialFit
    running: RunningMedian
    x_range: tuple
    n_mocks: int = 0
    grad_range: tuple = (math.nan, math.nan)
    inclination_range: tuple = (math.nan, math.nan)
    surface: SurfaceFit | None = None

    def __post_init__(self):
        if self.sign not in SIGNS:
            raise ConfigError(f"sign = {self.sign!r}; allowed {SIGNS}")
        object.__setattr__(self, "abs_grad", float(self.abs_grad))
        object.__setattr__(self, "x_range", tuple(float(v) for v in self.x_range))
        object.__setattr__(self, "grad_range", tuple(float(v) for v in self.grad_range))
        object.__setattr__(self, "inclination_range", tuple(float(v) for v in self.inclination_range))
        object.__setattr__(self, "n_mocks", int(self.n_mocks))

    def ratio(self, x, inclination=None) -> np.ndarray:
        """Fitted ratio at ``x``; from the surface when ``inclination`` (deg) is given."""
        if inclination is None:
            return self.fit(x)
        if self.surface is None:
            raise ConfigError(
                f"inclination = {inclination!r} given but the curve |grad_z| = {self.abs_grad:g} dex/kpc, "
                f"sign {self.sign!r} has no surface: the suite did not vary inclination "
                f"(mocks at {self.inclination_range[0]:g}-{self.inclination_range[1]:g} deg); "
                "allowed: inclination=None")
        return self.surface(x, inclination)

    def ratio_std(self, x, inclination=None) -> np.ndarray:
        """1-sigma uncertainty of :meth:`ratio` from the coefficient covariance."""
        if inclination is None:
            return self.fit.std(x)
        self.ratio(x, inclination)  # raises if no surface
        return self.surface.std(x, inclination)


@dataclass(frozen=True, eq=False)
class CorrectionCurves:
    """Correction curves of one suite, with their checks and provenance.

    Build with :func:`~mockzgrad.corrections.curves.derive_curves`, :meth:`from_polynomials` or
    :meth:`read`.

    Attributes
    ----------
    curves : tuple of Curve
        Sorted by ``abs_grad`` then sign (``both``, ``pos``, ``neg``).
    provenance : dict
        Suite, package version, recipe, calibrations and anything else given.
    checks : dict
        S/N and sign checks (see the module docstring).
    settings : dict
        How the curves were derived (degree rule, binning, grouping of
        ``|grad_z|``, mocks excluded and why).
    created : str
        UTC time of derivation, ISO 8601.
    mockzgrad_version : str
        Version of mockzgrad that derived the curves.
    """

    curves: tuple
    provenance: dict
    checks: dict
    settings: dict
    created: str
    mockzgrad_version: str

    def __post_init__(self):
        order = {s: i for i, s in enumerate(SIGNS)}
        curves = tuple(sorted(self.curves, key=lambda c: (c.abs_grad, order[c.sign])))
        if not curves:
            raise DataError("no correction curve could be derived (0 curves)")
        seen = set()
        for c in curves:
            key = (round(c.abs_grad, GRAD_DECIMALS), c.sign)
            if key in seen:
                raise ConfigError(f"two curves for |grad_z| = {c.abs_grad:g} dex/kpc, sign {c.sign!r}")
            seen.add(key)
        object.__setattr__(self, "curves", curves)

    # ----------------------------------------------------------- lookups
    @property
    def signs(self) -> tuple:
        """Signs that have curves, in the order of :data:`SIGNS`."""
        present = {c.sign for c in self.curves}
        return tuple(s for s in SIGNS if s in present)

    @property
    def has_surface(self) -> bool:
        """True when every curve has a ``(x, inclination)`` surface."""
        return all(c.surface is not None for c in self.curves)

    def abs_grads(self, sign: str = "both") -> np.ndarray:
        """Intrinsic ``|grad_z|`` values (dex/kpc) that have a curve of ``sign``, ascending."""
        self._check_sign(sign)
        return np.array([c.abs_grad for c in self.curves if c.sign == sign])

    def _check_sign(self, sign):
        if sign not in self.signs:
            raise ConfigError(f"sign = {sign!r}; allowed for these curves: {self.signs}")

    def curve(self, abs_grad: float, sign: str = "both") -> Curve:
        """The curve of intrinsic ``|grad_z| = abs_grad`` (dex/kpc, matched to 1e-6) and ``sign``."""
        self._check_sign(sign)
        g = abs(float(abs_grad))
        for c in self.curves:
            if c.sign == sign and abs(c.abs_grad - g) <= 0.5 * 10.0**-GRAD_DECIMALS:
                return c
        raise ConfigError(
            f"abs_grad = {abs_grad!r} dex/kpc has no {sign!r} curve; allowed: "
            f"{[float(v) for v in self.abs_grads(sign)]}")

    def ratio(self, x, abs_grad: float, sign: str = "both", inclination=None) -> np.ndarray:
        """Fitted ratio measured / intrinsic gradient.

        Parameters
        ----------
        x : float or array_like
            ``2 r_eff / psf_fwhm``, dimensionless. Values outside
            :meth:`x_range` are extrapolated without warning.
        abs_grad : float
            Intrinsic ``|grad_z|`` of one of the curves, dex/kpc.
        sign : {"both", "pos", "neg"}
            Which curve.
        inclination : float or array_like, optional
            Inclination, deg; evaluates the ``(x, inclination)`` surface
            (an error if the curves have none). ``None`` uses the curve of
            ``x`` alone, i.e. averaged over the suite's inclinations.

        Returns
        -------
        ndarray
            Ratio, broadcast shape of ``x`` and ``inclination``.
        """
        return self.curve(abs_grad, sign).ratio(x, inclination)

    def ratio_std(self, x, abs_grad: float, sign: str = "both", inclination=None) -> np.ndarray:
        """1-sigma uncertainty of :meth:`ratio` from the coefficient covariance."""
        return self.curve(abs_grad, sign).ratio_std(x, inclination)

    def x_range(self, abs_grad: float | None = None, sign: str = "both") -> tuple:
        """Range of ``x`` covered by the mocks.

        Parameters
        ----------
        abs_grad : float, optional
            One curve's ``|grad_z|`` (dex/kpc). ``None``: the intersection of
            the ranges of every curve of ``sign`` (where all are valid).
        sign : {"both", "pos", "neg"}

        Returns
        -------
        (float, float)
        """
        if abs_grad is not None:
            return self.curve(abs_grad, sign).x_range
        self._check_sign(sign)
        ranges = [c.x_range for c in self.curves if c.sign == sign]
        return (max(r[0] for r in ranges), min(r[1] for r in ranges))

    # ----------------------------------------------------------- construction
    @classmethod
    def create(cls, curves, *, provenance: Mapping, checks: Mapping, settings: Mapping) -> "CorrectionCurves":
        """New curves stamped with the current UTC time and this package's version.

        Parameters
        ----------
        curves : sequence of Curve
        provenance : mapping
            Checked by :func:`check_provenance`.
        checks, settings : mapping
            Made plain YAML types by :func:`yaml_safe`.
        """
        return cls(curves=tuple(curves), provenance=check_provenance(provenance),
                   checks=yaml_safe(checks, "checks"), settings=yaml_safe(settings, "settings"),
                   created=_utc_now(), mockzgrad_version=_package_version())

    @classmethod
    def from_polynomials(cls, coefficients: Mapping, *, x_range, provenance: Mapping,
                         covariances: Mapping | None = None) -> "CorrectionCurves":
        """Curves given directly as polynomials (e.g. published ones).

        Parameters
        ----------
        coefficients : mapping
            ``{abs_grad: [c0, c1, ...]}`` (sign ``"both"``) or
            ``{(abs_grad, sign): [...]}``; ``abs_grad`` in dex/kpc,
            coefficients of ``ratio(x) = sum_k c_k x^k`` lowest order first.
        x_range : (float, float) or mapping
            Valid range of ``x``, for all curves or per key.
        provenance : mapping
            As for :func:`~mockzgrad.corrections.curves.derive_curves`.
        covariances : mapping, optional
            Coefficient covariances per key; zero if not given.
        """
        check_provenance(provenance)  # its errors come first, as in derive_curves
        curves = []
        for key, coef in coefficients.items():
            g, sign = (key if isinstance(key, tuple) else (key, "both"))
            coef = np.asarray(coef, dtype=float)
            cov = np.zeros((coef.size, coef.size)) if covariances is None or key not in covariances \
                else np.asarray(covariances[key], dtype=float)
            xr = x_range[key] if isinstance(x_range, Mapping) else x_range
            xr = _check_range("x_range", xr)
            g = _check_abs_grad(g)
            curves.append(Curve(abs_grad=g, sign=sign, fit=PolynomialFit(coefficients=coef, covariance=cov),
                                running=RunningMedian.empty(), x_range=xr, n_mocks=0,
                                grad_range=(g, g)))
        return cls.create(curves, provenance=provenance, checks={}, settings={"source": "from_polynomials"})

    # ----------------------------------------------------------- I/O
    def to_table(self) -> Table:
        """The curves as an astropy Table (the ECSV layout).

        Columns, one row per (``abs_grad``, ``sign``, x bin):
        ``abs_grad`` (dex/kpc), ``sign``, ``bin``, ``x_lo``, ``x_hi``,
        ``x_center``, ``n``, ``ratio_median``, ``ratio_p16``, ``ratio_p84``,
        ``ratio_fit`` (the polynomial at ``x_center``; not read back).

        Meta: ``format``, ``format_version``, ``created``,
        ``mockzgrad_version``, ``provenance``, ``degree_rule``,
        ``settings``, ``checks`` and ``curves``: a list with, per curve,
        ``abs_grad``, ``sign``, ``n_mocks``, ``x_range``, ``grad_range``,
        ``inclination_range``, ``fit`` (``degree``, ``variable`` ("x" or "1/x"), ``coefficients`` lowest
        order first, ``covariance``, ``chi2``, ``dof``, ``n_points``,
        ``n_clipped``, ``candidates``, ``bic``) and ``surface`` (``null`` or
        ``degree_x``, ``degree_inclination``, ``inclination_scale``,
        ``coefficients`` as nested lists ``[j][k]``, ``covariance`` of the
        raveled coefficients, ``inclination_range``, ``chi2``, ``dof``,
        ``n_points``, ``candidates``, ``bic``).
        """
        cols = {k: [] for k in TABLE_COLUMNS}
        for c in self.curves:
            for k, v in _curve_rows(c).items():
                cols[k].extend(v)
        dtypes = {"sign": "U4", "bin": np.int64, "n": np.int64}
        t = Table({k: np.array(v, dtype=dtypes.get(k, float)) for k, v in cols.items()})
        for k, d in TABLE_COLUMNS.items():
            t[k].description = d
        t.meta.update({
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "mockzgrad_version": self.mockzgrad_version,
            "provenance": yaml_safe(self.provenance, "provenance"),
            "degree_rule": DEGREE_RULE,
            "settings": yaml_safe(self.settings, "settings"),
            "checks": yaml_safe(self.checks, "checks"),
            "curves": [_curve_meta(c) for c in self.curves],
        })
        return t

    @classmethod
    def from_table(cls, table: Table) -> "CorrectionCurves":
        """Rebuild curves from :meth:`to_table` output (e.g. read from ECSV)."""
        meta = table.meta
        if meta.get("format") != FORMAT_NAME:
            raise DataError(f"table meta format = {meta.get('format')!r}; expected {FORMAT_NAME!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"table meta format_version = {meta.get('format_version')!r}; "
                            f"supported: {FORMAT_VERSION}")
        missing = [k for k in ("curves", "provenance", "created", "mockzgrad_version") if k not in meta]
        if missing:
            raise DataError(f"table meta lacks {missing}; present: {sorted(meta)}")
        need = ("abs_grad", "sign", "x_lo", "x_hi", "x_center", "n", "ratio_median", "ratio_p16", "ratio_p84")
        absent = [k for k in need if k not in table.colnames]
        if absent:
            raise DataError(f"curves table lacks columns {absent}; present: {table.colnames}")
        curves = [_curve_from_meta(m, table) for m in meta["curves"]]
        return cls(curves=tuple(curves), provenance=dict(meta["provenance"]), checks=dict(meta.get("checks") or {}),
                   settings=dict(meta.get("settings") or {}), created=meta["created"],
                   mockzgrad_version=meta["mockzgrad_version"])

    def write(self, path, *, overwrite: bool = False) -> None:
        """Write the curves as ECSV (see :meth:`to_table` for the layout).

        Parameters
        ----------
        path : str or path-like
            Output file; must end in ``.ecsv``.
        overwrite : bool
            Replace an existing file.
        """
        path = os.fspath(path)
        if not path.lower().endswith(".ecsv"):
            raise ConfigError(f"path = {path!r}; correction curves are written as ECSV: allowed suffix '.ecsv'")
        from ..fileio import atomic_write, check_output_path

        check_output_path(path, overwrite)
        table = self.to_table()
        atomic_write(path, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True), overwrite=overwrite)

    @classmethod
    def read(cls, path) -> "CorrectionCurves":
        """Read curves written by :meth:`write`."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise DataError(f"path = {path!r}: no such file")
        try:
            table = Table.read(path, format="ascii.ecsv")
        except Exception as exc:  # astropy raises many kinds for a malformed file
            raise DataError(f"path = {path!r}: not a readable ECSV file ({exc})") from exc
        return cls.from_table(table)


# --------------------------------------------------------------------------- helpers


def _utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the ``created`` stamp)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _package_version() -> str:
    """Version of this mockzgrad (the ``mockzgrad_version`` stamp)."""
    from .. import __version__

    return str(__version__)


def _check_abs_grad(g) -> float:
    try:
        g = float(g)  # keys of a mapping read from text may be strings
    except (TypeError, ValueError):
        raise ConfigError(f"abs_grad = {g!r}; expected a number in dex/kpc, > 0") from None
    return round(abs(positive("abs_grad", g, "dex/kpc")), GRAD_DECIMALS)


def _check_range(field, value) -> tuple:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field} = {value!r}; expected (lo, hi) with 0 < lo <= hi") from None
    positive(f"{field}[0]", lo)
    positive(f"{field}[1]", hi)
    if lo > hi:
        raise ConfigError(f"{field} = {value!r}; allowed: lo <= hi")
    return (lo, hi)


def yaml_safe(value, field: str):
    """``value`` as plain Python types (str, int, float, bool, None, lists, dicts) that ECSV meta round-trips exactly.

    Parameters
    ----------
    value
        Numbers and booleans (numpy ones too), strings, None, paths,
        sequences, arrays and mappings (keys become strings) of these.
    field : str
        Name for the error message, e.g. ``"settings"``.

    Raises
    ------
    ConfigError
        Something else (named with its path inside ``value``).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): yaml_safe(v, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [yaml_safe(v, f"{field}[{i}]") for i, v in enumerate(np.asarray(value).tolist()
                                                                         if isinstance(value, np.ndarray) else value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"{field} = {value!r} ({type(value).__name__}); allowed: str, number, bool, None, "
                      "list or mapping of these")


def check_provenance(provenance) -> dict:
    """The provenance as plain YAML types, after checking it has :data:`REQUIRED_PROVENANCE`.

    Raises
    ------
    ConfigError
        Not a mapping, a required key missing, or a value of another type.
    """
    if not isinstance(provenance, Mapping):
        raise ConfigError(f"provenance = {provenance!r}; expected a mapping with keys {REQUIRED_PROVENANCE}")
    missing = [k for k in REQUIRED_PROVENANCE if k not in provenance]
    if missing:
        raise ConfigError(f"provenance lacks {missing}; required keys: {list(REQUIRED_PROVENANCE)}, "
                          f"present: {sorted(map(str, provenance))}")
    return yaml_safe(dict(provenance), "provenance")


def _curve_meta(c: Curve) -> dict:
    f = c.fit
    fit = {
        "degree": f.degree, "variable": f.variable,
        "coefficients": [float(v) for v in f.coefficients],
        "covariance": [[float(v) for v in row] for row in f.covariance],
        "chi2": float(f.chi2), "dof": int(f.dof), "n_points": int(f.n_points), "n_clipped": int(f.n_clipped),
        "candidates": list(f.candidates), "bic": list(f.bic),
    }
    surf = None
    if c.surface is not None:
        s = c.surface
        surf = {
            "degree_x": s.degree_x, "degree_inclination": s.degree_inclination,
            "inclination_scale": INCLINATION_SCALE,
            "coefficients": [[float(v) for v in row] for row in s.coefficients],
            "covariance": [[float(v) for v in row] for row in s.covariance],
            "inclination_range": list(s.inclination_range), "chi2": float(s.chi2), "dof": int(s.dof),
            "n_points": int(s.n_points), "candidates": [list(p) for p in s.candidates], "bic": list(s.bic),
        }
    return {"abs_grad": c.abs_grad, "sign": c.sign, "n_mocks": c.n_mocks, "x_range": list(c.x_range),
            "grad_range": list(c.grad_range), "inclination_range": list(c.inclination_range),
            "fit": fit, "surface": surf}


def _curve_rows(c: Curve) -> dict:
    r = c.running
    fit_at = c.fit(r.x_center)
    return {"abs_grad": [c.abs_grad] * r.n_bins, "sign": [c.sign] * r.n_bins, "bin": list(range(r.n_bins)),
            "x_lo": list(r.x_lo), "x_hi": list(r.x_hi), "x_center": list(r.x_center), "n": list(r.n),
            "ratio_median": list(r.median), "ratio_p16": list(r.p16), "ratio_p84": list(r.p84),
            "ratio_fit": list(fit_at)}


def _curve_from_meta(m: Mapping, table: Table) -> Curve:
    sel = ((np.asarray(table["abs_grad"], float) == m["abs_grad"])
           & (np.asarray(table["sign"]).astype(str) == m["sign"]))
    rows = table[sel]
    if "bin" in rows.colnames:
        rows = rows[np.argsort(np.asarray(rows["bin"]), kind="stable")]
    running = RunningMedian(
        x_lo=np.asarray(rows["x_lo"], float), x_hi=np.asarray(rows["x_hi"], float),
        x_center=np.asarray(rows["x_center"], float), n=np.asarray(rows["n"], np.int64),
        median=np.asarray(rows["ratio_median"], float), p16=np.asarray(rows["ratio_p16"], float),
        p84=np.asarray(rows["ratio_p84"], float))
    f = m["fit"]
    fit = PolynomialFit(coefficients=f["coefficients"], covariance=f["covariance"], chi2=f["chi2"],
                        dof=f["dof"], n_points=f["n_points"], n_clipped=f["n_clipped"],
                        candidates=f["candidates"], bic=f["bic"], variable=f.get("variable", "x"))
    s = m.get("surface")
    surface = None
    if s is not None:
        surface = SurfaceFit(coefficients=s["coefficients"], covariance=s["covariance"],
                             inclination_range=s["inclination_range"], chi2=s["chi2"], dof=s["dof"],
                             n_points=s["n_points"], candidates=s["candidates"], bic=s["bic"])
    return Curve(abs_grad=m["abs_grad"], sign=m["sign"], fit=fit, running=running,
                 x_range=m["x_range"], n_mocks=m["n_mocks"], grad_range=m["grad_range"],
                 inclination_range=m["inclination_range"], surface=surface)


def suite_provenance(meta, results_path) -> dict:
    """Provenance of curves made from a suite's results: the suite (name and
    TOML), the results file, the package version, the recipe and the
    calibrations it used."""
    import json as _json

    from .. import __version__
    from ..physics import calibrations
    from ..config import load_recipe

    spec = meta.get("suite_spec")
    if isinstance(spec, str):
        try:
            spec = _json.loads(spec)
        except ValueError:
            spec = {}
    spec = spec or {}
    recipe_name = (spec.get("recovery") or {}).get("recipe", "lee2026")
    recipe = load_recipe(recipe_name)
    return {
        "suite": meta.get("suite_name", str(results_path)),
        "suite_toml": meta.get("suite_toml", ""),
        "results": str(results_path),
        "package_version": __version__,
        "recipe": recipe_name,
        "recipe_overrides": (spec.get("recovery") or {}).get("overrides", {}),
        "calibrations": {k: calibrations.get_diagnostic(k).provenance()
                         for k in recipe.metallicity.diagnostics},
    }
