"""``retrace doctor``: which sandbox backends work here, and why the others do not; with
``--agent``, whether each MCP server of that config starts in its sandbox."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import click

from runner.sandbox._probe import probe_backends
from schemas.settings import Settings


@click.command("doctor")
@click.option("--runsc-path", default=None, help="runsc binary (default: settings).")
@click.option(
    "--insecure", is_flag=True, default=None, help="Also try the 'process' backend (no isolation)."
)
@click.option(
    "--agent",
    "agent_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also start each MCP server of this agent config the way a run does; check that it "
    "starts sandboxed.",
)
def doctor(runsc_path: str | None, insecure: bool | None, agent_path: Path | None) -> None:
    """Check the sandbox backends: one line each; exit 0 when the default backend works (and,
    with --agent, every server of the config starts sandboxed)."""
    settings = Settings()
    if runsc_path:
        settings = settings.model_copy(update={"runsc_path": runsc_path})
    statuses = probe_backends(
        runsc_path=runsc_path or settings.runsc_path,
        insecure=settings.insecure if insecure is None else insecure,
    )
    default = settings.sandbox_backend
    for status in statuses:
        mark = " (default)" if status.name == default else ""
        if status.available:
            timing = f", {status.cold_start_s:.2f} s cold" if status.cold_start_s else ""
            click.echo(f"{status.name:<8} ok           {status.detail}{timing}{mark}")
        else:
            click.echo(f"{status.name:<8} unavailable: {status.detail}{mark}")
    ok = any(s.name == default and s.available for s in statuses)
    if not ok:
        click.echo(f"the default sandbox backend {default!r} does not work here", err=True)
    if agent_path is not None:
        ok = check_servers(agent_path, settings) and ok
    sys.exit(0 if ok else 1)


def check_servers(agent_path: Path, settings: Settings) -> bool:
    """Start each MCP server of the config at ``agent_path`` as a run would (one at a time,
    no collector), list its tools, print a line; True when every one started sandboxed."""
    from runner.assembly import effective_config, load_agent
    from runner.mcp_servers import SANDBOX_SERVER_MODULE
    from schemas.errors import RetraceError

    try:
        config = effective_config(load_agent(agent_path), settings)
    except RetraceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    settings = settings.model_copy(update={"endpoint": ""})
    all_ok = True
    for server in config.mcp_servers:
        label = f"server {server.name}"
        if server.url is not None:
            click.echo(f"{label:<16} remote       not started by Retrace (runs elsewhere)")
            continue
        one = config.model_copy(update={"mcp_servers": [server]})
        started = time.monotonic()
        try:
            backend, tools = asyncio.run(_start(one, settings))
        except (RetraceError, OSError) as exc:
            click.echo(f"{label:<16} FAILED       {exc}")
            all_ok = False
            continue
        except BaseExceptionGroup as group:
            click.echo(f"{label:<16} FAILED       {group.exceptions[0]}")
            all_ok = False
            continue
        took = time.monotonic() - started
        if backend in ("gvisor", "bwrap"):
            where = backend
            if SANDBOX_SERVER_MODULE in server.args:
                where += " per call (the server itself runs on the host)"
            click.echo(f"{label:<16} ok           {where}, {tools} tools, {took:.2f} s to start")
        else:
            click.echo(f"{label:<16} NOT SANDBOXED runs as a host {backend} (insecure: true)")
            all_ok = False
    return all_ok


async def _start(config: object, settings: Settings) -> tuple[str, int]:
    from runner.assembly import live_tools
    from runner.config import AgentConfig

    assert isinstance(config, AgentConfig)
    with tempfile.TemporaryDirectory(prefix="retrace-doctor-") as workspace:
        async with live_tools(config, settings, Path(workspace), None) as tools:
            specs = await tools.list_tools()
            (backend,) = tools.placements().values()
            return backend, len(specs)
