"""The likelihood of the line-flux method: Z, A_V and the intrinsic Hbeta flux from line fluxes.

Wang et al. (2017, ApJ 837, 89; Wang et al. 2022): every observed line (or
blend, a *unit*) ``i`` is predicted as ``a_i f_Hb`` with
``a_i = R_i(Z) 10^(-0.4 A_V k_i / R_V)``, ``R_i(Z)`` its flux relative to
intrinsic Hbeta implied by the calibrations, and

``chi^2 = sum_i (f_i - a_i f_Hb)^2 / (sigma_i^2 + f_Hb^2 t_i^2)``,
``t_i = a_i ln10 sigma_Ri``

(``sigma_Ri``: intrinsic scatter of log R_i, dex). :class:`LineFluxLikelihood`
holds the data of every bin and the model, and evaluates this chi^2, its
log-likelihood, the conditional best f_Hb, the f_Hb-marginalised posterior
of (Z, A_V) on grids and the per-bin emcee posterior.

Array conventions: ``rows`` selects bins (B of them); grid methods take
``z`` of shape (B, K) and ``a_v`` of shape (B, V) and return (B, K, V)
arrays; with ``paired=True`` (emcee) ``z`` and ``a_v`` are both (B, W) and
the results (B, W). Per-unit quantities are lists over units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, RecoveryError
from ...physics.dust import DEFAULT_R_V, LAWS, k_lambda
from ...physics.lines import BALMER_RATIOS, NII_DOUBLET_RATIO
from ..fluxes import BinFluxes, check_bins
from ._common import LN10, NII_HA_RANGE, TOL, logu_array, resolve_diagnostics, run_emcee
from .predicted_lines import LineUnit, build_units, unit_predictions

__all__ = ["LineFluxLikelihood"]

_F_NODES = np.linspace(-6.0, 6.0, 13)  # ln f_Hb nodes, in units of its conditional sigma
_N_R = 12  # nodes of the [NII]/Halpha nuisance
_IRLS = 3  # reweighting passes for the conditional f_Hb with scatter
#: [NII] 6550 + 6585 per unit [NII] 6585
_C_NII = 1.0 + 1.0 / NII_DOUBLET_RATIO
# the nuisance ln([NII]/Ha): nodes, and log trapezoid weights of its Jeffreys (log-uniform) prior
_LR_NODES = np.linspace(math.log(NII_HA_RANGE[0]), math.log(NII_HA_RANGE[1]), _N_R)
_LR_W = np.full(_N_R, 1.0)
_LR_W[[0, -1]] = 0.5
_LR_W = np.log(_LR_W / _LR_W.sum())
_R_MID = math.exp(0.5 * (_LR_NODES[0] + _LR_NODES[-1]))


# ---------------------------------------------------------------------------
# the likelihood
# ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LineFluxLikelihood:
    """Data and model of the line-flux method for ``n_bins`` bins.

    Build it with :meth:`from_bins`. Parameters are Z (12+log(O/H), dex),
    A_V (mag), the intrinsic (dust-free) Hbeta flux f_Hb (input flux unit)
    and, with ``nii_ha="nuisance"``, ln([NII]6585/Ha).

    Attributes
    ----------
    units : tuple of LineUnit
        The observed units, bluest first.
    diagnostics : tuple of Diagnostic
        All diagnostics given (``units`` refer to them by index).
    used : tuple of int
        Indices of the diagnostics that predict a unit.
    flux, var : ndarray, shape (n_bins, n_units)
        Observed flux of each unit and its variance (0 and 1 where not measured).
    measured : ndarray of bool, shape (n_bins, n_units)
        The unit's flux and a positive variance are finite.
    kappa : ndarray, shape (n_units,)
        ``k(lambda) / R_V`` of each unit.
    unit_var : ndarray, shape (n_units,)
        Scatter of each unit's log ratio to Hbeta, dex^2 (0 without scatter).
    scatter, gaussian, fit_dust, nuisance : bool
        Scatter term on; normalised Gaussian likelihood (else exp(-chi^2/2));
        A_V free (else 0); [NII]/Ha marginalised as a nuisance.
    nii_ha : None, float or "nuisance"
        As given to :meth:`from_bins`.
    logu : ndarray or None
        log10 U per bin, for Kewley et al. (2019) surfaces.
    z_ranges : tuple of (float, float)
        Validity ranges of the used diagnostics, dex.
    z_prior : (float, float)
        Bounds of the flat Z prior: their intersection, or the hull of their
        union when they do not overlap (then ``z_union`` is True and the
        prior is the union itself).
    a_v_range : (float, float)
        Flat A_V prior, mag.
    dust_law : str
        Attenuation law; ``r_v`` its R_V.
    remarks : tuple of str
        Diagnostics that were not used, and why.
    """

    units: tuple
    diagnostics: tuple
    used: tuple
    flux: np.ndarray
    var: np.ndarray
    measured: np.ndarray
    kappa: np.ndarray
    unit_var: np.ndarray
    scatter: bool
    gaussian: bool
    fit_dust: bool
    nuisance: bool
    nii_ha: object
    logu: np.ndarray | None
    z_ranges: tuple
    z_prior: tuple
    z_union: bool
    a_v_range: tuple
    dust_law: str
    r_v: float
    remarks: tuple = ()
    _weight: np.ndarray = field(init=False, repr=False)
    _has_t: list = field(init=False, repr=False)
    _quad: list = field(init=False, repr=False)
    _expl: list = field(init=False, repr=False)
    _blend: int | None = field(init=False, repr=False)

    def __post_init__(self):
        nu = len(self.units)
        put = object.__setattr__
        put(self, "_weight", self.measured.astype(float))
        # Units with no scatter term (Balmer lines; every unit when scatter=False) enter
        # chi^2 as a quadratic form in f_Hb, precomputed per node; the others are summed
        # explicitly at each f_Hb.
        has_t = [self.scatter and (u.var > 0 or (isinstance(u.nii, LineUnit) and u.nii.var > 0))
                 for u in self.units]
        blend = next((i for i, u in enumerate(self.units) if u.nii is not None), None)
        quad = [i for i in range(nu) if not has_t[i] and not (self.nuisance and i == blend)]
        put(self, "_has_t", has_t)
        put(self, "_quad", quad)
        put(self, "_expl", [i for i in range(nu) if i not in quad])
        put(self, "_blend", blend)

    @classmethod
    def from_bins(cls, bins: BinFluxes, diags, *, dust_law: str = "calzetti2000",
                  r_v: float | None = None, a_v_range=(0.0, 4.0), fit_dust: bool = True,
                  balmer=("Hb", "Ha", "Hg"), nii_ha=None, scatter: bool = True,
                  likelihood: str = "chi2", logu=None) -> "LineFluxLikelihood":
        """The likelihood of ``bins`` under the diagnostics ``diags`` (keys or objects).

        Parameters are those of
        :func:`~mockzgrad.recovery.metallicity.line_flux_method`.
        Raises RecoveryError if no measured line is metallicity-sensitive.
        """
        bins = check_bins(bins)
        diags = resolve_diagnostics(diags)
        if dust_law not in LAWS:
            raise ConfigError(f"dust_law = {dust_law!r}; allowed: {', '.join(LAWS)}")
        if likelihood not in ("chi2", "gaussian"):
            raise ConfigError(f"likelihood = {likelihood!r}; allowed: 'chi2', 'gaussian'")
        balmer = _check_balmer(balmer)
        a_v_range = _check_a_v_range(a_v_range)
        nuisance = _check_nii_ha(nii_ha)
        units, remarks = build_units(diags, bins.names, balmer, nii_ha)
        if isinstance(next((u.nii for u in units if u.nii is not None), None), LineUnit):
            nuisance = False  # N2 predicts [NII]/Ha
        used = sorted({j for u in units for j, _ in u.terms}
                      | {j for u in units if isinstance(u.nii, LineUnit) for j, _ in u.nii.terms})
        if not any(u.kind == "metal" for u in units):
            raise RecoveryError(
                "line_flux_method: no measured line is predicted by the diagnostics "
                f"{[d.key for d in diags]} (measured: {', '.join(bins.names)})"
            )
        logu_b = logu_array(logu, bins.n_bins, [diags[j] for j in used])
        ranges = [diags[j].valid_range for j in used]
        zlo, zhi = max(r[0] for r in ranges), min(r[1] for r in ranges)
        union = zlo > zhi
        if union:
            zlo, zhi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        r_v_eff = DEFAULT_R_V[dust_law] if r_v is None else float(r_v)
        kappa = k_lambda(np.array([u.wavelength for u in units]), dust_law, r_v) / r_v_eff
        flux, var, ok = _unit_data(bins, units)
        return cls(
            units=tuple(units), diagnostics=tuple(diags), used=tuple(used),
            flux=np.where(ok, flux, 0.0), var=np.where(ok, var, 1.0), measured=ok, kappa=kappa,
            unit_var=np.array([u.var for u in units]) if scatter else np.zeros(len(units)),
            scatter=bool(scatter), gaussian=likelihood == "gaussian", fit_dust=bool(fit_dust),
            nuisance=nuisance, nii_ha=nii_ha, logu=logu_b, z_ranges=tuple(ranges),
            z_prior=(zlo, zhi), z_union=union, a_v_range=a_v_range, dust_law=dust_law,
            r_v=r_v_eff, remarks=tuple(remarks),
        )

    # --- bookkeeping ---------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return self.flux.shape[0]

    @property
    def used_keys(self) -> tuple[str, ...]:
        """Keys of the diagnostics that predict a unit."""
        return tuple(self.diagnostics[j].key for j in self.used)

    @property
    def scatter_unknown(self) -> tuple[str, ...]:
        """Used diagnostics whose intrinsic scatter is not published (taken as 0)."""
        return tuple(self.diagnostics[j].key for j in self.used if self.diagnostics[j].sigma_ratio is None)

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the units."""
        return tuple(u.label for u in self.units)

    @property
    def n_dim(self) -> int:
        """Parameters sampled by emcee: Z, [A_V], ln f_Hb, [ln [NII]/Ha]."""
        return 2 + int(self.fit_dust) + int(self.nuisance)

    # --- priors --------------------------------------------------------------
    def in_z_prior(self, z):
        """Inside the flat Z prior (the validity ranges' intersection, else their union)."""
        zlo, zhi = self.z_prior
        if not self.z_union:
            return (z >= zlo - TOL) & (z <= zhi + TOL)
        out = np.zeros(np.shape(z), dtype=bool)
        for lo, hi in self.z_ranges:
            out |= (z >= lo - TOL) & (z <= hi + TOL)
        return out

    def in_a_v_prior(self, av):
        """Inside the flat A_V prior (everywhere when A_V is not fitted)."""
        if not self.fit_dust:
            return np.ones(np.shape(av), dtype=bool)
        a0, a1 = self.a_v_range
        return (av >= a0 - TOL) & (av <= a1 + TOL)

    # --- model ---------------------------------------------------------------
    def model_ratios(self, z, rows):
        """log10 (unit flux / intrinsic Hbeta) at ``z`` (B, K) -> (B, K, U), dust-free.

        Also the [NII] prediction of an Ha+[NII] blend (see :func:`~.predicted_lines.unit_predictions`).
        """
        lu = None if self.logu is None else self.logu[rows][:, None]
        return unit_predictions(self.units, self.diagnostics, z, lu)

    def predict(self, z, av, rows, paired=False):
        """Predicted observed flux per unit f_Hb (a) and its scatter (t), per unit.

        z: (B, K) metallicities; av: (B, V) A_V, or (B, K) when ``paired``.
        Returns lists over units of arrays (B, K, V) ((B, K) when paired; t is
        None for units without scatter) and the mask of nodes where every
        prediction is finite.
        """
        logp, nii = self.model_ratios(z, rows)
        with np.errstate(over="ignore", invalid="ignore"):
            p = 10.0 ** logp  # (B, K, U)
            pn = None if nii is None else _C_NII * 10.0 ** nii[1]
        finite = np.all(np.isfinite(p), axis=-1)
        if pn is not None:
            finite &= np.isfinite(pn)
            pn = np.where(np.isfinite(pn), pn, 0.0)
        p = np.where(np.isfinite(p), p, 0.0)
        a_list, t_list = [], []
        for i in range(len(self.units)):
            pi = p[..., i]
            ti = pi * (LN10 * math.sqrt(self.unit_var[i])) if self._has_t[i] else None
            if pn is not None and i == nii[0]:  # Ha + [NII] with [NII]/Ha from N2
                if self._has_t[i]:
                    ti = np.hypot(ti, pn * (LN10 * math.sqrt(nii[2])))
                pi = pi + pn
            elif i == self._blend and not self.nuisance:  # Ha + [NII] with a fixed [NII]/Ha
                pi = pi * (1.0 + _C_NII * float(self.nii_ha))
            dust = 10.0 ** (-0.4 * self.kappa[i] * av)
            if paired:
                a_list.append(pi * dust)
                t_list.append(None if ti is None else ti * dust)
            else:
                a_list.append(pi[:, :, None] * dust[:, None, :])
                t_list.append(None if ti is None else ti[:, :, None] * dust[:, None, :])
        return a_list, t_list, (finite if paired else finite[:, :, None])

    def data(self, rows, paired=False):
        """Per unit: (flux, variance, measured as 0/1) of bins ``rows``, shaped to broadcast."""
        shape = (-1, 1) if paired else (-1, 1, 1)
        return [tuple(v[rows, i].reshape(shape) for v in (self.flux, self.var, self._weight))
                for i in range(len(self.units))]

    # --- chi^2 and likelihood at given f_Hb ---------------------------------------
    def quad_form(self, a_list, dat):
        """(q0, q1, q2): chi^2 of the no-scatter units is q0 - 2 f q1 + f^2 q2."""
        q0 = q1 = q2 = 0.0
        for i in self._quad:
            y, v, w = dat[i]
            a = a_list[i]
            q0 = q0 + w * y * y / v
            q1 = q1 + w * a * y / v
            q2 = q2 + w * a * a / v
        return q0, q1, q2

    def best_f_hb(self, a_list, t_list, dat, q, r_factor):
        """Conditional best f_Hb (weighted least squares, reweighted for the scatter) and its sigma."""
        def sums(f):
            num, den = q[1], q[2]
            for i in self._expl:
                y, v, w = dat[i]
                a = a_list[i] * (r_factor if i == self._blend and self.nuisance else 1.0)
                if f is not None and t_list[i] is not None:
                    v = v + (np.where(f > 0, f, 0.0) * t_list[i]) ** 2
                num = num + w * a * y / v
                den = den + w * a * a / v
            return num, den

        with np.errstate(divide="ignore", invalid="ignore"):
            num, den = sums(None)
            f = num / den
            if any(t_list[i] is not None for i in self._expl):
                for _ in range(_IRLS):
                    num, den = sums(f)
                    f = num / den
            return f, 1.0 / np.sqrt(den)

    def loglike(self, f, a_list, t_list, dat, q, skip=None, r_factor=None):
        """(chi^2, log-likelihood) at f_Hb = f, leaving out unit ``skip``.

        ``r_factor``: blend flux factor of a nuisance [NII]/Ha (see :meth:`nii_factor`).
        """
        chi2 = q[0] - 2.0 * f * q[1] + f * f * q[2]
        logdet = 0.0
        for i in self._expl:
            if i == skip:
                continue
            y, v, w = dat[i]
            a = a_list[i] if r_factor is None or i != self._blend else a_list[i] * r_factor
            if t_list[i] is not None:
                v = v + (f * t_list[i]) ** 2
                if self.gaussian:
                    logdet = logdet + w * np.log(v)
            r = y - a * f
            chi2 = chi2 + w * r * r / v
        return chi2, -0.5 * chi2 - 0.5 * logdet

    @staticmethod
    def nii_factor(lr):
        """Blend flux factor (1 + [NII]/Ha (1 + 1/3.071)) for ln([NII]/Ha) = lr."""
        return 1.0 + _C_NII * np.exp(lr)

    def loglike_marg_nii(self, f, a_list, t_list, dat, q):
        """log-likelihood with the nuisance [NII]/Ha integrated over its prior."""
        _, ll_rest = self.loglike(f, a_list, t_list, dat, q, skip=self._blend)
        y, v, w = dat[self._blend]
        acc = -np.inf
        for lr, lw in zip(_LR_NODES, _LR_W):
            r = y - a_list[self._blend] * self.nii_factor(lr) * f
            acc = np.logaddexp(acc, -0.5 * w * r * r / v + lw)
        return ll_rest + acc

    def chi2(self, z, a_v, f_hb, row: int = 0, log_nii_ha=None):
        """chi^2 of bin ``row`` at parameter arrays ``z``, ``a_v``, ``f_hb`` (one shape).

        No prior is applied. ``log_nii_ha``: ln([NII]/Ha) of a nuisance blend
        (default: the middle of its prior).
        """
        z, a_v, f_hb = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (z, a_v, f_hb)))
        shape = z.shape
        rows = np.array([row])
        a_list, t_list, _ = self.predict(z.reshape(1, -1), a_v.reshape(1, -1), rows, paired=True)
        dat = self.data(rows, paired=True)
        rf = None
        if self.nuisance:
            lr = math.log(_R_MID) if log_nii_ha is None else log_nii_ha
            rf = np.broadcast_to(self.nii_factor(np.asarray(lr, dtype=float)), shape).reshape(1, -1)
        with np.errstate(over="ignore", invalid="ignore"):
            chi2, _ = self.loglike(f_hb.reshape(1, -1), a_list, t_list, dat,
                                   self.quad_form(a_list, dat), r_factor=rf)
        return np.broadcast_to(chi2, (1, z.size))[0].reshape(shape)

    # --- grids: f_Hb profiled or marginalised --------------------------------------
    def profile(self, z, av, rows):
        """Profile log-posterior: f_Hb at its conditional best, Laplace width in ln f_Hb.

        Returns the log-posterior (B, K, V) and the conditional f_Hb (NaN where not > 0).
        """
        a_list, t_list, finite = self.predict(z, av, rows)
        dat = self.data(rows)
        q = self.quad_form(a_list, dat)
        # only a nuisance blend carries the mid-prior [NII]/Ha factor; fixed or N2 [NII] is in a_list
        r_mid = self.nii_factor(math.log(_R_MID)) if self.nuisance else None
        f, sf = self.best_f_hb(a_list, t_list, dat, q, r_mid)
        with np.errstate(divide="ignore", invalid="ignore"):
            fpos = np.where(f > 0, f, np.nan)
            _, ll = self.loglike(fpos, a_list, t_list, dat, q, r_factor=r_mid)
            lp = ll + np.log(sf / fpos)
        good = finite & np.isfinite(lp)
        return np.where(good, lp, -np.inf), fpos

    def marginal(self, z, av, rows, flo, fhi):
        """log posterior of (Z, A_V), f_Hb (and a nuisance [NII]/Ha) integrated out.

        f_Hb has a log-uniform prior on [flo, fhi] (per bin); the integral
        over ln f_Hb is a 13-node sum spanning -+6 conditional sigma around
        the conditional best f_Hb. Also returns the chi^2 and f_Hb at the
        conditional best f_Hb of every node. No prior on (Z, A_V) is applied.
        """
        a_list, t_list, finite = self.predict(z, av, rows)
        dat = self.data(rows)
        q = self.quad_form(a_list, dat)
        # only a nuisance blend carries the mid-prior [NII]/Ha factor; fixed or N2 [NII] is in a_list
        r_mid = self.nii_factor(math.log(_R_MID)) if self.nuisance else None
        f, sf = self.best_f_hb(a_list, t_list, dat, q, r_mid)
        flo3, fhi3 = flo[:, None, None], fhi[:, None, None]
        lflo, lfhi = np.log(flo3), np.log(fhi3)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fc = np.clip(np.where(f > 0, f, flo3), flo3, fhi3)
            slf = np.clip(np.where(np.isfinite(sf), sf / fc, 3.0), 1e-6, 3.0)
            lfc = np.log(fc)
            chi2c, _ = self.loglike(fc, a_list, t_list, dat, q, r_factor=r_mid)
            acc = np.full(np.broadcast(fc, finite).shape, -np.inf)
            for uj in _F_NODES:
                lf = lfc + uj * slf
                fj = np.exp(lf)
                if self.nuisance:
                    ll = self.loglike_marg_nii(fj, a_list, t_list, dat, q)
                else:
                    ll = self.loglike(fj, a_list, t_list, dat, q)[1]
                acc = np.logaddexp(acc, np.where((lf >= lflo) & (lf <= lfhi), ll, -np.inf))
            lp = acc + np.log(slf)
        good = finite & np.isfinite(lp)
        return np.where(good, lp, -np.inf), np.where(good, chi2c, np.inf), fc

    def grid_posterior(self, z, av, rows, flo, fhi):
        """:meth:`marginal` with the (Z, A_V) prior: log posterior, chi^2 (inf outside), f_Hb."""
        lp, chi2, fc = self.marginal(z, av, rows, flo, fhi)
        prior = self.in_z_prior(z)[:, :, None] & self.in_a_v_prior(av)[:, None, :]
        lp = np.where(prior, lp, -np.inf)
        chi2 = np.where(prior & np.isfinite(lp), chi2, np.inf)
        return lp, chi2, fc

    # --- one bin, parameter vectors (emcee) ------------------------------------
    def evaluate(self, theta, row: int, f_range, dat=None):
        """(chi^2, log posterior) of bin ``row`` at parameter vectors ``theta`` (W, n_dim).

        Columns: Z, A_V (if fitted), ln f_Hb, ln [NII]/Ha (if a nuisance);
        ``f_range``: (low, high) of the log-uniform f_Hb prior. Outside the
        prior: (inf, -inf).
        """
        rows = np.array([row])
        dat = self.data(rows, paired=True) if dat is None else dat
        lflo, lfhi = math.log(f_range[0]), math.log(f_range[1])
        zlo = self.z_prior[0]
        a0 = self.a_v_range[0]
        i_f = 1 + int(self.fit_dust)
        zw = theta[:, 0]
        avw = theta[:, 1] if self.fit_dust else np.zeros_like(zw)
        lf = theta[:, i_f]
        inside = self.in_z_prior(zw) & self.in_a_v_prior(avw) & (lf >= lflo) & (lf <= lfhi)
        a_list, t_list, finite = self.predict(np.where(inside, zw, zlo)[None, :],
                                              np.where(inside, avw, a0 if self.fit_dust else 0.0)[None, :],
                                              rows, paired=True)
        rf = None
        if self.nuisance:
            lr = theta[:, i_f + 1]
            inside &= (lr >= _LR_NODES[0]) & (lr <= _LR_NODES[-1])
            rf = self.nii_factor(np.clip(lr, _LR_NODES[0], _LR_NODES[-1]))[None, :]
        q = self.quad_form(a_list, dat)
        with np.errstate(over="ignore", invalid="ignore"):
            chi2, ll = self.loglike(np.exp(np.clip(lf, lflo, lfhi))[None, :], a_list, t_list,
                                    dat, q, r_factor=rf)
        good = inside & finite[0] & np.isfinite(ll[0])
        return np.where(good, chi2[0], np.inf), np.where(good, ll[0], -np.inf)

    def sample(self, row: int, p0, rng: np.random.Generator, n_steps: int, n_burn: int, f_range):
        """emcee chain (flat, after burn-in) and log posteriors of bin ``row`` from ``p0``."""
        dat = self.data(np.array([row]), paired=True)

        def log_prob(theta):
            return self.evaluate(theta, row, f_range, dat)[1]

        return run_emcee(log_prob, p0, rng, n_steps, n_burn)

    def start(self, row: int, z, a_v, f_hb, scale, rng: np.random.Generator, n_walkers: int, f_range):
        """Walkers in a small ball around (z, a_v, f_hb), inside the prior; (n_walkers, n_dim).

        ``scale``: (sigma_z, sigma_av) of the posterior; the ball is 0.1 of it
        (1e-3 in ln f_Hb, 0.1 in ln [NII]/Ha around the middle of its prior).
        """
        zlo, zhi = self.z_prior
        a0, a1 = self.a_v_range
        lflo, lfhi = math.log(f_range[0]), math.log(f_range[1])
        start = [np.clip(z + 0.1 * scale[0] * rng.standard_normal(n_walkers), zlo, zhi)]
        if self.fit_dust:
            start.append(np.clip(a_v + 0.1 * scale[1] * rng.standard_normal(n_walkers), a0, a1))
        start.append(np.clip(math.log(f_hb) + 1e-3 * rng.standard_normal(n_walkers), lflo, lfhi))
        if self.nuisance:
            start.append(math.log(_R_MID) + 0.1 * rng.standard_normal(n_walkers))
        return np.stack(start, axis=1)


def _check_balmer(balmer) -> tuple[str, ...]:
    if isinstance(balmer, str):
        balmer = (balmer,)
    bad = [x for x in balmer if x not in BALMER_RATIOS]
    if bad:
        raise ConfigError(f"balmer: {bad} not Balmer lines; allowed: {', '.join(BALMER_RATIOS)}")
    return tuple(balmer)


def _check_a_v_range(a_v_range) -> tuple[float, float]:
    try:
        a0, a1 = (float(v) for v in a_v_range)
    except (TypeError, ValueError):
        raise ConfigError(f"a_v_range = {a_v_range!r}: expected (low, high) in mag") from None
    if not (math.isfinite(a0) and math.isfinite(a1) and a0 < a1):
        raise ConfigError(f"a_v_range = {a_v_range!r}; allowed: finite with low < high")
    return a0, a1


def _check_nii_ha(nii_ha) -> bool:
    """Whether [NII]/Ha is a nuisance parameter."""
    if nii_ha is None:
        return False
    if isinstance(nii_ha, str):
        if nii_ha != "nuisance":
            raise ConfigError(f"nii_ha = {nii_ha!r}; allowed: None, 'nuisance' or a number")
        return True
    if not (isinstance(nii_ha, (int, float)) and 0 <= nii_ha < 10):
        raise ConfigError(f"nii_ha = {nii_ha!r}; allowed: None, 'nuisance' or a number in [0, 10)")
    return False


def _unit_data(bins: BinFluxes, units):
    """Observed flux and variance of every unit (a blend's variance includes its covariance)."""
    n, nu = bins.n_bins, len(units)
    y = np.empty((n, nu))
    s2 = np.empty((n, nu))
    for i, u in enumerate(units):
        y[:, i], s2[:, i] = bins._sum(bins._weights(u.weights))
    ok = np.isfinite(y) & np.isfinite(s2) & (s2 > 0)
    return y, s2, ok
