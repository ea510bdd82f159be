"""Configuration of the optional stellar continuum of the cube modes (``[continuum]``).

The IFU and slit-stepping modes add a stellar continuum to the pre-PSF scene
when ``[continuum]`` is given with ``kind`` other than ``"none"``
(:mod:`mockzgrad.source.continuum`). Its level is set by the rest-frame
equivalent width of ``lines.reference_line`` over the galaxy's *total*
continuum, as the grism mode's ``instrument.grism.continuum_ew`` does; the
names follow those of the grism mode without the ``continuum_`` prefix.

TOML::

    [continuum]
    kind = "flat"        # or "power_law" (f_lambda ~ lambda^beta)
    ew = 100.0           # rest-frame EW of lines.reference_line, Angstrom

A configuration without the table (or with ``kind = "none"``) has no
continuum, and no table is written back: its cubes are byte-identical to
those of a configuration from before the table existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import check_fields, choice_field, number_field

__all__ = ["CONTINUUM_KINDS", "CENTRE_WINDOW_REST", "ContinuumConfig"]

#: ``continuum.kind``: no continuum, flat in f_lambda, or a power law in wavelength.
CONTINUUM_KINDS = ("none", "flat", "power_law")


@dataclass(frozen=True, kw_only=True)
class ContinuumConfig:
    """A stellar continuum in the cube modes (``[continuum]``).

    The continuum is separable, ``f_lambda(x, lambda) = I(x) f_lambda,tot(lambda)``:
    ``I`` a Sersic image of unit total flux with the galaxy's inclination
    and PA, and ``f_lambda,tot = F_ref / (ew (1 + z)) (lambda / lambda_ref)^beta``
    with ``F_ref`` the reference line's total flux and ``lambda_ref`` its
    observed wavelength.

    Parameters
    ----------
    kind : {"none", "flat", "power_law"}
        No continuum, flat in f_lambda, or f_lambda ~ lambda^beta.
    ew : float
        Rest-frame equivalent width of ``lines.reference_line`` over the
        galaxy's total continuum, Angstrom; (0, 1e5].
    beta : float
        Power-law index of f_lambda (``"power_law"``; -2 = flat in f_nu); [-10, 10].
    r_eff : float or None
        Effective radius of the continuum's Sersic profile, kpc; (0, 100]
        (None: ``galaxy.r_eff``, the continuum follows the line light).
    sersic_n : float or None
        Its Sersic index; [0.2, 10] (None: ``galaxy.sersic_n``).
    x_offset, y_offset : float
        Offset of the continuum's centre from the galaxy's (line) centre,
        arcsec east / north; [-10, 10].
    """

    kind: str = choice_field("flat", CONTINUUM_KINDS)
    ew: float = number_field(100.0, 0.0, 1e5, lo_open=True, unit="Angstrom")
    beta: float = number_field(-2.0, -10.0, 10.0)
    r_eff: float | None = number_field(None, 0.0, 100.0, lo_open=True, unit="kpc")
    sersic_n: float | None = number_field(None, 0.2, 10.0)
    x_offset: float = number_field(0.0, -10.0, 10.0, unit="arcsec")
    y_offset: float = number_field(0.0, -10.0, 10.0, unit="arcsec")

    def __post_init__(self):
        check_fields(self, "continuum")

    @property
    def present(self) -> bool:
        """True unless ``kind = "none"``."""
        return self.kind != "none"


#: Rest-frame window of the continuum peak that sets the centre, Angstrom (S1 Sect. 3.2: 5500 +- 25 A).
CENTRE_WINDOW_REST = (5475.0, 5525.0)
