"""``retrace replay``, ``export``, ``ci`` and ``diff``: thin shells around the Replayer (and, for
``diff``, the same report builder comparing two recorded runs).

Exit codes: 0 no divergence, 1 divergence, 2 usage or input error (unknown trace, missing data,
bad option — ``RetraceError``s are turned into one line and their exit code by ``retrace.cli``).
Each command reads ``Settings`` once (flags override ``RETRACE_*``) and wires its Replayer from
them (``Replayer.from_settings``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from replay._diff import DEFAULT_CONFIG, DiffConfig
from replay._excerpt import Excerpt, change_excerpts, change_note
from replay._loading import TrajectorySource
from replay._replayer import Replayer, ReplayOutcome
from replay._report import diff_trajectories
from replay._suite import describe, junit_xml, markdown_summary, outcome_name
from replay._trajectory import dump_trajectory, load_trajectory, trajectory_from_detail
from schemas.errors import InvalidInputError, NotFoundError, RetraceError
from schemas.ids import check_id
from schemas.models import (
    DivergenceReport,
    ReplayMode,
    ReplayRecord,
    TraceDiff,
    TraceQuery,
    Trajectory,
)
from schemas.settings import Settings

if TYPE_CHECKING:
    from collector.client import CollectorClient

_MODES = click.Choice([m.value for m in ReplayMode])


def render_text(report: DivergenceReport) -> str:
    """The report as plain text (pytest failures, logs)."""
    return describe(report)


def _changed_text(excerpt: Excerpt, style: str) -> Text:
    """One side of a change: the changed part stands out from the context around it."""
    changed = (excerpt.changed, f"bold underline {style}")
    return Text.assemble((excerpt.before, style), changed, (excerpt.after, style))


def _verdict(report: DivergenceReport) -> Text:
    if report.diverged:
        return Text("DIVERGED", style="bold red")
    return Text("no divergence", style="bold green")


def render_rich(outcome: ReplayOutcome) -> Panel:
    """The report as a rich panel: verdict, metrics, first divergence with its diff, the rest."""
    report = outcome.report
    assert report is not None
    mode = report.mode.value if report.mode is not None else "–"
    head = Text.assemble(f"replay of {report.original_trace_id} in mode {mode}: ", _verdict(report))
    return _report_panel(
        report,
        head,
        [("replay trace", outcome.replay_trace_id or "–")],
        title="retrace replay",
        sides=("recorded", "replayed"),
    )


def render_diff(result: TraceDiff) -> Panel:
    """A diff of two traces as a rich panel, in the shape of a replay's."""
    head = Text.assemble(f"trace A {result.a} vs trace B {result.b}: ", _verdict(result.report))
    return _report_panel(result.report, head, [], title="retrace diff", sides=("A", "B"))


def _report_panel(
    report: DivergenceReport,
    head: Text,
    rows: list[tuple[str, str]],
    *,
    title: str,
    sides: tuple[str, str],
) -> Panel:
    m = report.metrics
    first_side, second_side = sides
    metrics = Table.grid(padding=(0, 2))
    for name, value in rows:
        metrics.add_row(name, value)
    if report.from_step is not None:
        metrics.add_row("from step", f"{report.from_step} (earlier steps served, not compared)")
    other = "replayed" if report.mode is not None else "in B"
    metrics.add_row(
        "steps matched", f"{m.steps_matched}/{m.steps_recorded} ({m.steps_replayed} {other})"
    )
    metrics.add_row("tokens Δ", f"in {m.input_tokens_delta:+d}, out {m.output_tokens_delta:+d}")
    metrics.add_row("latency Δ", f"{m.latency_delta_ms:+.1f} ms")
    metrics.add_row("final answer", "changed" if m.final_answer_changed else "unchanged")
    parts: list[Any] = [head, metrics]
    if report.nondeterministic:
        parts.append(
            Text(
                f"non-deterministic: {report.nondeterminism} (a second replay of the same code "
                "differed: unpinned randomness, ids, clock or threads, not a code change)",
                style="bold magenta",
            )
        )
    first = report.first_divergence
    if first is not None:
        parts.append(Text(f"\nfirst divergence [{first.kind.value}]", style="bold yellow"))
        parts.append(Text(first.summary))
        if first.diff:
            diff = Table(header_style="bold")
            diff.add_column("op", no_wrap=True)
            diff.add_column("path", overflow="fold")
            diff.add_column(first_side)
            diff.add_column(second_side)
            diff.add_column("change")
            for entry in first.diff[:30]:
                before, after = change_excerpts(entry.recorded, entry.replayed)
                diff.add_row(
                    entry.op,
                    entry.path,
                    _changed_text(before, "red"),
                    _changed_text(after, "green"),
                    change_note(entry.recorded, entry.replayed),
                )
            parts.append(diff)
    if m.final_answer_changed:
        before, after = change_excerpts(m.recorded_answer, m.replayed_answer, width=200)
        parts.append(Text.assemble(f"\n{first_side} answer: ", _changed_text(before, "red")))
        parts.append(Text.assemble(f"{second_side} answer: ", _changed_text(after, "green")))
    if len(report.divergences) > 1:
        parts.append(Text(f"\n{len(report.divergences) - 1} more divergence(s):", style="bold"))
        for d in report.divergences[1:11]:
            parts.append(Text(f"  [{d.kind.value}] {d.summary}"))
    return Panel(Group(*parts), title=title, expand=False)


def _settings(endpoint: str | None, api_key: str | None) -> Settings:
    """The one Settings object: ``RETRACE_*`` variables under the endpoint and API key flags."""
    flags: dict[str, Any] = {"endpoint": endpoint, "api_key": api_key}
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def _key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def _diff_config(ignore: Path | None) -> DiffConfig:
    return DiffConfig.load(ignore) if ignore is not None else DEFAULT_CONFIG


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror}") from None


def _fail_record(
    replayer: Replayer,
    replay_id: str,
    trace_id: str,
    mode: str,
    error: str,
    from_step: int | None = None,
) -> None:
    """Mark a collector-launched replay as failed so the UI does not show it running forever."""
    if replayer.client is None:
        return
    from datetime import UTC, datetime

    now = datetime.now(tz=UTC)
    created = now
    with contextlib.suppress(RetraceError):  # not pre-created: this record is the first
        created = replayer.client.get_replay(replay_id).created_at
    try:
        replayer.client.save_replay(
            ReplayRecord(
                replay_id=replay_id,
                original_trace_id=trace_id,
                mode=ReplayMode(mode),
                status="failed",
                created_at=created,
                updated_at=now,
                error=error,
                from_step=from_step,
            )
        )
    except RetraceError as exc:
        click.echo(
            f"warning: could not record the failed replay {replay_id}: {exc.message}", err=True
        )


@click.command()
@click.argument("trace_id")
@click.option("--mode", type=_MODES, default=ReplayMode.RECORDED.value, show_default=True)
@click.option("--endpoint", default=None, help="Collector URL (default: RETRACE_ENDPOINT).")
@click.option("--api-key", default=None, help="Collector API key (default: RETRACE_API_KEY).")
@click.option("--model", default=None, help="live-model: provider:model to run instead.")
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="live-model: an offline model script to run instead.",
)
@click.option(
    "--policy-file",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    hidden=True,
    help="Deprecated name of --script.",
)
@click.option(
    "--policy",
    "policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    hidden=True,
    help="Deprecated name of --script.",
)
@click.option(
    "--prompt-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A system prompt to use instead of the recorded one.",
)
@click.option(
    "--agent",
    "agent_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An agent config YAML to use instead of the recorded config.",
)
@click.option(
    "--on-unmatched",
    type=click.Choice(["live", "stop"]),
    default="live",
    show_default=True,
    help="live-model: a tool call with no recorded counterpart is executed live, or stops.",
)
@click.option(
    "--ignore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON ignore rules for the diff (ignore_paths, ignore_keys, mask...).",
)
@click.option(
    "--graph",
    "graph",
    default=None,
    metavar="MODULE:ATTR",
    help="Re-drive your own LangGraph graph (importable from the current directory: a compiled "
    "graph, an instrument()ed one or a zero-argument factory); default: the graph the trace "
    "recorded (instrument(graph_ref=...)).",
)
@click.option(
    "--from-step",
    type=int,
    default=None,
    metavar="K",
    help="Serve steps before K from the recording (model and tools) and run from step K on "
    "as the mode says, with the change applied; the report compares from step K on.",
)
@click.option(
    "--backend",
    type=click.Choice(["gvisor", "bwrap", "process"]),
    default=None,
    help="Sandbox backend for tools run live (default: the one the run recorded).",
)
@click.option("--replay-id", default=None, help="Record the report under this replay id.")
@click.option(
    "--confine-to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Treat the agent config as someone else's: read offline scripts and policies only from "
    "the bundled ones and under this directory, start only the bundled MCP servers, never the "
    "'process' backend (what the collector passes for replays a client asks for).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(
    trace_id: str,
    mode: str,
    endpoint: str | None,
    api_key: str | None,
    model: str | None,
    script: Path | None,
    policy_file: Path | None,
    policy: Path | None,
    prompt_file: Path | None,
    agent_file: Path | None,
    on_unmatched: str,
    ignore: Path | None,
    graph: str | None,
    from_step: int | None,
    backend: str | None,
    replay_id: str | None,
    confine_to: Path | None,
    as_json: bool,
) -> None:
    """Replay TRACE_ID (or a golden trajectory file) and report where the run diverges."""
    for flag, old in (("--policy-file", policy_file), ("--policy", policy)):
        if old is not None:
            # "policy" is the tool policy everywhere else; this file is the offline model's script
            click.echo(f"warning: {flag} is deprecated; use --script {old}", err=True)
            script = script or old
    is_file = Path(trace_id).is_file()
    settings = _settings(endpoint, api_key)
    if confine_to is not None:
        settings = settings.model_copy(update={"confine_to": confine_to.resolve()})
    # A golden file is self-contained: only talk to a collector when one is named explicitly.
    replayer = Replayer.from_settings(
        settings,
        connect=not is_file or endpoint is not None,
        diff_config=_diff_config(ignore),
    )
    options: dict[str, Any] = {"on_unmatched": on_unmatched}
    if graph is not None:
        options["graph"] = graph
    if from_step is not None:
        options["from_step"] = from_step
    if backend is not None:
        options["backend"] = backend
    if model is not None:
        options["model"] = model
    if script is not None:
        options["script"] = str(script)
    prompt = _read(prompt_file, "prompt file")
    if prompt is not None:
        options["prompt"] = prompt
    if agent_file is not None:
        from runner.config import load_config

        options["config"] = load_config(agent_file)
    try:
        outcome = replayer.replay(trace_id, mode, replay_id=replay_id, **options)
    except RetraceError as exc:
        if replay_id:
            _fail_record(replayer, replay_id, trace_id, mode, exc.message, from_step)
        raise
    if as_json:
        body = {
            "replay_id": outcome.replay_id,
            "original_trace_id": outcome.original_trace_id,
            "replay_trace_id": outcome.replay_trace_id,
            "run_status": outcome.run_status,
            "from_step": outcome.from_step,
            "error": outcome.error,
            "report": outcome.report.model_dump(mode="json") if outcome.report else None,
        }
        click.echo(json.dumps(body, indent=2, sort_keys=True))
    elif outcome.report is not None:
        Console().print(render_rich(outcome))
    if outcome.report is not None and outcome.report.nondeterministic:
        click.echo(
            "note: the divergence comes from non-determinism in the graph, not (only) a code "
            f"change: {outcome.report.nondeterminism}",
            err=True,
        )
    if outcome.error:
        click.echo(f"error: the replay could not run: {outcome.error}", err=True)
        sys.exit(2)
    sys.exit(1 if outcome.diverged else 0)


@click.command()
@click.argument("trace_ids", nargs=-1, required=True)
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write golden trajectories into (one <trace_id>.json each).",
)
@click.option("--endpoint", default=None, help="Collector URL (default: RETRACE_ENDPOINT).")
@click.option("--api-key", default=None, help="Collector API key (default: RETRACE_API_KEY).")
def export(
    trace_ids: Sequence[str], directory: Path, endpoint: str | None, api_key: str | None
) -> None:
    """Write the trajectories of TRACE_IDS as golden files to commit and replay in CI."""
    from collector.client import CollectorClient

    settings = _settings(endpoint, api_key)
    directory.mkdir(parents=True, exist_ok=True)
    with CollectorClient(settings.endpoint, api_key=_key(settings)) as client:
        for trace_id in trace_ids:
            path, steps = write_golden(client, trace_id, directory, settings.endpoint)
            click.echo(f"{path}  ({steps} steps)")


def write_golden(
    client: CollectorClient, trace_id: str, directory: Path, endpoint: str
) -> tuple[Path, int]:
    """Write a trace's trajectory as the golden file ``<directory>/<trace_id>.json``; its path
    and number of steps."""
    try:
        detail = client.get_trace(trace_id)
    except NotFoundError:
        raise InvalidInputError(f"unknown trace {trace_id!r} at {endpoint}") from None
    trajectory = trajectory_from_detail(detail)
    path = directory / f"{trajectory.trace_id}.json"
    path.write_text(dump_trajectory(trajectory), encoding="utf-8")
    return path, len(trajectory.steps)


def _suite_sources(target: str, endpoint: str | None, key: str | None) -> list[TrajectorySource]:
    """Golden files under a directory (or one file), else trace ids matching a query such as
    ``agent=demo&tool=query&limit=20`` on the collector."""
    path = Path(target)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise InvalidInputError(f"no golden trajectories (*.json) under {path}")
        return list(files)
    if path.is_file():
        return [path]
    if "=" not in target:
        raise InvalidInputError(
            f"{target!r} is neither a directory of golden trajectories nor a trace query "
            "(like 'agent=demo&limit=20')"
        )
    if not endpoint:
        raise InvalidInputError("a trace query needs --endpoint")
    from collector.client import CollectorClient

    filters: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for name, value in parse_qsl(target, keep_blank_values=False):
        if name == "attr":
            k, _, v = value.partition("=")
            attributes[k] = v
        else:
            filters[name] = value
    try:
        query = TraceQuery(attributes=attributes, include_replays=False, **filters)
    except ValueError as exc:
        raise InvalidInputError(f"bad trace query {target!r}: {exc}") from None
    with CollectorClient(endpoint, api_key=key) as client:
        page = client.list_traces(query)
    if not page.traces:
        raise InvalidInputError(f"no traces match {target!r}")
    return [t.trace_id for t in page.traces]


def _named_suite_sources(name: str, endpoint: str, key: str | None) -> list[TrajectorySource]:
    """The trace ids of a suite kept on the collector, in the order they were added."""
    from collector.client import CollectorClient

    check_id(name, "suite name")
    with CollectorClient(endpoint, api_key=key) as client:
        try:
            suite = client.get_suite(name)
        except NotFoundError:
            raise InvalidInputError(
                f"suite {name!r} has no traces at {endpoint} (`retrace suite list` shows the "
                f"suites; `retrace suite add {name} TRACE_ID` adds one)"
            ) from None
    return [t.trace_id for t in suite.traces]


@click.command()
@click.argument("target", metavar="[DIR_OR_QUERY]", required=False)
@click.option(
    "--suite",
    "suite_names",
    multiple=True,
    metavar="NAME",
    help="Replay the traces of a suite kept on the collector (needs --endpoint); repeatable, "
    "and may be combined with DIR_OR_QUERY.",
)
@click.option("--mode", type=_MODES, default=ReplayMode.RECORDED.value, show_default=True)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--endpoint",
    default=None,
    help="Collector URL: read traces for a query, and send replay traces and reports there.",
)
@click.option("--api-key", default=None)
@click.option(
    "--ignore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON ignore rules for the diff.",
)
@click.option(
    "--graph",
    "graph",
    default=None,
    metavar="MODULE:ATTR",
    help="Re-drive your own LangGraph graph for every trajectory (default: each one's recorded "
    "graph, else Retrace's runner).",
)
@click.option(
    "--agent",
    "agent_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Replay every run of Retrace's runner with this agent config YAML instead of the "
    "recorded one (the prompt, model script or policy under test).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ci(
    target: str | None,
    suite_names: Sequence[str],
    mode: str,
    junit: Path | None,
    markdown: Path | None,
    workers: int,
    endpoint: str | None,
    api_key: str | None,
    ignore: Path | None,
    graph: str | None,
    agent_file: Path | None,
    quiet: bool,
) -> None:
    """Replay a suite of golden trajectories (a directory, a trace query, or a suite kept on the
    collector with --suite); exit 1 if any diverges (or cannot run), 2 on bad input."""
    if target is None and not suite_names:
        raise InvalidInputError("give a directory of golden trajectories, a trace query or --suite")
    if suite_names and not endpoint:
        endpoint = os.environ.get("RETRACE_ENDPOINT") or None
        if not endpoint:
            raise InvalidInputError("--suite needs --endpoint (or RETRACE_ENDPOINT)")
    settings = _settings(endpoint, api_key)
    sources = _suite_sources(target, endpoint, _key(settings)) if target is not None else []
    for name in suite_names:
        assert endpoint is not None
        sources += _named_suite_sources(name, endpoint, _key(settings))
    # Golden files are self-contained: nothing is sent anywhere unless --endpoint is given.
    replayer = Replayer.from_settings(
        settings,
        connect=endpoint is not None,
        diff_config=_diff_config(ignore),
        store_report=endpoint is not None,
    )
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} diverged"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    failed = 0
    with progress:
        task = progress.add_task("replay", total=len(sources), failed=0)

        def done(outcome: ReplayOutcome) -> None:
            nonlocal failed
            failed += not outcome.ok
            progress.update(task, advance=1, failed=failed)

        options: dict[str, Any] = {"graph": graph} if graph is not None else {}
        if agent_file is not None:
            from runner.config import load_config

            options["config"] = load_config(agent_file)
        outcomes = replayer.replay_many(sources, mode, workers=workers, on_done=done, **options)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(outcomes), encoding="utf-8")
    title = "Retrace replay" + (f" (suite {', '.join(suite_names)})" if suite_names else "")
    summary = markdown_summary(outcomes, title=title)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(summary, encoding="utf-8")
    for outcome in outcomes:
        if not outcome.ok:
            label = outcome_name(outcome)
            if outcome.source and outcome.source != outcome.original_trace_id:
                label += f" ({outcome.source})"
            text = (
                f"error: {outcome.error}"
                if outcome.error
                else (describe(outcome.report) if outcome.report else "no report")
            )
            click.echo(f"✗ {label}\n{text}\n")
    passed = sum(o.ok for o in outcomes)
    click.echo(f"{passed}/{len(outcomes)} trajectories replayed without divergence")
    sys.exit(0 if passed == len(outcomes) else 1)


def _local_trajectory(ref: str, client: CollectorClient | None, endpoint: str) -> Trajectory:
    """A golden file, or a trace id read from the collector (``client``)."""
    path = Path(ref)
    if path.is_file():
        text = _read(path, "trajectory file")
        assert text is not None
        return load_trajectory(text)
    check_id(ref, "trace id")
    assert client is not None  # the caller connects unless both are files
    try:
        return client.get_trajectory(ref)
    except NotFoundError:
        raise InvalidInputError(f"unknown trace {ref!r} at {endpoint}") from None


@click.command()
@click.argument("trace_a")
@click.argument("trace_b")
@click.option("--endpoint", default=None, help="Collector URL (default: RETRACE_ENDPOINT).")
@click.option("--api-key", default=None, help="Collector API key (default: RETRACE_API_KEY).")
@click.option(
    "--ignore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON ignore rules for the diff (ignore_paths, ignore_keys, mask...).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def diff(
    trace_a: str,
    trace_b: str,
    endpoint: str | None,
    api_key: str | None,
    ignore: Path | None,
    as_json: bool,
) -> None:
    """Compare two recorded runs step by step and report where B first departs from A.

    TRACE_A and TRACE_B are trace ids on the collector (or golden trajectory files), e.g. the
    run a user complained about and a good run of the same task. Exit 0 if they took the same
    steps with the same inputs and outputs, 1 if they differ, 2 for bad input (an unknown or
    malformed trace id).
    """
    from collector.client import CollectorClient

    settings = _settings(endpoint, api_key)
    local = ignore is not None or Path(trace_a).is_file() or Path(trace_b).is_file()
    if local:
        # Ignore rules and golden files are the caller's: compare here with the same analysis.
        needs_collector = not (Path(trace_a).is_file() and Path(trace_b).is_file())
        with contextlib.ExitStack() as stack:
            client = (
                stack.enter_context(CollectorClient(settings.endpoint, api_key=_key(settings)))
                if needs_collector
                else None
            )
            first = _local_trajectory(trace_a, client, settings.endpoint)
            second = _local_trajectory(trace_b, client, settings.endpoint)
        result = TraceDiff(
            a=first.trace_id,
            b=second.trace_id,
            report=diff_trajectories(first, second, config=_diff_config(ignore)),
        )
    else:
        with CollectorClient(settings.endpoint, api_key=_key(settings)) as client:
            try:
                result = client.diff_traces(trace_a, trace_b)
            except NotFoundError as exc:
                raise InvalidInputError(f"{exc.message} at {settings.endpoint}") from None
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        Console().print(render_diff(result))
    sys.exit(1 if result.report.diverged else 0)
