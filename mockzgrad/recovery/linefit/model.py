"""The line model: which lines are fitted and which fluxes are tied.

A tied line has no flux parameter of its own: ``flux[line] = ratio *
flux[parent]`` (fixed doublet ratios). Chains of ties are resolved to the
free line at their root; the fitted parameters are the free fluxes, and
:attr:`LineModel.tie_matrix` maps them to every line's flux.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np

from ... import validate
from ...errors import ConfigError
from ...physics.lines import BLENDS, NII_DOUBLET_RATIO, OIII_DOUBLET_RATIO, get_line

__all__ = ["LineModel", "default_line_model"]


@dataclass(frozen=True)
class LineModel:
    """Which lines to fit and which line fluxes are tied to others.

    Parameters
    ----------
    lines : tuple of str
        Line identifiers from :data:`mockzgrad.physics.lines.LINES`, e.g.
        ``("Hb", "OIII_4960", "OIII_5008")``.
    ties : mapping of str to (str, float), optional
        ``{line: (parent, ratio)}`` fixes ``flux[line] = ratio * flux[parent]``;
        ratio > 0. Chains (a parent that is itself tied) are resolved; cycles
        are refused. E.g. ``{"OIII_4960": ("OIII_5008", 1 / 2.98)}``.

    Raises
    ------
    ConfigError
        No line, an unknown or repeated line, a tie that is not
        ``(parent, ratio)`` between two listed lines with a finite ratio > 0,
        or a cycle of ties.
    """

    lines: tuple[str, ...]
    ties: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        lines = tuple(self.lines) if not isinstance(self.lines, str) else (self.lines,)
        if not lines:
            raise ConfigError("line_model.lines = (): at least one line is needed")
        for name in lines:
            get_line(name)
        if len(set(lines)) != len(lines):
            raise ConfigError(f"line_model.lines = {lines!r}: a line is listed twice")
        ties = {child: _checked_tie(child, spec, lines) for child, spec in dict(self.ties).items()}
        _refuse_cycles(ties)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "ties", MappingProxyType(ties))

    def __hash__(self):
        return hash((self.lines, tuple(sorted(self.ties.items()))))

    @property
    def free_lines(self) -> tuple[str, ...]:
        """Lines whose flux is a free parameter (not tied), in ``lines`` order."""
        return tuple(name for name in self.lines if name not in self.ties)

    def root(self, name: str) -> tuple[str, float]:
        """Free line that ``name`` is tied to and the flux factor, ``(free, factor)``."""
        factor = 1.0
        while name in self.ties:
            name, ratio = self.ties[name]
            factor *= ratio
        return name, factor

    @property
    def tie_matrix(self) -> np.ndarray:
        """``(n_lines, n_free)`` matrix ``T`` with ``flux = T @ free_flux``."""
        free = self.free_lines
        t = np.zeros((len(self.lines), len(free)))
        for i, name in enumerate(self.lines):
            root, factor = self.root(name)
            t[i, free.index(root)] = factor
        return t


def _checked_tie(child, spec, lines) -> tuple[str, float]:
    """``(parent, ratio)`` of the tie of ``child``, checked."""
    field_name = f"line_model.ties[{child!r}]"
    try:
        parent, ratio = spec
    except (TypeError, ValueError):
        raise ConfigError(f"{field_name} = {spec!r}: expected (parent line, ratio)") from None
    if child not in lines or parent not in lines:
        raise ConfigError(
            f"{field_name} = ({parent!r}, {ratio}): both lines must be in line_model.lines = {lines!r}"
        )
    if child == parent:
        raise ConfigError(f"{field_name} = ({parent!r}, {ratio}): the parent must be another line")
    return parent, validate.positive(f"{field_name} ratio", ratio)


def _refuse_cycles(ties) -> None:
    for child in ties:
        seen = {child}
        node = child
        while node in ties:
            node = ties[node][0]
            if node in seen:
                raise ConfigError(f"line_model.ties: cycle through {child!r}")
            seen.add(node)


def default_line_model(
    lines: Sequence[str],
    *,
    oiii_ratio: float = OIII_DOUBLET_RATIO,
    nii_ratio: float = NII_DOUBLET_RATIO,
    oii_ratio: float | None = None,
) -> LineModel:
    """Build a :class:`LineModel` with the standard doublet ties.

    Parameters
    ----------
    lines : sequence of str
        Line identifiers; blend names of :data:`mockzgrad.physics.lines.BLENDS`
        (``"OII"``, ``"OIII"``, ``"NII"``, ``"SII"``) expand to their members.
    oiii_ratio : float, optional
        ``F(OIII_5008) / F(OIII_4960)``, > 0; applied when both lines are present.
    nii_ratio : float, optional
        ``F(NII_6585) / F(NII_6550)``, > 0; applied when both lines are present.
    oii_ratio : float or None, optional
        ``F(OII_3730) / F(OII_3727)``, > 0. ``None`` (default) leaves the
        [OII] doublet untied: it is blended at R ~ 1000 and its ratio depends
        on density. When tied, ``OII_3727`` is the free line and the doublet
        sum is :meth:`LineFitResult.line_flux` of ``"OII"``.

    Returns
    -------
    LineModel
    """
    expanded: list[str] = []
    for name in lines:
        for member in BLENDS.get(name, (name,)):
            if member not in expanded:
                expanded.append(member)
    ties: dict[str, tuple[str, float]] = {}
    for child, parent, ratio, field_name in (
        ("OIII_4960", "OIII_5008", oiii_ratio, "oiii_ratio"),
        ("NII_6550", "NII_6585", nii_ratio, "nii_ratio"),
        ("OII_3730", "OII_3727", oii_ratio, "oii_ratio"),
    ):
        if ratio is None or child not in expanded or parent not in expanded:
            continue
        ratio = validate.positive(field_name, ratio)
        # the child/parent flux factor: OII is parent 3727, others parent = strong line
        ties[child] = (parent, ratio if child == "OII_3730" else 1.0 / ratio)
    return LineModel(tuple(expanded), ties)
