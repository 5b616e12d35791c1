"""``runner``'s lazily exported names stay what they name, whatever was imported before.

A submodule named like an export replaces it once imported (``import runner.instrument`` made
``runner.instrument`` the module): each check runs in a fresh interpreter, the module first.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import runner


def _python(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_submodule_is_named_like_an_export() -> None:
    for name in runner.__all__:
        assert importlib.util.find_spec(f"runner.{name}") is None, f"runner.{name} is a module"


def test_instrument_is_the_function_after_its_module_is_imported() -> None:
    _python(
        "import importlib, inspect\n"
        "import runner\n"
        "importlib.import_module(runner._EXPORTS['instrument'])\n"
        "assert inspect.isfunction(runner.instrument), runner.instrument\n"
        "from runner import instrument\n"
        "assert inspect.isfunction(instrument) and instrument.__name__ == 'instrument'\n"
        "assert runner.instrument is instrument\n"
    )


def test_instrument_is_the_function_on_first_and_later_access() -> None:
    _python(
        "import inspect\n"
        "import runner\n"
        "first = runner.instrument\n"
        "from runner import instrument\n"
        "assert inspect.isfunction(first) and first is instrument is runner.instrument\n"
    )
