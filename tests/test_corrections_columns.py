"""Results-table columns by role: mapping, renaming round trip, strict and lenient numeric reading."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from mockzgrad.corrections.columns import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    as_table,
    canonical_columns,
    column_map,
    numeric_column,
    soft_numeric,
    status_ok,
)
from mockzgrad.errors import ConfigError, DataError

CUSTOM = {"grad_z_true": "galaxy.metallicity.grad_z", "x_resolution": "x", "snr": "signal_to_noise"}


def results(n=6, names=None):
    names = names or {}
    rng = np.random.default_rng(3)
    cols = {"status": ["ok"] * n, "grad_z_true": rng.uniform(-0.2, 0.2, n), "grad_z_measured": rng.normal(0, 0.1, n),
            "x_resolution": rng.uniform(0.5, 6, n), "snr": rng.uniform(10, 90, n), "mock_index": np.arange(n)}
    return Table({names.get(k, k): v for k, v in cols.items()})


class TestColumnMap:
    def test_default_is_identity_over_every_role(self):
        cmap = column_map()
        assert list(cmap) == list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        assert all(k == v for k, v in cmap.items())

    def test_override(self):
        cmap = column_map(CUSTOM)
        for role, name in CUSTOM.items():
            assert cmap[role] == name
        assert cmap["status"] == "status"

    def test_unknown_role_and_non_mapping(self):
        with pytest.raises(ConfigError, match="unknown role"):
            column_map({"gradient": "g"})
        with pytest.raises(ConfigError, match="mapping"):
            column_map(["x"])


class TestCanonical:
    def test_renaming_round_trips(self):
        original = results(names=CUSTOM)
        cmap = column_map(CUSTOM)
        canon = canonical_columns(original, cmap)
        assert canon.colnames == [r for r in cmap if cmap[r] in original.colnames]
        back = Table({cmap[r]: canon[r] for r in canon.colnames})
        assert sorted(back.colnames) == sorted(original.colnames)
        for name in original.colnames:
            np.testing.assert_array_equal(back[name], original[name])

    def test_shares_data(self):
        original = results(names=CUSTOM)
        canon = canonical_columns(original, column_map(CUSTOM))
        assert np.shares_memory(np.asarray(canon["x_resolution"]), np.asarray(original["x"]))

    def test_missing_required_named_with_role(self):
        with pytest.raises(DataError, match=r"'galaxy.metallicity.grad_z' \(role 'grad_z_true'\).*present"):
            canonical_columns(results(), column_map(CUSTOM))

    def test_optional_roles_may_be_absent(self):
        t = results()
        t.remove_column("snr")
        assert "snr" not in canonical_columns(t, column_map()).colnames


class TestAsTable:
    def test_table_is_returned_as_is(self):
        t = results()
        assert as_table(t) is t

    def test_dict_and_dataframe(self):
        t = results()
        from_dict = as_table({k: list(t[k]) for k in t.colnames})
        for name in t.colnames:
            np.testing.assert_array_equal(from_dict[name], t[name])
        pd = pytest.importorskip("pandas")
        from_df = as_table(pd.DataFrame({k: np.asarray(t[k]) for k in t.colnames}))
        for name in t.colnames:
            np.testing.assert_array_equal(from_df[name], t[name])

    def test_unconvertible(self):
        with pytest.raises(DataError, match="cannot be converted"):
            as_table(object())


def test_status_ok_ignores_case_and_blanks():
    t = Table({"status": [" OK ", "ok", "Ok\n", "failed", "", "okay"]})
    np.testing.assert_array_equal(status_ok(t), [True, True, True, False, False, False])


class TestNumeric:
    def _table(self):
        col = MaskedColumn(np.array(["1.5", "2", "abc", "4e-1", "x"], dtype=object), mask=[False, False, False, False,
                                                                                                 True])
        return Table({"v": col})

    def test_strict_names_bad_rows(self):
        with pytest.raises(DataError, match=r"column 'v'.*r2 \('abc'\).*r4 \(missing\)"):
            numeric_column(self._table(), "v", [f"r{i}" for i in range(5)])

    def test_strict_converts_text_numbers(self):
        t = Table({"v": np.array(["1.5", "-2", "nan", "4e-1"], dtype=object)})
        out = numeric_column(t, "v", ["a", "b", "c", "d"])
        np.testing.assert_array_equal(out[[0, 1, 3]], [1.5, -2.0, 0.4])
        assert np.isnan(out[2])  # NaN is a number: the caller decides about it

    def test_strict_counts_more_than_ten(self):
        t = Table({"v": np.array(["a"] * 13, dtype=object)})
        with pytest.raises(DataError, match="and 3 more"):
            numeric_column(t, "v", list(range(13)))

    def test_soft_gives_nan(self):
        out = soft_numeric(self._table(), "v")
        np.testing.assert_array_equal(out[[0, 1, 3]], [1.5, 2.0, 0.4])
        assert np.isnan(out[2]) and np.isnan(out[4])

    def test_soft_equals_strict_on_clean_column(self):
        t = results()
        np.testing.assert_array_equal(soft_numeric(t, "x_resolution"),
                                      numeric_column(t, "x_resolution", list(range(len(t)))))
