"""mockzgrad: forward-modelled IFU and grism observations of disk galaxies
with metallicity gradients, and the beam-smearing corrections they imply."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mockzgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+unknown"

from .errors import CalibrationError, ConfigError, DataError, MockzgradError, MockzgradWarning, RecoveryError

__all__ = [
    "__version__",
    "MockzgradError",
    "ConfigError",
    "CalibrationError",
    "DataError",
    "RecoveryError",
    "MockzgradWarning",
]
