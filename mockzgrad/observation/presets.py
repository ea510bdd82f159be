"""Instrument presets: list, load and check them; the t^-1/2 sensitivity law.

A preset is a TOML file in ``mockzgrad/instruments/`` (or a user's path ending
in ``.toml``) with one schema:

``[preset]``
    ``name``, ``kind`` ("ifu" | "grism" | "slitstep"), ``status`` ("from seeds"
    | "from docs" | "approximate") and ``sources`` (list of citations);
    optional ``band = [min, max]`` (observed Angstrom) with ``band_source``:
    the wavelengths the instrument can observe when its spectral grid does
    not say (the planner's "outside band" verdict).
``[instrument]`` (IFU presets)
    values of :class:`~mockzgrad.config.InstrumentConfig` (with ``[instrument.psf]``
    and ``[instrument.spectral]``); ``instrument.preset = "name"`` fills them.
    Grism and slit-stepping presets keep their ``[grism]`` / ``[slitstep]``
    tables, read by :mod:`mockzgrad.config.grism` and :mod:`mockzgrad.config.slitstep`;
    spectral-grid presets keep ``[spectral]`` (``instrument.spectral.preset``).
``[sensitivity]`` (optional)
    ``quantity`` ("line_flux": 1-sigma line-flux limit, erg/s/cm^2; "pixel_sigma":
    noise per pixel and channel, erg/s/cm^2; "snr": a reported S/N), ``value``,
    ``exposure`` (the reference exposure, s), ``citation`` and, for "snr", ``line``.
    Background limited: a sigma scales as ``value sqrt(exposure / t)``, an S/N as
    ``value sqrt(t / exposure)`` (:func:`sensitivity_at`).
``[[sensitivity.windows]]`` (optional; "line_flux" and "pixel_sigma" only)
    a depth per spectral window (grating, band, line): ``wave_min`` and
    ``wave_max`` (observed, Angstrom) and/or ``lines``, ``value``, ``exposure``
    (default the table's) and ``citation``. A line takes the first window
    covering it (by name or observed wavelength), else the table's value;
    the planner passes the ratios on as ``noise.windows``.

Every number in a preset file is cited in its comments and ``sources``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import validate
from ..config import config_from_dict
from ..config.toml_io import parse_toml
from ..errors import ConfigError

__all__ = ["PRESET_KINDS", "PRESET_STATUSES", "SENSITIVITY_QUANTITIES", "Preset", "Sensitivity", "SensitivityWindow",
           "available_presets", "load_preset", "sensitivity_at", "sensitivity_window", "line_flux_to_pixel_sigma",
           "config_for_preset", "presets_table", "cli"]

PRESET_KINDS = ("ifu", "grism", "slitstep")
PRESET_STATUSES = ("from seeds", "from docs", "approximate")
SENSITIVITY_QUANTITIES = ("line_flux", "pixel_sigma", "snr")


@dataclass(frozen=True)
class Sensitivity:
    """A depth at a reference exposure, with its citation.

    Parameters
    ----------
    quantity : {"line_flux", "pixel_sigma", "snr"}
    value : float
        1-sigma line flux (erg/s/cm^2), noise per pixel and channel
        (erg/s/cm^2), or S/N, at ``exposure``.
    exposure : float
        Reference exposure, s.
    citation : str
    line : str or None
        Line of a reported S/N.
    """

    quantity: str
    value: float
    exposure: float
    citation: str
    line: str | None = None
    windows: tuple = ()

    def at(self, line: str | None = None, wave: float | None = None) -> "Sensitivity":
        """The sensitivity that applies to ``line`` observed at ``wave`` (Angstrom): its window's, or this."""
        for w in self.windows:
            if line in w.lines or (w.wave_min is not None and wave is not None and w.wave_min <= wave <= w.wave_max):
                return Sensitivity(self.quantity, w.value, w.exposure, w.citation, self.line)
        return self


@dataclass(frozen=True)
class SensitivityWindow:
    """One spectral window of a sensitivity: observed range (Angstrom) and/or lines, value at exposure (s)."""

    value: float
    exposure: float
    citation: str
    wave_min: float | None = None
    wave_max: float | None = None
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preset:
    """One instrument preset: identity, the file's tables and its sensitivity."""

    name: str
    kind: str
    status: str
    sources: tuple[str, ...]
    tables: dict
    sensitivity: Sensitivity | None = None
    path: str = ""
    band: tuple[float, float] | None = None
    band_source: str = ""

    def summary(self) -> dict:
        """Name, kind, status, sources (and the sensitivity citation) as plain values."""
        out = {"name": self.name, "kind": self.kind, "status": self.status, "sources": list(self.sources)}
        if self.band is not None:
            out["band"] = {"wave_min": self.band[0], "wave_max": self.band[1], "source": self.band_source}
        if self.sensitivity is not None:
            s = self.sensitivity
            out["sensitivity"] = {"quantity": s.quantity, "value": s.value, "exposure_s": s.exposure,
                                  "citation": s.citation}
        return out


def available_presets() -> list[str]:
    """Names of the presets shipped in ``mockzgrad/instruments/``."""
    return sorted(p.name[:-5] for p in resources.files("mockzgrad.instruments").iterdir()
                  if p.name.endswith(".toml"))


def _read(name: str) -> tuple[dict, str]:
    if name.endswith(".toml"):
        try:
            return parse_toml(Path(name).read_text(), f"instrument preset {name}"), str(name)
        except OSError as exc:
            raise ConfigError(f"instrument preset {name!r}: cannot read it ({exc.strerror})") from None
    names = available_presets()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4) or names
        raise ConfigError(f"instrument preset {name!r}: unknown; close names: {', '.join(close)}")
    res = resources.files("mockzgrad.instruments").joinpath(f"{name}.toml")
    return parse_toml(res.read_text(), f"instrument preset {name}"), f"mockzgrad/instruments/{name}.toml"


def _sensitivity(where: str, table) -> Sensitivity | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}.sensitivity = {table!r}; expected a table")
    q = validate.choice(f"{where}.sensitivity.quantity", table.get("quantity"), SENSITIVITY_QUANTITIES)
    value = validate.number(f"{where}.sensitivity.value", table.get("value"), 0.0, None, lo_open=True)
    t = validate.number(f"{where}.sensitivity.exposure", table.get("exposure"), 0.0, None, lo_open=True, unit="s")
    cite = validate.text(f"{where}.sensitivity.citation", table.get("citation"), empty=False)
    windows = tuple(sensitivity_window(f"{where}.sensitivity.windows[{k}]", w, t)
                    for k, w in enumerate(table.get("windows", [])))
    if windows and q == "snr":
        raise ConfigError(f"{where}.sensitivity.windows: needs quantity 'line_flux' or 'pixel_sigma'; got 'snr'")
    return Sensitivity(q, float(value), float(t), cite, table.get("line"), windows)


def sensitivity_window(where: str, w, exposure: float) -> SensitivityWindow:
    """Check one ``[[sensitivity.windows]]`` table; ``exposure`` (s) is the default reference exposure.

    Raises
    ------
    ConfigError
        Not a table, neither ``wave_min``/``wave_max`` nor ``lines``, or a bad value.
    """
    if not isinstance(w, dict):
        raise ConfigError(f"{where} = {w!r}; expected a table (wave_min, wave_max or lines; value; citation)")
    lines = validate.strings(f"{where}.lines", w["lines"]) if "lines" in w else ()
    lo = hi = None
    if "wave_min" in w or "wave_max" in w:
        lo = validate.number(f"{where}.wave_min", w.get("wave_min"), 0.0, None, lo_open=True, unit="Angstrom")
        hi = validate.number(f"{where}.wave_max", w.get("wave_max"), lo, None, lo_open=True, unit="Angstrom")
    if lo is None and not lines:
        raise ConfigError(f"{where}: give wave_min and wave_max (observed, Angstrom) or lines")
    return SensitivityWindow(
        value=float(validate.number(f"{where}.value", w.get("value"), 0.0, None, lo_open=True)),
        exposure=float(validate.number(f"{where}.exposure", w.get("exposure", exposure), 0.0, None, lo_open=True,
                                       unit="s")),
        citation=validate.text(f"{where}.citation", w.get("citation"), empty=False),
        wave_min=None if lo is None else float(lo), wave_max=None if hi is None else float(hi), lines=tuple(lines))


def load_preset(name: str) -> Preset:
    """Read and check a preset by name (or TOML path).

    Raises
    ------
    ConfigError
        Unknown name (with the close names), or a missing or invalid
        ``[preset]`` / ``[sensitivity]`` value; an ``[instrument]`` table that
        does not give a valid :class:`~mockzgrad.config.InstrumentConfig`.
    """
    data, path = _read(name)
    where = f"instrument preset {name}"
    head = data.get("preset")
    if not isinstance(head, dict):
        raise ConfigError(f"{where}: needs a [preset] table (name, kind, status, sources)")
    kind = validate.choice(f"{where}: preset.kind", head.get("kind"), PRESET_KINDS)
    status = validate.choice(f"{where}: preset.status", head.get("status"), PRESET_STATUSES)
    sources = head.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        raise ConfigError(f"{where}: preset.sources = {sources!r}; expected a non-empty list of citations")
    tables = {k: v for k, v in data.items() if k not in ("preset", "sensitivity")}
    if not any(k in tables for k in ("instrument", "grism", "slitstep", "spectral")):
        raise ConfigError(f"{where}: needs one of [instrument], [grism], [slitstep], [spectral]")
    band, band_source = _band(where, head)
    preset = Preset(name=str(head.get("name", name)), kind=kind, status=status, sources=tuple(sources),
                    tables=tables, sensitivity=_sensitivity(where, data.get("sensitivity")), path=path,
                    band=band, band_source=band_source)
    if "instrument" in tables:
        config_for_preset(name)  # the [instrument] table must make a valid mock
    return preset


def _band(where: str, head: dict) -> tuple[tuple[float, float] | None, str]:
    """``preset.band`` = [min, max] (observed Angstrom) with its ``band_source``, or (None, "")."""
    if "band" not in head:
        return None, ""
    band = head["band"]
    if not isinstance(band, list) or len(band) != 2:
        raise ConfigError(f"{where}: preset.band = {band!r}; expected [min, max] in Angstrom")
    lo = validate.number(f"{where}: preset.band[0]", band[0], 0.0, None, lo_open=True, unit="Angstrom")
    hi = validate.number(f"{where}: preset.band[1]", band[1], lo, None, lo_open=True, unit="Angstrom")
    return (float(lo), float(hi)), validate.text(f"{where}: preset.band_source", head.get("band_source"),
                                                 empty=False)


def sensitivity_at(sens: Sensitivity, exposure: float, *, line: str | None = None,
                   wave: float | None = None) -> float:
    """The preset's depth at ``exposure`` seconds (background limited, t^-1/2).

    Returns ``value sqrt(t_ref / t)`` for a sigma (line flux or per pixel,
    erg/s/cm^2) and ``value sqrt(t / t_ref)`` for an S/N; with ``line`` /
    ``wave`` (observed, Angstrom) the value and t_ref of the window covering
    them (:meth:`Sensitivity.at`).
    """
    t = validate.number("exposure", exposure, 0.0, None, lo_open=True, unit="s")
    sens = sens.at(line, wave)
    if sens.quantity == "snr":
        return sens.value * math.sqrt(t / sens.exposure)
    return sens.value * math.sqrt(sens.exposure / t)


def line_flux_to_pixel_sigma(line_sigma: float, n_pixels: float, n_channels: float) -> float:
    """Noise per pixel and channel that gives a 1-sigma line flux over an aperture.

    A line summed over ``n_pixels`` pixels and ``n_channels`` channels of
    independent noise sigma_p has sigma_line = sigma_p sqrt(n_pixels n_channels).
    The aperture of a published limit is an assumption of the caller.
    """
    validate.number("line_sigma", line_sigma, 0.0, None, lo_open=True, unit="erg/s/cm^2")
    validate.number("n_pixels", n_pixels, 0.0, None, lo_open=True)
    validate.number("n_channels", n_channels, 0.0, None, lo_open=True)
    return line_sigma / math.sqrt(n_pixels * n_channels)


def config_for_preset(name: str, **overrides):
    """A :class:`~mockzgrad.config.MockConfig` observed with preset ``name``.

    ``overrides`` are dotted paths (``{"galaxy.redshift": 2.0}``; ``__`` may stand
    for ``.`` in keyword names); instrument values must agree with the preset.
    """
    from ..config.dicts import set_path

    data = {"instrument": {"preset": name}}
    for key, value in overrides.items():
        set_path(data, key.replace("__", "."), value)
    return config_from_dict(data)


def presets_table() -> list[dict]:
    """Name, kind, status, sources (and sensitivity) of every shipped preset."""
    return [load_preset(n).summary() for n in available_presets()]


def cli(args) -> int:
    """``mockzgrad presets [--json]``: one line per preset (or a JSON list)."""
    import json

    rows = presets_table()
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<20} {'kind':<9} {'status':<12} sources")
    for r in rows:
        print(f"{r['name']:<20} {r['kind']:<9} {r['status']:<12} {'; '.join(r['sources'])}")
    return 0
