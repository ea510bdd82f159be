"""find_branches (vectorised extrema) against a plain loop over the sign changes of chi^2(Z).

The reference below is the step-by-step definition of the module docstring's rule 1 (local
minima and maxima of chi^2 after dropping flat steps, stretches bounded by the maxima or the
prior's edges, minima within Delta chi^2 of the best fit allowed), written as a loop.
"""

import numpy as np
import pytest

from mockzgrad.recovery.metallicity.branches import DELTA_CHI2, find_branches


def _reference(chi2, delta=DELTA_CHI2):
    c = [x if np.isfinite(x) else np.inf for x in chi2]
    fin = [i for i, x in enumerate(c) if x < np.inf]
    if not fin:
        return []
    best = min(c[i] for i in fin)
    runs, cur = [], [fin[0]]
    for i in fin[1:]:
        if i == cur[-1] + 1:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    runs.append(cur)
    out = set()
    for run in runs:
        v = [c[i] for i in run]
        steps = [(k + 1, int(v[k + 1] > v[k]) - int(v[k + 1] < v[k])) for k in range(len(v) - 1)]
        steps = [(k, s) for k, s in steps if s != 0]  # flat steps dropped
        if not steps:
            mins, maxs = [0], []
        else:
            mins = [0] if steps[0][1] > 0 else []
            maxs = []
            for (_, a), (pos, b) in zip(steps[:-1], steps[1:]):
                if a < 0 < b:
                    mins.append(pos - 1)
                elif a > 0 > b:
                    maxs.append(pos - 1)
            if steps[-1][1] < 0:
                mins.append(len(v) - 1)
        cuts = [0] + maxs + [len(v) - 1]
        for m in mins:
            seg = min(max(sum(1 for x in cuts if x <= m) - 1, 0), len(cuts) - 2)
            lo, hi = cuts[seg], cuts[seg + 1]
            k = lo + int(np.argmin(v[lo:hi + 1]))
            if v[k] - best <= delta:
                out.add((run[k], run[lo], run[hi]))
    return sorted(out)


@pytest.mark.parametrize("seed", range(40))
def test_find_branches_matches_the_loop_definition(seed):
    rng = np.random.default_rng(seed)
    g = 300
    grid = np.linspace(7.0, 9.0, g)
    # wiggly curves with plateaus (rounded), a few deep wells, gaps and NaN outside the prior
    chi2 = np.round(rng.normal(0, 1, 12).cumsum()[np.linspace(0, 11, g).astype(int)]
                    + 3 * np.sin(grid * rng.uniform(2, 30)) + rng.normal(0, 0.3, g), rng.integers(0, 3))
    chi2 -= chi2.min() - rng.uniform(0, 3)
    if seed % 3 == 0:
        chi2[rng.integers(0, g, 20)] = np.inf
    if seed % 4 == 1:
        chi2[: rng.integers(0, 100)] = np.nan
    if seed % 5 == 2:
        chi2[:] = np.round(chi2 / 10) * 10  # long plateaus
    assert find_branches(grid, chi2) == _reference(chi2)
    assert find_branches(grid, chi2, 0.5) == _reference(chi2, 0.5)


def test_find_branches_edge_cases_match():
    grid = np.linspace(0, 1, 7)
    for chi2 in ([np.inf] * 7, [1.0] * 7, [3, 2, 1, 1, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1],
                 [1, np.inf, 1, np.nan, 2, 1, 2], [0, 5, 0, 5, 0, 5, 0.0]):
        chi2 = np.asarray(chi2, dtype=float)
        assert find_branches(grid, chi2) == _reference(chi2)
