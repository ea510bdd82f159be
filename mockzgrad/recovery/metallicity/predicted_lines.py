"""Which observed line (or blend) is predicted by which diagnostics, relative to Hbeta.

The line-flux method predicts every observed *unit* (a line, or a blend
summed in the data such as [OII] 3727+3730) as a ratio to the intrinsic
Hbeta flux: Balmer lines from the Case-B ratios, other lines from the
diagnostics that are a ratio of two lines or blends, chained through lines
already predicted (R3 gives [OIII]/Hb; O32 over [OIII] then gives [OII];
Ne3O2 over [OII] gives [NeIII]; S2 and N2 go over Halpha).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ...errors import ConfigError
from ...physics.lines import BALMER_RATIOS, LINES

__all__ = ["LineUnit", "build_units", "unit_predictions"]


@dataclass(frozen=True, eq=False)
class LineUnit:
    """An observed line (or blend) and its predicted flux relative to intrinsic Hbeta.

    ``log10(flux / f_Hb) = log_const + sum(sign * log R_j(Z) for j, sign in terms)``.

    Attributes
    ----------
    label : str
        Line ids joined by "+" ("Ha+[NII]" for a blended Halpha).
    weights : dict
        Line id -> weight in the observed sum.
    wavelength : float
        Mean rest wavelength of the lines, Angstrom (where the dust law is evaluated).
    kind : str
        ``"balmer"`` (Case-B ratio, no scatter) or ``"metal"``.
    log_const : float
        Constant part of the log ratio to Hbeta, dex.
    terms : tuple of (int, float)
        (diagnostic index, sign) of each calibrated log ratio in the chain.
    var : float
        Intrinsic scatter of the log ratio, dex^2 (the chained scatters in quadrature).
    nii : LineUnit, float, str or None
        Halpha blended with [NII]: the unit predicting [NII]6585/Hb, a fixed
        [NII]6585/Ha, or ``"nuisance"``; None for a pure line.
    """

    label: str
    weights: dict
    wavelength: float
    kind: str
    log_const: float = 0.0
    terms: tuple = ()
    var: float = 0.0
    nii: object = None


def _unit_key(weights: Mapping[str, float]):
    return tuple(sorted((k, float(v)) for k, v in weights.items()))


def build_units(diags, names, balmer, nii_ha):
    """Units predicted by the diagnostics and measured in ``names``, bluest first, and remarks.

    Balmer lines listed in ``balmer`` come from the Case-B ratios; a
    diagnostic that is a ratio of two lines (or blends) predicts its other
    side once one side is known (over Hbeta, over Halpha, or chained
    through an already predicted line); the first diagnostic that predicts a
    line wins. See :func:`~mockzgrad.recovery.metallicity.line_flux_method`.
    """
    known: dict = {}
    remarks: list[str] = []

    def add(weights, kind, log_const, terms, var):
        u = LineUnit("+".join(weights), dict(weights),
                     float(np.mean([LINES[x].wavelength for x in weights])), kind,
                     log_const, tuple(terms), var)
        known[_unit_key(weights)] = u
        return u

    for line, r in BALMER_RATIOS.items():
        add({line: 1.0}, "balmer", math.log10(r), (), 0.0)
    simple = _two_sided(diags, remarks)
    used = set()
    changed = True
    while changed:  # chain until no diagnostic adds a line
        changed = False
        for j, num, den, w in simple:
            if j in used:
                continue
            kn, kd = _unit_key(num), _unit_key(den)
            s2 = (diags[j].sigma_ratio or 0.0) ** 2
            if kd in known and kn not in known:
                base = known[kd]
                add(num, "metal", base.log_const, base.terms + ((j, w),), base.var + s2)
            elif kn in known and kd not in known:
                base = known[kn]
                add(den, "metal", base.log_const, base.terms + ((j, -w),), base.var + s2)
            else:
                continue
            used.add(j)
            changed = True
    for j, num, den, _ in simple:
        if j not in used:
            remarks.append(f"{diags[j].key}: its lines are already predicted by other "
                           "diagnostics (or unconnected to Hbeta); not used")
    measured = set(names)
    units = [u for u in known.values() if set(u.weights) <= measured
             and not (u.kind == "balmer" and next(iter(u.weights)) not in balmer)]
    if nii_ha is not None:
        units = _blend_halpha(units, known, measured, nii_ha)
    units.sort(key=lambda u: u.wavelength)
    return units, remarks


def _two_sided(diags, remarks):
    """(index, numerator, denominator, weight) of the diagnostics that are one ratio of two sums."""
    simple = []
    for j, d in enumerate(diags):
        terms = d.ratio.get("terms", [])
        if not d.usable:
            remarks.append(f"{d.key}: calibration flagged unusable; not used")
            continue
        if len(terms) != 1 or len(terms[0]["parts"]) != 1 or abs(abs(float(terms[0]["weight"])) - 1) > 0:
            remarks.append(f"{d.key}: not a ratio of two lines (or blends); not used")
            continue
        part = terms[0]["parts"][0]
        simple.append((j, dict(part["numerator"]), dict(part["denominator"]),
                       float(terms[0]["weight"])))
    return simple


def _blend_halpha(units, known, measured, nii_ha):
    """The measured "Ha" unit becomes the Ha+[NII] blend."""
    i = next((i for i, u in enumerate(units) if u.label == "Ha"), None)
    if i is None:
        raise ConfigError("nii_ha: given, but 'Ha' is not among the measured Balmer lines")
    if "NII_6585" in measured:
        raise ConfigError("nii_ha: [NII] 6585 is measured separately, so 'Ha' is not a blend; "
                          "pass nii_ha=None")
    n2 = known.get(_unit_key({"NII_6585": 1.0}))
    units = list(units)
    units[i] = replace(units[i], nii=n2 if n2 is not None else nii_ha, label="Ha+[NII]")
    return units


def unit_predictions(units, diags, z, logu_rows):
    """log10 (unit flux / intrinsic Hb) at z (shape S) -> (S + (U,)).

    Also ``(unit index, log10 [NII]6585/Hb, its scatter var)`` for an
    Ha+[NII] blend whose [NII] is predicted by N2, else None.
    """
    cache = {}

    def logr(j):
        if j not in cache:
            d = diags[j]
            lu = None if not d.needs_logu else logu_rows
            cache[j] = d.log_ratio(z, policy="ignore", logu=lu)
        return cache[j]

    def one(u):
        v = np.full(np.shape(z), u.log_const)
        for j, s in u.terms:
            v = v + s * logr(j)
        return v

    logp = np.stack([one(u) for u in units], axis=-1)
    nii = None
    for i, u in enumerate(units):
        if isinstance(u.nii, LineUnit):
            nii = (i, one(u.nii), u.nii.var)
    return logp, nii
