"""The budget over a suite: every step's ratio against x, per |grad_z| and sign.

:func:`suite_budget` takes a suite file (or a loaded
:class:`~mockzgrad.suites.spec.SuiteSpec`), rebuilds the first ``max_mocks``
of its mocks exactly as the suite would (:meth:`SuiteSpec.mock`, with the
suite's recipe and overrides) and runs :func:`~mockzgrad.budget.run.flattening_budget`
on each (one noise realisation, no alternatives). :func:`suite_budget_figure`
draws one panel per |grad_z|: each step's ratio against x, solid for
negative and dashed for positive gradients, so a step that opens a gap
between signs, sizes or S/N shows where it appears.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..config import load_recipe
from ..errors import MockzgradWarning
from ..suites.spec import SuiteSpec, load_suite
from ..validate import integer
from .run import STEPS, flattening_budget

__all__ = ["suite_budget", "suite_budget_figure"]


def _recipe(spec_recovery: dict):
    recipe = load_recipe(spec_recovery.get("recipe", "lee2026"))
    if spec_recovery.get("overrides"):
        recipe = recipe.replace(**spec_recovery["overrides"])
    return recipe


def suite_budget(suite, *, max_mocks: int | None = None, indices=None):
    """The budget of each mock of a suite, as a table.

    Parameters
    ----------
    suite : str, path or SuiteSpec
        A suite file or a loaded suite.
    max_mocks : int, optional
        Only the first ``max_mocks`` mocks (default all); [1, n_mocks].
    indices : sequence of int, optional
        These mocks instead.

    Returns
    -------
    astropy.table.Table
        One row per mock: ``mock_index``, ``x_resolution``, ``grad_z_true``,
        ``abs_grad_z``, ``sign`` (+1/-1), ``snr``, ``outside_flux_frac`` and
        one column ``ratio_<step>`` per step of :data:`~mockzgrad.budget.run.STEPS`.
    """
    from astropy.table import Table

    spec = suite if isinstance(suite, SuiteSpec) else load_suite(suite)
    if indices is None:
        n = spec.n_mocks if max_mocks is None else integer("max_mocks", max_mocks, 1, spec.n_mocks)
        indices = range(n)
    rows = []
    for i in indices:
        mock = spec.mock(int(i))
        cfg = mock.mock_config()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MockzgradWarning)
            b = flattening_budget(cfg, _recipe(mock.recovery), realisations=1, alternatives=False)
        row = {"mock_index": int(i), "x_resolution": b.x_resolution, "grad_z_true": b.grad_z_true,
               "abs_grad_z": abs(b.grad_z_true), "sign": int(math.copysign(1, b.grad_z_true)),
               "snr": float(cfg.noise.snr) if cfg.noise.snr is not None else math.nan,
               "outside_flux_frac": b.meta["outside_flux_frac"]}
        row.update({f"ratio_{s.key}": s.ratio for s in b.steps})
        rows.append(row)
    return Table(rows=rows)


def suite_budget_figure(table):
    """One panel per |grad_z|: ratio of every step against x; solid negative, dashed positive.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(set(np.round(np.asarray(table["abs_grad_z"], dtype=float), 6)))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, size in zip(axes[0], sizes):
        for sign, ls in ((-1, "-"), (1, "--")):
            sel = (np.isclose(table["abs_grad_z"], size)) & (np.asarray(table["sign"]) == sign)
            if not sel.any():
                continue
            sub = table[sel]
            order = np.argsort(sub["x_resolution"])
            for k, key in enumerate(STEPS):
                ax.plot(np.asarray(sub["x_resolution"])[order], np.asarray(sub[f"ratio_{key}"])[order], ls,
                        color=colours[k % len(colours)], label=key if sign == -1 else None, marker=".")
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set_title(f"|grad_z| = {size:g} dex/kpc (solid < 0, dashed > 0)", fontsize=9)
        ax.set_xlabel("x = 2 r_eff / PSF FWHM")
    axes[0][0].set_ylabel("measured / intrinsic gradient")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
