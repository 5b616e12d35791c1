"""MCP server: run code and touch files in the run's workspace, always inside a sandbox.

``python -m runner.mcp_servers.sandbox_server --workspace DIR [--backend gvisor|bwrap|process]
[--insecure] [--memory-bytes N] [--cpu-seconds S] [--pids N] [--wall-timeout-s S]
[--max-output-bytes N] [--runsc-path PATH] [--warm-pool-size N] [--span-file PATH]``

Tools: ``run_python(code)``, ``run_shell(command)``, ``read_file(path)``,
``write_file(path, content)``, ``list_files(path=".")``. Every one executes through the sandbox
backend with the workspace mounted at ``/workspace``; file operations too, so a symlink planted
by earlier code resolves in the sandbox's view, and a small in-sandbox script refuses any path
whose real location is outside the workspace. Paths are also checked lexically here first.

Each result carries the execution stats (backend, exit code, timed out, output truncated, CPU,
memory, duration, limits) in its ``_meta`` under ``SANDBOX_META_KEY``; the structured result
keeps only reproducible fields (exit code, stdout, stderr...) so replays can compare them.
Failures are tool errors (``isError``) with a clear message, never a crash of the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Final

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from opentelemetry import trace

from runner.mcp_servers import SANDBOX_META_KEY
from runner.mcp_servers._tracing import configure_server_tracing
from runner.policy import workspace_path
from runner.sandbox import ExecResult, Limits, SandboxBackend, get_backend
from schemas.attributes import (
    RETRACE_SANDBOX_BACKEND,
    RETRACE_SANDBOX_CPU_MS,
    RETRACE_SANDBOX_EXIT_CODE,
    RETRACE_SANDBOX_INSECURE,
    RETRACE_SANDBOX_LIMITS,
    RETRACE_SANDBOX_MEMORY_BYTES,
    RETRACE_SANDBOX_OUTPUT_TRUNCATED,
    RETRACE_SANDBOX_TIMED_OUT,
)
from schemas.errors import RetraceError
from schemas.settings import Settings

SERVER_NAME: Final = "retrace-sandbox"
MAX_WRITE_BYTES: Final = 8 * 1024 * 1024
MAX_LIST_ENTRIES: Final = 1000

# Runs inside the sandbox (cwd = the workspace). argv: op, relative path, op argument.
# Prints one JSON object; {"error": ...} for a refused or failed operation.
_FILE_OPS: Final = r"""
import json, os, sys
root = os.path.realpath(os.getcwd())
def inside(p):
    real = os.path.realpath(p)
    return real == root or real.startswith(root + os.sep)
def done(obj):
    sys.stdout.write(json.dumps(obj)); sys.exit(0)
op, rel, extra = sys.argv[1], sys.argv[2], sys.argv[3]
target = os.path.join(root, rel)
if not inside(target if op != "write" else os.path.dirname(target) or root):
    done({"error": "path %r resolves outside the workspace (symlink?)" % rel})
if op == "read":
    if os.path.isdir(target): done({"error": "%r is a directory; use list_files" % rel})
    if not os.path.isfile(target): done({"error": "no such file: %r" % rel})
    limit = int(extra)
    with open(target, "rb") as fh: data = fh.read(limit + 1)
    cut = len(data) > limit
    data = data[:limit]
    try: text, binary = data.decode("utf-8"), False
    except UnicodeDecodeError: text, binary = data.decode("utf-8", "replace"), True
    done({"path": rel, "size": os.path.getsize(target), "content": text,
          "truncated": cut, "binary": binary})
if op == "write":
    parent = os.path.dirname(target) or root
    os.makedirs(parent, exist_ok=True)
    if not inside(parent): done({"error": "path %r resolves outside the workspace" % rel})
    if os.path.islink(target): done({"error": "refusing to write through symlink %r" % rel})
    if os.path.isdir(target): done({"error": "%r is a directory" % rel})
    data = sys.stdin.buffer.read()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as fh: fh.write(data)
    done({"path": rel, "bytes_written": len(data)})
if op == "list":
    if not os.path.isdir(target): done({"error": "no such directory: %r" % rel})
    limit, entries, more = int(extra), [], False
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            kind = "symlink" if os.path.islink(full) else "dir" if os.path.isdir(full) else "file"
            size = os.lstat(full).st_size if kind == "file" else None
            if len(entries) >= limit: more = True; break
            entries.append({"path": os.path.relpath(full, root), "type": kind, "size": size})
        if more: break
    done({"path": rel, "entries": entries, "truncated": more})
done({"error": "unknown operation %r" % op})
"""


@dataclasses.dataclass
class SandboxTools:
    """The tools' logic over one backend and workspace; the MCP layer is a thin shell on it."""

    backend: SandboxBackend
    backend_name: str
    workspace: Path
    limits: Limits
    insecure: bool = False

    def __post_init__(self) -> None:
        self._lock = anyio.Lock()  # one execution at a time: file ops must not race code

    @property
    def limits_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self.limits)

    async def execute(self, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        async with self._lock:
            return await self.backend.arun(
                argv, workspace=self.workspace, limits=self.limits, stdin=stdin
            )

    def stats(self, result: ExecResult) -> dict[str, Any]:
        return {
            "backend": result.backend or self.backend_name,
            "insecure": self.insecure,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "output_truncated": result.output_truncated,
            "cpu_ms": result.cpu_ms,
            "memory_bytes": result.memory_bytes,
            "duration_ms": result.duration_ms,
            "limits": self.limits_json,
            "error": result.error or None,
        }

    def exec_result(self, result: ExecResult) -> CallToolResult:
        """A run_python/run_shell result: output text, reproducible structure, stats in _meta."""
        stdout = _text(result.stdout)
        stderr = _text(result.stderr)
        parts = [stdout] if stdout else []
        if stderr:
            parts.append(f"[stderr]\n{stderr}")
        notes = []
        if result.timed_out:
            notes.append(f"timed out after {self.limits.wall_timeout_s:g}s and was killed")
        elif result.error:
            notes.append(f"sandbox: {result.error}")
        if result.output_truncated:
            notes.append(f"output truncated at {self.limits.max_output_bytes} bytes")
        if result.exit_code != 0 and not result.timed_out:
            notes.append(f"exit code {result.exit_code}")
        parts.extend(f"[{note}]" for note in notes)
        is_error = bool(result.error) or result.timed_out or result.exit_code != 0
        structured = {
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "timed_out": result.timed_out,
            "output_truncated": result.output_truncated,
        }
        return self._result("\n".join(parts) or "(no output)", structured, is_error, result)

    def _result(
        self, text: str, structured: Any, is_error: bool, result: ExecResult | None
    ) -> CallToolResult:
        meta = {SANDBOX_META_KEY: self.stats(result)} if result is not None else None
        if result is not None:
            _annotate_current_span(self.stats(result))
        return CallToolResult(
            content=[TextContent(type="text", text=text)],
            structured_content=structured,
            is_error=is_error,
            meta=meta,
        )

    def refuse(self, message: str) -> CallToolResult:
        """A tool error that never reached the sandbox (bad path, oversized content...)."""
        return self._result(message, {"error": message}, True, None)

    async def run_python(self, code: str) -> CallToolResult:
        return self.exec_result(await self.execute(["python3", "-"], stdin=code.encode()))

    async def run_shell(self, command: str) -> CallToolResult:
        return self.exec_result(await self.execute(["/bin/sh", "-c", command]))

    async def file_op(self, op: str, path: str, extra: str, stdin: bytes | None = None) -> Any:
        """Run one file operation in the sandbox; a CallToolResult on failure, else its JSON."""
        rel = workspace_path(path)
        if rel is None:
            return self.refuse(f"path {path!r} is outside the workspace")
        result = await self.execute(["python3", "-c", _FILE_OPS, op, rel, extra], stdin=stdin)
        if result.error or result.timed_out or result.exit_code != 0:
            return self.exec_result(result)
        try:
            payload = json.loads(_text(result.stdout))
        except ValueError:
            why = "output too large" if result.output_truncated else "unreadable output"
            return self._result(f"{op} {path!r} failed: {why}", {"error": why}, True, result)
        if "error" in payload:
            return self._result(str(payload["error"]), payload, True, result)
        return payload, result

    async def read_file(self, path: str) -> CallToolResult:
        # Leave room for JSON escaping in the capped output.
        limit = max(1024, self.limits.max_output_bytes // 3)
        out = await self.file_op("read", path, str(limit))
        if isinstance(out, CallToolResult):
            return out
        payload, result = out
        text = payload["content"]
        if payload["truncated"]:
            text += f"\n[file is {payload['size']} bytes; only the first {limit} are shown]"
        return self._result(text, payload, False, result)

    async def write_file(self, path: str, content: str) -> CallToolResult:
        data = content.encode()
        if len(data) > MAX_WRITE_BYTES:
            return self.refuse(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        out = await self.file_op("write", path, "", stdin=data)
        if isinstance(out, CallToolResult):
            return out
        payload, result = out
        text = f"wrote {payload['bytes_written']} bytes to {payload['path']}"
        return self._result(text, payload, False, result)

    async def list_files(self, path: str = ".") -> CallToolResult:
        out = await self.file_op("list", path, str(MAX_LIST_ENTRIES))
        if isinstance(out, CallToolResult):
            return out
        payload, result = out
        lines = [
            f"{e['path']}/" if e["type"] == "dir" else
            f"{e['path']} -> (symlink)" if e["type"] == "symlink" else
            f"{e['path']} ({e['size']} bytes)"
            for e in payload["entries"]
        ]  # fmt: skip
        if payload["truncated"]:
            lines.append(f"[listing cut at {MAX_LIST_ENTRIES} entries]")
        return self._result("\n".join(lines) or "(empty)", payload, False, result)


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _annotate_current_span(stats: dict[str, Any]) -> None:
    """Put the stats on the SDK's ``tools/call`` server span, which is current here."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attributes(
        {
            RETRACE_SANDBOX_BACKEND: str(stats["backend"]),
            RETRACE_SANDBOX_INSECURE: bool(stats["insecure"]),
            RETRACE_SANDBOX_EXIT_CODE: int(stats["exit_code"]),
            RETRACE_SANDBOX_TIMED_OUT: bool(stats["timed_out"]),
            RETRACE_SANDBOX_OUTPUT_TRUNCATED: bool(stats["output_truncated"]),
            RETRACE_SANDBOX_CPU_MS: float(stats["cpu_ms"] or 0),
            RETRACE_SANDBOX_MEMORY_BYTES: int(stats["memory_bytes"] or 0),
            RETRACE_SANDBOX_LIMITS: json.dumps(stats["limits"], sort_keys=True),
        }
    )


def build_server(tools: SandboxTools) -> MCPServer[Any]:
    """The MCP server over ``tools``; every tool answers, errors as ``isError`` results."""
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions=(
            "Run Python or shell commands and read/write files in the workspace "
            "(/workspace, the current directory). No network. Files persist between calls."
        ),
    )

    async def guarded(name: str, call: Any) -> CallToolResult:
        try:
            result: CallToolResult = await call
            return result
        except RetraceError as exc:
            return tools.refuse(f"{name} failed: {exc.message}")
        except Exception as exc:  # the server must outlive any single failure
            return tools.refuse(f"{name} failed: {type(exc).__name__}: {exc}")

    @server.tool()
    async def run_python(code: str) -> CallToolResult:
        """Run Python 3 code in the sandbox (cwd: the workspace). Print what you need to see."""
        return await guarded("run_python", tools.run_python(code))

    @server.tool()
    async def run_shell(command: str) -> CallToolResult:
        """Run a /bin/sh command line in the sandbox (cwd: the workspace)."""
        return await guarded("run_shell", tools.run_shell(command))

    @server.tool()
    async def read_file(path: str) -> CallToolResult:
        """Read a text file of the workspace (path relative to it)."""
        return await guarded("read_file", tools.read_file(path))

    @server.tool()
    async def write_file(path: str, content: str) -> CallToolResult:
        """Write (create or replace) a text file in the workspace; parent dirs are created."""
        return await guarded("write_file", tools.write_file(path, content))

    @server.tool()
    async def list_files(path: str = ".") -> CallToolResult:
        """List the files under a workspace directory, recursively."""
        return await guarded("list_files", tools.list_files(path))

    return server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Retrace sandbox MCP server.")
    parser.add_argument("--workspace", type=Path, required=True, help="host dir -> /workspace")
    parser.add_argument("--backend", choices=["gvisor", "bwrap", "process"], default="gvisor")
    parser.add_argument("--insecure", action="store_true", help="allow the process backend")
    parser.add_argument("--runsc-path", default=None, help="default: RETRACE_RUNSC_PATH")
    parser.add_argument(
        "--warm-pool-size", type=int, default=None, help="default: RETRACE_WARM_POOL_SIZE"
    )
    for field in dataclasses.fields(Limits):
        kind = float if field.name.endswith("_s") or field.name == "cpu_seconds" else int
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=None)
    parser.add_argument("--span-file", type=Path, default=None, help="also write spans here")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: serve over stdio until stdin closes."""
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Limits)
        if getattr(args, f.name) is not None
    }
    workspace = args.workspace.resolve()
    settings = Settings()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
        backend = get_backend(
            args.backend,
            insecure=args.insecure,
            runsc_path=args.runsc_path or settings.runsc_path,
            warm_pool_size=(
                args.warm_pool_size if args.warm_pool_size is not None else settings.warm_pool_size
            ),
        )
        limits = Limits(**overrides)
    except RetraceError as exc:
        parser.exit(2, f"error: {exc.message}\n")
    except (OSError, TypeError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    tools = SandboxTools(backend, args.backend, workspace, limits, insecure=args.insecure)
    provider = configure_server_tracing(SERVER_NAME, settings, span_file=args.span_file)
    try:
        build_server(tools).run("stdio")
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()
        if provider is not None:
            provider.shutdown()


if __name__ == "__main__":
    main()
