"""Exception and warning classes shared by every mockzgrad module.

A user mistake raises a subclass of :class:`MockzgradError` whose message
names the field, the value and what is allowed; the CLI turns it into one
line on stderr and exit status 2.
"""

__all__ = [
    "MockzgradError",
    "ConfigError",
    "CalibrationError",
    "DataError",
    "RecoveryError",
    "MockzgradWarning",
    "CalibrationRangeWarning",
    "FieldOfViewWarning",
    "RecoveryWarning",
]


class MockzgradError(Exception):
    """Base class of every error mockzgrad raises on purpose."""


class ConfigError(MockzgradError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class CalibrationError(MockzgradError, ValueError):
    """A calibration set or diagnostic is unknown, malformed or used outside its domain."""


class DataError(MockzgradError, ValueError):
    """An input data product (FITS cube, table) is unreadable or lacks what is needed."""


class RecoveryError(MockzgradError):
    """The recovery pipeline cannot produce the requested measurement."""


class MockzgradWarning(UserWarning):
    """Base class of mockzgrad warnings."""


class CalibrationRangeWarning(MockzgradWarning):
    """A metallicity or line ratio lies outside a calibration's validity range."""


class FieldOfViewWarning(MockzgradWarning):
    """The field of view loses more flux than the stated tolerance."""


class RecoveryWarning(MockzgradWarning):
    """A recovery step fell back to a less precise choice."""
