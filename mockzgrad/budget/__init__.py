"""The flattening budget: which mechanism flattened a measured gradient, and by how much.

:func:`flattening_budget` re-measures one setup's gradient with the real
observation and recovery while switching effects on one at a time
(:data:`STEPS`); :func:`write_budget` writes its table (ECSV) and waterfall
figure; :func:`suite_budget` repeats the decomposition over many setups.
"""

from .maps import BudgetError
from .run import GATE_LINES, STEPS, Budget, BudgetStep, flattening_budget, step_configs
from .output import waterfall_figure, write_budget
from .suite import suite_budget, suite_budget_figure

__all__ = ["STEPS", "GATE_LINES", "Budget", "BudgetStep", "BudgetError", "flattening_budget", "step_configs",
           "waterfall_figure", "write_budget", "suite_budget", "suite_budget_figure"]
