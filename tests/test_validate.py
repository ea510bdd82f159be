"""Field validators (mockzgrad.validate): what passes, what fails, and what the message says."""

import math
from fractions import Fraction

import numpy as np
import pytest

from mockzgrad import validate as V
from mockzgrad.errors import ConfigError

NON_FINITE = [math.nan, math.inf, -math.inf, np.float64("nan")]
NOT_NUMBERS = [True, False, "1.0", None, [1.0], 1j]


@pytest.mark.parametrize("bad", NON_FINITE)
def test_non_finite_fails_every_range_check(bad):
    for check in (lambda v: V.number("f", v), lambda v: V.number("f", v, -1e300, 1e300),
                  lambda v: V.finite("f", v), lambda v: V.positive("f", v),
                  lambda v: V.positive("f", v, allow_zero=True)):
        with pytest.raises(ConfigError, match=r"^f = "):
            check(bad)
    assert not V.is_number(bad)


@pytest.mark.parametrize("bad", NOT_NUMBERS)
def test_bool_and_non_numbers_are_not_numbers(bad):
    assert not V.is_number(bad)
    for check in (V.real, V.number, V.finite, V.positive):
        with pytest.raises(ConfigError, match="expected a number"):
            check("galaxy.r_eff", bad)
    with pytest.raises(ConfigError, match="expected an integer"):
        V.integer("seed", bad)


def test_numbers_of_other_real_types_pass_as_floats():
    for value in (2, np.int64(2), np.float32(2.0), Fraction(2, 1)):
        out = V.number("x", value, 0.0, 3.0)
        assert type(out) is float and out == 2.0
        assert V.is_number(value)
    assert math.isnan(V.real("x", math.nan))  # the type check alone lets NaN through


@pytest.mark.parametrize(
    "lo_open, hi_open, at_lo, at_hi, text",
    [(False, False, True, True, "[0.0, 1.0]"), (True, False, False, True, "(0.0, 1.0]"),
     (False, True, True, False, "[0.0, 1.0)"), (True, True, False, False, "(0.0, 1.0)")],
)
def test_open_and_closed_ends(lo_open, hi_open, at_lo, at_hi, text):
    for value, ok in ((0.0, at_lo), (1.0, at_hi), (0.5, True), (-1e-12, False), (1.0 + 1e-12, False)):
        if ok:
            assert V.number("q", value, 0.0, 1.0, lo_open=lo_open, hi_open=hi_open) == value
        else:
            with pytest.raises(ConfigError) as info:
                V.number("q", value, 0.0, 1.0, lo_open=lo_open, hi_open=hi_open)
            assert f"allowed {text}" in str(info.value)


def test_unbounded_ends_are_written_as_infinities():
    assert V.interval(None, 5.0) == "(-inf, 5.0]"
    assert V.interval(0.0, None, lo_open=True) == "(0.0, inf)"
    assert V.number("x", -1e300, None, 5.0) == -1e300


def test_message_names_field_value_range_and_unit():
    with pytest.raises(ConfigError) as info:
        V.number("galaxy.inclination", 95.0, 0.0, 90.0, unit="deg")
    assert str(info.value) == "galaxy.inclination = 95.0 deg; allowed [0.0, 90.0] deg"


def test_positive_zero():
    with pytest.raises(ConfigError, match="allowed: > 0"):
        V.positive("sigma", 0.0)
    assert V.positive("sigma", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ConfigError, match="allowed: >= 0"):
        V.positive("sigma", -1.0, allow_zero=True)


def test_integer_range_and_type():
    assert V.integer("n", np.int64(3), 1, 3) == 3
    for bad in (0, 4):
        with pytest.raises(ConfigError, match=r"n = .*; allowed \[1, 3\]"):
            V.integer("n", bad, 1, 3)
    with pytest.raises(ConfigError, match="expected an integer"):
        V.integer("n", 2.0)  # an integral float is still not an integer


def test_choice_suggests_a_near_miss():
    allowed = ("gaussian", "elliptical_gaussian", "moffat", "image")
    assert V.choice("psf.kind", "moffat", allowed) == "moffat"
    with pytest.raises(ConfigError) as info:
        V.choice("psf.kind", "mofat", allowed)
    msg = str(info.value)
    assert "psf.kind = 'mofat'" in msg and "did you mean 'moffat'?" in msg
    assert all(repr(a) in msg for a in allowed)
    with pytest.raises(ConfigError) as info:
        V.choice("psf.kind", "zzz", allowed)
    assert "did you mean" not in str(info.value)
    with pytest.raises(ConfigError, match="allowed"):
        V.choice("psf.kind", 3, allowed)


def test_boolean_text_strings():
    assert V.boolean("flag", False) is False
    for bad in (0, 1, "true", None):
        with pytest.raises(ConfigError, match="flag = .*expected true or false"):
            V.boolean("flag", bad)
    assert V.text("name", "") == ""
    with pytest.raises(ConfigError, match="non-empty"):
        V.text("name", "", empty=False)
    with pytest.raises(ConfigError, match="expected a string"):
        V.text("name", 3)
    assert V.strings("lines", ["Ha", "Hb"]) == ("Ha", "Hb")
    for bad in ("Ha", ["Ha", 3], None):
        with pytest.raises(ConfigError, match="expected a list of strings"):
            V.strings("lines", bad)
