"""Run assembly: live providers built from an agent config, ``Settings`` and a collector client,
and the runs made with them (a task, a resumed run, a suite of tasks).

The CLI (``runner/commands.py``) and the replay engine's edges call these; nothing here reads the
environment or prints: ``Settings`` come from the caller, already overridden by its flags.
Heavy imports (LangGraph, MCP) happen when a run starts, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

import yaml

from runner.config import PYTHON_TOKEN, AgentConfig, McpServerConfig, load_config, parse_config
from schemas.errors import ConfigError, InvalidInputError, RetraceError
from schemas.settings import Settings

if TYPE_CHECKING:
    from collector.client import CollectorClient
    from runner.approvals import PausedRun
    from runner.mcp_bridge import McpServer, McpToolExecutor
    from runner.run import RunResult
    from runner.sandbox import WorkspaceSnapshots
    from runner.sandbox.servers import ServerPolicy
    from runner.seams import ModelProvider, ToolExecutor

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_AGENT = DEMO_DIR / "agent.yaml"
DEMO_SUITE = DEMO_DIR / "tasks.yaml"
_T = TypeVar("_T")

LiveToolsFactory = Callable[[AgentConfig, Path], AbstractAsyncContextManager["ToolExecutor"]]
"""``(config, workspace) -> async context manager of a ToolExecutor``: what a Replayer takes."""


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite file."""

    name: str
    task: str


class SuiteOutcome(NamedTuple):
    """How one suite task ended: its result, or the one-line error that stopped it."""

    task: SuiteTask
    result: RunResult | None
    error: str


# --- settings and the collector ---------------------------------------------------------------


def api_key_of(settings: Settings) -> str | None:
    """The collector API key, unwrapped (None when none is set)."""
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def collector_client(settings: Settings) -> CollectorClient:
    """A client of the collector at ``settings.endpoint`` with ``settings.api_key``."""
    from collector.client import CollectorClient

    return CollectorClient(settings.endpoint, api_key=api_key_of(settings))


def check_collector(client: CollectorClient) -> None:
    """Fail early, with one clear line, when the collector is down or refuses our key (the
    OTLP exporter would otherwise drop the spans with only a log line)."""
    from schemas.errors import AuthError, ForbiddenError

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


def as_caller(settings: Settings, client: CollectorClient) -> Settings:
    """``settings`` with ``project`` set to the project the collector says our key acts for.

    That project, never a client-side setting, is what a paused run records and what a resume
    is checked against.
    """
    return settings.model_copy(update={"project": client.whoami()})


# --- the agent and its tools ------------------------------------------------------------------


def load_agent(path: Path | None, model: str | None = None) -> AgentConfig:
    """The agent config at ``path`` (default: the demo data scientist), ``model`` overriding
    its ``provider:model``."""
    config = load_config(path or DEMO_AGENT)
    if model:
        data = config.model_dump()
        data["model"] = model
        config = parse_config(data, source="--model")
    return config


def mcp_servers(
    config: AgentConfig,
    settings: Settings,
    workspace: Path,
    span_env: Mapping[str, str] | None = None,
) -> list[McpServer]:
    """The config's MCP servers, with ``{python}`` resolved, the sandbox server told which
    backend, limits and workspace to use, and every other stdio server given the sandbox
    policy it starts in (:func:`server_policy`). ``span_env``: what the bundled servers need to
    export their spans (``RETRACE_ENDPOINT``...); third-party servers never get it."""
    from runner.mcp_bridge import McpServer, runs_bundled
    from runner.mcp_servers import SANDBOX_SERVER_MODULE

    out = []
    for server in config.mcp_servers:
        command = sys.executable if server.command == PYTHON_TOKEN else server.command
        args = list(server.args)
        policy = None
        # Only the real bundled sandbox server (recognised by what it runs, not by a string in
        # its arguments) runs on the host; it is the sandbox its calls run in.
        if runs_bundled(server, SANDBOX_SERVER_MODULE):
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
        elif server.command is not None:
            policy = server_policy(server, config, settings, span_env or {})
        out.append(
            McpServer(
                server.name,
                command,
                args,
                server.explicit_env(),
                server.cwd,
                server.url,
                policy=policy,
            )
        )
    return out


def server_backend(server: McpServerConfig, config: AgentConfig, settings: Settings) -> str:
    """The sandbox a stdio server starts in: its own ``sandbox``, else the agent's backend
    (``process`` becoming ``none``, which the ``process`` backend's insecure flag allows)."""
    if server.sandbox is not None:
        return server.sandbox
    backend = config.sandbox.backend or settings.sandbox_backend
    return "none" if backend == "process" else backend


def server_policy(
    server: McpServerConfig,
    config: AgentConfig,
    settings: Settings,
    span_env: Mapping[str, str],
) -> ServerPolicy:
    """The resolved sandbox policy of one stdio server: backend, environment values (the
    config's own, the names it passes from ours, and for a bundled server what its spans
    need), network, mounts, workspace and limits."""
    from runner.mcp_bridge import arg_value, runs_bundled
    from runner.mcp_servers import DATA_SERVER_MODULE
    from runner.sandbox.servers import Mount, ServerLimits, ServerPolicy, host_port_of

    backend = server_backend(server, config, settings)
    insecure = server.insecure or (
        server.sandbox is None and (config.sandbox.insecure or settings.insecure)
    )
    if backend == "none" and not insecure:
        raise ConfigError(
            f"MCP server {server.name!r} would run with no sandbox; set 'insecure: true' on it"
        )
    env = server.explicit_env()
    for name in server.passed_env():
        value = os.environ.get(name)
        if value is None:
            log.warning("MCP server %s: env variable %s is not set", server.name, name)
        else:
            env[name] = value
    implicit: tuple[str, ...] = ()
    mounts = [Mount(m.host, m.container, m.read_only) for m in server.mounts]
    if runs_bundled(server, DATA_SERVER_MODULE):
        env = {**span_env, **env}
        collector = host_port_of(span_env.get("RETRACE_ENDPOINT", ""))
        if collector is not None and backend != "none":
            implicit = (collector,)
        # the database the config names, read-only at the same path (only that file)
        db = arg_value(server.args, "--db")
        if db is not None and Path(db).is_absolute() and Path(db).is_file():
            mounts.append(Mount(str(Path(db).resolve()), str(Path(db)), True))
    network = server.network
    allow: tuple[str, ...] = ()
    mode: Literal["none", "loopback", "allow"]
    if isinstance(network, str):
        mode = "none" if network == "none" else "loopback"
    else:
        mode, allow = "allow", tuple(network.allow)
    ports = {item.rpartition(":")[2] for item in allow}
    implicit = tuple(i for i in implicit if i.rpartition(":")[2] not in ports)
    return ServerPolicy(
        backend=backend,  # type: ignore[arg-type]
        insecure=insecure,
        network=mode,
        allow=allow,
        env=env,
        mounts=tuple(mounts),
        workspace=server.workspace,
        limits=ServerLimits(**server.limits.model_dump()),
        implicit_allow=implicit,
        runsc_path=settings.runsc_path,
    )


def workspace_snapshots(
    settings: Settings, client: CollectorClient | None
) -> WorkspaceSnapshots | None:
    """Workspace snapshots in ``DATA_DIR/runner/cas`` whose new blobs are uploaded to the
    collector (None without a sandbox package)."""
    try:
        from runner.sandbox import WorkspaceSnapshots
    except ImportError:
        return None

    def upload(sha256: str, data: bytes) -> None:
        if client is not None:
            client.put_payload(sha256, data)

    return WorkspaceSnapshots(Path(settings.data_dir) / "runner" / "cas", sink=upload)


def effective_config(config: AgentConfig, settings: Settings) -> AgentConfig:
    """``config`` with the sandbox backend the run really uses filled in (the Settings' when
    the config names none), so that the recorded config says where its tools ran."""
    if config.sandbox.backend is not None:
        return config
    sandbox = config.sandbox.model_copy(update={"backend": settings.sandbox_backend})
    return config.model_copy(update={"sandbox": sandbox})


def run_workspace(config: AgentConfig, settings: Settings, run_id: str) -> Path:
    """Where a run's tools work: the config's ``workspace``, else one per run under DATA_DIR."""
    if config.workspace:
        return Path(config.workspace)
    return Path(settings.data_dir).resolve() / "runner" / "workspaces" / run_id


@contextlib.asynccontextmanager
async def live_tools(
    config: AgentConfig, settings: Settings, workspace: Path, client: CollectorClient | None
) -> AsyncIterator[McpToolExecutor]:
    """The config's MCP servers as a ``ToolExecutor`` (a no-tool executor if it names none).

    Their own spans go to ``settings.endpoint`` (none when it is empty) as ``settings.project``.
    """
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
    key = api_key_of(settings)
    if key is not None:
        env["RETRACE_API_KEY"] = key
    executor = McpToolExecutor(
        mcp_servers(config, settings, workspace, env),
        workspace=workspace,
        snapshots=workspace_snapshots(settings, client),
        span_env=env,
    )
    async with executor:
        yield executor


def live_tools_factory(settings: Settings, client: CollectorClient | None) -> LiveToolsFactory:
    """:func:`live_tools` bound to ``settings`` and ``client``: the live tools a Replayer takes."""

    def factory(config: AgentConfig, workspace: Path) -> AbstractAsyncContextManager[ToolExecutor]:
        return live_tools(config, settings, workspace, client)

    return factory


def live_model_factory(settings: Settings) -> Callable[[AgentConfig], ModelProvider]:
    """``runner.providers.make_model`` bound to ``settings``: the live model a Replayer takes."""

    def factory(config: AgentConfig) -> ModelProvider:
        from runner.providers import make_model

        return make_model(config, settings)

    return factory


# --- runs -------------------------------------------------------------------------------------


async def execute_task(
    task: str,
    config: AgentConfig,
    settings: Settings,
    client: CollectorClient,
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run one task with live providers from ``config``, traced into ``settings.endpoint``;
    ``session_id``/``user_id``/``metadata`` are recorded on the run (``run_agent``)."""
    from runner.approvals import ApiApprovals
    from runner.providers import make_model
    from runner.run import run_agent
    from runner.runtime import LiveRuntime

    settings = as_caller(settings, client)
    config = effective_config(config, settings)
    runtime = LiveRuntime(seed=config.seed)
    run_id = runtime.new_id()
    model = make_model(config, settings)
    workspace = run_workspace(config, settings, run_id)
    async with live_tools(config, settings, workspace, client) as tools:
        return await run_agent(
            task,
            config,
            model=model,
            tools=tools,
            runtime=runtime,
            endpoint=settings.endpoint,
            api_key=api_key_of(settings),
            run_id=run_id,
            project=settings.project,
            data_dir=Path(settings.data_dir).resolve(),
            approvals=ApiApprovals(client),
            session_id=session_id,
            user_id=user_id,
            metadata=metadata,
        )


async def resume_task(run_id: str, settings: Settings, client: CollectorClient) -> RunResult:
    """Resume a paused run with live providers rebuilt from its recorded config."""
    from runner.approvals import ApiApprovals, PausedRuns
    from runner.providers import make_model
    from runner.run import resume_agent
    from runner.runtime import LiveRuntime

    settings = as_caller(settings, client)
    data_dir = Path(settings.data_dir).resolve()
    record = PausedRuns(data_dir, settings.project).load(run_id)
    if record.state != "paused":  # checked again under the lock; this avoids starting servers
        raise InvalidInputError(f"run {run_id} is not paused (it is {record.state})")
    config = AgentConfig.model_validate(record.config)
    runtime = LiveRuntime(seed=config.seed)
    model = make_model(config, settings)
    workspace = run_workspace(config, settings, run_id)
    async with live_tools(config, settings, workspace, client) as tools:
        return await resume_agent(
            run_id,
            data_dir=data_dir,
            model=model,
            tools=tools,
            runtime=runtime,
            approvals=ApiApprovals(client),
            endpoint=settings.endpoint,
            api_key=api_key_of(settings),
            config=config,
            project=settings.project,
        )


def expired_runs(settings: Settings, client: CollectorClient) -> list[PausedRun]:
    """The caller's project's paused runs whose approval is past its deadline."""
    from runner.approvals import ApiApprovals, PausedRuns

    runs = PausedRuns(Path(settings.data_dir).resolve(), client.whoami())
    return runs.expired(ApiApprovals(client), time.time())


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run``, then export the run's spans; a ``RetraceError`` raised inside a task
    group (the MCP client's) surfaces as itself, so the CLI prints one line, not a traceback."""
    from runner.tracing import flush_exports

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


# --- suites -----------------------------------------------------------------------------------


def load_suite(path: Path) -> tuple[list[SuiteTask], Path | None]:
    """A suite file: ``{agent: PATH?, tasks: [{name, task} | "task text", ...]}`` or a list.

    Returns the tasks and the agent config the file names (resolved against it), if any.
    """
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
    tasks: list[SuiteTask],
    config: AgentConfig,
    settings: Settings,
    client: CollectorClient,
    *,
    on_start: Callable[[SuiteTask], None] | None = None,
    on_done: Callable[[SuiteOutcome], None] | None = None,
) -> list[SuiteOutcome]:
    """Run tasks one after another; a failed task does not stop the rest.

    ``on_start``/``on_done`` are called around each task (a progress bar).
    """
    outcomes: list[SuiteOutcome] = []
    for item in tasks:
        if on_start is not None:
            on_start(item)
        try:
            result = run_sync(execute_task(item.task, config, settings, client))
            outcome = SuiteOutcome(item, result, "")
        except (RetraceError, OSError) as exc:
            log.info("suite task %s failed: %s", item.name, exc)
            outcome = SuiteOutcome(item, None, str(exc))
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
