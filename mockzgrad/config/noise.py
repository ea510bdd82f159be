"""Configuration of the noise added to a mock."""

from __future__ import annotations

from dataclasses import dataclass

from .. import validate
from ..errors import ConfigError
from ._checks import bool_field, check_fields, line_field, line_name, number_field

__all__ = ["DEFAULT_SNR", "NoiseConfig", "check_windows"]

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
    windows : dict or None
        Depth per spectral window (IFU, grism and slit-stepping modes),
        ``{name: table}``; None (the default): one sigma for the whole cube. A grism mock
        (``noise_model = "snr"``) scales each exposure without ``snr_line``
        by the window of the first line its filter covers (``scale`` only);
        a slit-stepping mock scales its detector noise per channel (a
        ``sigma`` window is then per detector pixel, as ``sigma``). A window covers the lines
        named in ``lines`` and the lines whose observed wavelength lies in
        ``[wave_min, wave_max]`` (Angstrom); every channel takes the depth of
        its nearest line. Each window gives one of ``scale`` (relative
        sigma: lines in no window have scale 1, and ``snr`` / ``sigma`` fix
        the sigma at ``snr_line``, so a channel's sigma is that sigma times
        its scale over the ``snr_line`` scale) or ``sigma`` (absolute,
        erg/s/cm^2 per channel; not for the window holding ``snr_line``).
        With a background-limited depth, a window of sensitivity s_w observed
        for t_w against s_0, t_0 at ``snr_line`` has scale
        (s_w / s_0) sqrt(t_0 / t_w). Example::

            [noise.windows.IZ]
            lines = ["OII_3727", "Hb", "OIII_5008"]
            scale = 2.0            # 4x shorter than the Ha band at equal sensitivity
    """

    snr: float | None = number_field(None, 0.0, 1e6, lo_open=True)
    sigma: float | None = number_field(None, 0.0, 1.0, lo_open=True, unit="erg/s/cm^2")
    snr_line: str = line_field("OIII_5008")
    enabled: bool = bool_field(True)
    windows: dict | None = None

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
        if self.windows is None:
            return
        object.__setattr__(self, "windows", check_windows(f"{p}.windows", self.windows))
        for name, w in self.windows.items():
            if "sigma" in w and self.snr_line in w.get("lines", ()):
                raise ConfigError(f"{p}.windows.{name}.sigma: the window holds noise.snr_line = "
                                  f"{self.snr_line!r}, whose sigma noise.snr / noise.sigma set; give scale")

    def __hash__(self):  # windows is a dict: hashed through its sorted repr
        return hash((self.snr, self.sigma, self.snr_line, self.enabled, repr(sorted((self.windows or {}).items()))))


#: Keys of one ``noise.windows`` table.
WINDOW_KEYS = ("lines", "wave_min", "wave_max", "scale", "sigma")


def check_windows(where: str, windows) -> dict:
    """Check ``noise.windows``; return it with plain values (line names as lists).

    Raises
    ------
    ConfigError
        A window that is not a table, an unknown key, no ``lines`` and no
        wavelength range, ``wave_min >= wave_max``, or not exactly one of
        ``scale`` (> 0) and ``sigma`` (erg/s/cm^2, (0, 1]).
    """
    if not isinstance(windows, dict):
        raise ConfigError(f"{where} = {windows!r}; expected tables [{where}.NAME] (lines or wave_min/wave_max, "
                          "and scale or sigma)")
    out = {}
    for name, w in windows.items():
        p = f"{where}.{name}"
        if not isinstance(w, dict):
            raise ConfigError(f"{p} = {w!r}; expected a table (lines or wave_min/wave_max, and scale or sigma)")
        extra = sorted(set(w) - set(WINDOW_KEYS))
        if extra:
            raise ConfigError(f"{p}.{extra[0]}: unknown key; allowed: {', '.join(WINDOW_KEYS)}")
        clean = {}
        if "lines" in w:
            clean["lines"] = [line_name(f"{p}.lines", v) for v in validate.strings(f"{p}.lines", w["lines"])]
        if ("wave_min" in w) != ("wave_max" in w):
            raise ConfigError(f"{p}: give both wave_min and wave_max (observed, Angstrom) or neither")
        if "wave_min" in w:
            lo = validate.number(f"{p}.wave_min", w["wave_min"], 0.0, None, lo_open=True, unit="Angstrom")
            hi = validate.number(f"{p}.wave_max", w["wave_max"], 0.0, None, lo_open=True, unit="Angstrom")
            if not lo < hi:
                raise ConfigError(f"{p}: wave_min = {lo!r} must be below wave_max = {hi!r}")
            clean.update(wave_min=float(lo), wave_max=float(hi))
        if not clean:
            raise ConfigError(f"{p}: give lines or wave_min/wave_max")
        if ("scale" in w) == ("sigma" in w):
            raise ConfigError(f"{p}: give exactly one of scale (x the snr_line sigma) and sigma (erg/s/cm^2)")
        if "scale" in w:
            clean["scale"] = float(validate.number(f"{p}.scale", w["scale"], 0.0, 1e6, lo_open=True))
        else:
            clean["sigma"] = float(validate.number(f"{p}.sigma", w["sigma"], 0.0, 1.0, lo_open=True,
                                                   unit="erg/s/cm^2"))
        out[str(name)] = clean
    return out
