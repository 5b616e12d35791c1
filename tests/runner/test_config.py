"""Agent config files: defaults, relative paths, errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_config
from runner.run import load_policy
from schemas.errors import ConfigError


def test_demo_config_loads_with_paths_resolved() -> None:
    config = load_config(Path(__file__).parents[2] / "runner" / "demo" / "agent.yaml")
    assert config.name == "data-scientist"
    assert config.provider == "offline" and config.model_name == "data-scientist"
    assert Path(str(config.policy)).is_absolute()
    assert {s.name for s in config.mcp_servers} == {"data", "sandbox"}
    assert load_policy(config).decide("query", {"sql": "DROP TABLE orders"}).action == "deny"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model: gpt4\n", "model"),
        ("guardrails: {max_turns: 0}\n", "guardrails.max_turns"),
        ("mcp_servers: [{name: a}]\n", "mcp_servers.0"),
        ("surprise: 1\n", "surprise"),
        ("sandbox: {backend: docker}\n", "sandbox.backend"),
        ("mcp_servers: [{name: a, command: x, sandbox: docker}]\n", "mcp_servers.0.sandbox"),
        (
            "mcp_servers: [{name: a, command: x, network: {allow: [nope]}}]\n",
            "mcp_servers.0.network",
        ),
        ("mcp_servers: [{name: a, command: x, network: wide}]\n", "mcp_servers.0.network"),
        ("mcp_servers: [{name: a, command: x, limits: {pids: 0}}]\n", "mcp_servers.0.limits.pids"),
        (
            "mcp_servers: [{name: a, command: x, mounts: [{host: /, container: rel}]}]\n",
            "mcp_servers.0.mounts.0.container",
        ),
        ("mcp_servers: [{name: a, command: x, env: ['A B']}]\n", "mcp_servers.0"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"invalid field '{field}'"):
        load_config(path)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read agent config"):
        load_config(tmp_path / "none.yaml")
    path = tmp_path / "a.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_server_sandbox_policy_fields(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "mcp_servers:\n"
        "  - name: t\n"
        "    command: x\n"
        "    env: [TZ, LANG]\n"
        "    network: {allow: ['127.0.0.1:5432', 'db.internal:6379']}\n"
        "    mounts: [{host: models, container: /models}]\n"
        "    workspace: /workspace\n"
        "    limits: {memory_bytes: 1048576, cpus: 0.5}\n"
        "  - {name: u, url: 'http://127.0.0.1:1/mcp'}\n"
    )
    server = load_config(path).mcp_servers[0]
    assert server.sandbox is None and not server.insecure  # the agent's backend
    assert server.passed_env() == ["TZ", "LANG"] and server.explicit_env() == {}
    assert server.mounts[0].host == str(tmp_path / "models")  # relative to the file
    assert server.mounts[0].read_only
    assert server.limits.pids == 128 and server.limits.cpus == 0.5
    path.write_text("mcp_servers: [{name: t, command: x, network: {allow: ['a:1', 'b:1']}}]\n")
    with pytest.raises(ConfigError, match="port 1 twice"):
        load_config(path)
    path.write_text("mcp_servers: [{name: t, command: x, sandbox: none}]\n")
    with pytest.raises(ConfigError, match="insecure: true"):
        load_config(path)
    path.write_text("mcp_servers: [{name: t, command: x, sandbox: none, insecure: true}]\n")
    assert load_config(path).mcp_servers[0].sandbox == "none"
