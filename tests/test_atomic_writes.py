"""Every output writer is atomic: a kill mid-write, a full disk, file modes.

For each writer (cube FITS, recovery JSON, profile figure, curves ECSV,
corrected table, curves figure, exported results) a child process writes two
different complete versions of its output in turn, forever; the test kills it
with SIGKILL and then requires the output to be byte for byte one of the two
complete versions (never partial, never empty). Kills land both at random
times and at fixed points of :func:`mockzgrad.fileio.atomic_write` (half of
the temporary file written; just before the rename). A file-size limit
(``RLIMIT_FSIZE``, the kernel's ``EFBIG``, as a full disk gives ``ENOSPC``)
makes every real writer fail mid-write: the old file must survive, the error
must be one line, and no temporary file may be left.

Run as a script (``python test_atomic_writes.py WRITER FOLDER N SEED``) this
module is the child process.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
WRITERS = ("cube", "recovery_json", "profile_figure", "curves_ecsv", "table_csv", "curves_figure",
           "export_csv")


# --------------------------------------------------------------------------- the two versions per writer


def _cube(version):
    from mockzgrad.products.cube import MockCube

    rng = np.random.default_rng(version)
    shape = (40, 60, 60)
    return MockCube(data=rng.normal(size=shape), variance=np.full(shape, 1.0 + version),
                    edges_lo=np.arange(40.0) + 5000.0, edges_hi=np.arange(40.0) + 5001.0, pixel_scale=0.05,
                    psf={"PSF_KIND": "gaussian", "PSF_FWHM": 0.2}, lsf_sigma=30.0, truth={"version": version})


def _result(version):
    from mockzgrad.recovery.pipeline import RecoveryResult

    r = np.linspace(0.1, 3.0, 60)
    bins = [{"radius_kpc": float(x), "valid": True,
             "metallicity": {"I": {"z": 8.4 - 0.1 * x + 0.01 * version, "z_lo": 8.3 - 0.1 * x,
                                   "z_hi": 8.5 - 0.1 * x}}} for x in r]
    gradient = {"grad_z": -0.1, "z0": 8.4 + 0.01 * version, "covariance": [[1e-4, 0.0], [0.0, 1e-4]]}
    return RecoveryResult(recipe={"recipe": {"name": f"v{version}"}}, grad_z=-0.1, grad_z_lo=-0.11,
                          grad_z_hi=-0.09, z0=8.4, z0_lo=8.39, z0_hi=8.41, method="I", gradients={"I": gradient},
                          bins=bins, excluded=[], redshift=5.0, kpc_per_arcsec=6.3, geometry={"version": version})


def _results_table(version, n_per=60):
    from astropy.table import Table

    rng = np.random.default_rng(10 + version)
    rows = {k: [] for k in ("status", "grad_z_true", "grad_z_measured", "grad_z_measured_lo",
                            "grad_z_measured_hi", "x_resolution", "snr", "inclination")}
    for g in (0.05, 0.1, 0.2):
        for s in (1, -1):
            x = rng.uniform(0.6, 6.4, n_per)
            gm = s * g * ((1 - np.exp(-x / 1.5)) + rng.normal(0, 0.02, n_per))
            rows["status"] += ["ok"] * n_per
            rows["grad_z_true"] += [s * g] * n_per
            rows["grad_z_measured"] += list(gm)
            rows["grad_z_measured_lo"] += list(gm - 0.01)
            rows["grad_z_measured_hi"] += list(gm + 0.01)
            rows["x_resolution"] += list(x)
            rows["snr"] += list(rng.uniform(20, 100, n_per))
            rows["inclination"] += [20.0] * n_per
    return Table(rows)


def _curves(version):
    import warnings

    from mockzgrad.corrections.curves import derive_curves

    prov = {"suite": f"v{version}.toml", "package_version": "0", "recipe": "lee2026", "calibrations": ["S25_R3"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive_curves(_results_table(version), provenance=prov)


def _figure(version):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    rng = np.random.default_rng(version)
    fig.add_subplot().scatter(*rng.normal(size=(2, 5000)), s=2)
    return fig


def _store(version, folder):
    """A results store of 25 mocks with 150 values each; returns its path."""
    from mockzgrad.suites.store import ResultsStore

    path = Path(folder) / f"results_v{version}.sqlite"
    rng = np.random.default_rng(version)
    with ResultsStore(path) as store:
        for i in range(25):
            store.record(i, "ok", {f"value_{k}": float(v) for k, v in enumerate(rng.normal(size=150))}, 0.1)
    return path


def _export(store_path, path):
    from mockzgrad.suites.store import ResultsStore

    with ResultsStore(store_path, readonly=True) as store:  # as `mockzgrad suite --export` does
        store.export(path, overwrite=True)


def make_writer(name, folder):
    """``write(path, version)``: the real writer of ``name`` writing version 0 or 1 (overwrite=True)."""
    if name == "cube":
        cubes = [_cube(0), _cube(1)]
        return lambda path, v: cubes[v].write(path, overwrite=True)
    if name in ("recovery_json", "profile_figure"):
        results = [_result(0), _result(1)]
        if name == "recovery_json":
            return lambda path, v: results[v].write_json(path, overwrite=True)
        from mockzgrad.recovery.figures import plot_profile

        return lambda path, v: plot_profile(results[v], path, n_draws=10)
    if name == "curves_ecsv":
        curves = [_curves(0), _curves(1)]
        return lambda path, v: curves[v].write(path, overwrite=True)
    if name == "table_csv":
        from mockzgrad.corrections.correct import write_table

        tables = [_results_table(0, 800), _results_table(1, 800)]
        return lambda path, v: write_table(tables[v], path, overwrite=True)
    if name == "curves_figure":
        from mockzgrad.plots import _save

        figs = [_figure(0), _figure(1)]
        return lambda path, v: _save(figs[v], path)
    if name == "export_csv":
        stores = [_store(0, folder), _store(1, folder)]
        return lambda path, v: _export(stores[v], path)
    raise ValueError(name)


SUFFIX = {"cube": ".fits", "recovery_json": ".json", "profile_figure": ".png", "curves_ecsv": ".ecsv",
          "table_csv": ".csv", "curves_figure": ".png", "export_csv": ".csv"}


# --------------------------------------------------------------------------- the child process


def _writer_loop(write, target, deadline):
    """Write versions 1, 0, 1, ... until killed (or the deadline passes: then exit 3)."""
    v = 1
    while time.monotonic() < deadline:
        write(target, v)
        v = 1 - v
    os._exit(3)


def _kill_at(point):
    """Make the next atomic_write kill this process at ``point`` ("half": half of the temporary file
    written; "rename": the whole temporary file written and synced, just before the rename)."""
    from mockzgrad import fileio

    if point == "half":
        real = fileio._fsync

        def fsync_then_die(path, directory=False):
            if not directory:
                size = os.path.getsize(path)
                os.truncate(path, size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, directory)

        fileio._fsync = fsync_then_die
    else:
        real_replace = fileio.os.replace

        class _Os:
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(src, dst):
                os.kill(os.getpid(), signal.SIGKILL)
                real_replace(src, dst)  # pragma: no cover

        fileio.os = _Os()


def _one_kill(write, target, refs, how, rng, duration):
    """Fork a writer, kill it (at random or at a fixed point), check the target; return a record."""
    pid = os.fork()
    if pid == 0:  # the writer
        try:
            if how != "random":
                _kill_at(how)
                write(target, 1)
                os._exit(4)  # the kill point was not reached
            _writer_loop(write, target, time.monotonic() + 30.0)
        finally:
            os._exit(5)
    if how == "random":
        time.sleep(float(rng.uniform(0.0, 2.0 * duration)))  # within the first two writes
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    from mockzgrad.fileio import part_files

    parts = part_files(target.parent)
    data = target.read_bytes()
    record = {"how": how, "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
              "version": refs.index(data) if data in refs else None, "size": len(data),
              "parts": [p.name for p in parts]}
    for p in parts:
        p.unlink()
    return record


def _full_disk(name, folder):
    """Write version 0, then version 1 under a file-size limit of half of version 0 (EFBIG, as a full
    disk gives ENOSPC): the error message, whether the old file is intact, leftover temporary files."""
    from mockzgrad.errors import DataError
    from mockzgrad.fileio import part_files

    folder.mkdir()
    write = make_writer(name, folder)
    target = folder / ("out" + SUFFIX[name])
    write(target, 0)
    old = target.read_bytes()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of the process dying
    unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(old) // 2, unlimited[1]))
    try:
        write(target, 1)
        msg = None
    except DataError as exc:
        msg = str(exc)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)
    return {"message": msg, "old_intact": target.read_bytes() == old, "parts": [p.name for p in part_files(folder)]}


def child(names, folder, n_random, seed):
    """Kill writers of ``names`` (2 kills at fixed points, ``n_random`` at random times each), then
    fill their disk; print ``{"kills": {name: [record, ...]}, "full": {name: record}}`` as JSON."""
    out = {}
    for name in names:
        sub = Path(folder) / name
        sub.mkdir()
        rng = np.random.default_rng([seed, WRITERS.index(name)])
        write = make_writer(name, sub)
        target = sub / f"out{SUFFIX[name]}"
        refs = []
        for v in (0, 1):
            write(sub / f"ref{v}{SUFFIX[name]}", v)
            refs.append((sub / f"ref{v}{SUFFIX[name]}").read_bytes())
        assert refs[0] != refs[1]
        start = time.monotonic()
        write(target, 0)
        duration = time.monotonic() - start
        hows = ["half", "rename"] + ["random"] * n_random
        out[name] = [_one_kill(write, target, refs, how, rng, duration) for how in hows]
    full = {name: _full_disk(name, Path(folder) / f"full_{name}") for name in names}
    print(json.dumps({"kills": out, "full": full}))


if __name__ == "__main__":
    child(sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


# --------------------------------------------------------------------------- tests


def _run_child(names, folder, n_random, seed=0):
    r = subprocess.run([sys.executable, str(HERE), ",".join(names), str(folder), str(n_random), str(seed)],
                       capture_output=True, text=True, timeout=600, cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One child process kills and fills the disk of every writer (imports paid once)."""
    return _run_child(WRITERS, tmp_path_factory.mktemp("kills"), n_random=4)


@pytest.fixture(scope="module")
def kills(report):
    return report["kills"]


@pytest.fixture(scope="module")
def full_disk(report):
    return report["full"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("name", WRITERS)
def test_a_kill_during_the_write_leaves_a_complete_file(name, kills):
    records = kills[name]
    assert all(r["killed"] for r in records), records
    # every kill leaves exactly one of the two complete versions, never a partial or empty file
    assert all(r["version"] in (0, 1) for r in records), records
    half, rename = records[0], records[1]
    # killed half-way or just before the rename: the previous version stays, the temporary file remains
    assert half["version"] == 0 and len(half["parts"]) == 1, half
    assert rename["version"] == 0 and len(rename["parts"]) == 1, rename


def test_random_kills_hit_writes(kills):
    """The random kills landed inside writes (a temporary file was left) and between them
    (a new version complete): the kill test bites."""
    randoms = [r for records in kills.values() for r in records[2:]]
    assert any(r["parts"] for r in randoms), randoms
    assert any(r["version"] == 1 for r in randoms), randoms


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.parametrize("name", WRITERS)
def test_a_full_disk_leaves_the_old_file_and_one_line(name, full_disk):
    rec = full_disk[name]
    msg = rec["message"]
    assert msg is not None, "no error from a write beyond the file-size limit"
    assert "\n" not in msg and "cannot write" in msg and "previous file is unchanged" in msg, msg
    assert f"out{SUFFIX[name]}" in msg
    assert rec["old_intact"] and rec["parts"] == [], rec


def test_no_space_left_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    from mockzgrad.errors import DataError
    from mockzgrad.fileio import atomic_write, part_files

    target = tmp_path / "out.json"
    target.write_text("old\n")

    def writer(tmp):
        with open(tmp, "w") as fh:
            fh.write("new, half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

    with pytest.raises(DataError) as info:
        atomic_write(target, writer, overwrite=True)
    assert "\n" not in str(info.value) and "no space left" in str(info.value) and repr(str(target)) in str(info.value)
    assert target.read_text() == "old\n" and not part_files(tmp_path)
    # an error that is not the OS's propagates unchanged, and cleans up too
    with pytest.raises(ZeroDivisionError):
        atomic_write(target, lambda tmp: 1 / 0, overwrite=True)
    assert target.read_text() == "old\n" and not part_files(tmp_path)


def test_cli_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    results = tmp_path / "results.csv"
    _results_table(0).write(results, format="ascii.csv")
    old = tmp_path / "curves.ecsv"
    old.write_bytes(b"previous output\n")
    r = subprocess.run([sys.executable, "-m", "mockzgrad.cli", "curves", str(results), "-o", str(old), "--overwrite"],
                       capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size(2000))
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot write" in err[0] and "curves.ecsv" in err[0] and "previous file is unchanged" in err[0]
    assert old.read_bytes() == b"previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.ecsv", "results.csv"]


@pytest.fixture(scope="module")
def some_writers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("writers")
    return {name: make_writer(name, folder) for name in ("cube", "recovery_json", "table_csv", "curves_figure")}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_file_modes_follow_the_umask(tmp_path, umask, some_writers):
    writers = some_writers
    old = os.umask(umask)
    try:
        for name, write in writers.items():
            for existing in (False, True):  # a new file, and one replaced
                path = tmp_path / f"{name}{SUFFIX[name]}"
                write(path, int(existing))
                assert path.stat().st_mode & 0o777 == 0o666 & ~umask, (name, oct(path.stat().st_mode))
    finally:
        os.umask(old)


def test_check_output_path_refuses_before_any_work(tmp_path):
    from mockzgrad.errors import DataError
    from mockzgrad.fileio import OutputExistsError, atomic_write, check_output_path

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    called = []
    for path, overwrite, piece in [(tmp_path / "nodir" / "x", True, "does not exist"),
                                   (tmp_path / "d", True, "is a folder"),
                                   (tmp_path / "f", False, "exists"),
                                   (tmp_path / "f" / "x", True, "is not a folder"),
                                   ("", True, "empty")]:
        with pytest.raises(DataError, match=piece):
            check_output_path(path, overwrite)
        with pytest.raises(DataError, match=piece):
            atomic_write(path, called.append, overwrite=overwrite)
    assert called == []
    with pytest.raises(FileExistsError):  # still what callers of ResultsStore.export caught before
        check_output_path(tmp_path / "f")
    assert issubclass(OutputExistsError, DataError)


def test_part_files_finds_only_the_leftovers_of_atomic_write(tmp_path, monkeypatch):
    from mockzgrad import fileio

    def killed(tmp):  # a writer killed after its temporary file was made: simulate by keeping it
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio, "_unlink_quietly", lambda path: None)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(tmp_path / "cube_0001.fits", killed)
    for name in ("cube_0002.fits", ".hidden.part.fits", ".x.zzzzzzzz.part.fits", "tmpab12.fits.part"):
        (tmp_path / name).write_text("")
    (left,) = fileio.part_files(tmp_path)
    assert left.name.startswith(".cube_0001.") and left.name.endswith(".part.fits")
    assert not (tmp_path / "cube_0001.fits").exists()
