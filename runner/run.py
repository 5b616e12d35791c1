"""``run_agent``: one task through the agent graph, traced; ``resume_agent`` continues a paused one.

This is the entry the CLI and the replay engine share: callers choose what sits behind the seams
(live or recorded model, tools, runtime); the code path is the same.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from runner import journal
from runner.approvals import (
    ApprovalDesk,
    PausedRun,
    PausedRuns,
    effective_status,
    resume_value,
    utc,
)
from runner.config import AgentConfig
from runner.graph import AgentDeps, build_graph
from runner.guardrails import Guardrails
from runner.policy import Policy
from runner.runtime import RecordingRuntime
from runner.seams import ModelProvider, Runtime, ToolExecutor
from runner.tracing import (
    RunTracer,
    build_tracer_provider,
    session_attributes,
    shared_tracer_provider,
)
from schemas import attributes as A
from schemas.errors import ConflictError, InvalidInputError
from schemas.models import Approval, ApprovalStatus, RunStatus
from schemas.settings import DEFAULT_PROJECT

ApprovalResolver = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class RunResult:
    """How a run ended. ``steps`` counts LLM calls and tool attempts."""

    trace_id: str
    run_id: str
    status: RunStatus
    answer: str
    steps: int
    approval_id: str = ""
    error: str = ""
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def load_policy(config: AgentConfig) -> Policy:
    """The policy an agent config names (a file path or an inline mapping), else allow-all."""
    if config.policy is None:
        return Policy.allow_all()
    if isinstance(config.policy, dict):
        return Policy.from_dict(config.policy, source=f"agent {config.name} inline policy")
    return Policy.load(config.policy)


async def run_agent(
    task: str,
    config: AgentConfig,
    *,
    model: ModelProvider,
    tools: ToolExecutor,
    runtime: Runtime,
    endpoint: str | None = None,
    api_key: str | None = None,
    replay_of: str | None = None,
    replay_mode: str | None = None,
    run_id: str | None = None,
    replay_id: str | None = None,
    project: str = DEFAULT_PROJECT,
    policy: Policy | None = None,
    data_dir: Path | None = None,
    approvals: ApprovalDesk | None = None,
    approval_resolver: ApprovalResolver | None = None,
    span_exporter: SpanExporter | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run ``task`` to an answer (or a pause, a guardrail, a failure) and return how it ended.

    Spans go to ``span_exporter`` (synchronously) or to ``endpoint`` (OTLP/HTTP, batched in the
    background: call ``runner.tracing.flush_exports()`` before relying on them being stored;
    exit and crash paths flush on their own). With ``data_dir`` the graph
    checkpoints to disk so an approval pause can be resumed by another process
    (:func:`resume_agent`); ``approval_resolver`` answers approvals in-process instead (replay).
    ``project`` must be the project ``api_key`` acts for (``CollectorClient.whoami``): a paused
    run is kept under it and only that project can resume it.
    The root span is ended on every path, including exceptions. ``session_id``, ``user_id`` and
    ``metadata`` are recorded on the root span (``runner.tracing.session_attributes``).
    """
    if not task.strip():
        raise InvalidInputError("the task is empty")
    session = _Session(
        config,
        model=model,
        tools=tools,
        runtime=runtime,
        endpoint=endpoint,
        api_key=api_key,
        project=project,
        policy=policy,
        data_dir=data_dir,
        approvals=approvals,
        approval_resolver=approval_resolver,
        span_exporter=span_exporter,
    )
    if run_id:  # minted by the caller: recorded as if minted here, so a replay gets it back
        session.runtime.ids.append(run_id)
    else:
        run_id = session.runtime.new_id()
    extra: dict[str, Any] = dict(session_attributes(session_id, user_id, metadata))
    if replay_of:
        extra[A.RETRACE_REPLAY_OF] = replay_of
    if replay_mode:
        extra[A.RETRACE_REPLAY_MODE] = replay_mode
    if replay_id:
        extra[A.RETRACE_REPLAY_ID] = replay_id
    initial = {
        "messages": [SystemMessage(config.system_prompt), HumanMessage(task)],
        "step": 0,
        "turns": 0,
        "tokens": 0,
        "calls": [],
        "executed": [],
        "now": 0.0,
        "decisions": {},
        "status": "",
        "answer": "",
    }
    return await session.drive(task, run_id, initial, extra=extra)


async def resume_agent(
    run_id: str,
    *,
    data_dir: Path,
    model: ModelProvider,
    tools: ToolExecutor,
    runtime: Runtime,
    approvals: ApprovalDesk | None,
    endpoint: str | None = None,
    api_key: str | None = None,
    span_exporter: SpanExporter | None = None,
    config: AgentConfig | None = None,
    project: str = DEFAULT_PROJECT,
) -> RunResult:
    """Continue a paused run once its approval is decided (or expired, which rejects it).

    ``project`` is the project the caller acts for (its API key's): only that project's paused
    runs are found (``NotFoundError`` otherwise, the same as for an unknown run). Returns a
    ``pending_approval`` result without side effects when the approval is still open and within
    its deadline, and an ``InvalidInputError`` when the run is not paused.
    """
    runs = PausedRuns(data_dir, project)
    with runs.lock(run_id) as locked:
        record = runs.load(run_id)
        if not locked or record.state != "paused":
            raise InvalidInputError(
                f"run {run_id} is not paused (it is {record.state} or resuming)"
            )
        config = config or AgentConfig.model_validate(record.config)
        approval = approvals.get(record.approval.approval_id) if approvals else record.approval
        now = runtime.now()
        status = effective_status(approval, now)
        if status == ApprovalStatus.PENDING:
            return RunResult(
                record.trace_id,
                run_id,
                RunStatus.PENDING_APPROVAL,
                "",
                0,
                approval_id=approval.approval_id,
            )
        if status == ApprovalStatus.EXPIRED and approval.status != ApprovalStatus.EXPIRED:
            approval = approval.model_copy(
                update={
                    "status": ApprovalStatus.EXPIRED,
                    "decided_at": utc(now),
                    "decided_by": "timeout",
                    "comment": "approval expired",
                }
            )
            if approvals is not None:
                try:
                    approval = approvals.create(approval)
                except ConflictError:  # decided by someone just before the deadline passed
                    approval = approvals.get(approval.approval_id)
        record.state = "resumed"
        runs.save(record)
        session = _Session(
            config,
            model=model,
            tools=tools,
            runtime=runtime,
            endpoint=endpoint,
            api_key=api_key,
            project=record.project,
            policy=None,
            data_dir=data_dir,
            approvals=approvals,
            approval_resolver=None,
            span_exporter=span_exporter,
        )
        extra: dict[str, Any] = {}
        if record.replay_of:
            extra[A.RETRACE_REPLAY_OF] = record.replay_of
        result = await session.drive(
            record.task,
            run_id,
            Command(resume=resume_value(approval)),
            extra=extra,
            trace_id=record.trace_id,
            continues=(record.trace_id, record.root_span_id),
        )
        if result.status != RunStatus.PENDING_APPROVAL:
            record.state = "finished"
            runs.save(record)
        return result


class _Session:
    """One segment of a run: a tracer, a compiled graph and the loop around interrupts."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        model: ModelProvider,
        tools: ToolExecutor,
        runtime: Runtime,
        endpoint: str | None,
        api_key: str | None,
        project: str,
        policy: Policy | None,
        data_dir: Path | None,
        approvals: ApprovalDesk | None,
        approval_resolver: ApprovalResolver | None,
        span_exporter: SpanExporter | None,
    ) -> None:
        self.config = config
        self.model = model
        self.tools = tools
        self.runtime = RecordingRuntime(runtime)
        self.policy = policy if policy is not None else load_policy(config)
        self.data_dir = data_dir
        self.approvals = approvals
        self.approval_resolver = approval_resolver
        self.project = project
        self.provider: TracerProvider
        self.endpoint = endpoint
        self.api_key = api_key
        self.journaled = False
        if span_exporter is None and endpoint:
            # Exported in the background; flush_exports() / exit / crash paths flush it.
            self.provider = shared_tracer_provider(endpoint, api_key, project)
            self.flush_at_end = False
            if data_dir is not None:
                # Roots of runs a SIGKILL left open (once per process), then journal ours.
                journal.recover(data_dir, endpoint, api_key)
                self.journaled = True
        else:  # the caller's exporter (synchronous) or no export at all
            self.provider = build_tracer_provider(
                endpoint=None, project=project, exporter=span_exporter
            )
            self.flush_at_end = True

    async def drive(
        self,
        task: str,
        run_id: str,
        graph_input: Any,
        *,
        extra: dict[str, Any],
        trace_id: str | None = None,
        continues: tuple[str, str] | None = None,
    ) -> RunResult:
        config = self.config
        tracer = RunTracer(
            self.provider,
            agent_name=config.name,
            provider_name=config.provider,
            model_name=getattr(self.model, "name", config.model_name),
        )
        root_attrs = {
            A.RETRACE_RUN_ID: run_id,
            A.RETRACE_RUN_INPUT: task,
            A.RETRACE_AGENT_CONFIG: config.recorded_json(),
            A.RETRACE_SEED: config.seed,
            **extra,
        }
        placements = getattr(self.tools, "placements", None)
        if callable(placements):  # where each MCP server runs (McpToolExecutor)
            root_attrs[A.RETRACE_SANDBOX_SERVERS] = json.dumps(placements(), sort_keys=True)
        trace_id, root_span_id = tracer.start_root(
            root_attrs, trace_id=trace_id, continues=continues
        )
        if self.journaled and self.data_dir is not None and self.endpoint:
            tracer.start_journal(
                self.data_dir,
                run_id=run_id,
                endpoint=self.endpoint,
                project=self.project,
                api_key=self.api_key,
                continues=continues,
            )
        result = RunResult(trace_id, run_id, RunStatus.FAILED, "", 0)
        try:
            started = self.runtime.now()
            specs = await self.tools.list_tools()
            guardrails = Guardrails(config.guardrails, self.runtime, started)
            deps = AgentDeps(
                model=self.model,
                tools=self.tools,
                tool_specs=specs,
                tracer=tracer,
                guardrails=guardrails,
                runtime=self.runtime,
                policy=self.policy,
                parameters=dict(config.model_parameters),
                run_id=run_id,
            )
            thread_id = (
                PausedRuns(self.data_dir, self.project).thread_id(run_id)
                if self.data_dir
                else run_id
            )
            thread: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            async with self._checkpointer() as saver:
                graph = build_graph(deps).compile(checkpointer=saver)
                while True:
                    out = await graph.ainvoke(graph_input, thread, version="v2")
                    if not out.interrupts:
                        break
                    request = dict(out.interrupts[0].value)
                    if self.approval_resolver is not None:
                        # Where the recorded run paused and was resumed later (a replay), read
                        # what that pause and resume read, in order: the pause's clock and
                        # approval id, then the resumed segment's start, from which its time
                        # budget counts (the wait for a human is not counted, as live).
                        self.runtime.now()
                        self.runtime.new_id()
                        decision = await self.approval_resolver(request)
                        guardrails.started_at = self.runtime.now()
                        graph_input = Command(resume=decision)
                        continue
                    result = self._pause(
                        tracer,
                        task,
                        run_id,
                        request,
                        trace_id,
                        root_span_id,
                        dict(out.value),
                        extra,
                    )
                    return result
            state = out.value
            status = RunStatus(state.get("status") or RunStatus.COMPLETED.value)
            result = RunResult(
                trace_id,
                run_id,
                status,
                state.get("answer", ""),
                state.get("step", 0),
                tokens=state.get("tokens", 0),
            )
            tracer.finish_root(status, answer=result.answer, attributes=self._recorded(dict(state)))
            return result
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            tracer.finish_root(RunStatus.FAILED, error=exc, attributes=self._recorded({}))
            raise
        except BaseException:
            tracer.finish_root(RunStatus.INCOMPLETE, attributes=self._recorded({}))
            raise
        finally:
            if self.flush_at_end:
                tracer.flush()

    def _pause(
        self,
        tracer: RunTracer,
        task: str,
        run_id: str,
        request: dict[str, Any],
        trace_id: str,
        root_span_id: str,
        state: dict[str, Any],
        extra: dict[str, Any],
    ) -> RunResult:
        if self.data_dir is None:
            raise InvalidInputError(
                f"tool {request.get('tool')!r} requires approval, but the run has no data dir "
                "to pause in (pass data_dir or an approval_resolver)"
            )
        now = self.runtime.now()
        approval = Approval(
            approval_id=self.runtime.new_id(),
            run_id=run_id,
            trace_id=trace_id,
            span_id=root_span_id,
            tool_name=str(request.get("tool", "")),
            arguments=dict(request.get("arguments") or {}),
            reason=str(request.get("reason", "")),
            rule=str(request.get("rule", "")),
            requested_at=utc(now),
            expires_at=utc(now + self.config.guardrails.approval_timeout_s),
        )
        if self.approvals is not None:
            approval = self.approvals.create(approval)
        PausedRuns(self.data_dir, self.project).save(
            PausedRun(
                run_id=run_id,
                trace_id=trace_id,
                root_span_id=root_span_id,
                task=task,
                config=json.loads(self.config.recorded_json()),
                approval=approval,
                project=self.project,
                replay_of=str(extra.get(A.RETRACE_REPLAY_OF, "")),
                replay_mode=str(extra.get(A.RETRACE_REPLAY_MODE, "")),
            )
        )
        tracer.root_event(
            A.EVENT_APPROVAL,
            {
                A.RETRACE_APPROVAL_ID: approval.approval_id,
                A.RETRACE_APPROVAL_STATUS: ApprovalStatus.PENDING.value,
                A.GEN_AI_TOOL_NAME: approval.tool_name,
                A.RETRACE_POLICY_RULE: approval.rule,
            },
        )
        answer = f"Waiting for approval {approval.approval_id} to call {approval.tool_name}."
        tracer.finish_root(
            RunStatus.PENDING_APPROVAL,
            answer=answer,
            attributes=self._recorded(state) | {A.RETRACE_APPROVAL_ID: approval.approval_id},
        )
        return RunResult(
            trace_id,
            run_id,
            RunStatus.PENDING_APPROVAL,
            answer,
            int(state.get("step", 0)),
            approval_id=approval.approval_id,
        )

    def _recorded(self, state: dict[str, Any]) -> dict[str, Any]:
        rt = self.runtime
        return {
            A.RETRACE_CLOCK_VALUES: json.dumps(rt.clock_values),
            A.RETRACE_RANDOM_VALUES: json.dumps(rt.random_values),
            A.RETRACE_IDS: json.dumps(rt.ids),
        }

    @contextlib.asynccontextmanager
    async def _checkpointer(self) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        if self.data_dir is None:
            yield InMemorySaver()
            return
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = PausedRuns(self.data_dir, self.project).checkpoints_path
        path.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver
