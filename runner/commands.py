"""``retrace run``, ``retrace demo``, ``retrace approve|reject|resume``: click shells.

Each command turns its flags into ``Settings`` once, then calls the run assembly
(``runner/assembly.py``: live providers, tasks, suites) and prints; ``demo`` starts its child
services through ``runner/supervisor.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner.approvals import Decision
from runner.assembly import (
    DEMO_AGENT,
    DEMO_SUITE,
    SuiteOutcome,
    SuiteTask,
    check_collector,
    collector_client,
    execute_task,
    expired_runs,
    load_agent,
    load_suite,
    resume_task,
    run_suite,
    run_sync,
)
from runner.config import AgentConfig
from runner.run import RunResult
from schemas.errors import InvalidInputError, NotFoundError
from schemas.settings import Settings

if TYPE_CHECKING:
    from collector.client import CollectorClient


def _settings(**flags: Any) -> Settings:
    """The one Settings object: ``RETRACE_*`` variables, overridden by the flags given."""
    given = {k: v for k, v in flags.items() if v is not None}
    return Settings(**given)  # validated


def _print_result(result: RunResult) -> None:
    click.echo(f"trace:  {result.trace_id}")
    click.echo(f"run:    {result.run_id}")
    click.echo(f"status: {result.status.value}")
    if result.approval_id:
        click.echo(f"approval: {result.approval_id}  (retrace approve {result.run_id})")
    click.echo(f"answer: {result.answer}")


def _run_suite_with_progress(
    tasks: list[SuiteTask], config: AgentConfig, settings: Settings, client: CollectorClient
) -> list[SuiteOutcome]:
    """``run_suite`` behind a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("running", total=len(tasks))
        outcomes = run_suite(
            tasks,
            config,
            settings,
            client,
            on_start=lambda item: progress.update(bar, description=f"running {item.name}"),
            on_done=lambda _: progress.advance(bar),
        )
        progress.update(bar, description="done")
    return outcomes


def _print_table(outcomes: list[SuiteOutcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: do not fold trace ids into an 80-column box
        console = Console(width=200)
    table = Table(title="runs")
    table.add_column("task", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("steps", justify="right")
    table.add_column("trace id", no_wrap=True)
    table.add_column("answer", overflow="ellipsis", max_width=90)
    for item, result, error in outcomes:
        if result is None:
            table.add_row(item.name, "error", "-", "-", error)
        else:
            table.add_row(
                item.name, result.status.value, str(result.steps), result.trace_id, result.answer
            )
    console.print(table)


# --- commands -------------------------------------------------------------------------------

_endpoint = click.option("--endpoint", default=None, help="Collector URL (RETRACE_ENDPOINT).")
_api_key_opt = click.option("--api-key", default=None, help="Collector API key (RETRACE_API_KEY).")
_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where paused runs, checkpoints and workspaces live (RETRACE_DATA_DIR).",
)


@click.command()
@click.argument("task", required=False)
@click.option(
    "--agent",
    "agent_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Agent config YAML (default: the demo data scientist).",
)
@click.option(
    "--suite",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Run every task of a suite file.",
)
@click.option("--model", default=None, help="Override the agent's provider:model.")
@click.option(
    "--backend",
    type=click.Choice(["gvisor", "bwrap", "process"]),
    default=None,
    help="Sandbox backend (RETRACE_SANDBOX_BACKEND).",
)
@click.option("--insecure", is_flag=True, default=None, help="Allow the 'process' backend.")
@click.option("--session-id", default=None, help="The session (conversation) the run belongs to.")
@click.option("--user-id", default=None, help="The end user the run answers.")
@click.option(
    "--metadata",
    "metadata_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata recorded on the run (repeatable).",
)
@_endpoint
@_api_key_opt
@_data_dir
def run(
    task: str | None,
    agent_path: Path | None,
    suite: Path | None,
    model: str | None,
    backend: str | None,
    insecure: bool | None,
    session_id: str | None,
    user_id: str | None,
    metadata_items: tuple[str, ...],
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
) -> None:
    """Run TASK (or a --suite) with an agent; print the trace id and the answer."""
    if (task is None) == (suite is None):
        raise InvalidInputError("give a TASK or --suite FILE (exactly one)")
    metadata: dict[str, str] = {}
    for item in metadata_items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--metadata: {item!r} must be KEY=VALUE")
        metadata[key] = value
    if suite is not None and (session_id or user_id or metadata):
        raise InvalidInputError(
            "--session-id, --user-id and --metadata go with a TASK, not --suite"
        )
    settings = _settings(
        endpoint=endpoint,
        api_key=api_key,
        data_dir=data_dir,
        sandbox_backend=backend,
        insecure=insecure,
    )
    with collector_client(settings) as client:
        check_collector(client)
        if suite is not None:
            tasks, suite_agent = load_suite(suite)
            config = load_agent(agent_path or suite_agent, model)
            outcomes = _run_suite_with_progress(tasks, config, settings, client)
            _print_table(outcomes)
            if any(r is None for _, r, _ in outcomes):
                sys.exit(1)
            return
        assert task is not None
        config = load_agent(agent_path, model)
        result = run_sync(
            execute_task(
                task,
                config,
                settings,
                client,
                session_id=session_id,
                user_id=user_id,
                metadata=metadata,
            )
        )
    _print_result(result)


def _decide(
    run_id: str,
    decision: Decision,
    by: str | None,
    comment: str,
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
    resume_after: bool,
) -> None:
    from runner.approvals import ApiApprovals

    settings = _settings(endpoint=endpoint, api_key=api_key, data_dir=data_dir)
    decided_by = by or os.environ.get("USER") or "unknown"
    with collector_client(settings) as client:
        check_collector(client)
        desk = ApiApprovals(client)
        pending = desk.pending_for_run(run_id)
        if not pending:
            raise NotFoundError(f"run {run_id} has no pending approval")
        for approval in pending:
            desk.decide(approval.approval_id, decision, decided_by, comment)
            click.echo(
                f"{decision}d approval {approval.approval_id} ({approval.tool_name}) "
                f"as {decided_by}"
            )
        if not resume_after:
            return
        try:
            result = run_sync(resume_task(run_id, settings, client))
        except InvalidInputError as exc:
            click.echo(f"not resumed here: {exc.message}")
            return
    _print_result(result)


def _decision_command(decision: Decision, summary: str) -> click.Command:
    """``retrace approve`` / ``retrace reject``: the same command but for the decision."""

    @click.command(name=decision, help=summary)
    @click.argument("run_id")
    @click.option("--by", default=None, help="Who decides (default: $USER).")
    @click.option("--comment", default="", help="A note recorded with the decision.")
    @click.option("--no-resume", is_flag=True, help="Only record the decision.")
    @_endpoint
    @_api_key_opt
    @_data_dir
    def command(
        run_id: str,
        by: str | None,
        comment: str,
        no_resume: bool,
        endpoint: str | None,
        api_key: str | None,
        data_dir: Path | None,
    ) -> None:
        _decide(run_id, decision, by, comment, endpoint, api_key, data_dir, not no_resume)

    return command


approve = _decision_command(
    "approve", "Approve the pending tool call of RUN_ID and resume the run."
)
reject = _decision_command(
    "reject", 'Reject the pending tool call of RUN_ID and resume the run (the model hears "no").'
)


@click.command()
@click.argument("run_id", required=False)
@click.option("--expired", is_flag=True, help="Resume (as rejected) every expired paused run.")
@_endpoint
@_api_key_opt
@_data_dir
def resume(
    run_id: str | None,
    expired: bool,
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
) -> None:
    """Resume RUN_ID, paused for approval, once the approval is decided or expired."""
    if (run_id is None) == (not expired):
        raise InvalidInputError("give a RUN_ID or --expired (exactly one)")
    settings = _settings(endpoint=endpoint, api_key=api_key, data_dir=data_dir)
    with collector_client(settings) as client:
        if run_id is not None:
            result = run_sync(resume_task(run_id, settings, client))
            _print_result(result)
            return
        for record in expired_runs(settings, client):
            _print_result(run_sync(resume_task(record.run_id, settings, client)))


# --- demo -----------------------------------------------------------------------------------


@click.command()
@_endpoint
@_api_key_opt
@_data_dir
@click.option("--port", type=int, default=None, help="Port of the collector demo starts.")
@click.option(
    "--backend",
    type=click.Choice(["gvisor", "bwrap", "process"]),
    default=None,
    help="Sandbox backend (RETRACE_SANDBOX_BACKEND).",
)
@click.option("--insecure", is_flag=True, default=None, help="Allow the 'process' backend.")
@click.option("--keep-serving", is_flag=True, help="Keep the collector running afterwards.")
@click.option(
    "--ui",
    "with_ui",
    is_flag=True,
    help="Afterwards keep the collector running and serve the UI on it (implies --keep-serving).",
)
@click.option("--ui-port", type=int, default=None, help="Port of the UI (RETRACE_UI_PORT).")
def demo(
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
    port: int | None,
    backend: str | None,
    insecure: bool | None,
    keep_serving: bool,
    with_ui: bool,
    ui_port: int | None,
) -> None:
    """Run the "AI data scientist" demo suite into a collector (by default one started here)."""
    from runner.supervisor import collector_service, ui_service

    keep_serving = keep_serving or with_ui
    settings = _settings(
        api_key=api_key, data_dir=data_dir, sandbox_backend=backend, insecure=insecure
    )
    data_path = Path(settings.data_dir).resolve()
    tasks, _ = load_suite(DEMO_SUITE)
    config = load_agent(DEMO_AGENT)
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            click.echo(f"starting a collector on the embedded store in {data_path} ...")
            url, process = stack.enter_context(collector_service(data_path, port))
        else:
            url, process = endpoint, None
        settings = settings.model_copy(update={"endpoint": url})  # a str: no validation needed
        client = stack.enter_context(collector_client(settings))
        check_collector(client)
        outcomes = _run_suite_with_progress(tasks, config, settings, client)
        _print_table(outcomes)
        stays = process is None or keep_serving
        for item, result, _ in outcomes:
            if result is not None and result.approval_id:
                where = f"--endpoint {url}" if stays else f"--data-dir {data_path}"
                # The answer names the approval; the commands take the run that waits for it.
                click.echo(
                    f"{item.name} waits for approval {result.approval_id} (run "
                    f"{result.run_id}): retrace approve {result.run_id} {where}   (or reject)"
                )
        if not stays:
            click.echo(
                f"(later, `retrace serve --data-dir {data_path}` serves these traces again; "
                "approve or reject the paused run against it)"
            )
        click.echo(f"API:     {url}/api/v1/traces")
        click.echo(f"Explore: retrace ui --api {url}")
        if with_ui:
            ui_url = stack.enter_context(ui_service(url, ui_port or settings.ui_port, data_path))
            click.echo(f"UI:      {ui_url}")
        if keep_serving:
            click.echo(f"collector serving at {url}; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                if process is not None:
                    process.wait()
                else:
                    threading.Event().wait()
        elif process is not None:
            click.echo(
                "stopping the collector (use --keep-serving to keep it; the traces stay "
                f"in {data_path})"
            )
