"""The cached calibration-directory key equals the one built from calibration_dirs afresh (issue 23)."""

import os
import warnings

import pytest

from mockzgrad.physics import calibrations as cal


def _fresh(extra=()):
    return tuple((str(p), cal._stamp(p)) for p in cal.calibration_dirs(extra))


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "l")
    monkeypatch.delenv(cal.ENV_VAR, raising=False)
    return tmp_path


@pytest.mark.parametrize("env", ["", "a", "l:b:", "missing"])
@pytest.mark.parametrize("extra", [(), ("a",), "b", ("l", "a")])
def test_key_matches_fresh_resolution(dirs, monkeypatch, env, extra):
    monkeypatch.setenv(cal.ENV_VAR, os.pathsep.join(str(dirs / e) if e else "" for e in env.split(":")))
    extra = str(dirs / extra) if isinstance(extra, str) else tuple(dirs / e for e in extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):  # first call fills the cache, later ones reuse it
            assert cal._dirs_key(extra) == _fresh(extra)


def test_key_follows_files_symlinks_and_removals(dirs, monkeypatch):
    monkeypatch.setenv(cal.ENV_VAR, str(dirs / "l"))
    k1 = cal._dirs_key(())
    os.unlink(dirs / "l")
    os.symlink(dirs / "b", dirs / "l")  # the same search path now names another directory
    k2 = cal._dirs_key(())
    assert k2 != k1 and k2 == _fresh()
    (dirs / "b" / "x.json").write_text("{}")
    os.utime(dirs / "b", ns=(1, 1))  # a change of the directory shows in the key
    assert cal._dirs_key(()) == _fresh() != k2
    os.unlink(dirs / "l")  # a vanished directory is skipped with a warning, as before
    with pytest.warns(cal.MockzgradWarning, match="not a directory"):
        k3 = cal._dirs_key(())
    assert len(k3) == 1 and k3[0][0] == str(cal._builtin_dir().resolve())
    with pytest.raises(cal.CalibrationError, match="extra_dirs"):
        cal._dirs_key([str(dirs / "l")])


def test_relative_path_follows_working_directory(dirs, monkeypatch):
    (dirs / "a" / "sub").mkdir()
    (dirs / "b" / "sub").mkdir()
    monkeypatch.setenv(cal.ENV_VAR, "sub")
    monkeypatch.chdir(dirs / "a")
    ka = cal._dirs_key(())
    monkeypatch.chdir(dirs / "b")
    kb = cal._dirs_key(())
    assert ka[0][0] == str((dirs / "a" / "sub").resolve())
    assert kb[0][0] == str((dirs / "b" / "sub").resolve()) and kb == _fresh()
