"""The product CLI: the ``retrace`` console script and ``python -m retrace``.

One click group; each component owns its commands (``collector.cli``, ``runner.commands``,
``runner.sandbox.doctor``, ``replay.cli``, ``ui.cli``), loaded only when used. This module only
wires them and maps ``RetraceError`` to a one-line message and the error's exit code, never a
traceback. The collector's background jobs and the demo's child services run this CLI too
(``collector.jobs.RETRACE_CLI``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from schemas.errors import RetraceError

# name -> "module:attribute"; imported only when the command is used, so `retrace serve` does not
# pay for LangGraph and `retrace run` does not pay for Streamlit.
COMMANDS: dict[str, str] = {
    "serve": "collector.cli:serve",
    "keys": "collector.cli:keys",
    "migrate": "collector.cli:migrate",
    "run": "runner.commands:run",
    "demo": "runner.commands:demo",
    "approve": "runner.commands:approve",
    "reject": "runner.commands:reject",
    "resume": "runner.commands:resume",
    "doctor": "runner.sandbox.doctor:doctor",
    "replay": "replay.cli:replay",
    "export": "replay.cli:export",
    "ci": "replay.cli:ci",
    "diff": "replay.cli:diff",
    "ui": "ui.cli:ui",
    "traces": "replay.browse_cli:traces",
    "show": "replay.browse_cli:show",
    "sessions": "replay.browse_cli:sessions",
    "feedback": "replay.browse_cli:feedback",
    "suite": "replay.suite_cli:suite",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # component not built yet
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RetraceError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retrace")
def cli() -> None:
    """Retrace: see and replay what LLM agents do."""


def main() -> None:
    """Console-script entry point (exits the process with the command's exit code)."""
    cli(prog_name="retrace")
