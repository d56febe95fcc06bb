"""A pytest plugin for mutmut's runs only (``[tool.mutmut] pytest_add_cli_args`` loads it):
mutants of code that runs at import time.

The registries (``manual.registry``, ``manual.layers.*``) are built at import by factories
(``_linear_pair``, ``from_op``, ...) whose closures do the work, and test modules build their
parameters at collection. mutmut forks each mutant's test run from a process that imported
everything with no mutant active, so a mutant of such a function never reaches what it built;
and its stats pass credits every call made during collection to the first test alone, so the
mutant would be run against one test. Both are corrected here:

- stats pass: every mutated function called while the tests are collected (every module of
  ``manual`` is imported then too) is written to :data:`IMPORT_TIME_FILE` and credited to
  every test of :data:`REGISTRY_TESTS` (the files that run every registered op and layer, and
  the mutant-killing tests; crediting all ~2000 tests would cost ~20 s per such mutant, most
  of it collection);
- a mutant's run: when its function is listed, the project's modules are dropped from
  ``sys.modules`` before collection, so that they are imported again with the mutant active
  (about 4 s more per such mutant).

Outside mutmut (no ``MUTANT_UNDER_TEST``) the plugin does nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path

import pytest

# Written in mutmut's working copy (pytest runs there, in mutants/), next to mutmut's stats.
IMPORT_TIME_FILE = Path("mutmut-import-time.json")
REGISTRY_TESTS = ("tests/test_conformance.py", "tests/test_graph.py", "tests/test_layer_graphs.py",
                  "tests/test_conv_layers.py", "tests/test_norm_layers.py",
                  "tests/test_recurrent_layers.py", "tests/test_mutants_core.py")
_credited: set[str] = set()


def _mutant() -> str:
    return os.environ.get("MUTANT_UNDER_TEST", "")


def _listed() -> set[str]:
    if not IMPORT_TIME_FILE.is_file():
        return set()
    return set(json.loads(IMPORT_TIME_FILE.read_text(encoding="utf-8")))


def pytest_sessionstart(session: pytest.Session) -> None:
    name = _mutant()
    if "__mutmut_" not in name or name.partition("__mutmut_")[0] not in _listed():
        return
    here = Path.cwd().resolve()
    for module_name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (path and module_name != "conftest" and not module_name.startswith("mutation")
                and here in Path(path).resolve().parents):
            del sys.modules[module_name]


def pytest_collection_finish(session: pytest.Session) -> None:
    if _mutant() != "stats":
        return
    from mutmut.state import state

    import manual

    for info in pkgutil.walk_packages(manual.__path__, "manual."):
        importlib.import_module(info.name)
    _credited.update(state()._stats | _listed())
    if _credited:
        IMPORT_TIME_FILE.write_text(json.dumps(sorted(_credited), indent=0), encoding="utf-8")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _mutant() == "stats" and _credited and item.nodeid.startswith(REGISTRY_TESTS):
        from mutmut.state import state

        state()._stats.update(_credited)
