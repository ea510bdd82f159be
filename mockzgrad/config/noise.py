"""Configuration of the noise added to a mock."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ._checks import bool_field, check_fields, line_field, number_field

__all__ = ["DEFAULT_SNR", "NoiseConfig"]

#: S/N of the flagship mock, used when neither ``noise.snr`` nor ``noise.sigma`` is given.
DEFAULT_SNR = 30.0


@dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Noise: Gaussian with constant sigma per pixel and channel.

    Give exactly one of ``snr`` and ``sigma``.

    Parameters
    ----------
    snr : float or None
        Target S/N (default :data:`DEFAULT_SNR` when neither ``snr`` nor
        ``sigma`` is given) as defined in DESIGN.md: the mean, over spaxels
        inside the r_eff ellipse, of noise-free signal / sigma in the channel
        where the spatially integrated ``snr_line`` peaks; (0, 1e6].
    sigma : float or None
        Absolute noise sigma per pixel and channel, erg/s/cm^2 per channel; (0, 1].
    snr_line : str
        Line whose peak channel defines the S/N.
    enabled : bool
        False: a noise-free cube (the variance still describes ``snr``/``sigma``).
    """

    snr: float | None = number_field(None, 0.0, 1e6, lo_open=True)
    sigma: float | None = number_field(None, 0.0, 1.0, lo_open=True, unit="erg/s/cm^2")
    snr_line: str = line_field("OIII_5008")
    enabled: bool = bool_field(True)

    def __post_init__(self):
        p = "noise"
        if self.snr is None and self.sigma is None:  # neither given: the flagship S/N
            object.__setattr__(self, "snr", DEFAULT_SNR)
        if (self.snr is None) == (self.sigma is None):
            raise ConfigError(
                f"{p}: give exactly one of {p}.snr (target S/N) and {p}.sigma (erg/s/cm^2 per channel); "
                f"got snr = {self.snr!r}, sigma = {self.sigma!r}"
            )
        check_fields(self, p)
