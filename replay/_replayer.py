"""The replay runner: re-drive the real agent (``runner.run_agent``) behind recorded seams.

Like temporalio's ``Replayer``: :meth:`Replayer.replay` returns a :class:`ReplayOutcome` carrying
the divergence report — or the failure — instead of crashing, and :meth:`Replayer.replay_many`
replays a suite in parallel (what ``retrace ci`` runs). A request the recording cannot answer
ends the run and becomes an ``UNANSWERABLE`` divergence. Setting a replay up with what the
recording lacks raises ``TrajectoryIncompleteError`` naming it.

Its collaborators are passed in, never built from the environment: the trajectory loader, the
live tools and live model factories (live-tools / live-model), the collector client the
replay's report goes to. :meth:`Replayer.from_settings` is the wiring the CLI and the pytest
plugin use, from the ``Settings`` they read once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
import warnings
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
from replay._loading import (
    DefaultTrajectoryLoader,
    TrajectoryLoader,
    TrajectorySource,
    source_label,
)
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
from replay._trajectory import require_for_mode, trajectory_from_detail
from runner.seams import ModelProvider, ToolExecutor, ToolResult, ToolSpec
from schemas.errors import (
    ConfigError,
    InvalidInputError,
    ReplayError,
    RetraceError,
    TrajectoryIncompleteError,
)
from schemas.models import DivergenceReport, ReplayMode, ReplayRecord, Step, Trajectory
from schemas.settings import DEFAULT_PROJECT, Settings

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, BaseMessage

    from collector.client import CollectorClient
    from runner.config import AgentConfig

LiveToolsFactory = Callable[["AgentConfig", Path], AbstractAsyncContextManager[ToolExecutor]]
"""``(config, workspace) -> async context manager of a ToolExecutor``: tools run live."""
LiveModelFactory = Callable[["AgentConfig"], ModelProvider]
"""``config -> ModelProvider``: the model a live-model replay runs (``config.model``)."""


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
    task: str = ""  # the run's input (its task), to name it in suite reports
    duration_s: float = 0.0
    mismatches: list[RequestMismatch] = field(default_factory=list)
    from_step: int | None = None

    @property
    def diverged(self) -> bool:
        return self.report.diverged if self.report is not None else False

    @property
    def ok(self) -> bool:
        """Replayed without divergence and without error."""
        return not self.error and self.report is not None and not self.report.diverged


@dataclass(frozen=True)
class ReplayOptions:
    """What to change for the replay. ``model``/``script`` are for live-model only."""

    mode: ReplayMode = ReplayMode.RECORDED
    config: AgentConfig | None = None  # to use instead of the recorded one
    model: str | None = None  # provider:model
    script: str | None = None  # the offline model's script file
    prompt: str | None = None  # system prompt
    on_unmatched: OnUnmatched = "live"
    # Steps before it are served from the recording (model and tools), live from it on; the
    # report's alignment starts there. None: the mode decides for every step.
    from_step: int | None = None
    graph: str | None = None  # "module:attr" of a user's graph to re-drive (else the runner)
    backend: str | None = None  # sandbox backend for live tools (else the recorded one)


def _renamed(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``policy_file`` (the offline script's first name) as ``script``."""
    if "policy_file" not in options:
        return options
    warnings.warn(
        "the replay option 'policy_file' is deprecated; use 'script'",
        DeprecationWarning,
        stacklevel=3,  # the caller of replay() / areplay()
    )
    options = dict(options)
    script = options.pop("policy_file")
    options.setdefault("script", script)
    return options


@dataclass(frozen=True)
class _Wiring:
    """How :meth:`Replayer.from_settings` built a Replayer: rebuilt in each worker process."""

    settings: Settings
    connect: bool
    diff_config: DiffConfig
    store_report: bool


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _recorded_servers(trajectory: Trajectory) -> set[str]:
    servers = trajectory.agent_config.get("mcp_servers") or []
    return {str(s.get("name")) for s in servers if isinstance(s, dict) and s.get("name")}


class Replayer:
    """Replays recorded trajectories through the real runner.

    ``client``: the collector the replay's trace and report go to (``api_key`` authenticates
    the trace's export) and workspace blobs come from; None sends nothing anywhere.
    ``loader``: source -> trajectory (default: ``DefaultTrajectoryLoader(client)``).
    ``live_tools``: the tools live-tools runs and live-model runs where the recording has no
    answer; without it live-tools is refused and live-model stops there.
    ``live_model``: builds live-model's model (default: offline models only; a model that
    needs credentials needs the factory ``from_settings`` passes).
    ``cas_dir``: the runner's local workspace blobs, looked at before the collector's.
    ``confine_to``: a replay the collector runs for an API client (``Settings.confine_to``): the
    files the recorded config names must lie under it (``runner.confinement``).
    """

    def __init__(
        self,
        *,
        client: CollectorClient | None = None,
        api_key: str | None = None,
        loader: TrajectoryLoader | None = None,
        live_tools: LiveToolsFactory | None = None,
        live_model: LiveModelFactory | None = None,
        project: str = DEFAULT_PROJECT,
        diff_config: DiffConfig = DEFAULT_CONFIG,
        cas_dir: Path | None = None,
        store_report: bool = True,
        confine_to: Path | None = None,
    ) -> None:
        self.client = client
        self.endpoint = client.endpoint if client is not None else None
        self.api_key = api_key
        self.loader: TrajectoryLoader = loader or DefaultTrajectoryLoader(client)
        self.live_tools = live_tools
        self.live_model = live_model
        self.project = project
        self.diff_config = diff_config
        self.cas_dir = cas_dir
        self.store_report = store_report
        self.confine_to = confine_to
        self._wiring: _Wiring | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        connect: bool = True,
        diff_config: DiffConfig = DEFAULT_CONFIG,
        store_report: bool = True,
    ) -> Replayer:
        """The Replayer the CLI and the pytest plugin use, wired from ``settings`` (read once
        by the caller): its project and API key, live tools and models built as ``retrace
        run`` builds them, workspace blobs from ``DATA_DIR/runner/cas``.

        ``connect``: read trace ids from ``settings.endpoint`` and send the replay's trace and
        report there; False keeps a golden-file replay self-contained (nothing is sent).
        """
        from collector.client import CollectorClient
        from runner.assembly import api_key_of, live_model_factory, live_tools_factory

        key = api_key_of(settings)
        connected = connect and bool(settings.endpoint)
        client = CollectorClient(settings.endpoint, api_key=key) if connected else None
        # The live MCP servers' own spans go where the replay's go, or nowhere.
        tools_settings = settings.model_copy(
            update={"endpoint": client.endpoint if client is not None else ""}
        )
        replayer = cls(
            client=client,
            api_key=key,
            live_tools=live_tools_factory(tools_settings, client),
            live_model=live_model_factory(settings),
            project=settings.project,
            diff_config=diff_config,
            cas_dir=Path(settings.data_dir) / "runner" / "cas",
            store_report=store_report,
            confine_to=settings.confine_to,
        )
        replayer._wiring = _Wiring(settings, connect, diff_config, store_report)
        return replayer

    # --- loading -----------------------------------------------------------------------------
    def load(self, source: TrajectorySource) -> Trajectory:
        """The trajectory of ``source``, from the loader."""
        return self.loader(source)

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
            options.model is not None or options.script is not None
        ):
            raise ConfigError(
                "a model or an offline model script only applies to mode live-model "
                f"(mode {options.mode.value} serves the recorded model answers)"
            )
        if options.model is not None:
            provider, _, name = options.model.partition(":")
            if not provider or not name:
                raise ConfigError(f"--model must look like 'provider:model', got {options.model!r}")
            config.model = options.model
            config.offline_script = None  # the new model's own (bundled) script, if offline
        if options.script is not None:
            config.offline_script = str(Path(options.script).resolve())
        if options.prompt is not None:
            config.system_prompt = options.prompt
        config = _with_backend(config, trajectory, options, confined=self.confine_to is not None)
        return confine_config(config, self.confine_to)  # the files a client's config names

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
        options = _renamed(options)
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
        opts = ReplayOptions(mode=ReplayMode(mode), **_renamed(options))
        started = time.perf_counter()
        trajectory = self.load(source)
        _check_from_step(trajectory, opts.from_step)
        replay_id = replay_id or uuid.uuid4().hex
        if opts.graph or (trajectory.graph_ref and opts.config is None):
            # a user's graph runs its own tools live: no Retrace tool servers needed
            return await self._replay_user_graph(trajectory, opts, source, replay_id, started)
        if opts.mode is ReplayMode.LIVE_TOOLS and self.live_tools is None:
            raise ConfigError(
                "a live-tools replay needs live tools: build the Replayer with "
                "Replayer.from_settings(settings) or pass live_tools="
            )
        _require_for_mode(trajectory, opts)
        config = self._config(trajectory, opts)
        outcome = ReplayOutcome(
            original_trace_id=trajectory.trace_id,
            mode=opts.mode,
            replay_id=replay_id,
            source=source_label(source),
            from_step=opts.from_step,
            task=trajectory.input,
        )
        try:
            await self._run(trajectory, config, opts, outcome)
        except RetraceError as exc:
            outcome.error = exc.message
        outcome.duration_s = time.perf_counter() - started
        if self.client is not None and self.store_report:
            self._store(outcome, trajectory)
        return outcome

    async def _replay_user_graph(
        self,
        trajectory: Trajectory,
        opts: ReplayOptions,
        source: TrajectorySource,
        replay_id: str,
        started: float,
    ) -> ReplayOutcome:
        """A user's own graph (``instrument(graph_ref=...)``): re-driven by replay/_graph.py."""
        from replay._graph import GraphReplay, replay_graph

        result = await replay_graph(
            trajectory,
            GraphReplay(
                mode=opts.mode,
                graph=opts.graph,
                from_step=opts.from_step,
                on_unmatched=opts.on_unmatched,
                model=opts.model,
                script=opts.script,
                replay_id=replay_id,
                project=self.project,
                diff_config=self.diff_config,
                live_model=self.live_model,
                confine_to=self.confine_to,
            ),
        )
        outcome = ReplayOutcome(
            original_trace_id=trajectory.trace_id,
            mode=opts.mode,
            report=result.report,
            replay_trace_id=result.replay_trace_id,
            replay_id=replay_id,
            run_status=result.run_status,
            error=result.error,
            source=source_label(source),
            task=trajectory.input,
            mismatches=result.mismatches,
            from_step=opts.from_step,
        )
        if self.endpoint and result.spans:
            _export(result.spans, self.endpoint, self.api_key)
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
            cas = self.cas_dir or Path(tmp) / "cas"  # none of our own: the collector's blobs
            async with self._providers(
                trajectory, config, opts, workspace, cas, recorded_model
            ) as (model, tools):
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
            trajectory,
            replayed,
            opts.mode,
            unanswered=unanswered,
            config=self.diff_config,
            from_step=opts.from_step,
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
        cas_dir: Path,
        recorded_model: ModelProvider,
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
        factory = self.live_tools or _no_live_tools
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
                model = (self.live_model or _offline_model)(config)
                if opts.from_step:  # the recording answers the LLM calls before the step
                    model = _FromStep(recorded_model, model, opts.from_step)
            yield (
                model,
                RecordedToolExecutor(
                    trajectory,
                    tools=specs,
                    live=live,
                    on_unmatched=opts.on_unmatched,
                    always_live=opts.mode is ReplayMode.LIVE_TOOLS,
                    live_from=opts.from_step or 0,
                    # live-tools: every live call; live-model: a live call after recorded
                    # answers changed the recorded workspace (the live one never saw them)
                    before_live=self._restorer(workspace, cas_dir),
                    config=self.diff_config,
                ),
            )

    def _restorer(self, workspace: Path, cas: Path) -> Callable[[Step | None], Any]:
        """Restore the workspace to a recorded step's ``snapshot_before`` (blobs from ``cas``,
        else from the collector)."""
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
            from_step=outcome.from_step,
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
        does not stop the suite. More than one worker needs a Replayer built by
        :meth:`from_settings` (each worker process wires its own from the same settings); a
        ``ConfigError`` otherwise.
        """
        job = _WorkerJob(mode=ReplayMode(mode).value, options=options, wiring=self._wiring)
        outcomes: list[ReplayOutcome | None] = [None] * len(sources)
        if workers <= 1 or len(sources) <= 1:
            for i, source in enumerate(sources):
                outcome = _replay_one(self, source, job)
                outcomes[i] = outcome
                if on_done is not None:
                    on_done(outcome)
            return [o for o in outcomes if o is not None]
        if self._wiring is None:
            raise ConfigError(
                "replaying with several workers needs a Replayer built by "
                "Replayer.from_settings (its collaborators are rebuilt in each worker process)"
            )
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_replay_in_worker, _picklable(source), job): i
                for i, source in enumerate(sources)
            }
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[futures[future]] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [o for o in outcomes if o is not None]


@dataclass(frozen=True)
class _WorkerJob:
    mode: str
    options: dict[str, Any]
    wiring: _Wiring | None


_WORKER_REPLAYER: Replayer | None = None


def _picklable(source: TrajectorySource) -> TrajectorySource:
    return source if not isinstance(source, Trajectory) else source.model_copy()


def _replay_one(replayer: Replayer, source: TrajectorySource, job: _WorkerJob) -> ReplayOutcome:
    try:
        return replayer.replay(source, job.mode, **job.options)
    except RetraceError as exc:
        return ReplayOutcome(
            original_trace_id=source.trace_id if isinstance(source, Trajectory) else "",
            mode=ReplayMode(job.mode),
            error=exc.message,
            source=source_label(source),
        )


def _replay_in_worker(source: TrajectorySource, job: _WorkerJob) -> ReplayOutcome:
    global _WORKER_REPLAYER
    if _WORKER_REPLAYER is None:
        wiring = job.wiring
        assert wiring is not None  # checked by replay_many
        _WORKER_REPLAYER = Replayer.from_settings(
            wiring.settings,
            connect=wiring.connect,
            diff_config=wiring.diff_config,
            store_report=wiring.store_report,
        )
    return _replay_one(_WORKER_REPLAYER, source, job)


# --- helpers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _no_live_tools(config: AgentConfig, workspace: Path) -> AsyncIterator[ToolExecutor]:
    """The live tools of a Replayer given none: asking for them is the error."""
    raise ConfigError(
        "the replay needs a tool the recording cannot answer, and this Replayer has no live "
        "tools (build it with Replayer.from_settings(settings) or pass live_tools=)"
    )
    yield  # pragma: no cover - an async generator, never reached


def _offline_model(config: AgentConfig) -> ModelProvider:
    """The live model of a Replayer given no factory: offline (scripted) models only."""
    from runner.providers import offline_model

    return offline_model(config)


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


def _require_for_mode(trajectory: Trajectory, opts: ReplayOptions) -> None:
    """``require_for_mode``, pointing at ``--graph`` when the trace has no agent config."""
    try:
        require_for_mode(trajectory, opts.mode, config_supplied=opts.config is not None)
    except TrajectoryIncompleteError as exc:
        if trajectory.agent_config or opts.config is not None:
            raise
        raise TrajectoryIncompleteError(
            f"{exc.message}; a trace of your own graph (instrument()) replays with "
            "--graph MODULE:ATTR"
        ) from None


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


SANDBOX_BACKENDS = ("gvisor", "bwrap", "process")


def _check_from_step(trajectory: Trajectory, from_step: int | None) -> None:
    """``from_step`` must name a recorded step (``InvalidInputError`` naming the range)."""
    if from_step is None:
        return
    count = len(trajectory.steps)
    if isinstance(from_step, bool) or not isinstance(from_step, int):
        raise InvalidInputError(f"--from-step must be a step number, got {from_step!r}")
    if not 0 <= from_step < count:
        valid = f"0..{count - 1}" if count else "none: the recording has no steps"
        raise InvalidInputError(
            f"--from-step {from_step} is out of range: trace {trajectory.trace_id} has "
            f"{count} step(s) (valid: {valid})"
        )


def recorded_backend(trajectory: Trajectory) -> str:
    """The sandbox backend the recorded run's tools ran in ("" when it recorded none): the
    backend on its ``execute_tool`` spans, else the recorded agent config's. ``process`` (no
    sandbox, an insecure run) is never taken over implicitly: such a replay runs in this
    machine's default sandbox unless ``--backend`` says otherwise."""
    backend: object = None
    for step in trajectory.steps:
        if step.kind == "tool" and step.sandbox_backend in SANDBOX_BACKENDS:
            backend = step.sandbox_backend
            break
    else:
        sandbox = trajectory.agent_config.get("sandbox")
        backend = sandbox.get("backend") if isinstance(sandbox, dict) else None
    if backend == "process" or backend not in SANDBOX_BACKENDS:
        return ""
    return str(backend)


def _with_backend(
    config: AgentConfig, trajectory: Trajectory, options: ReplayOptions, *, confined: bool
) -> AgentConfig:
    """The config with the sandbox backend live tools run in: ``options.backend``, else the
    recorded one. A confined replay (the collector's) keeps the collector's own backend unless
    one is asked for explicitly (``confine_tools`` then checks it)."""
    from runner.mcp_bridge import is_sandbox_server

    backend = options.backend
    if backend is not None and backend not in SANDBOX_BACKENDS:
        raise ConfigError(
            f"--backend must be one of {', '.join(SANDBOX_BACKENDS)}, got {backend!r}"
        )
    if backend is not None and options.mode is ReplayMode.RECORDED:
        raise ConfigError(
            "a sandbox backend only applies to modes that run tools live (live-tools, "
            "live-model); mode recorded serves the recorded tool results"
        )
    if options.mode is ReplayMode.RECORDED:
        return config  # no tool runs
    if backend is None and not confined:
        backend = recorded_backend(trajectory) or None
    if backend is None:
        return config
    config = config.model_copy(deep=True)
    config.sandbox.backend = backend  # type: ignore[assignment]  # checked above
    for server in config.mcp_servers:
        if is_sandbox_server(server):
            args = list(server.args)
            for i, arg in enumerate(args):
                if arg == "--backend" and i + 1 < len(args):
                    args[i + 1] = backend
                elif arg.startswith("--backend="):
                    args[i] = f"--backend={backend}"
            server.args = args
    return config


class _FromStep:
    """live-model from a step: the recording answers the LLM calls before it, the live model
    those from it on."""

    def __init__(self, recorded: ModelProvider, live: ModelProvider, from_step: int) -> None:
        self.name = getattr(live, "name", "live")
        self._recorded = recorded
        self._live = live
        self._from_step = from_step

    async def ainvoke(
        self,
        messages: list[BaseMessage],
        tools: list[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> AIMessage:
        model = self._recorded if step_index < self._from_step else self._live
        return await model.ainvoke(messages, tools, step_index=step_index, parameters=parameters)


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
