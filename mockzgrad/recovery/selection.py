"""What every recovery front end hands to the shared back end.

A front end (:data:`mockzgrad.recovery.frontend.FRONT_ENDS`: cubes, line
maps) turns an observer product into a :class:`LineSelection` (redshift,
lines, usable diagnostics) and a :class:`FrontEndResult` (geometry, bins and
per-bin line fluxes); :func:`mockzgrad.recovery.backend.measure_gradient`
takes it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..physics.lines import LINES
from .backend import LeftOut
from .binning import Binning
from .fluxes import BinFluxes
from .geometry import Geometry

__all__ = ["LineSelection", "FrontEndResult"]


@dataclass(frozen=True)
class LineSelection:
    """Redshift, lines and diagnostics of a recovery.

    Attributes
    ----------
    redshift : float
        Systemic redshift (given, or estimated).
    reference_line : str
        The brightest line: its map gives the geometry.
    gate_line : str
        The line whose map gates the bins.
    lines : tuple of str
        Lines the recipe needs that the cube covers, in catalogue order: the
        lines fitted.
    diagnostics : tuple of Diagnostic
        The recipe's diagnostics whose lines are all covered.
    excluded : tuple of LeftOut
        Diagnostics left out, with the lines they miss.
    """

    redshift: float
    reference_line: str
    gate_line: str
    lines: tuple[str, ...]
    diagnostics: tuple
    excluded: tuple[LeftOut, ...] = ()

    def observed(self, line: str) -> float:
        """Observed wavelength of ``line`` at this redshift, Angstrom."""
        return LINES[line].wavelength * (1 + self.redshift)


@dataclass(frozen=True, eq=False)
class FrontEndResult:
    """What a front end hands to the back end and to the report.

    Attributes
    ----------
    selection : LineSelection
    kpc_per_arcsec : float
        Proper kpc per arcsec at the redshift.
    geometry : Geometry
    binning : Binning
        Radii (deprojected kpc), spaxel counts and annulus edges of the bins.
    fluxes : BinFluxes or None
        Line fluxes of each bin; None when no bin passed the cuts.
    integrated : BinFluxes or None
        Fluxes of all bins together (one bin), when the recipe's dust step
        can use them.
    excluded : tuple of LeftOut
        Diagnostics and bins left out so far.
    """

    selection: LineSelection
    kpc_per_arcsec: float
    geometry: Geometry
    binning: Binning
    fluxes: BinFluxes | None
    integrated: BinFluxes | None = None
    excluded: tuple[LeftOut, ...] = ()
