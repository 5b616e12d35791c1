"""``AgentConfig``: what an agent is — model, prompt, MCP servers, policy, guardrails — from YAML.

Relative paths in a config file (policy, offline script, workspace) are resolved against the
file's directory. Every validation problem becomes a ``ConfigError`` naming the bad field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.errors import ConfigError

SandboxBackendName = Literal["gvisor", "bwrap", "process"]
ServerSandboxName = Literal["gvisor", "bwrap", "none"]
PYTHON_TOKEN = "{python}"  # in an MCP server ``command``: this interpreter
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MountConfig(_Config):
    """A host directory (or file) shown to a server's sandbox at ``container``."""

    host: str = Field(min_length=1)
    container: str = Field(min_length=1)
    read_only: bool = True

    @field_validator("container")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"container path must be absolute without '..', got {value!r}")
        return value


class NetworkAllowConfig(_Config):
    """``allow: ["127.0.0.1:5432", ...]``: exactly these host:port destinations, nothing else."""

    allow: list[str] = Field(min_length=1)

    @field_validator("allow")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        ports: set[int] = set()
        for item in value:
            match = _HOST_PORT.fullmatch(item)
            if match is None or not 0 < int(match["port"]) < 65536:
                raise ValueError(f"network allow entries look like 'host:port', got {item!r}")
            port = int(match["port"])
            if port in ports:
                raise ValueError(f"network allow names port {port} twice (one host per port)")
            ports.add(port)
        return value


class ServerLimitsConfig(_Config):
    """Resources of one server's sandbox for the whole run (it is long-lived, so CPU is a share
    of the machine, ``cpus``, not a budget of seconds)."""

    memory_bytes: int = Field(512 * 1024 * 1024, gt=0)
    pids: int = Field(128, gt=0)
    cpus: float = Field(1.0, gt=0)


class McpServerConfig(_Config):
    """One MCP server: a stdio command (``command`` + ``args``) or a streamable-HTTP ``url``.

    A stdio server runs in its own sandbox (``sandbox``: default the agent's backend, gVisor
    unless set otherwise; ``none`` only with ``insecure: true``). ``env``: a mapping of values,
    or a list of NAMES copied from the runner's environment; nothing else of it reaches the
    server. ``network``: ``none`` (default), ``loopback`` (both: the sandbox's own loopback
    only) or ``{allow: [host:port, ...]}``. ``workspace``: where in the sandbox the run's
    workspace is mounted (read-write); not mounted when unset. ``mounts``: more host paths.
    """

    name: str = Field(min_length=1)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | list[str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    sandbox: ServerSandboxName | None = None
    insecure: bool = False
    network: Literal["none", "loopback"] | NetworkAllowConfig = "none"
    mounts: list[MountConfig] = Field(default_factory=list)
    workspace: str | None = None
    limits: ServerLimitsConfig = Field(default_factory=ServerLimitsConfig)

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("none", "loopback"):
            return value
        if isinstance(value, dict):
            try:
                return NetworkAllowConfig.model_validate(value)
            except ValidationError as exc:
                raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        if isinstance(value, NetworkAllowConfig):
            return value
        raise ValueError(
            f"network must be 'none', 'loopback' or {{allow: [host:port, ...]}}, got {value!r}"
        )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server {self.name!r} needs exactly one of 'command' or 'url'")
        if self.sandbox == "none" and not self.insecure:
            raise ValueError(
                f"server {self.name!r} asks for 'sandbox: none' (no isolation: it runs with your "
                "files, environment and network); add 'insecure: true' to mean it"
            )
        if isinstance(self.env, list):
            bad = [n for n in self.env if not _ENV_NAME.fullmatch(n)]
            if bad:
                raise ValueError(f"server {self.name!r}: env names must be NAMES, got {bad[0]!r}")
        if self.workspace is not None and not self.workspace.startswith("/"):
            raise ValueError(f"server {self.name!r}: workspace must be an absolute sandbox path")
        return self

    def explicit_env(self) -> dict[str, str]:
        """The values the config sets itself (``env`` as a mapping)."""
        return dict(self.env) if isinstance(self.env, dict) else {}

    def passed_env(self) -> list[str]:
        """The names copied from the runner's environment (``env`` as a list)."""
        return list(self.env) if isinstance(self.env, list) else []


class GuardrailsConfig(_Config):
    """Limits that end or steer a run. ``loop_threshold``: same tool + same arguments N times."""

    max_turns: int = Field(20, ge=1)
    token_budget: int = Field(200_000, ge=1)
    wall_time_s: float = Field(600.0, gt=0)
    tool_retries: int = Field(1, ge=0)
    backoff_base_s: float = Field(0.05, ge=0)
    backoff_max_s: float = Field(2.0, ge=0)
    loop_threshold: int = Field(3, ge=2)
    approval_timeout_s: float = Field(3600.0, gt=0)


class SandboxLimitsConfig(_Config):
    memory_bytes: int = Field(512 * 1024 * 1024, gt=0)
    cpu_seconds: float = Field(10.0, gt=0)
    pids: int = Field(64, gt=0)
    wall_timeout_s: float = Field(20.0, gt=0)
    max_output_bytes: int = Field(64 * 1024, gt=0)


class SandboxConfig(_Config):
    backend: SandboxBackendName | None = None  # None: the Settings default
    insecure: bool = False
    limits: SandboxLimitsConfig = Field(default_factory=SandboxLimitsConfig)


class AgentConfig(_Config):
    """An agent. ``model`` is ``provider:model`` (``offline:NAME``, ``openai:gpt-4o-mini`` ...)."""

    name: str = Field("agent", min_length=1)
    model: str = "offline:data-scientist"
    base_url: str | None = None
    api_key: SecretStr | None = Field(None, exclude=True)  # never recorded
    model_parameters: dict[str, Any] = Field(default_factory=dict)
    offline_script: str | None = None
    system_prompt: str = "You are a helpful agent. Use the tools to answer the task."
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)
    policy: str | dict[str, Any] | None = None
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    seed: int = 0
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    workspace: str | None = None

    @field_validator("model")
    @classmethod
    def _model_spec(cls, value: str) -> str:
        provider, _, model = value.partition(":")
        if not provider or not model:
            raise ValueError(f"model must look like 'provider:model', got {value!r}")
        return value

    @property
    def provider(self) -> str:
        return self.model.partition(":")[0]

    @property
    def model_name(self) -> str:
        return self.model.partition(":")[2]

    def recorded_json(self) -> str:
        """The config as recorded on the root span (secrets excluded)."""
        return self.model_dump_json()


def parse_config(data: Any, *, base_dir: Path | None = None, source: str = "config") -> AgentConfig:
    """Validate a mapping as an ``AgentConfig``; relative paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: invalid field '{field}': {first['msg']}") from None
    if base_dir is not None:
        if isinstance(config.policy, str):
            config.policy = str(_resolve(config.policy, base_dir))
        if config.offline_script is not None:
            config.offline_script = str(_resolve(config.offline_script, base_dir))
        if config.workspace is not None:
            config.workspace = str(_resolve(config.workspace, base_dir))
        for server in config.mcp_servers:
            for mount in server.mounts:
                mount.host = str(_resolve(mount.host, base_dir))
    return config


def load_config(path: Path | str) -> AgentConfig:
    """Load an agent config YAML file. Raises ``ConfigError`` naming the file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read agent config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"agent config {path} is not valid YAML: {exc}") from None
    return parse_config(data, base_dir=path.parent.resolve(), source=str(path))


def _resolve(value: str, base_dir: Path) -> Path:
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else (base_dir / candidate).resolve()
