"""Configuration of the cosmology that turns kpc into arcsec and luminosity into flux."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import ConfigError
from ._checks import check_fields, number_field

__all__ = ["CosmologyConfig"]


@dataclass(frozen=True, kw_only=True)
class CosmologyConfig:
    """Cosmology: flat LambdaCDM by (h0, om0), or a named astropy realization.

    Parameters
    ----------
    h0 : float
        Hubble constant, km/s/Mpc; [20, 150].
    om0 : float
        Matter density today; (0, 1].
    name : str or None
        Name of an astropy realization (e.g. ``"Planck18"``); overrides h0/om0.
    """

    h0: float = number_field(70.0, 20.0, 150.0, unit="km/s/Mpc")
    om0: float = number_field(0.3, 0.0, 1.0, lo_open=True)
    name: str | None = None

    def __post_init__(self):
        check_fields(self, "cosmology")
        if self.name is not None:
            from astropy.cosmology import realizations  # astropy is slow to import; only when named

            if self.name not in realizations.available:
                raise ConfigError(
                    f"cosmology.name = {self.name!r}; allowed: {', '.join(realizations.available)}"
                )

    def to_astropy(self):
        """The astropy cosmology this configuration describes (cached)."""
        return _astropy_cosmology(self.h0, self.om0, self.name)


@functools.lru_cache(maxsize=16)
def _astropy_cosmology(h0, om0, name):
    from astropy.cosmology import FlatLambdaCDM, realizations

    if name is not None:
        return getattr(realizations, name)
    return FlatLambdaCDM(H0=h0, Om0=om0)
