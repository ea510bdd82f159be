"""summary_lines: the transfer function's slope is printed for both signs when it has sign terms."""

import re
from types import SimpleNamespace

import numpy as np

from mockzgrad.corrections.summary import summary_lines
from mockzgrad.corrections.transfer import Structure, TransferFunction


def _tf(extras, coef):
    n = len(coef)
    return TransferFunction(structure=Structure(1, 0, extras), coefficients=np.array(coef, float),
                            covariance=np.zeros((n, n)), gamma=np.array([np.log(0.01), 0.0]),
                            gamma_covariance=np.zeros((2, 2)),
                            references={"abs_grad": 0.1, "inv_x": 0.5, "inclination": np.nan, "snr": np.nan},
                            x_range=(1.0, 4.0), grad_range=(0.05, 0.2), n_mocks=100,
                            assessment={"ratio_ok": True, "transfer_ok": True, "reasons": []})


def _numbers(line, word):
    m = re.search(word + r" = (-?[\d.]+) at x = ([\d.]+) to (-?[\d.]+) at x = ([\d.]+)", line)
    assert m, line
    return [float(v) for v in m.groups()]


def test_slope_printed_for_both_signs_with_a_sign_term():
    # a_pos(x) = 1.0 - 0.4 / x; a_neg(x) = a_pos(x) - 0.3 (slope_sign)
    tf = _tf(("sign",), [1.0, -0.4, 0.002, -0.3])
    line = [ln for ln in summary_lines(SimpleNamespace(checks={}, settings={}), tf) if "transfer function" in ln][0]
    pos, neg = _numbers(line, "positive"), _numbers(line, "negative")
    assert pos == [0.60, 1.00, 0.90, 4.00]
    assert neg == [0.30, 1.00, 0.60, 4.00]


def test_slope_printed_once_without_sign_terms():
    tf = _tf((), [1.0, -0.4, 0.002])
    line = [ln for ln in summary_lines(SimpleNamespace(checks={}, settings={}), tf) if "transfer function" in ln][0]
    assert "negative" not in line and "positive" not in line
    assert _numbers(line, r"a\(x\)") == [0.60, 1.00, 0.90, 4.00]
