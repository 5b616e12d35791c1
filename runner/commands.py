"""``retrace run``, ``retrace demo``, ``retrace approve|reject|resume``: thin shells around
``run_agent`` / ``resume_agent`` that assemble live providers from an agent config."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from runner.config import PYTHON_TOKEN, AgentConfig, load_config
from runner.run import RunResult

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_AGENT = DEMO_DIR / "agent.yaml"
DEMO_SUITE = DEMO_DIR / "tasks.yaml"


@dataclass
class SuiteTask:
    name: str
    task: str


# --- assembling a live run ------------------------------------------------------------------


def _settings(**overrides: Any) -> Any:
    from schemas.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)  # validated: flags override RETRACE_* variables


def _api_key(settings: Any) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def _agent(path: Path | None, model: str | None) -> AgentConfig:
    config = load_config(path or DEMO_AGENT)
    if model:
        from runner.config import parse_config

        data = config.model_dump()
        data["model"] = model
        config = parse_config(data, source="--model")
    return config


def _servers(config: AgentConfig, settings: Any, workspace: Path) -> list[Any]:
    """The config's MCP servers, with ``{python}`` resolved and the sandbox server told which
    backend, limits and workspace to use."""
    from runner.mcp_bridge import McpServer, is_sandbox_server

    out = []
    for server in config.mcp_servers:
        command = server.command
        if command == PYTHON_TOKEN:
            command = sys.executable
        args = list(server.args)
        entry = McpServer(server.name, command, args, dict(server.env), server.cwd, server.url)
        if is_sandbox_server(entry):
            if "--backend" not in args:
                args += ["--backend", config.sandbox.backend or settings.sandbox_backend]
            if (config.sandbox.insecure or settings.insecure) and "--insecure" not in args:
                args.append("--insecure")
            if "--workspace" not in args:
                args += ["--workspace", str(workspace)]
            for key, value in config.sandbox.limits.model_dump().items():
                flag = f"--{key.replace('_', '-')}"
                if flag not in args:
                    args += [flag, str(value)]
        out.append(entry)
    return out


def _snapshots(settings: Any, client: Any) -> Any:
    """Workspace snapshots whose new blobs are uploaded to the collector (None without a
    sandbox package)."""
    try:
        from runner.sandbox import WorkspaceSnapshots
    except ImportError:
        return None

    def upload(sha256: str, data: bytes) -> None:
        if client is not None:
            client.put_payload(sha256, data)

    return WorkspaceSnapshots(Path(settings.data_dir) / "runner" / "cas", sink=upload)


@contextlib.asynccontextmanager
async def live_tools(
    config: AgentConfig, settings: Any, workspace: Path, client: Any
) -> AsyncIterator[Any]:
    """The config's MCP servers as a ``ToolExecutor`` (a no-tool executor if it names none)."""
    from runner.confinement import confine_tools
    from runner.mcp_bridge import McpToolExecutor

    config = confine_tools(config, settings)  # only bundled servers for a collector's client
    workspace.mkdir(parents=True, exist_ok=True)
    env = {
        "RETRACE_ENDPOINT": settings.endpoint,
        "RETRACE_PROJECT": settings.project,
        "PYTHONPATH": os.pathsep.join(
            p
            for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH"))
            if p
        ),
    }
    if settings.api_key is not None:
        env["RETRACE_API_KEY"] = settings.api_key.get_secret_value()
    executor = McpToolExecutor(
        _servers(config, settings, workspace),
        workspace=workspace,
        snapshots=_snapshots(settings, client),
        span_env=env,
    )
    async with executor:
        yield executor


def _client(settings: Any) -> Any:
    from collector.client import CollectorClient

    return CollectorClient(settings.endpoint, api_key=_api_key(settings))


def _check_collector(client: Any) -> None:
    """Fail early, with one clear line, when the collector is down or refuses our key (the
    OTLP exporter would otherwise drop the spans with only a log line)."""
    from schemas.errors import AuthError, ConfigError, ForbiddenError

    try:
        client.healthz()
    except Exception as exc:
        raise ConfigError(
            f"no collector answers at {client.endpoint} ({exc}); start one with `retrace serve` "
            "or run `retrace demo`, which starts its own"
        ) from None
    try:
        client.list_traces(limit=1)
    except (AuthError, ForbiddenError) as exc:
        raise ConfigError(
            f"the collector at {client.endpoint} refused the API key: {exc.message} "
            "(pass --api-key or set RETRACE_API_KEY)"
        ) from None


def _workspace(config: AgentConfig, settings: Any, run_id: str) -> Path:
    if config.workspace:
        return Path(config.workspace)
    return Path(settings.data_dir).resolve() / "runner" / "workspaces" / run_id


def _as_caller(settings: Any, client: Any) -> Any:
    """``settings`` with ``project`` set to the project the collector says our key acts for.

    That project, never a client-side setting, is what a paused run records and what a resume
    is checked against.
    """
    return settings.model_copy(update={"project": client.whoami()})


async def execute_task(task: str, config: AgentConfig, settings: Any, client: Any) -> RunResult:
    """Run one task with live providers from ``config``, traced into ``settings.endpoint``."""
    from runner.approvals import ApiApprovals
    from runner.providers import make_model
    from runner.run import run_agent
    from runner.runtime import LiveRuntime

    settings = _as_caller(settings, client)
    runtime = LiveRuntime(seed=config.seed)
    run_id = runtime.new_id()
    model = make_model(config, settings)
    async with live_tools(config, settings, _workspace(config, settings, run_id), client) as tools:
        return await run_agent(
            task,
            config,
            model=model,
            tools=tools,
            runtime=runtime,
            endpoint=settings.endpoint,
            api_key=_api_key(settings),
            run_id=run_id,
            project=settings.project,
            data_dir=Path(settings.data_dir).resolve(),
            approvals=ApiApprovals(client),
        )


async def resume_task(run_id: str, settings: Any, client: Any) -> RunResult:
    """Resume a paused run with live providers rebuilt from its recorded config."""
    from runner.approvals import ApiApprovals, PausedRuns
    from runner.providers import make_model
    from runner.run import resume_agent
    from runner.runtime import LiveRuntime
    from schemas.errors import InvalidInputError

    settings = _as_caller(settings, client)
    data_dir = Path(settings.data_dir).resolve()
    record = PausedRuns(data_dir, settings.project).load(run_id)
    if record.state != "paused":  # checked again under the lock; this avoids starting servers
        raise InvalidInputError(f"run {run_id} is not paused (it is {record.state})")
    config = AgentConfig.model_validate(record.config)
    runtime = LiveRuntime(seed=config.seed)
    model = make_model(config, settings)
    async with live_tools(config, settings, _workspace(config, settings, run_id), client) as tools:
        return await resume_agent(
            run_id,
            data_dir=data_dir,
            model=model,
            tools=tools,
            runtime=runtime,
            approvals=ApiApprovals(client),
            endpoint=settings.endpoint,
            api_key=_api_key(settings),
            config=config,
            project=settings.project,
        )


def run_sync(coro: Any) -> Any:
    """``asyncio.run``, then export the run's spans; a ``RetraceError`` raised inside a task
    group (the MCP client's) surfaces as itself, so the CLI prints one line, not a traceback."""
    from runner.tracing import flush_exports
    from schemas.errors import RetraceError

    try:
        return asyncio.run(coro)
    except BaseExceptionGroup as group:
        match, _ = group.split(RetraceError)
        while match is not None:
            first = match.exceptions[0]
            if isinstance(first, RetraceError):
                raise first from group
            match = first if isinstance(first, BaseExceptionGroup) else None
        raise
    finally:
        flush_exports()


def _print_result(result: RunResult) -> None:
    click.echo(f"trace:  {result.trace_id}")
    click.echo(f"run:    {result.run_id}")
    click.echo(f"status: {result.status.value}")
    if result.approval_id:
        click.echo(f"approval: {result.approval_id}  (retrace approve {result.run_id})")
    click.echo(f"answer: {result.answer}")


# --- suites ---------------------------------------------------------------------------------


def load_suite(path: Path) -> tuple[list[SuiteTask], Path | None]:
    """A suite file: ``{agent: PATH?, tasks: [{name, task} | "task text", ...]}`` or a list."""
    from schemas.errors import ConfigError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read suite {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite {path} is not valid YAML: {exc}") from None
    agent: Path | None = None
    if isinstance(data, dict):
        if data.get("agent"):
            agent = (path.parent / str(data["agent"])).resolve()
        data = data.get("tasks")
    if not isinstance(data, list) or not data:
        raise ConfigError(f"suite {path}: 'tasks' must be a non-empty list")
    tasks = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            tasks.append(SuiteTask(f"task-{i + 1}", item))
        elif isinstance(item, dict) and isinstance(item.get("task"), str):
            tasks.append(SuiteTask(str(item.get("name", f"task-{i + 1}")), item["task"]))
        else:
            raise ConfigError(f"suite {path}: tasks[{i}] needs a 'task' string")
    return tasks, agent


def run_suite(
    tasks: list[SuiteTask], config: AgentConfig, settings: Any, client: Any
) -> list[tuple[SuiteTask, RunResult | None, str]]:
    """Run tasks one after another with a progress bar; a failed task does not stop the rest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from schemas.errors import RetraceError

    outcomes: list[tuple[SuiteTask, RunResult | None, str]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("running", total=len(tasks))
        for item in tasks:
            progress.update(bar, description=f"running {item.name}")
            try:
                result = run_sync(execute_task(item.task, config, settings, client))
                outcomes.append((item, result, ""))
            except (RetraceError, OSError) as exc:
                outcomes.append((item, None, str(exc)))
            progress.advance(bar)
        progress.update(bar, description="done")
    return outcomes


def _print_table(outcomes: list[tuple[SuiteTask, RunResult | None, str]]) -> None:
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
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
) -> None:
    """Run TASK (or a --suite) with an agent; print the trace id and the answer."""
    from schemas.errors import InvalidInputError

    if (task is None) == (suite is None):
        raise InvalidInputError("give a TASK or --suite FILE (exactly one)")
    settings = _settings(
        endpoint=endpoint,
        api_key=api_key,
        data_dir=data_dir,
        sandbox_backend=backend,
        insecure=insecure,
    )
    with _client(settings) as client:
        _check_collector(client)
        if suite is not None:
            tasks, suite_agent = load_suite(suite)
            config = _agent(agent_path or suite_agent, model)
            outcomes = run_suite(tasks, config, settings, client)
            _print_table(outcomes)
            if any(r is None for _, r, _ in outcomes):
                sys.exit(1)
            return
        assert task is not None
        result = run_sync(execute_task(task, _agent(agent_path, model), settings, client))
    _print_result(result)


def _decide(
    run_id: str,
    decision: str,
    by: str | None,
    comment: str,
    endpoint: str | None,
    api_key: str | None,
    data_dir: Path | None,
    resume_after: bool,
) -> None:
    from runner.approvals import ApiApprovals
    from schemas.errors import InvalidInputError, NotFoundError

    settings = _settings(endpoint=endpoint, api_key=api_key, data_dir=data_dir)
    decided_by = by or os.environ.get("USER") or "unknown"
    with _client(settings) as client:
        _check_collector(client)
        pending = ApiApprovals(client).pending_for_run(run_id)
        if not pending:
            raise NotFoundError(f"run {run_id} has no pending approval")
        for approval in pending:
            ApiApprovals(client).decide(approval.approval_id, decision, decided_by, comment)  # type: ignore[arg-type]
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


def _decision_command(decision: str, summary: str) -> click.Command:
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
    import time as clock

    from runner.approvals import ApiApprovals, PausedRuns
    from schemas.errors import InvalidInputError

    if (run_id is None) == (not expired):
        raise InvalidInputError("give a RUN_ID or --expired (exactly one)")
    settings = _settings(endpoint=endpoint, api_key=api_key, data_dir=data_dir)
    with _client(settings) as client:
        if run_id is not None:
            result = run_sync(resume_task(run_id, settings, client))
            _print_result(result)
            return
        runs = PausedRuns(Path(settings.data_dir).resolve(), client.whoami())
        for record in runs.expired(ApiApprovals(client), clock.time()):
            _print_result(run_sync(resume_task(record.run_id, settings, client)))


# --- demo -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _child_service(
    what: str,
    argv: list[str],
    health_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m runner.cli ARGV`` until the block ends; yield once ``health_url`` is 200.

    A child that exits or stays silent is a one-line ``StoreError`` naming its log; on the way
    out it gets SIGTERM (its shutdown flushes), then SIGKILL after 30 s.
    """
    import httpx

    from schemas.errors import StoreError

    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *argv], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise StoreError(f"the {what} exited ({process.returncode}); see {log_path}")
            try:
                if httpx.get(health_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StoreError(f"the {what} did not start in {timeout_s:.0f}s; see {log_path}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextlib.contextmanager
def _collector(data_dir: Path, port: int | None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``retrace serve`` subprocess on the embedded store in ``data_dir``."""
    port = port or _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with _child_service(
        "collector",
        ["serve", "--port", str(port), "--data-dir", str(data_dir)],
        f"{url}/healthz",
        data_dir / "collector.log",
        env=dict(os.environ, RETRACE_DATA_DIR=str(data_dir)),
    ) as process:
        yield url, process


@contextlib.contextmanager
def _ui(api_url: str, port: int, data_dir: Path) -> Iterator[str]:
    """A ``retrace ui`` subprocess against ``api_url``; yields its URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    with _child_service(
        "UI",
        ["ui", "--api", api_url, "--port", str(port)],
        f"{url}/_stcore/health",
        data_dir / "ui.log",
        timeout_s=60,
    ):
        yield url


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
    keep_serving = keep_serving or with_ui
    settings = _settings(
        api_key=api_key, data_dir=data_dir, sandbox_backend=backend, insecure=insecure
    )
    data_path = Path(settings.data_dir).resolve()
    tasks, _ = load_suite(DEMO_SUITE)
    config = _agent(DEMO_AGENT, None)
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            click.echo(f"starting a collector on the embedded store in {data_path} ...")
            url, process = stack.enter_context(_collector(data_path, port))
        else:
            url, process = endpoint, None
        settings = settings.model_copy(update={"endpoint": url})  # a str: no validation needed
        client = stack.enter_context(_client(settings))
        _check_collector(client)
        outcomes = run_suite(tasks, config, settings, client)
        _print_table(outcomes)
        stays = process is None or keep_serving
        for item, result, _ in outcomes:
            if result is not None and result.approval_id:
                where = f"--endpoint {url}" if stays else f"--data-dir {data_path}"
                click.echo(
                    f"{item.name} waits for approval: retrace approve {result.run_id} "
                    f"{where}   (or reject)"
                )
        if not stays:
            click.echo(
                f"(later, `retrace serve --data-dir {data_path}` serves these traces again; "
                "approve or reject the paused run against it)"
            )
        click.echo(f"API:     {url}/api/v1/traces")
        click.echo(f"Explore: retrace ui --api {url}")
        if with_ui:
            ui_url = stack.enter_context(_ui(url, ui_port or settings.ui_port, data_path))
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
