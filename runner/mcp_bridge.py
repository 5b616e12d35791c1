"""``McpToolExecutor``: the live ``ToolExecutor`` over the official ``mcp`` client.

Each MCP server named in the agent config (stdio ``command`` + ``args`` + ``env``, or a
streamable-HTTP ``url``) is connected with ``mcp.Client`` when the executor is entered::

    async with McpToolExecutor(config.mcp_servers, workspace=ws, snapshots=snaps) as tools:
        specs = await tools.list_tools()
        result = await tools.call("query", {"sql": "SELECT 1"}, step_index=3, call_id="c1")

* Tool names that two servers share are exposed as ``server__tool`` (both of them), so the model
  sees unique names; ``ToolSpec.server`` always names the server.
* The W3C trace context of the caller's current span travels in each request's ``_meta``
  (mcp 2.x injects it in ``JSONRPCDispatcher.send_request``), so the server's spans join the run.
* A timeout, a crashed server or a protocol error becomes an ``is_error`` ``ToolResult`` naming
  the server and what happened; it never raises into the agent. A crashed server stays down for
  the rest of the run (its calls fail fast with a clear message).
* ``ToolResult.metadata`` is keyed by span attribute keys (``schemas.attributes``): the MCP
  server, the sandbox stats the bundled sandbox server returns in the result's ``_meta``, and
  workspace snapshot ids before/after each call of that server.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

import anyio
import anyio.to_thread
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import CallToolResult
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from runner.mcp_servers import DATA_SERVER_MODULE, SANDBOX_META_KEY, SANDBOX_SERVER_MODULE
from runner.sandbox.servers import ServerPolicy, ServerSandbox
from runner.seams import ToolResult, ToolSpec
from schemas.attributes import (
    RETRACE_MCP_SERVER,
    RETRACE_SANDBOX_BACKEND,
    RETRACE_SANDBOX_CPU_MS,
    RETRACE_SANDBOX_DURATION_MS,
    RETRACE_SANDBOX_ERROR,
    RETRACE_SANDBOX_EXIT_CODE,
    RETRACE_SANDBOX_INSECURE,
    RETRACE_SANDBOX_LIMITS,
    RETRACE_SANDBOX_MEMORY_BYTES,
    RETRACE_SANDBOX_OUTPUT_TRUNCATED,
    RETRACE_SANDBOX_POLICY,
    RETRACE_SANDBOX_TIMED_OUT,
    RETRACE_WORKSPACE_AFTER,
    RETRACE_WORKSPACE_BEFORE,
)
from schemas.errors import ConfigError

log = logging.getLogger(__name__)

#: Separator between server and tool name when two servers expose the same tool name.
COLLISION_SEPARATOR: Final = "__"
DEFAULT_CALL_TIMEOUT_S: Final = 120.0
DEFAULT_CONNECT_TIMEOUT_S: Final = 30.0

# Sandbox stats in the sandbox server's result ``_meta`` -> span attribute keys.
_SANDBOX_STAT_KEYS: Final = {
    "backend": RETRACE_SANDBOX_BACKEND,
    "exit_code": RETRACE_SANDBOX_EXIT_CODE,
    "timed_out": RETRACE_SANDBOX_TIMED_OUT,
    "output_truncated": RETRACE_SANDBOX_OUTPUT_TRUNCATED,
    "cpu_ms": RETRACE_SANDBOX_CPU_MS,
    "memory_bytes": RETRACE_SANDBOX_MEMORY_BYTES,
    "insecure": RETRACE_SANDBOX_INSECURE,
    "duration_ms": RETRACE_SANDBOX_DURATION_MS,
    "error": RETRACE_SANDBOX_ERROR,
}


class ServerConfig(Protocol):
    """What the executor reads from one configured server (``runner.config.McpServerConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def command(self) -> str | None: ...
    @property
    def args(self) -> list[str]: ...
    @property
    def env(self) -> dict[str, str] | list[str]: ...
    @property
    def cwd(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...


@dataclass(frozen=True)
class McpServer:
    """A server entry: what ``runner.assembly.mcp_servers`` builds from a config, or code's own
    (tests, ``instrument``). ``policy``: the sandbox a stdio server starts in (None: a host
    process, recorded as ``process``). With a policy, the server's environment is
    ``policy.env`` only (``env`` and the executor's ``span_env`` are not used)."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    policy: ServerPolicy | None = None


class Snapshotter(Protocol):
    """``runner.sandbox.WorkspaceSnapshots``: content-addressed snapshot of a directory."""

    def snapshot(self, workspace: Path) -> str: ...


def sandbox_server(
    workspace: Path,
    *,
    backend: str = "gvisor",
    insecure: bool = False,
    limits: Mapping[str, float | int] | None = None,
    name: str = "sandbox",
    env: Mapping[str, str] | None = None,
) -> McpServer:
    """The entry that starts the bundled sandbox server for ``workspace`` with this interpreter."""
    args = ["-m", SANDBOX_SERVER_MODULE, "--workspace", str(workspace), "--backend", backend]
    if insecure:
        args.append("--insecure")
    for key, value in (limits or {}).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return McpServer(name=name, command=sys.executable, args=args, env=dict(env or {}))


def data_server(
    *, db: Path | None = None, name: str = "data", env: Mapping[str, str] | None = None
) -> McpServer:
    """The entry that starts the bundled data server (sample dataset unless ``db``)."""
    args = ["-m", DATA_SERVER_MODULE]
    if db is not None:
        args += ["--db", str(db)]
    return McpServer(name=name, command=sys.executable, args=args, env=dict(env or {}))


def is_sandbox_server(server: ServerConfig) -> bool:
    """Is this entry the bundled sandbox server (whose calls get workspace snapshots)?"""
    return server.command is not None and SANDBOX_SERVER_MODULE in server.args


def runs_bundled(server: ServerConfig, module: str) -> bool:
    """Does this entry run the bundled server ``module`` as ``<python> -m module`` with this
    interpreter's own packages (no cwd, no PYTHONPATH of its own that could shadow them)?"""
    command = server.command
    if command is None or server.cwd is not None or len(server.args) < 2:
        return False
    if "PYTHONPATH" in server.env or server.args[:2] != ["-m", module]:
        return False
    return command in ("{python}", sys.executable) or (
        re.fullmatch(r"python(\d+(\.\d+)*)?", Path(command).name) is not None
    )


def arg_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


@dataclass
class _Connection:
    config: ServerConfig
    client: Client | None = None
    dead_reason: str = ""
    workspace: Path | None = None
    sandbox: ServerSandbox | None = None
    #: span attributes every call of this server carries (where it runs, its policy)
    placement: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    server: str
    tool: str


class McpToolExecutor:
    """Live tools from MCP servers. Use as an async context manager (enter and exit in one task).

    ``workspace``: the run's workspace directory; passed as ``--workspace`` to a bundled sandbox
    server entry that does not name one, and snapshotted (with ``snapshots``) around its calls.
    ``span_env``: extra environment for stdio servers (e.g. ``RETRACE_ENDPOINT`` so their spans
    reach the collector); a server's own ``env`` wins.
    """

    def __init__(
        self,
        servers: Sequence[ServerConfig],
        *,
        workspace: Path | None = None,
        snapshots: Snapshotter | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        span_env: Mapping[str, str] | None = None,
    ) -> None:
        names = [s.name for s in servers]
        duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
        if duplicates:
            raise ConfigError(f"MCP server names must be unique; repeated: {', '.join(duplicates)}")
        self._servers = {s.name: _Connection(s) for s in servers}
        self._workspace = workspace
        self._snapshots = snapshots
        self._call_timeout_s = call_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._span_env = dict(span_env or {})
        self._stack: AsyncExitStack | None = None
        self._specs: list[ToolSpec] = []
        self._routes: dict[str, _Route] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> McpToolExecutor:
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        try:
            for conn in self._servers.values():
                await self._connect(conn)
            await self._refresh_tools()
        except BaseException:
            await self._stack.__aexit__(*sys.exc_info())
            self._stack = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def _transport(self, conn: _Connection) -> StdioServerParameters | str:
        cfg = conn.config
        if cfg.url is not None:
            conn.placement = {
                RETRACE_SANDBOX_BACKEND: "remote",
                RETRACE_SANDBOX_POLICY: json.dumps({"backend": "remote"}),
            }
            return cfg.url
        if cfg.command is None:  # pragma: no cover - the config validates this
            raise ConfigError(f"MCP server {cfg.name!r} has neither 'command' nor 'url'")
        args = list(cfg.args)
        policy: ServerPolicy | None = getattr(cfg, "policy", None)
        if policy is not None and policy.backend != "none":
            sandbox = ServerSandbox(
                cfg.name,
                cfg.command,
                args,
                policy,
                workspace=self._workspace,
                cwd=cfg.cwd,
                runsc_path=policy.runsc_path,
            )
            assert self._stack is not None
            self._stack.callback(sandbox.close)  # after the client stopped the server
            conn.sandbox = sandbox
            conn.placement = {
                RETRACE_SANDBOX_BACKEND: policy.recorded_backend,
                RETRACE_SANDBOX_POLICY: policy.summary(),
            }
            return StdioServerParameters(
                command=sandbox.argv[0], args=sandbox.argv[1:], env={}, cwd=None
            )
        elif policy is None and is_sandbox_server(cfg):
            given = arg_value(args, "--workspace")
            if given is None and self._workspace is not None:
                args += ["--workspace", str(self._workspace)]
                given = str(self._workspace)
            conn.workspace = Path(given) if given is not None else None
            # The sandbox server is the sandbox: each of its calls runs in a fresh one of its
            # backend (it starts runsc itself, which does not nest inside gVisor).
            backend = arg_value(args, "--backend") or "gvisor"
            conn.placement = {
                RETRACE_SANDBOX_BACKEND: backend,
                RETRACE_SANDBOX_POLICY: json.dumps(
                    {"backend": backend, "server": "host", "calls": "one sandbox per call"},
                    sort_keys=True,
                ),
            }
            policy = None
        else:
            summary = policy.summary() if policy is not None else json.dumps({"backend": "process"})
            conn.placement = {RETRACE_SANDBOX_BACKEND: "process", RETRACE_SANDBOX_POLICY: summary}
            if policy is not None:
                conn.placement[RETRACE_SANDBOX_INSECURE] = True
        own = cfg.env if isinstance(cfg.env, dict) else {}
        env = dict(policy.env) if policy is not None else {**self._span_env, **own}
        return StdioServerParameters(command=cfg.command, args=args, env=env, cwd=cfg.cwd)

    def placements(self) -> dict[str, str]:
        """Where each server runs: ``{server: backend}`` (recorded on the run's root span)."""
        return {
            name: str(conn.placement.get(RETRACE_SANDBOX_BACKEND, ""))
            for name, conn in self._servers.items()
        }

    async def _connect(self, conn: _Connection) -> None:
        assert self._stack is not None
        transport = self._transport(conn)
        # The handshake is bounded by the client's read timeout; no cancel scope here, as the
        # client opens a task group that must outlive this call.
        client = Client(transport, read_timeout_seconds=self._connect_timeout_s)
        try:
            conn.client = await self._stack.enter_async_context(client)
        except Exception as exc:  # OSError, MCPError, TimeoutError, or a group of them
            raise ConfigError(
                f"cannot start MCP server {conn.config.name!r}: {_describe(_leaf(exc))}"
            ) from None

    async def _refresh_tools(self) -> None:
        listed: list[tuple[str, Any]] = []
        for name, conn in self._servers.items():
            assert conn.client is not None
            cursor: str | None = None
            while True:
                page = await conn.client.list_tools(cursor=cursor)
                listed.extend((name, tool) for tool in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        counts = Counter(tool.name for _, tool in listed)
        self._specs, self._routes = [], {}
        for server, tool in listed:
            exposed = tool.name
            if counts[tool.name] > 1:
                exposed = f"{server}{COLLISION_SEPARATOR}{tool.name}"
            self._routes[exposed] = _Route(server, tool.name)
            self._specs.append(
                ToolSpec(
                    name=exposed,
                    description=tool.description or "",
                    input_schema=dict(tool.input_schema),
                    server=server,
                )
            )

    # --- ToolExecutor -------------------------------------------------------------------------

    async def list_tools(self) -> list[ToolSpec]:
        """Every tool of every server, names made unique."""
        return list(self._specs)

    def server_of(self, name: str) -> str:
        """The MCP server a tool lives on ("" for an unknown tool)."""
        route = self._routes.get(name)
        return route.server if route is not None else ""

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        """Call one tool. Failures of any kind come back as ``is_error`` results."""
        route = self._routes.get(name)
        if route is None:
            known = ", ".join(sorted(self._routes)) or "none"
            return ToolResult(
                content=f"unknown tool {name!r}; available tools: {known}",
                is_error=True,
            )
        conn = self._servers[route.server]
        metadata: dict[str, Any] = {RETRACE_MCP_SERVER: route.server, **conn.placement}
        snapshot_dir = conn.workspace if self._snapshots is not None else None
        if snapshot_dir is not None:
            await self._snapshot(snapshot_dir, RETRACE_WORKSPACE_BEFORE, metadata)
        cpu0 = conn.sandbox.cpu_ns() if conn.sandbox is not None else None
        result = await self._call_server(conn, route, arguments)
        if conn.sandbox is not None:
            # the sandbox's host cgroup: CPU of this call (gVisor's own included), peak memory
            cpu1 = conn.sandbox.cpu_ns()
            if cpu0 is not None and cpu1 is not None:
                metadata[RETRACE_SANDBOX_CPU_MS] = round((cpu1 - cpu0) / 1e6, 3)
            metadata[RETRACE_SANDBOX_MEMORY_BYTES] = conn.sandbox.memory_peak()
        if snapshot_dir is not None:
            await self._snapshot(snapshot_dir, RETRACE_WORKSPACE_AFTER, metadata)
        if isinstance(result, str):
            return ToolResult(content=result, is_error=True, metadata=metadata)
        metadata.update(_sandbox_metadata(result))
        return ToolResult(
            content=_content_text(result),
            is_error=result.is_error,
            structured=result.structured_content,
            metadata=metadata,
        )

    async def _snapshot(self, workspace: Path, key: str, metadata: dict[str, Any]) -> None:
        """Record a snapshot id under ``key``; a failed snapshot is recorded, never raised."""
        assert self._snapshots is not None
        try:
            metadata[key] = await anyio.to_thread.run_sync(self._snapshots.snapshot, workspace)
        except Exception as exc:
            log.warning("workspace snapshot of %s failed: %s", workspace, exc)
            metadata[RETRACE_SANDBOX_ERROR] = f"workspace snapshot failed: {_describe(exc)}"

    async def _call_server(
        self, conn: _Connection, route: _Route, arguments: dict[str, Any]
    ) -> CallToolResult | str:
        """The server's result, or an error message (str) when there is none."""
        server = route.server
        if conn.dead_reason or conn.client is None:
            return f"MCP server {server!r} is not available: {conn.dead_reason or 'not started'}"
        try:
            with anyio.fail_after(self._call_timeout_s + 5):
                return await conn.client.call_tool(
                    route.tool, arguments, read_timeout_seconds=self._call_timeout_s
                )
        except TimeoutError:
            return f"tool {route.tool!r} on MCP server {server!r} timed out after " + (
                f"{self._call_timeout_s:g}s"
            )
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                conn.dead_reason = (
                    f"the server exited or closed the connection during {route.tool!r}"
                )
                return f"MCP server {server!r} crashed or exited during {route.tool!r}"
            if exc.error.code == REQUEST_TIMEOUT:
                return (
                    f"tool {route.tool!r} on MCP server {server!r} timed out after "
                    f"{self._call_timeout_s:g}s"
                )
            return f"MCP server {server!r} refused {route.tool!r}: {exc.error.message}"
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            conn.dead_reason = f"connection lost ({_describe(exc)})"
            return f"MCP server {server!r} is not reachable: {_describe(exc)}"
        except Exception as exc:  # a malformed result must not end the run
            log.exception("MCP call %s on %s failed", route.tool, server)
            return f"MCP call {route.tool!r} on {server!r} failed: {_describe(exc)}"


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _content_text(result: CallToolResult) -> str:
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(block, "type", "content")
            parts.append(f"[{mime} content omitted]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, sort_keys=True, default=str)
    return "\n".join(parts)


def _sandbox_metadata(result: CallToolResult) -> dict[str, Any]:
    meta = result.meta or {}
    stats = meta.get(SANDBOX_META_KEY)
    if not isinstance(stats, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key, attr in _SANDBOX_STAT_KEYS.items():
        if stats.get(key) is not None:
            out[attr] = stats[key]
    if stats.get("limits") is not None:
        out[RETRACE_SANDBOX_LIMITS] = json.dumps(stats["limits"], sort_keys=True)
    return out


def langchain_tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tools in the OpenAI function format that ``chat_model.bind_tools`` accepts."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.input_schema or {"type": "object", "properties": {}},
            },
        }
        for spec in specs
    ]


__all__ = [
    "COLLISION_SEPARATOR",
    "McpServer",
    "McpToolExecutor",
    "ServerConfig",
    "Snapshotter",
    "data_server",
    "is_sandbox_server",
    "langchain_tools",
    "runs_bundled",
    "sandbox_server",
]
