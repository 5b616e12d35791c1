"""The replay runner: re-drive the real agent (``runner.run_agent``) behind recorded seams.

Like temporalio's ``Replayer``: :meth:`Replayer.replay` returns a :class:`ReplayOutcome` carrying
the divergence report — or the failure — instead of crashing, and :meth:`Replayer.replay_many`
replays a suite in parallel (what ``retrace ci`` runs). A request the recording cannot answer
ends the run and becomes an ``UNANSWERABLE`` divergence. Setting a replay up with what the
recording lacks raises ``TrajectoryIncompleteError`` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from replay._capture import CaptureExporter, detail_from_spans
from replay._diff import DEFAULT_CONFIG, DiffConfig, normalize
from replay._recorded import (
    OnUnmatched,
    RecordedModelProvider,
    RecordedRuntime,
    RecordedToolExecutor,
    RequestMismatch,
    UnanswerableRequest,
    tool_specs_from_trajectory,
)
from replay._report import Unanswered, build_report
from replay._trajectory import load_trajectory, require_for_mode, trajectory_from_detail
from runner.seams import ModelProvider, ToolExecutor, ToolResult, ToolSpec
from schemas.errors import (
    ConfigError,
    NotFoundError,
    ReplayError,
    RetraceError,
)
from schemas.models import DivergenceReport, ReplayMode, ReplayRecord, Step, Trajectory
from schemas.settings import Settings

if TYPE_CHECKING:
    from collector.client import CollectorClient
    from runner.config import AgentConfig

TrajectorySource = Trajectory | Path | str
LiveToolsFactory = Callable[["AgentConfig", Path], AbstractAsyncContextManager[ToolExecutor]]


@dataclass
class ReplayOutcome:
    """One replay's result. ``error`` is set (and ``report`` may be None) when it could not run."""

    original_trace_id: str
    mode: ReplayMode
    report: DivergenceReport | None = None
    replay_trace_id: str = ""
    replay_id: str = ""
    run_status: str = ""
    error: str = ""
    source: str = ""
    duration_s: float = 0.0
    mismatches: list[RequestMismatch] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.report.diverged if self.report is not None else False

    @property
    def ok(self) -> bool:
        """Replayed without divergence and without error."""
        return not self.error and self.report is not None and not self.report.diverged


@dataclass(frozen=True)
class ReplayOptions:
    """What to change for the replay. ``model``/``policy_file``/``prompt`` are for live-model."""

    mode: ReplayMode = ReplayMode.RECORDED
    config: Any = None  # an AgentConfig to use instead of the recorded one
    model: str | None = None  # provider:model
    policy_file: str | None = None  # offline model script
    prompt: str | None = None  # system prompt
    on_unmatched: OnUnmatched = "live"


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _source_label(source: TrajectorySource) -> str:
    if isinstance(source, Trajectory):
        return source.trace_id
    return str(source)


def _recorded_servers(trajectory: Trajectory) -> set[str]:
    servers = trajectory.agent_config.get("mcp_servers") or []
    return {str(s.get("name")) for s in servers if isinstance(s, dict) and s.get("name")}


class Replayer:
    """Replays recorded trajectories through the real runner.

    ``endpoint``/``client``: the collector to read traces and payloads from and to send the
    replay's trace and report to (optional for golden files: then nothing is sent).
    ``live_tools``: builds the live tool executor for live-tools / live-model (default: the
    agent config's MCP servers through ``runner.mcp_bridge.McpToolExecutor``).
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        client: CollectorClient | None = None,
        project: str = "default",
        diff_config: DiffConfig = DEFAULT_CONFIG,
        live_tools: LiveToolsFactory | None = None,
        cas_dir: Path | None = None,
        store_report: bool = True,
        settings: Settings | None = None,
    ) -> None:
        if client is None and endpoint:
            from collector.client import CollectorClient

            client = CollectorClient(endpoint, api_key=api_key)
        self.client = client
        self.endpoint = endpoint or (client.endpoint if client is not None else None)
        self.api_key = api_key
        self.project = project
        self.diff_config = diff_config
        self.live_tools = live_tools
        self.settings = settings if settings is not None else Settings()
        # Workspace blobs: the runner's local store first, then the collector's payloads.
        self.cas_dir = cas_dir or Path(self.settings.data_dir) / "runner" / "cas"
        self.store_report = store_report

    # --- loading -----------------------------------------------------------------------------
    def load(self, source: TrajectorySource) -> Trajectory:
        """A trajectory from itself, a golden file, or a trace id (read from the collector)."""
        if isinstance(source, Trajectory):
            return source
        path = Path(source)
        if isinstance(source, Path) or (path.suffix == ".json" and path.exists()):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReplayError(f"cannot read trajectory file {path}: {exc.strerror}") from None
            return load_trajectory(text, source=str(path))
        if self.client is None:
            raise ReplayError(
                f"{source!r} is not a trajectory file, and no collector endpoint was given "
                "to look it up as a trace id"
            )
        try:
            detail = self.client.get_trace(str(source))
        except NotFoundError:
            raise ReplayError(
                f"unknown trace {source!r} at {self.client.endpoint} (in this project)"
            ) from None
        return trajectory_from_detail(detail)

    def _config(self, trajectory: Trajectory, options: ReplayOptions) -> AgentConfig:
        from runner.config import AgentConfig
        from runner.confinement import confine_config

        if options.config is not None:
            config = AgentConfig.model_validate(options.config.model_dump())
        else:
            try:
                config = AgentConfig.model_validate(trajectory.agent_config)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(top level)"
                raise ReplayError(
                    f"trace {trajectory.trace_id}: the recorded agent config is not usable "
                    f"({where}: {first['msg']}); pass an agent config"
                ) from None
        if options.mode is not ReplayMode.LIVE_MODEL and (
            options.model is not None or options.policy_file is not None
        ):
            raise ConfigError(
                "a model or an offline policy file only applies to mode live-model "
                f"(mode {options.mode.value} serves the recorded model answers)"
            )
        if options.model is not None:
            provider, _, name = options.model.partition(":")
            if not provider or not name:
                raise ConfigError(f"--model must look like 'provider:model', got {options.model!r}")
            config.model = options.model
            config.offline_script = None  # the new model's own (bundled) script, if offline
        if options.policy_file is not None:
            config.offline_script = str(Path(options.policy_file).resolve())
        if options.prompt is not None:
            config.system_prompt = options.prompt
        return confine_config(config, self.settings)  # the files a client's config names

    # --- one replay --------------------------------------------------------------------------
    def replay(
        self,
        source: TrajectorySource,
        mode: ReplayMode | str = ReplayMode.RECORDED,
        *,
        replay_id: str | None = None,
        **options: Any,
    ) -> ReplayOutcome:
        """Synchronous :meth:`areplay`."""
        return asyncio.run(self.areplay(source, mode, replay_id=replay_id, **options))

    async def areplay(
        self,
        source: TrajectorySource,
        mode: ReplayMode | str = ReplayMode.RECORDED,
        *,
        replay_id: str | None = None,
        **options: Any,
    ) -> ReplayOutcome:
        """Replay one trajectory; the outcome carries the report (or why the replay failed).

        Raises ``RetraceError`` (``ReplayError``/``TrajectoryIncompleteError``/``ConfigError``)
        only for setup problems: an unknown trace, missing data, a bad option.
        """
        opts = ReplayOptions(mode=ReplayMode(mode), **options)
        started = time.perf_counter()
        trajectory = self.load(source)
        require_for_mode(trajectory, opts.mode, config_supplied=opts.config is not None)
        config = self._config(trajectory, opts)
        replay_id = replay_id or uuid.uuid4().hex
        outcome = ReplayOutcome(
            original_trace_id=trajectory.trace_id,
            mode=opts.mode,
            replay_id=replay_id,
            source=_source_label(source),
        )
        try:
            await self._run(trajectory, config, opts, outcome)
        except RetraceError as exc:
            outcome.error = exc.message
        outcome.duration_s = time.perf_counter() - started
        if self.client is not None and self.store_report:
            self._store(outcome, trajectory)
        return outcome

    async def _run(
        self,
        trajectory: Trajectory,
        config: AgentConfig,
        opts: ReplayOptions,
        outcome: ReplayOutcome,
    ) -> None:
        from runner.run import run_agent

        capture = CaptureExporter()
        recorded_model = RecordedModelProvider(trajectory, config=self.diff_config)
        unanswered: list[Unanswered] = []
        with tempfile.TemporaryDirectory(prefix="retrace-replay-") as tmp:
            workspace = Path(tmp) / "workspace"
            workspace.mkdir()
            if opts.mode is not ReplayMode.RECORDED:
                config = _with_workspace(config, workspace)
            async with self._providers(trajectory, config, opts, workspace) as (model, tools):
                try:
                    result = await run_agent(
                        trajectory.input,
                        config,
                        model=recorded_model if model is None else model,
                        tools=tools,
                        runtime=RecordedRuntime(trajectory),
                        endpoint=None,
                        replay_of=trajectory.trace_id,
                        replay_mode=opts.mode.value,
                        replay_id=outcome.replay_id,
                        project=self.project,
                        # A recording that ended waiting for a human pauses the same way
                        # (in a scratch dir); otherwise recorded decisions answer approvals.
                        data_dir=Path(tmp) / "paused" if _ends_pending(trajectory) else None,
                        approval_resolver=None
                        if _ends_pending(trajectory)
                        else _approval_resolver(trajectory, self.diff_config),
                        span_exporter=capture,
                    )
                    outcome.run_status = result.status.value
                except UnanswerableRequest as stop:
                    unanswered.append(stop.unanswered)
                    outcome.run_status = "incomplete"
                except Exception as exc:  # the replayed agent crashed: carried, not raised
                    message = exc.message if isinstance(exc, RetraceError) else str(exc)
                    outcome.error = f"the replayed run failed: {type(exc).__name__}: {message}"
                    outcome.run_status = "failed"
        spans = capture.spans
        detail = detail_from_spans(spans)
        replayed = trajectory_from_detail(detail)
        outcome.replay_trace_id = replayed.trace_id
        outcome.mismatches = list(recorded_model.mismatches)
        outcome.report = build_report(
            trajectory, replayed, opts.mode, unanswered=unanswered, config=self.diff_config
        )
        if self.endpoint and spans:
            _export(spans, self.endpoint, self.api_key)

    @contextlib.asynccontextmanager
    async def _providers(
        self,
        trajectory: Trajectory,
        config: AgentConfig,
        opts: ReplayOptions,
        workspace: Path,
    ) -> AsyncIterator[tuple[ModelProvider | None, ToolExecutor]]:
        removed = _recorded_servers(trajectory) - {s.name for s in config.mcp_servers}
        specs = [
            s
            for s in tool_specs_from_trajectory(trajectory)
            if not s.server or s.server not in removed
        ]
        if opts.mode is ReplayMode.RECORDED:
            yield (
                None,
                RecordedToolExecutor(
                    trajectory, tools=specs, on_unmatched="stop", config=self.diff_config
                ),
            )
            return
        factory = self.live_tools or self._default_live_tools()
        async with contextlib.AsyncExitStack() as stack:
            live: ToolExecutor | None = None
            if opts.mode is ReplayMode.LIVE_TOOLS:
                live = await stack.enter_async_context(factory(config, workspace))
                specs = await live.list_tools()
            elif opts.on_unmatched == "live":
                # started only if the new model asks something the recording cannot answer
                lazy = _LazyTools(factory, config, workspace)
                stack.push_async_callback(lazy.aclose)
                live = lazy
            model: ModelProvider | None = None
            if opts.mode is ReplayMode.LIVE_MODEL:
                from runner.providers import make_model

                model = make_model(config, self.settings)
            before = None
            if opts.mode is ReplayMode.LIVE_TOOLS:
                before = self._restorer(workspace)
            yield (
                model,
                RecordedToolExecutor(
                    trajectory,
                    tools=specs,
                    live=live,
                    on_unmatched=opts.on_unmatched,
                    always_live=opts.mode is ReplayMode.LIVE_TOOLS,
                    before_live=before,
                    config=self.diff_config,
                ),
            )

    def _default_live_tools(self) -> LiveToolsFactory:
        """The agent config's MCP servers, started the way ``retrace run`` starts them
        (``runner.commands.live_tools``), their spans sent where this replay's go (or nowhere)."""
        settings = self.settings.model_copy(
            update={"endpoint": self.endpoint or "", "api_key": self.settings.api_key}
        )
        client = self.client

        def factory(
            config: AgentConfig, workspace: Path
        ) -> AbstractAsyncContextManager[ToolExecutor]:
            from runner.commands import live_tools

            tools: AbstractAsyncContextManager[ToolExecutor] = live_tools(
                config, settings, workspace, client
            )
            return tools

        return factory

    def _restorer(self, workspace: Path) -> Callable[[Step | None], Any]:
        """Restore the workspace to a recorded step's ``snapshot_before`` (blobs from the
        collector when it has them)."""
        cas = self.cas_dir
        client = self.client
        fetch = client.get_payload if client is not None else None
        snapshots: list[Any] = []

        async def restore(step: Step | None) -> None:
            if step is None or not step.snapshot_before:
                return
            if not snapshots:
                from runner.sandbox import WorkspaceSnapshots

                snapshots.append(WorkspaceSnapshots(cas))
            await asyncio.to_thread(
                snapshots[0].restore, step.snapshot_before, workspace, fetch=fetch
            )

        return restore

    def _store(self, outcome: ReplayOutcome, trajectory: Trajectory) -> None:
        assert self.client is not None
        from runner.tracing import code_version

        created = _now()
        with contextlib.suppress(RetraceError):
            created = self.client.get_replay(outcome.replay_id).created_at
        report = outcome.report
        first = report.first_divergence if report is not None else None
        step = -1
        if first is not None:
            index = (
                first.recorded_index if first.recorded_index is not None else first.replayed_index
            )
            step = -1 if index is None else index
        record = ReplayRecord(
            replay_id=outcome.replay_id,
            original_trace_id=trajectory.trace_id,
            replay_trace_id=outcome.replay_trace_id,
            mode=outcome.mode,
            status="failed" if outcome.error else "completed",
            code_version=code_version(),
            created_at=created,
            updated_at=_now(),
            diverged=outcome.diverged,
            first_divergence_step=step,
            first_divergence_kind=first.kind.value if first is not None else "",
            report=report,
            error=outcome.error,
        )
        self.client.save_replay(record)

    # --- many --------------------------------------------------------------------------------
    def replay_many(
        self,
        sources: Sequence[TrajectorySource],
        mode: ReplayMode | str = ReplayMode.RECORDED,
        *,
        workers: int = 1,
        on_done: Callable[[ReplayOutcome], None] | None = None,
        **options: Any,
    ) -> list[ReplayOutcome]:
        """Replay many trajectories (``workers`` processes); outcomes in input order.

        Each failure is carried by its outcome (``error``), never raised: one bad trajectory
        does not stop the suite.
        """
        settings = _WorkerSettings(
            endpoint=self.endpoint,
            api_key=self.api_key,
            project=self.project,
            diff_config=self.diff_config,
            store_report=self.store_report,
            mode=ReplayMode(mode).value,
            options=options,
            settings=self.settings,
        )
        outcomes: list[ReplayOutcome | None] = [None] * len(sources)
        if workers <= 1 or len(sources) <= 1:
            for i, source in enumerate(sources):
                outcomes[i] = _replay_one(self, source, settings)
                if on_done is not None:
                    on_done(outcomes[i])  # type: ignore[arg-type]
            return [o for o in outcomes if o is not None]
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_replay_in_worker, _picklable(source), settings): i
                for i, source in enumerate(sources)
            }
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[futures[future]] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [o for o in outcomes if o is not None]


@dataclass(frozen=True)
class _WorkerSettings:
    endpoint: str | None
    api_key: str | None
    project: str
    diff_config: DiffConfig
    store_report: bool
    mode: str
    options: dict[str, Any]
    settings: Settings


_WORKER_REPLAYER: Replayer | None = None


def _picklable(source: TrajectorySource) -> TrajectorySource:
    return source if not isinstance(source, Trajectory) else source.model_copy()


def _replay_one(replayer: Replayer, source: TrajectorySource, s: _WorkerSettings) -> ReplayOutcome:
    try:
        return replayer.replay(source, s.mode, **s.options)
    except RetraceError as exc:
        label = _source_label(source)
        return ReplayOutcome(
            original_trace_id=source.trace_id if isinstance(source, Trajectory) else "",
            mode=ReplayMode(s.mode),
            error=exc.message,
            source=label,
        )


def _replay_in_worker(source: TrajectorySource, s: _WorkerSettings) -> ReplayOutcome:
    global _WORKER_REPLAYER
    if _WORKER_REPLAYER is None:
        _WORKER_REPLAYER = Replayer(
            endpoint=s.endpoint,
            api_key=s.api_key,
            project=s.project,
            diff_config=s.diff_config,
            store_report=s.store_report,
            settings=s.settings,
        )
    return _replay_one(_WORKER_REPLAYER, source, s)


# --- helpers ------------------------------------------------------------------------------------


class _LazyTools:
    """A live ``ToolExecutor`` started on first use (live-model rarely needs it).

    MCP clients must be entered and exited in one task, and the first use happens inside a graph
    node's task: so an owner task of its own enters the executor, keeps it open, and exits it
    when :meth:`aclose` is called.
    """

    def __init__(self, factory: LiveToolsFactory, config: AgentConfig, workspace: Path) -> None:
        self._factory = factory
        self._config = config
        self._workspace = workspace
        self._started: asyncio.Future[ToolExecutor] | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _own(self) -> None:
        assert self._started is not None
        try:
            async with self._factory(self._config, self._workspace) as tools:
                self._started.set_result(tools)
                await self._stop.wait()
        except Exception as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                raise

    async def _get(self) -> ToolExecutor:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._owner = asyncio.create_task(self._own())
        return await asyncio.shield(self._started)

    async def aclose(self) -> None:
        self._stop.set()
        if self._owner is not None:
            await self._owner

    async def list_tools(self) -> list[ToolSpec]:
        return await (await self._get()).list_tools()

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        tools = await self._get()
        return await tools.call(name, arguments, step_index=step_index, call_id=call_id)


def _ends_pending(trajectory: Trajectory) -> bool:
    """The run ended waiting for an approval, and no approval in it was decided."""
    decided = any(
        s.approval and s.approval.get("status") not in (None, "", "pending")
        for s in trajectory.steps
    )
    return trajectory.run_status == "pending_approval" and not decided


def _approval_resolver(
    trajectory: Trajectory, config: DiffConfig
) -> Callable[[dict[str, Any]], Any]:
    """Answer an approval request with the decision recorded for the same tool and arguments."""
    recorded = [
        s for s in trajectory.steps if s.kind == "tool" and s.approval and s.approval.get("status")
    ]
    used: set[int] = set()

    async def resolve(request: dict[str, Any]) -> dict[str, Any]:
        tool = str(request.get("tool", ""))
        args = normalize(request.get("arguments") or {}, config)
        for i, step in enumerate(recorded):
            if (
                i not in used
                and step.tool_name == tool
                and normalize(step.arguments, config) == args
            ):
                used.add(i)
                approval = dict(step.approval or {})
                approval.setdefault("comment", "")
                return approval
        raise UnanswerableRequest(
            Unanswered(
                replayed_index=-1,
                step_kind="tool",
                summary=(
                    f"approval requested for {tool}({json.dumps(request.get('arguments') or {})}) "
                    "but the recording has no decision for that call"
                ),
            )
        )

    return resolve


def _with_workspace(config: AgentConfig, workspace: Path) -> AgentConfig:
    """The config pointed at the replay's own workspace (never the original run's)."""
    from runner.mcp_bridge import is_sandbox_server

    config = config.model_copy(deep=True)
    config.workspace = str(workspace)
    for server in config.mcp_servers:
        if is_sandbox_server(server):
            args = list(server.args)
            for i, arg in enumerate(args):
                if arg == "--workspace" and i + 1 < len(args):
                    args[i + 1] = str(workspace)
                elif arg.startswith("--workspace="):
                    args[i] = f"--workspace={workspace}"
            server.args = args
    return config


def _export(spans: Iterable[Any], endpoint: str, api_key: str | None) -> None:
    """Send the replay's spans to the collector in one OTLP/HTTP request."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", headers=headers)
    try:
        exporter.export(list(spans))
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
