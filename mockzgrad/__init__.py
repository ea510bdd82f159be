"""mockzgrad: forward-modelled IFU, slitless grism and slit-stepping observations
of disk galaxies (gravitationally lensed or not) with metallicity gradients, their
recovery as published surveys measure them, and the beam-smearing corrections they imply."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mockzgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+unknown"

from .errors import CalibrationError, ConfigError, DataError, MockzgradError, MockzgradWarning, RecoveryError

#: Entry points users rely on, imported on first use (PEP 562) so that
#: ``import mockzgrad`` and ``mockzgrad --version`` stay light.
_ENTRY_POINTS = {
    "MockConfig": "mockzgrad.config",
    "load_config": "mockzgrad.config",
    "load_recipe": "mockzgrad.config",
    "observe": "mockzgrad.observation",
    "MockCube": "mockzgrad.products.cube",
    "read_cube": "mockzgrad.products.cube",
    "recover": "mockzgrad.recovery",
    "load_suite": "mockzgrad.suites.suite",
    "run_suite": "mockzgrad.suites.suite",
    "derive_curves": "mockzgrad.corrections.curves",
    "CorrectionCurves": "mockzgrad.corrections.curves",
    "correct_table": "mockzgrad.corrections.correct",
}


def __getattr__(name):
    if name in _ENTRY_POINTS:
        from importlib import import_module

        return getattr(import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'mockzgrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ENTRY_POINTS))


__all__ = [
    *_ENTRY_POINTS,
    "__version__",
    "MockzgradError",
    "ConfigError",
    "CalibrationError",
    "DataError",
    "RecoveryError",
    "MockzgradWarning",
]
