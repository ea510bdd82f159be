"""Emission-line catalogue: vacuum rest wavelengths, doublet and Balmer ratios.

Line identifiers are ``SPECIES_WAVE`` with the vacuum wavelength rounded to
the nearest Angstrom (``OIII_5008``), or the plain name for hydrogen
(``Ha``, ``Hb``, ``Hg``, ``Hd``). They are the keys used everywhere: config,
FITS headers, JSON and database columns.

Sources
-------
Vacuum wavelengths: SDSS-derived line lists, verified in several independent
transcriptions (``shared/reference/constants.json``, "wavelengths_vacuum_A").
Case-B Balmer ratios at T = 1e4 K, n_e = 100 cm^-3: Osterbrock & Ferland
(2006), Table 4.2/4.4 (2.86, 0.468, 0.259), reproduced with PyNeb 1.1.32
(Storey & Hummer 1995 data).
[OIII] 5008/4960 = 2.98: Storey & Zeippen (2000); PyNeb FFT04-SZ00 gives 2.984.
[NII] 6585/6550 = 3.071: the value Lee et al. (2026) adopt, citing Storey &
Zeippen (2000); modern atomic data (PyNeb FFT04, GMZ97, NR79) give 2.942,
available as :data:`NII_DOUBLET_RATIO_PYNEB`.
[OII] 3730/3727 = 1.35: computed with PyNeb 1.1.32 (Zeippen 1982 / WFD96
transition probabilities, Kisielius et al. 2009 collision strengths) at
T = 1e4 K and n_e = 100 cm^-3, the same conditions as the Balmer ratios; it
falls to 1.14 at 300 cm^-3 and 0.81 at 1000 cm^-3, so it is a parameter.
[SII] 6718/6733 = 1.35: computed with PyNeb 1.1.32 (Rynkun et al. 2019
transition probabilities, Tayal & Zatsarinny 2010 collision strengths) at
T = 1e4 K and n_e = 100 cm^-3 (1.20 at 300 cm^-3); a parameter too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "Line",
    "LINES",
    "get_line",
    "OIII_DOUBLET_RATIO",
    "NII_DOUBLET_RATIO",
    "NII_DOUBLET_RATIO_PYNEB",
    "OII_DOUBLET_RATIO",
    "SII_DOUBLET_RATIO",
    "BALMER_RATIOS",
    "BLENDS",
    "C_KMS",
]

#: Speed of light, km/s (CODATA 2018, exact).
C_KMS = 299792.458

OIII_DOUBLET_RATIO = 2.98
NII_DOUBLET_RATIO = 3.071
NII_DOUBLET_RATIO_PYNEB = 2.942
OII_DOUBLET_RATIO = 1.35
SII_DOUBLET_RATIO = 1.35

#: Case-B intrinsic ratios relative to Hbeta (T = 1e4 K, n_e = 100 cm^-3).
BALMER_RATIOS = {"Ha": 2.86, "Hb": 1.0, "Hg": 0.468, "Hd": 0.259}


@dataclass(frozen=True)
class Line:
    """One emission line.

    Attributes
    ----------
    name : str
        Identifier, e.g. ``"OIII_5008"``.
    label : str
        Spectroscopic label for plots, e.g. ``"[OIII] 5008"``.
    wavelength : float
        Vacuum rest wavelength, Angstrom.
    species : str
        Ion, e.g. ``"[OIII]"`` or ``"H I"``.
    """

    name: str
    label: str
    wavelength: float
    species: str


_TABLE = [
    ("OII_3727", "[OII] 3727", 3727.092, "[OII]"),
    ("OII_3730", "[OII] 3730", 3729.875, "[OII]"),
    ("NeIII_3870", "[NeIII] 3870", 3869.857, "[NeIII]"),
    ("Hd", "H$\\delta$", 4102.892, "H I"),
    ("Hg", "H$\\gamma$", 4341.684, "H I"),
    ("OIII_4364", "[OIII] 4364", 4364.435, "[OIII]"),
    ("Hb", "H$\\beta$", 4862.683, "H I"),
    ("OIII_4960", "[OIII] 4960", 4960.295, "[OIII]"),
    ("OIII_5008", "[OIII] 5008", 5008.240, "[OIII]"),
    ("NII_6550", "[NII] 6550", 6549.86, "[NII]"),
    ("Ha", "H$\\alpha$", 6564.61, "H I"),
    ("NII_6585", "[NII] 6585", 6585.27, "[NII]"),
    ("SII_6718", "[SII] 6718", 6718.29, "[SII]"),
    ("SII_6733", "[SII] 6733", 6732.67, "[SII]"),
]

#: All lines by name.
LINES: dict[str, Line] = {row[0]: Line(*row) for row in _TABLE}

#: Named sums of lines used in ratio definitions (e.g. ``"OII"`` is the doublet).
BLENDS: dict[str, tuple[str, ...]] = {
    "OII": ("OII_3727", "OII_3730"),
    "OIII": ("OIII_4960", "OIII_5008"),
    "NII": ("NII_6550", "NII_6585"),
    "SII": ("SII_6718", "SII_6733"),
}


def get_line(name: str) -> Line:
    """Return the :class:`Line` called ``name``; raise a clear error otherwise."""
    try:
        return LINES[name]
    except KeyError:
        raise ConfigError(
            f"line = {name!r} is not in the catalogue; allowed: {', '.join(LINES)}"
        ) from None
