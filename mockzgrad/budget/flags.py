"""Mocks whose lines come partly from where Z(r) left the calibrations' range: flag or leave them out of curves.

The selection lives in :mod:`mockzgrad.corrections.calibration_range` (``curves`` leaves such mocks out);
the budget uses the same rows.
"""

from __future__ import annotations

from ..corrections.calibration_range import OUTSIDE_COLUMN, outside_range_rows

__all__ = ["OUTSIDE_COLUMN", "outside_range_rows"]
