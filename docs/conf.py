"""Sphinx configuration of the mockzgrad documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``tests/test_docs.py`` runs the same build with warnings as errors). The
configuration and command-line references are generated at build time from
the dataclasses and the argparse parser (``_ext/mockzgrad_reference.py``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import mockzgrad  # noqa: E402

project = "mockzgrad"
author = "mockzgrad developers"
copyright = "mockzgrad developers"
release = mockzgrad.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "mockzgrad_reference",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/_build", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3

# API reference: autodoc + numpydoc. Summary tables only link to the
# entries documented on the same page, so no stub files are generated.
autosummary_generate = False
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# numpydoc's docstring validation (tests/test_docs.py builds with warnings as
# errors): the checks that catch a wrong docstring, all of which the
# documented modules meet: known sections in the standard order (GL06,
# GL07), no tabs (GL05), a one-line summary ending with a period (SS01,
# SS03, SS04), parameters that exist, in signature order, with "name : type"
# spelled right (PR02, PR03, PR06, PR10). Not enforced: sections the house
# style leaves optional (See Also, Examples, Extended Summary, Returns of
# obvious functions) and the "infinitive verb" rule (SS05).
numpydoc_validation_checks = {"GL05", "GL06", "GL07", "SS01", "SS03", "SS04", "PR02", "PR03", "PR06", "PR10"}

html_theme = "alabaster"
html_static_path = []
html_title = f"mockzgrad {release}"
