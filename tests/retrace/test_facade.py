"""The ``retrace`` façade: the product CLI composing the components' commands, and the public
Python API re-exported from where each name lives, cheaply."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys

import click
from click.testing import CliRunner

import retrace
from retrace.cli import COMMANDS, cli

PRODUCT_COMMANDS = [
    "approve",
    "ci",
    "demo",
    "diff",
    "doctor",
    "export",
    "feedback",
    "keys",
    "migrate",
    "reject",
    "replay",
    "resume",
    "run",
    "serve",
    "sessions",
    "show",
    "suite",
    "traces",
    "ui",
]
HEAVY = ("langgraph", "langchain_core", "streamlit", "chdb", "fastapi", "mcp")


def _listed(help_text: str) -> list[str]:
    """The command names a ``--help`` page lists (its short help lines may wrap or be cut)."""
    section = help_text.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def test_help_lists_every_components_commands() -> None:
    assert sorted(COMMANDS) == PRODUCT_COMMANDS
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert _listed(result.output) == PRODUCT_COMMANDS
    with click.Context(cli) as ctx:
        for name in PRODUCT_COMMANDS:
            assert isinstance(cli.get_command(ctx, name), click.Command), name


def test_the_console_script_is_the_facades_cli() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="retrace")
    assert script.value == "retrace.cli:main"


def test_python_m_retrace_and_the_runner_cli_alias_are_the_same_cli() -> None:
    for module in ("retrace", "runner.cli"):
        page = _python("-m", module, "--help").stdout
        assert page.startswith("Usage: retrace [OPTIONS] COMMAND [ARGS]...")
        assert _listed(page) == PRODUCT_COMMANDS
    from runner.cli import cli as alias

    assert alias is cli


def test_a_retrace_error_is_one_line_and_its_exit_code() -> None:
    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == 2
    assert result.output == "error: give a TASK or --suite FILE (exactly one)\n"


def test_import_retrace_is_cheap_and_instrument_is_the_function() -> None:
    code = (
        "import inspect, sys\n"
        "import retrace\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert inspect.isfunction(retrace.instrument), retrace.instrument\n"
        "from retrace import instrument\n"
        "assert instrument is retrace.instrument\n"
        "assert instrument.__module__ == 'runner.instrumentation'\n"
    )
    _python("-c", code)


def test_serve_does_not_pay_for_langgraph() -> None:
    code = (
        "import sys, click\n"
        "from retrace.cli import cli\n"
        "with click.Context(cli) as ctx:\n"
        "    assert cli.get_command(ctx, 'serve') is not None\n"
        "assert 'langgraph' not in sys.modules and 'streamlit' not in sys.modules\n"
    )
    _python("-c", code)


def test_each_export_is_the_object_its_component_owns() -> None:
    assert retrace.__all__ == sorted(retrace._EXPORTS)
    for name, module in retrace._EXPORTS.items():
        assert getattr(retrace, name) is getattr(importlib.import_module(module), name), name
    assert set(retrace.__all__) <= set(dir(retrace))


def test_no_submodule_shadows_an_export() -> None:
    for name in retrace.__all__:
        assert importlib.util.find_spec(f"retrace.{name}") is None, f"retrace.{name} is a module"


def test_unknown_names_are_attribute_errors() -> None:
    try:
        retrace.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("retrace.no_such_name resolved")
