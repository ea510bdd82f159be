"""Local worker processes get one-thread settings from birth, even under a script that imports numpy.

A spawned worker runs the parent's main script again (as ``__mp_main__``)
before its initializer; the thread-count variables must already hold then,
or OpenBLAS loaded by the script's top-level ``import numpy`` starts one
thread per core in each worker.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mockzgrad.suites.executors import WORKER_ENV, worker_environ

TESTS = Path(__file__).parent

SCRIPT = """
import os
import sys

import numpy  # at the top, as user scripts do: runs again in every spawned worker

if __name__ == "__mp_main__":  # a worker, before its initializer
    seen = {k: os.environ.get(k, "unset") for k in sorted(%(keys)r)}
    with open(os.path.join(%(out)r, f"{os.getpid()}.env"), "w") as fh:
        fh.write(repr(seen))

if __name__ == "__main__":
    from mockzgrad.suites.suite import run_suite, suite_from_dict

    spec = suite_from_dict({"suite": {"name": "e", "seed": 1, "n_mocks": 6}, "fixed": {}})
    run = run_suite(spec, os.path.join(%(out)r, "run"), "_suite_worker:fake_run_mock", workers=2,
                    executor="local", progress=False)
    assert run.n_ok == 6
    print(sorted(os.environ.get(k, "unset") for k in %(keys)r))
"""


def test_spawned_workers_see_one_thread_before_the_script_runs_again(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(SCRIPT % {"keys": sorted(WORKER_ENV), "out": str(tmp_path)}))
    env = {k: v for k, v in os.environ.items() if k not in WORKER_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr(["unset"] * len(WORKER_ENV))  # the parent's own environment is as before
    seen = [eval(p.read_text()) for p in tmp_path.glob("*.env")]
    assert len(seen) == 2  # the two workers
    for s in seen:
        assert s == WORKER_ENV


def test_worker_environ_puts_back_what_was_there(monkeypatch):
    key, other = sorted(WORKER_ENV)[:2]
    monkeypatch.setenv(key, "7")
    monkeypatch.delenv(other, raising=False)
    with worker_environ():
        assert all(os.environ[k] == v for k, v in WORKER_ENV.items())
    assert os.environ[key] == "7" and other not in os.environ
