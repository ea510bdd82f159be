"""One calibrated strong-line diagnostic: log R as a function of metallicity, and back.

A :class:`Diagnostic` is built by the loader (:mod:`mockzgrad.physics.calibrations`)
from one entry of a calibration file; this module holds its forward model
(:meth:`Diagnostic.log_ratio`), inversion (:meth:`Diagnostic.z_roots`) and
the measurement of its ratio from line fluxes. The conventions and
functional forms are those of :mod:`mockzgrad.physics.calibrations`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import CalibrationError, CalibrationRangeWarning
from ._roots import SLACK, Piece, polyder, polyval, real_roots, safe_newton
from .lines import LINES
from .ratios import log_ratio_of_fluxes, ratio_lines

__all__ = ["Diagnostic", "FORMS", "STATUSES", "POLICIES", "DEFAULT_SIGMA_RATIO",
           "DEFAULT_SIGMA_RATIO_BASIS"]

#: Functional forms understood by :class:`Diagnostic`.
FORMS = ("poly_in_x", "poly_in_y", "inverted_poly", "kd02_n2o2", "k19_surface")
#: Status labels a diagnostic can carry (``SUSPECT`` ones are never usable).
STATUSES = ("VERIFIED", "SINGLE-SOURCE", "SUSPECT")
#: Out-of-range policies of :meth:`Diagnostic.log_ratio`.
POLICIES = ("raise", "warn", "clip", "ignore")

#: Intrinsic scatter in log R (dex) that Method I gives a diagnostic whose calibration file has
#: no published ``sigma_ratio`` (see :data:`DEFAULT_SIGMA_RATIO_BASIS` and
#: ``calibration_curves/README.md``). Without it such a diagnostic enters the chi^2 with its
#: measurement error alone (~0.01 dex per annulus at high S/N) and dominates the fit.
#: Maiolino et al. (2008, A&A 488, 463) Ne3O2 calibration: dispersion of log([NeIII]/[OII]) about
#: their Table 4 polynomial (shaded band of their Fig. 5), 0.199 dex at 12+log(O/H) = 8.0 and
#: 0.200 dex averaged over [7.4, 8.6] (0.246 at 7.4, 0.158 at 8.6).
DEFAULT_SIGMA_RATIO = 0.20
#: Where :data:`DEFAULT_SIGMA_RATIO` comes from (recorded with every Method I result that uses it).
DEFAULT_SIGMA_RATIO_BASIS = (
    "Default for a calibration without a published intrinsic scatter: 0.20 dex in log R, the dispersion "
    "of the published Ne3O2 calibration of Maiolino et al. 2008 (A&A 488, 463; Table 4 polynomial, "
    "dispersion band of Fig. 5) averaged over the stand-in's range 12+log(O/H) = 7.4-8.6 (0.200 dex; "
    "0.199 dex at 8.0; 0.246 at 7.4, 0.158 at 8.6). SINGLE-SOURCE: the dispersion is read from the "
    "tabulation of M08 Fig. 5 in JPalmerio/astropalmerio (src/astropalmerio/data/met_cal_for_M08_method.txt, "
    "column 10), whose Ne3O2 column reproduces the M08 Table 4 polynomial to 1e-5 dex. It is the scatter "
    "of M08's calibration sample about M08's relation, used here for another Ne3O2 relation "
    "(the Sanders et al. 2024 stand-in for Sanders et al. 2025)."
)

_KD02_OFFSET = 8.93  # constant of the Kewley & Dopita (2002) N2O2 formula, dex
_RATIO_CAP = 10.0  # |log R| beyond which no solution is sought, dex
_N_LOGU_TABLE = 101  # log U nodes of the K19 branch-reference table


def _describe(values: np.ndarray) -> str:
    """Short description of offending values for error messages."""
    first = float(values.flat[0])
    if values.size == 1:
        return f"{first:g}"
    return (f"{first:g} (and {values.size - 1} more values, from {float(values.min()):g} "
            f"to {float(values.max()):g})")


@dataclass(frozen=True, repr=False)
class Diagnostic:
    """One calibrated strong-line diagnostic: log R as a function of metallicity.

    Instances are built by the loader from a calibration file; the numerical
    set-up (monotonic pieces, look-up tables, derived ranges) is done and
    checked at construction, so a malformed calibration fails when loaded.

    Attributes
    ----------
    key : str
        Unique identifier, e.g. ``"S25_R3"``.
    set_name : str
        Name of the calibration set (file stem), e.g. ``"sanders2025"``.
    name : str
        Name of the diagnostic inside its set, e.g. ``"R3"``.
    reference : str
        Publication the coefficients come from (author, year, journal/arXiv).
    status : str
        ``"VERIFIED"``, ``"SINGLE-SOURCE"`` or ``"SUSPECT"`` (see the reference).
    form : str
        Functional form, one of :data:`FORMS` (see the module docstring).
    x0 : float or None
        Metallicity offset of ``poly_in_x``, dex (0 for ``poly_in_y``; None
        for inverted forms).
    coefficients : tuple of float
        Coefficients, lowest order first (``A..J`` for ``k19_surface``).
    valid_range : tuple of float
        Validity range in 12+log(O/H), dex. For inverted forms given a range
        in log R it is the image of ``valid_range_in_ratio``.
    sigma_ratio : float or None
        Intrinsic scatter of the calibration in log R, dex (None if unknown).
    sigma_z : float or None
        Intrinsic scatter in 12+log(O/H), dex (None if unknown).
    lines : frozenset of str
        Every line id the ratio uses.
    stand_in : dict or None
        ``{"for": key, "uses": key, "reason": str}`` when this entry stands in
        for a published calibration that was not found; record it with results.
    usable : bool
        False for entries that failed a check (``SUSPECT``); they refuse to
        evaluate.
    notes : str
        Notes on sources and choices.
    sources : tuple of str
        Where the coefficients were transcribed from.
    needs_logu : bool
        True when the calibration depends on log U (``k19_surface``).
    ratio : dict
        Ratio definition, ``{"label": str, "terms": [{"weight": w, "parts":
        [{"numerator": {line: weight}, "denominator": {line: weight}}]}]}``.
    valid_range_in_ratio : tuple of float or None
        Validity range in log R when that is what the source gives, dex.
    valid_range_basis : str
        Where the validity range comes from.
    logu_range : tuple of float or None
        Valid range of log U for ``k19_surface``.
    scatter : dict
        Scatter values with the source's own labels (``as_published``) and the
        mapping onto ``sigma_ratio``/``sigma_z`` (``basis``).
    path : str
        File the diagnostic was loaded from.
    """

    key: str
    set_name: str
    name: str
    reference: str
    status: str
    form: str
    x0: float | None
    coefficients: tuple[float, ...]
    valid_range: tuple[float, float] | None
    sigma_ratio: float | None
    sigma_z: float | None
    lines: frozenset[str]
    stand_in: dict | None = field(hash=False)
    usable: bool
    notes: str
    sources: tuple[str, ...]
    needs_logu: bool
    ratio: dict = field(default_factory=dict, hash=False)
    valid_range_in_ratio: tuple[float, float] | None = None
    valid_range_basis: str = ""
    logu_range: tuple[float, float] | None = None
    scatter: dict = field(default_factory=dict, hash=False, compare=False)
    path: str = field(default="", compare=False)

    # -- construction -------------------------------------------------------
    def __post_init__(self):
        self._check_labels()
        self._check_coefficients()
        self._check_ranges()
        self._check_lines()
        object.__setattr__(self, "sources", tuple(self.sources))
        self._setup_numerics()

    def _check_labels(self):
        key = self.key
        if self.form not in FORMS:
            raise CalibrationError(f"{key}: form = {self.form!r}; allowed: {', '.join(FORMS)}")
        if self.status not in STATUSES:
            raise CalibrationError(
                f"{key}: status = {self.status!r}; allowed: {', '.join(STATUSES)}"
            )
        if self.status == "SUSPECT" and self.usable:
            raise CalibrationError(f"{key}: status SUSPECT requires usable = false")

    def _check_coefficients(self):
        """Coefficients (stored as floats), their number, and x0 for the form."""
        key = self.key
        put = functools.partial(object.__setattr__, self)
        try:
            coeffs = tuple(float(c) for c in self.coefficients)
        except (TypeError, ValueError):
            raise CalibrationError(
                f"{key}: coefficients = {self.coefficients!r}; expected numbers"
            ) from None
        if not coeffs or not all(math.isfinite(c) for c in coeffs):
            raise CalibrationError(f"{key}: coefficients = {coeffs!r}; expected finite numbers")
        put("coefficients", coeffs)
        expected = {"k19_surface": 10, "kd02_n2o2": 3}.get(self.form)
        if expected is not None and len(coeffs) != expected:
            raise CalibrationError(
                f"{key}: form {self.form} needs {expected} coefficients, got {len(coeffs)}"
            )
        if self.form == "inverted_poly" and (len(coeffs) < 2 or not any(coeffs[1:])):
            raise CalibrationError(f"{key}: inverted_poly needs a non-zero term of order >= 1")
        if self.form == "poly_in_x":
            if self.x0 is None or not math.isfinite(float(self.x0)):
                raise CalibrationError(f"{key}: form poly_in_x needs a finite x0, got {self.x0!r}")
            put("x0", float(self.x0))
        elif self.form == "poly_in_y":
            if self.x0 not in (None, 0, 0.0):
                raise CalibrationError(f"{key}: form poly_in_y has x0 = 0, got {self.x0!r}")
            put("x0", 0.0)
        elif self.x0 is not None:
            raise CalibrationError(f"{key}: form {self.form} takes no x0, got {self.x0!r}")
        if self.needs_logu != (self.form == "k19_surface"):
            raise CalibrationError(
                f"{key}: needs_logu = {self.needs_logu!r} but form is {self.form}"
            )

    def _check_ranges(self):
        """Validity ranges (stored as float pairs) and scatters."""
        key = self.key
        for attr in ("valid_range", "valid_range_in_ratio", "logu_range"):
            rng = getattr(self, attr)
            if rng is None:
                continue
            try:
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError):
                raise CalibrationError(
                    f"{key}: {attr} = {rng!r}; expected [low, high]"
                ) from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise CalibrationError(
                    f"{key}: {attr} = [{lo}, {hi}]; expected finite values with low < high"
                )
            object.__setattr__(self, attr, (lo, hi))
        if self.form == "k19_surface" and self.logu_range is None:
            raise CalibrationError(f"{key}: form k19_surface needs logu_range")
        if self.valid_range_in_ratio is not None and self.form not in ("inverted_poly",
                                                                         "kd02_n2o2"):
            raise CalibrationError(
                f"{key}: valid_range_in_ratio is only allowed for inverted_poly and kd02_n2o2"
            )
        if self.valid_range is None and self.valid_range_in_ratio is None:
            raise CalibrationError(f"{key}: needs valid_range (or valid_range_in_ratio)")
        for attr in ("sigma_ratio", "sigma_z"):
            v = getattr(self, attr)
            if v is not None and not (math.isfinite(float(v)) and float(v) >= 0):
                raise CalibrationError(f"{key}: {attr} = {v!r}; expected a number >= 0 or None")

    def _check_lines(self):
        """The lines: those of the ratio definition, all in the catalogue."""
        key = self.key
        lines = frozenset(self.lines)
        if self.ratio:
            from_ratio = frozenset(ratio_lines(self.ratio))
            if lines and lines != from_ratio:
                raise CalibrationError(
                    f"{key}: lines = {sorted(lines)} differ from the ratio's {sorted(from_ratio)}"
                )
            lines = from_ratio
        unknown = sorted(line for line in lines if line not in LINES)
        if unknown:
            raise CalibrationError(
                f"{key}: unknown line id(s) {', '.join(unknown)}; allowed: {', '.join(LINES)}"
            )
        object.__setattr__(self, "lines", lines)

    def _setup_numerics(self):
        put = functools.partial(object.__setattr__, self)
        c = self.coefficients
        if self.form in ("poly_in_x", "poly_in_y"):
            a, b = self.valid_range
            crit = [t + self.x0 for t in real_roots(polyder(c), a - self.x0, b - self.x0)]
            edges = [a, *crit, b]
            put("_pieces", tuple(Piece.build(self._poly, lo, hi)
                                 for lo, hi in zip(edges[:-1], edges[1:])))
        elif self.form == "inverted_poly":
            edges = [-_RATIO_CAP, *real_roots(polyder(c), -_RATIO_CAP, _RATIO_CAP), _RATIO_CAP]
            pieces = [Piece.build(self._inv, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
            self._choose_inverted_piece(pieces)
        elif self.form == "kd02_n2o2":
            c0, c1, c2 = c
            if c2 > 0:
                lo = -c1 / (2 * c2)
                disc = c1 * c1 - 4 * c0 * c2
                if disc > 0:
                    lo = max(lo, (-c1 + math.sqrt(disc)) / (2 * c2))
            elif c2 == 0 and c1 > 0:
                lo = -c0 / c1
            else:
                raise CalibrationError(
                    f"{self.key}: kd02_n2o2 needs c2 > 0 (or c2 = 0 and c1 > 0); got {c}"
                )
            lo += 1e-9 * (1.0 + abs(lo))
            if lo >= _RATIO_CAP:
                raise CalibrationError(f"{self.key}: kd02_n2o2 branch lies beyond log R = 10")
            self._choose_inverted_piece([Piece.build(self._inv, lo, _RATIO_CAP)])
        else:  # k19_surface
            zmid = 0.5 * (self.valid_range[0] + self.valid_range[1])
            ygrid = np.linspace(*self.logu_range, _N_LOGU_TABLE)
            xref = np.empty_like(ygrid)
            for i, y in enumerate(ygrid):
                a0, a1, a2, a3 = (float(v) for v in self._k19_cubic(y))
                r = np.roots([a3, a2, a1, a0 - zmid])
                r = r[np.abs(r.imag) <= 1e-9].real
                r = r[np.abs(r) <= _RATIO_CAP]
                if r.size == 0:
                    raise CalibrationError(
                        f"{self.key}: no log ratio gives Z = {zmid:g} at log U = {y:g}"
                    )
                xref[i] = r[np.argmin(np.abs(r))]
            put("_k19_table", (ygrid, xref))

    def _choose_inverted_piece(self, pieces):
        """Pick the monotonic branch of an inverted form and derive the two ranges."""
        put = functools.partial(object.__setattr__, self)
        key = self.key
        if self.valid_range_in_ratio is not None:
            xlo, xhi = self.valid_range_in_ratio
            hit = [p for p in pieces if p.lo - 1e-12 <= xlo and xhi <= p.hi + 1e-12]
            if len(hit) != 1:
                raise CalibrationError(
                    f"{key}: the formula is not monotonic over valid_range_in_ratio = "
                    f"[{xlo}, {xhi}] (or it lies beyond |log R| = {_RATIO_CAP:g})"
                )
            piece = hit[0]
            z_ends = sorted(float(v) for v in self._inv(np.array([xlo, xhi])))
            if self.valid_range is not None and not np.allclose(
                z_ends, self.valid_range, rtol=0, atol=1e-6
            ):
                raise CalibrationError(
                    f"{key}: valid_range = {list(self.valid_range)} disagrees with the image "
                    f"{z_ends} of valid_range_in_ratio = [{xlo}, {xhi}]; give only one"
                )
            put("valid_range", (z_ends[0], z_ends[1]))
        else:
            zlo, zhi = self.valid_range
            hit = [p for p in pieces if p.vals[0] <= zlo and zhi <= p.vals[-1]]
            if len(hit) != 1:
                raise CalibrationError(
                    f"{key}: cannot tell which branch of the formula valid_range = "
                    f"[{zlo}, {zhi}] refers to ({len(hit)} candidates); give "
                    "valid_range_in_ratio instead"
                )
            piece = hit[0]
            xs = sorted(float(v) for v in piece.solve(self._inv, self._dinv, [zlo, zhi]))
            put("valid_range_in_ratio", (xs[0], xs[1]))
        put("_inv_piece", piece)

    # -- elementary functions ---------------------------------------------
    def _poly(self, z):
        return polyval(self.coefficients, np.asarray(z, dtype=float) - self.x0)

    def _dpoly(self, z):
        return polyval(polyder(self.coefficients), np.asarray(z, dtype=float) - self.x0)

    def _inv(self, x):
        """Z as a function of log R (inverted forms other than k19_surface)."""
        x = np.asarray(x, dtype=float)
        if self.form == "inverted_poly":
            return polyval(self.coefficients, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(polyval(self.coefficients, x)) + _KD02_OFFSET

    def _dinv(self, x):
        x = np.asarray(x, dtype=float)
        dq = polyval(polyder(self.coefficients), x)
        if self.form == "inverted_poly":
            return dq
        with np.errstate(divide="ignore", invalid="ignore"):
            return dq / (polyval(self.coefficients, x) * math.log(10.0))

    def _k19_cubic(self, y):
        """Coefficients a0..a3 of Z = a0 + a1 x + a2 x^2 + a3 x^3 at log U = y."""
        A, B, C, D, E, F, G, H, I, J = self.coefficients  # noqa: E741
        y = np.asarray(y, dtype=float)
        return (A + y * (C + y * (F + y * J)), B + y * (D + y * G), E + H * y,
                np.full(y.shape, I))

    def _k19_branch(self, y):
        """Cubic coefficients and the monotonic branch [L, U] in log R at log U = y."""
        a0, a1, a2, a3 = self._k19_cubic(y)
        ygrid, xref = self._k19_table
        xr = np.interp(y, ygrid, xref)
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = a2 * a2 - 3.0 * a3 * a1
            sq = np.sqrt(np.where(disc > 0, disc, np.nan))
            cubic = a3 != 0
            r1 = np.where(cubic, (-a2 - sq) / (3.0 * a3), np.where(a2 != 0, -a1 / (2 * a2),
                                                                   np.nan))
            r2 = np.where(cubic, (-a2 + sq) / (3.0 * a3), np.nan)
        c_lo, c_hi = np.fmin(r1, r2), np.fmax(r1, r2)
        low = np.where(c_hi < xr, c_hi, np.where(c_lo < xr, c_lo, -_RATIO_CAP))
        high = np.where(c_lo > xr, c_lo, np.where(c_hi > xr, c_hi, _RATIO_CAP))
        low = np.clip(low, -_RATIO_CAP, _RATIO_CAP)
        high = np.clip(high, -_RATIO_CAP, _RATIO_CAP)
        return (a0, a1, a2, a3), low, high, np.clip(xr, low, high)

    # -- checks -------------------------------------------------------------
    def _require_usable(self):
        if not self.usable:
            raise CalibrationError(
                f"{self.key} ({self.set_name}) is flagged unusable (status {self.status}): "
                f"{self.notes.strip()} To use a corrected version, supply your own calibration "
                f"file (see calibration_curves/README.md)"
            )

    def _apply_policy(self, values, policy, rng, what):
        lo, hi = rng
        outside = (values < lo) | (values > hi)  # NaN is not flagged
        if not outside.any():
            return values
        msg = (f"{self.key}: {what} = {_describe(values[outside])} is outside the validity "
               f"range [{lo:g}, {hi:g}]")
        if policy == "raise":
            raise CalibrationError(
                msg + "; pass policy='warn', 'clip' or 'ignore' to evaluate anyway"
            )
        if policy == "warn":
            warnings.warn(msg + "; evaluated anyway (extrapolation)", CalibrationRangeWarning,
                          stacklevel=3)
        elif policy == "clip":
            warnings.warn(msg + "; evaluated at the clipped value", CalibrationRangeWarning,
                          stacklevel=3)
            return np.clip(values, lo, hi)
        return values

    def _logu(self, logu, policy):
        if not self.needs_logu:
            return None
        lo, hi = self.logu_range
        if logu is None:
            raise CalibrationError(
                f"{self.key}: needs logu (log10 of the ionisation parameter U), allowed "
                f"[{lo:g}, {hi:g}]"
            )
        try:
            y = np.asarray(logu, dtype=float)
        except (TypeError, ValueError):
            raise CalibrationError(f"{self.key}: logu = {logu!r}; expected numbers") from None
        return self._apply_policy(y, policy, self.logu_range, "log U")

    @staticmethod
    def _check_policy(policy):
        if policy not in POLICIES:
            raise CalibrationError(f"policy = {policy!r}; allowed: {', '.join(POLICIES)}")

    @staticmethod
    def _as_array(value, field_name):
        try:
            return np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise CalibrationError(f"{field_name} = {value!r}: expected numbers") from None

    # -- forward model --------------------------------------------------------
    def _forward(self, z, y):
        """log R at metallicity z (and log U y), no range checks; arrays broadcast."""
        if self.form in ("poly_in_x", "poly_in_y"):
            return self._poly(z)
        if self.form != "k19_surface":
            return self._inv_piece.solve(self._inv, self._dinv, z)
        z, y = np.broadcast_arrays(z, y)
        shape = z.shape
        z, y = z.ravel(), y.ravel()
        (a0, a1, a2, a3), low, high, start = self._k19_branch(y)
        out = np.full(z.shape, np.nan)

        def f(x, i):
            return a0[i] + x * (a1[i] + x * (a2[i] + x * a3[i]))

        every = np.arange(z.size)
        f_low, f_high = f(low, every), f(high, every)
        slack = SLACK * (1.0 + np.abs(z))
        m = (z >= np.fmin(f_low, f_high) - slack) & (z <= np.fmax(f_low, f_high) + slack)
        if m.any():
            idx = np.flatnonzero(m)
            t = np.clip(z[m], np.fmin(f_low, f_high)[m], np.fmax(f_low, f_high)[m])
            out[m] = safe_newton(
                lambda x, i: f(x, idx[i]),
                lambda x, i: a1[idx[i]] + x * (2 * a2[idx[i]] + 3 * a3[idx[i]] * x),
                t, low[m], high[m], start[m],
            )
        return out.reshape(shape)

    def log_ratio(self, z, *, policy="raise", logu=None) -> np.ndarray:
        """Forward model: log10 of the line ratio at metallicity ``z``.

        Parameters
        ----------
        z : array_like
            12+log(O/H), dex.
        policy : {"raise", "warn", "clip", "ignore"}
            What to do with ``z`` (and ``logu``) outside the validity range:
            raise :class:`~mockzgrad.errors.CalibrationError`; warn with
            :class:`~mockzgrad.errors.CalibrationRangeWarning` and evaluate
            anyway; evaluate at the clipped value and warn; evaluate silently.
        logu : array_like, optional
            log10 of the ionisation parameter; required when ``needs_logu``
            (valid range ``logu_range``), ignored otherwise. Broadcasts with z.

        Returns
        -------
        ndarray
            log10 R, dex, with the broadcast shape of ``z`` (and ``logu``).
            NaN where an inverted form has no solution (far outside its range).
        """
        self._require_usable()
        self._check_policy(policy)
        z = self._as_array(z, f"{self.key}: z")
        y = self._logu(logu, policy)
        z = self._apply_policy(z, policy, self.valid_range, "12+log(O/H)")
        return np.asarray(self._forward(z, y), dtype=float)

    def dlog_ratio_dz(self, z, *, logu=None) -> np.ndarray:
        """Derivative d log10(R) / d(12+log(O/H)) at ``z`` (analytic; no range check).

        Parameters
        ----------
        z : array_like
            12+log(O/H), dex.
        logu : array_like, optional
            log10 U, required when ``needs_logu``.

        Returns
        -------
        ndarray
            Derivative, dex per dex, with the broadcast shape of the inputs.
        """
        self._require_usable()
        z = self._as_array(z, f"{self.key}: z")
        y = self._logu(logu, "ignore")
        if self.form in ("poly_in_x", "poly_in_y"):
            return np.asarray(self._dpoly(z), dtype=float)
        x = self._forward(z, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.form != "k19_surface":
                return 1.0 / self._dinv(x)
            _, a1, a2, a3 = self._k19_cubic(np.broadcast_to(y, x.shape))
            return 1.0 / (a1 + x * (2 * a2 + 3 * a3 * x))

    # -- inversion --------------------------------------------------------
    @property
    def max_roots(self) -> int:
        """Largest number of metallicities one log ratio can map to inside the range."""
        if self.form in ("poly_in_x", "poly_in_y"):
            return len(self._pieces)
        return 1

    def z_roots(self, log_ratio, *, logu=None) -> np.ndarray:
        """All metallicities inside ``valid_range`` that give ``log_ratio``.

        Parameters
        ----------
        log_ratio : array_like
            log10 R, dex, any shape ``S``.
        logu : array_like, optional
            log10 U, required when ``needs_logu``; must lie in ``logu_range``.

        Returns
        -------
        ndarray, shape ``S + (max_roots,)``
            12+log(O/H), dex, ascending along the last axis and NaN-padded; a
            double-valued calibration (e.g. R3, R23) gives two values where the
            ratio is reached on both branches, none where it is not reached.
        """
        self._require_usable()
        t = self._as_array(log_ratio, f"{self.key}: log_ratio")
        y = self._logu(logu, "raise")
        zlo, zhi = self.valid_range
        if self.form in ("poly_in_x", "poly_in_y"):
            flat = t.ravel()
            roots = np.stack([p.solve(self._poly, self._dpoly, flat) for p in self._pieces],
                             axis=-1)
            for k in range(1, roots.shape[1]):  # a target equal to an extremum
                dup = np.abs(roots[:, k] - roots[:, k - 1]) <= 1e-9
                roots[dup, k] = np.nan
            roots = np.sort(roots, axis=-1)
            return roots.reshape(t.shape + (roots.shape[1],))
        with np.errstate(invalid="ignore"):
            if self.form == "k19_surface":
                x, y = np.broadcast_arrays(t, y)
                (a0, a1, a2, a3), low, high, _ = self._k19_branch(y)
                z = a0 + x * (a1 + x * (a2 + x * a3))
                inside = (x >= low) & (x <= high)
            else:
                x = t
                z = self._inv(x)
                inside = (x >= self._inv_piece.lo) & (x <= self._inv_piece.hi)
            tol = 1e-9
            ok = inside & (z >= zlo - tol) & (z <= zhi + tol)
        return np.where(ok, z, np.nan)[..., np.newaxis]

    # -- measurement ------------------------------------------------------
    def log_ratio_from_fluxes(self, fluxes: Mapping[str, np.ndarray]) -> np.ndarray:
        """Evaluate this diagnostic's log ratio from line fluxes.

        Parameters
        ----------
        fluxes : mapping of str to array_like
            Line id (:mod:`mockzgrad.physics.lines`) -> flux, any common unit; arrays
            broadcast against each other.

        Returns
        -------
        ndarray
            log10 R, dex; NaN where a summed ratio is not positive and finite.
        """
        if not self.ratio or not self.ratio.get("terms"):
            raise CalibrationError(f"{self.key}: has no ratio definition")
        missing = sorted(line for line in self.lines if line not in fluxes)
        if missing:
            raise CalibrationError(
                f"{self.key}: fluxes lack line(s) {', '.join(missing)}; the ratio uses "
                f"{', '.join(sorted(self.lines))}"
            )
        flux = {line: self._as_array(fluxes[line], f"fluxes[{line!r}]") for line in self.lines}
        return log_ratio_of_fluxes(self.ratio, flux)

    # -- scatter used by fits -------------------------------------------------
    def sigma_ratio_or_default(self, default: float | None = DEFAULT_SIGMA_RATIO
                               ) -> tuple[float | None, bool]:
        """The intrinsic scatter in log R a fit should use, dex, and whether it is the default.

        Parameters
        ----------
        default : float or None, optional
            Used when the file gives no ``sigma_ratio`` (default
            :data:`DEFAULT_SIGMA_RATIO`); None: no default.

        Returns
        -------
        (sigma, is_default) : (float or None, bool)
            The published ``sigma_ratio`` and False; else ``default`` and True
            (``(None, False)`` when ``default`` is None).
        """
        if self.sigma_ratio is not None:
            return float(self.sigma_ratio), False
        if default is None:
            return None, False
        return float(default), True

    # -- bookkeeping ------------------------------------------------------
    def provenance(self) -> dict:
        """JSON-serialisable record of which calibration entry was used."""
        return {
            "key": self.key,
            "set": self.set_name,
            "name": self.name,
            "reference": self.reference,
            "status": self.status,
            "usable": self.usable,
            "stand_in": dict(self.stand_in) if self.stand_in else None,
            "valid_range": list(self.valid_range),
            "path": self.path,
        }

    def __repr__(self):
        extra = f", stand_in for {self.stand_in.get('for')}" if self.stand_in else ""
        extra += "" if self.usable else ", NOT USABLE"
        return (f"Diagnostic({self.key!r}, {self.set_name}:{self.name}, form={self.form}, "
                f"valid_range={list(self.valid_range)}, status={self.status}{extra})")
