"""Tables of measured gradients: encodings, ids, empty tables and the declared recipe (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from mockzgrad import cli
from mockzgrad.corrections.columns import check_recipe, declared_recipe
from mockzgrad.corrections.correct import read_gradient_table
from mockzgrad.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
LEE = ROOT / "examples" / "observed_gradients_lee2026.csv"
HEADER = "id,gradient_dex_per_kpc,err_minus,err_plus"


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


class TestEncodingAndIds:
    def test_bom_csv_reads_like_the_plain_file(self, tmp_path):
        plain = read_gradient_table(LEE)
        bom = read_gradient_table(_write(tmp_path / "excel.csv", LEE.read_text(), bom=True))
        assert bom.colnames == plain.colnames and bom.colnames[0] == "id"
        for name in plain.colnames:
            assert list(bom[name]) == list(plain[name])

    def test_ids_stay_text_with_their_zeros(self, tmp_path):
        t = read_gradient_table(_write(tmp_path / "ids.csv", f"{HEADER}\n02,0.1,0.02,0.02\n007,0.2,0.01,0.01\n",
                                       bom=True))
        assert [str(v) for v in t["id"]] == ["02", "007"]

    def test_not_utf8_is_one_line(self, tmp_path):
        path = tmp_path / "latin1.csv"
        path.write_bytes(f"{HEADER}\n".encode() + "G\xe9,0.1,0.02,0.02\n".encode("latin-1"))
        with pytest.raises(DataError, match="is not UTF-8 text") as err:
            read_gradient_table(path)
        assert "\n" not in str(err.value)

    def test_header_only_csv_is_refused(self, tmp_path):
        with pytest.raises(DataError, match="no rows; nothing to correct"):
            read_gradient_table(_write(tmp_path / "empty.csv", HEADER + "\n"))

    def test_comment_lines_are_skipped(self, tmp_path):
        t = read_gradient_table(_write(tmp_path / "c.csv", f"# from the paper\n{HEADER}\n02,0.1,0.02,0.02\n"))
        assert len(t) == 1 and "recipe" not in t.meta


class TestDeclaredRecipe:
    def test_header_line(self, tmp_path):
        t = read_gradient_table(_write(tmp_path / "r.csv", f"# recipe: wang2017\n{HEADER}\n02,0.1,0.02,0.02\n"))
        assert declared_recipe(t) == "wang2017"

    def test_column(self):
        t = Table({"id": ["a", "b"], "recipe": ["wang2022", "wang2022"]})
        assert declared_recipe(t) == "wang2022"
        with pytest.raises(DataError, match="several recipes"):
            declared_recipe(Table({"recipe": ["wang2022", "lee2026"]}))

    def test_ecsv_meta(self, tmp_path):
        t = Table({"id": ["a"], "gradient_dex_per_kpc": [0.1]}, meta={"recipe": "ju_msa3d"})
        t.write(tmp_path / "m.ecsv", format="ascii.ecsv")
        assert declared_recipe(read_gradient_table(tmp_path / "m.ecsv")) == "ju_msa3d"

    def test_header_and_column_must_agree(self):
        t = Table({"recipe": ["wang2022"]}, meta={"recipe": "lee2026"})
        with pytest.raises(DataError, match="header declares recipe 'lee2026' but column 'recipe' says"):
            declared_recipe(t)

    def test_mismatch_refused_unless_forced(self):
        t = Table({"recipe": ["wang2017"]})
        with pytest.raises(DataError, match="declares recipe 'wang2017' but the curves were made with "
                                            "recipe 'lee2026'"):
            check_recipe(t, "lee2026")
        assert check_recipe(t, "lee2026", force=True) == "wang2017"
        assert check_recipe(t, "wang2017") == "wang2017"
        assert check_recipe(t, "/some/where/wang2017.toml") == "wang2017"
        assert check_recipe(Table({"id": ["a"]}), "lee2026") is None  # nothing declared: nothing to check


@pytest.fixture(scope="module")
def curves_file(tmp_path_factory):
    """Curves of a small synthetic results table, written as `mockzgrad curves` writes them."""
    import warnings

    import numpy as np

    from mockzgrad.corrections.curves import derive_curves

    rng = np.random.default_rng(5)
    n = 600
    g = rng.choice([-0.2, -0.1, 0.1, 0.2], n)
    x = rng.uniform(0.6, 6.4, n)
    t = Table({"status": ["ok"] * n, "grad_z_true": g, "grad_z_measured": g * (1 - np.exp(-x / 1.5)),
               "x_resolution": x, "snr": rng.uniform(20, 100, n)})
    prov = {"suite": "synthetic", "package_version": "test", "recipe": "lee2026", "calibrations": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = derive_curves(t, provenance=prov)
    path = tmp_path_factory.mktemp("curves") / "curves.ecsv"
    curves.write(path)
    return path


class TestCorrectCommand:
    def _run(self, tmp_path, table, curves_file, *extra):
        return cli.main(["correct", str(table), "--curves", str(curves_file), "-o", str(tmp_path / "out.csv"),
                         "--x", "2.5", *extra])

    def test_mismatch_exits_2_one_line(self, tmp_path, curves_file, capsys):
        table = _write(tmp_path / "w.csv", f"# recipe: wang2017\n{HEADER}\n02,0.1,0.02,0.02\n")
        assert self._run(tmp_path, table, curves_file) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "'wang2017'" in err and "'lee2026'" in err and "--force-recipe" in err
        assert not (tmp_path / "out.csv").exists()

    def test_forced_and_matching_run(self, tmp_path, curves_file):
        table = _write(tmp_path / "w.csv", f"# recipe: wang2017\n{HEADER}\n02,0.1,0.02,0.02\n")
        assert self._run(tmp_path, table, curves_file, "--force-recipe") == 0
        out = read_gradient_table(tmp_path / "out.csv")
        assert [str(v) for v in out["id"]] == ["02"]
        match = _write(tmp_path / "l.csv", f"{HEADER},recipe\n02,0.1,0.02,0.02,lee2026\n", bom=True)
        assert self._run(tmp_path, match, curves_file, "--overwrite") == 0

    def test_header_only_exits_2(self, tmp_path, curves_file, capsys):
        assert self._run(tmp_path, _write(tmp_path / "e.csv", HEADER + "\n"), curves_file) == 2
        assert "nothing to correct" in capsys.readouterr().err
