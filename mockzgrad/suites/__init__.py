"""Suites: many mocks over a parameter grid, run by an executor into a store.

:func:`~.suite.load_suite` reads a suite file into a :class:`~.spec.SuiteSpec`
(:mod:`.spec`, :mod:`.params`, :mod:`.sampling`), :mod:`.expand` turns it
into one :class:`~.expand.MockSpec` per mock, :func:`~.suite.run_suite`
runs them (:mod:`.loop`, :mod:`.executors`, :mod:`.control`,
:mod:`.runfolder`) through :func:`.job.run_mock` and records every result
in the crash-safe :class:`~.store.ResultsStore`.

Import the modules themselves: the executors must stay importable without
numpy so that worker processes set their thread limits first.
"""

__all__: list[str] = []
