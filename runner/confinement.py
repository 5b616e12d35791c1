"""What a confined run may take from its agent config: the config is someone else's data.

A replay the collector starts for an API client (``Settings.confine_to`` set, ``--confine-to``)
runs the *recorded* agent config, which any key that can ingest a trace wrote. Confined:

* :func:`confine_config` (every mode) — a ``policy`` file must lie under ``confine_to`` or the
  bundled demo files and is checked without quoting it; a ``workspace`` must lie under
  ``confine_to``; a recorded ``base_url`` is dropped (the collector's own model endpoint
  settings apply, so its credentials never go to a URL a client chose).
* :func:`confine_tools` (before any MCP server starts) — only the bundled servers start, as this
  interpreter's ``-m runner.mcp_servers.<server>`` with no recorded ``env``/``cwd`` and only the
  options that name no host file, port or program, in its own sandbox with no recorded
  ``sandbox: none``, mounts, network or workspace; a server is recognised by what it runs,
  never by its name. Remote (``url``) servers are refused: the collector connects to no URL a
  client chose. The sandbox backend is the collector's own (``Settings``), and never
  ``process``, whoever asks for it.

Without ``confine_to`` (a user replaying their own trace on their own machine) both return the
config unchanged.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from runner.config import PYTHON_TOKEN, AgentConfig, McpServerConfig
from runner.mcp_servers import DATA_SERVER_MODULE, SANDBOX_SERVER_MODULE
from runner.offline import BUNDLED_SCRIPTS
from runner.policy import Policy
from schemas.errors import ConfigError
from schemas.paths import dir_under, file_under
from schemas.settings import Settings

#: Bundled demo files a confined config may name (the demo policy, the offline scripts).
BUNDLED_DEMO_DIR: Final = BUNDLED_SCRIPTS.parent

_LIMIT_OPTIONS: Final = {
    "--memory-bytes": int,
    "--cpu-seconds": float,
    "--pids": int,
    "--wall-timeout-s": float,
    "--max-output-bytes": int,
}
#: Per bundled server module: the options a confined run keeps, with the type of their value.
_KEPT_OPTIONS: Final[dict[str, dict[str, type[int] | type[float]]]] = {
    SANDBOX_SERVER_MODULE: _LIMIT_OPTIONS,
    DATA_SERVER_MODULE: {"--max-rows": int, "--timeout": float},
}
# Options the confined run sets itself (the replay's workspace, the collector's backend): a
# recorded value is dropped, except one asking for no isolation.
_REPLACED_OPTIONS: Final = {SANDBOX_SERVER_MODULE: frozenset({"--workspace", "--backend"})}
_PYTHON_NAME: Final = re.compile(r"python(\d+(\.\d+)*)?")
_CONFINED: Final = "a confined run (a replay the collector starts for an API client)"


def confine_config(config: AgentConfig, confine_to: Path | None) -> AgentConfig:
    """``config`` with the files it names checked for a confined run (every replay mode);
    ``confine_to`` is ``Settings.confine_to`` (None: not confined, ``config`` as it is).

    Raises ``InvalidInputError`` for a ``policy`` or ``workspace`` outside the allowed
    directories (the same error whether the path is missing or outside) and ``PolicyError``
    for a policy file that is not a valid policy (quoting nothing from it).
    """
    root = confine_to
    if root is None:
        return config
    config = config.model_copy(deep=True)
    if isinstance(config.policy, str):
        path = file_under(
            config.policy,
            [root, BUNDLED_DEMO_DIR],
            what=f"policy file {_short(config.policy)}",
            where=f"{root} or the bundled demo files",
        )
        Policy.load(path, quote=False)  # a bad file fails here, before the run, unquoted
        config.policy = str(path)
    if config.workspace is not None:
        config.workspace = str(
            dir_under(
                config.workspace,
                [root],
                what=f"workspace {_short(config.workspace)}",
                where=str(root),
            )
        )
    config.base_url = None
    return config


def confine_tools(config: AgentConfig, settings: Settings) -> AgentConfig:
    """``config`` with only the bundled MCP servers, rebuilt to run here, for a confined run.

    Raises ``ConfigError`` naming the server (or the sandbox setting) a confined run refuses.
    """
    if settings.confine_to is None:
        return config
    if settings.sandbox_backend == "process":
        raise ConfigError(
            f"this collector's sandbox backend is 'process' (no isolation), which {_CONFINED} "
            "never uses: set RETRACE_SANDBOX_BACKEND to gvisor or bwrap"
        )
    if config.sandbox.backend == "process" or config.sandbox.insecure:
        raise ConfigError(
            "the agent config asks for the 'process' sandbox backend (no isolation), which "
            f"{_CONFINED} never uses; it runs tools with this collector's backend "
            f"({settings.sandbox_backend})"
        )
    servers = [_bundled_server(server) for server in config.mcp_servers]
    sandbox = config.sandbox.model_copy(update={"backend": None})  # the Settings' backend
    return config.model_copy(update={"mcp_servers": servers, "sandbox": sandbox})


def _bundled_server(server: McpServerConfig) -> McpServerConfig:
    """The bundled server ``server`` asks for, as this interpreter runs it; else ``ConfigError``."""
    what = f"MCP server {_short(server.name)}"
    if server.url is not None:
        raise ConfigError(
            f"{what} is a remote server (url): {_CONFINED} connects to no server the agent "
            "config names"
        )
    args = server.args
    module = args[1] if len(args) >= 2 and args[0] == "-m" else ""
    if not _is_python(server.command) or module not in _KEPT_OPTIONS:
        bundled = ", ".join(f"'{PYTHON_TOKEN} -m {m}'" for m in sorted(_KEPT_OPTIONS))
        raise ConfigError(f"{what} is not a bundled server: {_CONFINED} starts only {bundled}")
    if server.env or server.cwd is not None:
        raise ConfigError(f"{what}: {_CONFINED} starts bundled servers without a recorded env/cwd")
    if server.sandbox == "none" or server.insecure:
        raise ConfigError(
            f"{what} asks for 'sandbox: none' (no isolation), which {_CONFINED} never uses"
        )
    if server.mounts or server.network != "none" or server.workspace is not None:
        raise ConfigError(
            f"{what}: {_CONFINED} starts bundled servers without recorded mounts, network "
            "or workspace (they name host paths and ports)"
        )
    kept = _kept_options(what, module, args[2:])
    return McpServerConfig(name=server.name, command=sys.executable, args=["-m", module, *kept])


def _is_python(command: str | None) -> bool:
    return command == PYTHON_TOKEN or (
        command is not None and _PYTHON_NAME.fullmatch(Path(command).name) is not None
    )


def _kept_options(what: str, module: str, options: Sequence[str]) -> list[str]:
    """The recorded options of a bundled server a confined run keeps (numbers only)."""
    kept: list[str] = []
    allowed = _KEPT_OPTIONS[module]
    replaced = _REPLACED_OPTIONS.get(module, frozenset())
    i = 0
    while i < len(options):
        flag, sep, value = options[i].partition("=")
        i += 1
        if flag == "--insecure" and not sep:
            value = "process"
        elif flag in allowed or flag in replaced:
            if not sep:
                if i >= len(options):
                    raise ConfigError(f"{what}: option {_short(flag)} has no value")
                value, i = options[i], i + 1
        else:
            raise ConfigError(
                f"{what}: option {_short(options[i - 1])} is not allowed in {_CONFINED} (kept: "
                f"{', '.join(sorted(allowed))}; set by the run: {', '.join(sorted(replaced))})"
            )
        if flag in ("--backend", "--insecure") and value == "process":
            raise ConfigError(
                f"{what} asks for the 'process' sandbox backend (no isolation), which "
                f"{_CONFINED} never uses"
            )
        if flag in allowed:
            kept += [flag, _number(what, flag, value, allowed[flag])]
    return kept


def _number(what: str, flag: str, value: str, kind: type[int] | type[float]) -> str:
    try:
        number = kind(value)
    except ValueError:
        number = 0
    if not (number > 0 and math.isfinite(number)):
        raise ConfigError(f"{what}: option {flag} must be a positive number, got {_short(value)}")
    return str(number)


def _short(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (it is someone else's)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


__all__ = ["BUNDLED_DEMO_DIR", "confine_config", "confine_tools"]
