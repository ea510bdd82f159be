"""The shipped job is sent to worker processes by name: the parent does not import it."""

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

from mockzgrad.suites.executors import ByName

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_byname_pickles_as_its_name_and_calls_the_function():
    fn = ByName("os.path:join")
    back = pickle.loads(pickle.dumps(fn))
    assert back.target == "os.path:join"
    assert back("a") == "a"
    assert len(pickle.dumps(fn)) < 200  # the name, not the module


def test_local_suite_parent_does_not_import_the_job(tmp_path):
    # a fresh interpreter: the parent runs 2 8 real mocks on a local worker
    code = textwrap.dedent(f"""
        import dataclasses, sys
        from mockzgrad.suites.suite import load_suite, run_suite
        spec = dataclasses.replace(load_suite({str(EXAMPLES / "quickstart_suite.toml")!r}), n_mocks=8)
        run = run_suite(spec, {str(tmp_path / "out")!r}, "mockzgrad.suites.job:run_mock", workers=1,
                        executor="local", progress=False)
        print(run.n_ok, "mockzgrad.suites.job" in sys.modules, "numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["8", "False", "False"]
