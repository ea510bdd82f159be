"""Configuration of one mock: :class:`MockConfig`, its variants, and its TOML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ._checks import check_fields, integer_field
from .continuum import ContinuumConfig
from .cosmology import CosmologyConfig
from .dicts import config_to_dict, from_dict, set_path
from .galaxy import GalaxyConfig
from .instrument import InstrumentConfig
from .lensing import LensingConfig
from .lines import LinesConfig
from .noise import NoiseConfig
from .toml_io import dumps_toml, read_toml

__all__ = ["MockConfig", "config_from_dict", "load_config", "save_config"]

_SECTIONS = (("galaxy", GalaxyConfig), ("lines", LinesConfig), ("instrument", InstrumentConfig),
             ("noise", NoiseConfig), ("cosmology", CosmologyConfig))


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything needed to build one mock cube.

    Parameters
    ----------
    galaxy : GalaxyConfig
    lines : LinesConfig
    instrument : InstrumentConfig
    noise : NoiseConfig
    cosmology : CosmologyConfig
    lensing : LensingConfig or None
        A lens in front of the galaxy (``[lensing]``); None (no table, or
        ``kind = "none"``): unlensed, and no table is written.
    seed : int
        Seeds the noise (and ratio-scatter) draws: same config and seed,
        same bytes; [0, 2**63 - 1].
    """

    galaxy: GalaxyConfig = field(default_factory=GalaxyConfig)
    lines: LinesConfig = field(default_factory=LinesConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    cosmology: CosmologyConfig = field(default_factory=CosmologyConfig)
    lensing: LensingConfig = None  # None = unlensed; annotated as the dataclass so [lensing] parses and sweeps
    continuum: ContinuumConfig = None  # None = no continuum; annotated as the dataclass so [continuum] parses
    seed: int = integer_field(0, 0, 2**63 - 1)

    def __post_init__(self):
        check_fields(self, "")
        for name, cls in _SECTIONS:
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.lensing is not None:
            if not isinstance(self.lensing, LensingConfig):
                raise ConfigError(f"lensing: expected a LensingConfig, got {type(self.lensing).__name__}")
            if not self.lensing.lensed:  # kind = "none" is the unlensed config itself
                object.__setattr__(self, "lensing", None)
            else:
                self.lensing.check_source(self.galaxy.redshift)
        if self.continuum is not None:
            if not isinstance(self.continuum, ContinuumConfig):
                raise ConfigError(f"continuum: expected a ContinuumConfig, got {type(self.continuum).__name__}")
            if not self.continuum.present:  # kind = "none" is the config without a continuum
                object.__setattr__(self, "continuum", None)
        if self.noise.snr_line not in self.lines.lines:
            raise ConfigError(
                f"noise.snr_line = {self.noise.snr_line!r} is not among lines.lines = {list(self.lines.lines)}"
            )
        if self.lines.reference_line not in self.lines.lines:
            raise ConfigError(
                f"lines.reference_line = {self.lines.reference_line!r} is not among "
                f"lines.lines = {list(self.lines.lines)}"
            )

    def replace(self, **changes) -> "MockConfig":
        """Copy with changes given by dotted paths, e.g. ``{"galaxy.r_eff": 3.0}``.

        The copy is checked like a configuration read from TOML; a value of
        None sets the field back to its default.
        """
        data = config_to_dict(self)
        for path, value in changes.items():
            set_path(data, path, value)
        return config_from_dict(data)

    def to_dict(self) -> dict:
        """Nested dict of this configuration (see :func:`config_to_dict`)."""
        return config_to_dict(self)


def config_from_dict(data: dict) -> MockConfig:
    """Build and validate a :class:`MockConfig` from a nested dict (as read from TOML)."""
    return from_dict(MockConfig, data, "")


def load_config(path) -> MockConfig:
    """Read and validate a TOML configuration file.

    Raises
    ------
    ConfigError
        The file is missing, is not valid TOML, or holds an invalid value.
    """
    return config_from_dict(read_toml(path, "config file")[0])


def save_config(cfg: MockConfig, path) -> None:
    """Write a configuration as TOML (atomically: a temporary file in the same folder, then renamed)."""
    from ..fileio import atomic_write

    text = dumps_toml(config_to_dict(cfg))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=True)
