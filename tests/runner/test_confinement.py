"""The confinement rules over plain configs: what a run the collector starts for an API client
(``Settings.confine_to``) may take from its agent config, and that an unconfined run keeps it all.
The same rules end to end: tests/collector/test_app_replay_confinement.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.config import AgentConfig, McpServerConfig, SandboxConfig
from runner.confinement import BUNDLED_DEMO_DIR, confine_config, confine_tools
from runner.mcp_servers import DATA_SERVER_MODULE, SANDBOX_SERVER_MODULE
from schemas.errors import ConfigError, InvalidInputError, PolicyError
from schemas.settings import Settings

SECRET = "hunter2-do-not-show"
DATA = ["-m", DATA_SERVER_MODULE]
SANDBOX = ["-m", SANDBOX_SERVER_MODULE]


@pytest.fixture
def confined(tmp_path: Path) -> Settings:
    root = tmp_path / "data"
    root.mkdir()
    return Settings(confine_to=root.resolve(), sandbox_backend="gvisor")


def _server(name: str = "s", command: str | None = "{python}", **fields: Any) -> McpServerConfig:
    return McpServerConfig(name=name, command=command, **fields)


def _config(*servers: McpServerConfig, **fields: Any) -> AgentConfig:
    return AgentConfig(mcp_servers=list(servers), **fields)


# --- MCP servers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["{python}", "python", "python3", "/usr/bin/python3.12", "/home/u/.venv/bin/python"],
)
def test_bundled_servers_are_rebuilt_to_run_with_this_interpreter(
    confined: Settings, command: str
) -> None:
    config = _config(
        _server("data", command, args=[*DATA, "--max-rows", "50", "--timeout=2.5"]),
        _server("sandbox", command, args=[*SANDBOX, "--pids", "8"]),
    )
    servers = confine_tools(config, confined).mcp_servers
    assert [(s.name, s.command, s.args, s.env, s.cwd, s.url) for s in servers] == [
        ("data", sys.executable, [*DATA, "--max-rows", "50", "--timeout", "2.5"], {}, None, None),
        ("sandbox", sys.executable, [*SANDBOX, "--pids", "8"], {}, None, None),
    ]


def test_the_run_sets_the_workspace_and_the_collector_the_backend(confined: Settings) -> None:
    args = [*SANDBOX, "--workspace", "/", "--backend=bwrap", "--memory-bytes", "1000"]
    config = _config(
        _server("box", sys.executable, args=args), sandbox=SandboxConfig(backend="bwrap")
    )
    out = confine_tools(config, confined)
    assert out.mcp_servers[0].args == [*SANDBOX, "--memory-bytes", "1000"]
    assert out.sandbox.backend is None  # so Settings.sandbox_backend (gvisor) applies
    assert config.sandbox.backend == "bwrap"  # the caller's config is not changed


@pytest.mark.parametrize(
    "server",
    [
        _server("sandbox", "sh", args=["-c", "touch /tmp/pwned"]),
        _server("data", sys.executable, args=["-c", "print(1)"]),
        _server("data", "/bin/sh", args=DATA),  # the module, but not run by a Python
        _server("data", "{python}", args=["-m", "runner.mcp_servers.evil"]),
        _server("data", "{python}", args=["-m", "json.tool"]),
        _server("data", "{python}", args=["-c", "x", *DATA]),
        _server("data", "{python}", args=["-X", "importtime", *DATA]),
        _server("data", "{python}", args=[]),
        _server("remote", None, url="http://127.0.0.1:9/mcp"),
    ],
    ids=lambda s: f"{s.command} {' '.join(s.args)}".strip() if s.command else "url",
)
def test_any_other_server_is_refused_naming_it(confined: Settings, server: McpServerConfig) -> None:
    with pytest.raises(ConfigError, match=f"MCP server '{server.name}'"):
        confine_tools(_config(server), confined)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([*DATA, "--db", "/etc/shadow.sqlite"], "'--db'"),  # a host file (or another project's)
        ([*DATA, "--db=/x.sqlite"], "'--db=/x.sqlite'"),
        ([*DATA, "--span-file", "/tmp/x"], "'--span-file'"),  # writes a host file
        ([*DATA, "--http", "8080"], "'--http'"),  # listens on a port
        ([*SANDBOX, "--runsc-path", "/bin/sh"], "'--runsc-path'"),  # runs a host program
        ([*SANDBOX, "--works", "/"], "'--works'"),  # argparse would take it for --workspace
        ([*SANDBOX, "--warm-pool-size", "99"], "'--warm-pool-size'"),
        ([*DATA, "positional"], "'positional'"),
        ([*DATA, "--max-rows"], "no value"),
        ([*DATA, "--max-rows", "-1"], "positive"),
        ([*DATA, "--timeout", "nan"], "positive"),
        ([*SANDBOX, "--pids", "1e9"], "positive"),  # not an int
    ],
)
def test_bundled_server_options_that_reach_the_host_are_refused(
    confined: Settings, args: list[str], words: str
) -> None:
    with pytest.raises(ConfigError, match="MCP server 's'") as caught:
        confine_tools(_config(_server(args=args)), confined)
    assert words in caught.value.message


@pytest.mark.parametrize(
    "fields", [{"env": {"PYTHONPATH": "/tmp/evil"}}, {"env": {"LD_PRELOAD": "x"}}, {"cwd": "/"}]
)
def test_a_bundled_server_with_a_recorded_env_or_cwd_is_refused(
    confined: Settings, fields: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="env/cwd"):
        confine_tools(_config(_server(args=DATA, **fields)), confined)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sandbox": "none", "insecure": True}, "sandbox: none"),
        ({"mounts": [{"host": "/etc", "container": "/etc"}]}, "mounts"),
        ({"network": {"allow": ["127.0.0.1:22"]}}, "network"),
        ({"workspace": "/workspace"}, "workspace"),
        ({"env": ["RETRACE_API_KEY"]}, "env"),
    ],
)
def test_a_bundled_server_with_a_recorded_sandbox_policy_is_refused(
    confined: Settings, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        confine_tools(_config(_server(args=DATA, **fields)), confined)


@pytest.mark.parametrize(
    ("config", "settings_changes"),
    [
        (_config(sandbox=SandboxConfig(backend="process")), {}),
        (_config(sandbox=SandboxConfig(insecure=True)), {}),
        (_config(_server(args=[*SANDBOX, "--backend", "process"])), {}),
        (_config(_server(args=[*SANDBOX, "--backend=process"])), {}),
        (_config(_server(args=[*SANDBOX, "--insecure"])), {}),
        (_config(_server(args=SANDBOX)), {"sandbox_backend": "process", "insecure": True}),
    ],
)
def test_the_process_backend_is_never_used_confined(
    confined: Settings, config: AgentConfig, settings_changes: dict[str, Any]
) -> None:
    settings = confined.model_copy(update=settings_changes)
    with pytest.raises(ConfigError, match="'process'"):
        confine_tools(config, settings)


def test_an_unconfined_run_keeps_its_whole_config(tmp_path: Path) -> None:
    config = _config(
        _server("sh", "sh", args=["-c", "echo"], env={"A": "1"}, cwd="/"),
        _server("remote", None, url="http://example.invalid/mcp"),
        sandbox=SandboxConfig(backend="process", insecure=True),
        policy=str(tmp_path / "anywhere.yaml"),
        workspace="/anywhere",
        base_url="http://127.0.0.1:1/v1",
    )
    settings = Settings(sandbox_backend="process", insecure=True)
    assert confine_tools(config, settings) is config
    assert confine_config(config, settings.confine_to) is config


# --- files and endpoints -----------------------------------------------------------------------


def test_a_policy_may_be_bundled_or_under_the_directory(confined: Settings) -> None:
    assert confined.confine_to is not None
    demo = BUNDLED_DEMO_DIR / "policy.yaml"
    assert confine_config(_config(policy=str(demo)), confined.confine_to).policy == str(
        demo.resolve()
    )
    mine = confined.confine_to / "mine.yaml"
    mine.write_text("version: 1\ntools: {deny: [run_shell]}\n")
    assert confine_config(_config(policy=str(mine)), confined.confine_to).policy == str(mine)
    inline = {"tools": {"deny": ["run_shell"]}}
    assert confine_config(_config(policy=inline), confined.confine_to).policy == inline


def test_a_policy_outside_is_refused_alike_whether_it_exists(
    confined: Settings, tmp_path: Path
) -> None:
    assert confined.confine_to is not None
    secret = tmp_path / "secret.yaml"
    secret.write_text(f"tools: {{deny: [{SECRET}]}}\n")
    link = confined.confine_to / "link.yaml"
    link.symlink_to(secret)
    names = [str(secret), str(tmp_path / "missing.yaml"), str(link), "/etc/passwd"]
    names.append(f"{confined.confine_to}/../secret.yaml")
    messages = set()
    for name in names:
        with pytest.raises(InvalidInputError) as caught:
            confine_config(_config(policy=name), confined.confine_to)
        messages.add(re.sub(r"'[^']*'", "NAME", caught.value.message, count=1))
    assert len(messages) == 1, messages
    assert "must be an existing file under" in messages.pop()


@pytest.mark.parametrize(
    "text",
    [
        f"api_token: {SECRET}\n  {SECRET}_key: [\n",  # not YAML
        f"{SECRET}: 1\n",  # an unknown key: the file's own text
        f"tools: {{allow: {SECRET}}}\n",  # a wrong type
        f"- {SECRET}\n",  # not a mapping
        b"\xff\xfe" + SECRET.encode(),  # not UTF-8
    ],
)
def test_a_bad_policy_under_the_directory_is_refused_without_quoting_it(
    confined: Settings, text: str | bytes
) -> None:
    assert confined.confine_to is not None
    path = confined.confine_to / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        confine_config(_config(policy=str(path)), confined.confine_to)
    assert SECRET not in caught.value.message
    assert str(path) in caught.value.message


def test_a_workspace_must_lie_under_the_directory(confined: Settings, tmp_path: Path) -> None:
    assert confined.confine_to is not None
    inside = confined.confine_to / "runner" / "workspaces" / "r1"  # need not exist yet
    assert confine_config(_config(workspace=str(inside)), confined.confine_to).workspace == str(
        inside
    )
    afile = confined.confine_to / "file"
    afile.write_text("")
    link = confined.confine_to / "link"
    link.symlink_to(tmp_path)
    for name in ["/", str(tmp_path), f"{confined.confine_to}/..", str(link), str(afile)]:
        with pytest.raises(InvalidInputError, match=r"workspace .* must be a directory under"):
            confine_config(_config(workspace=name), confined.confine_to)


def test_a_recorded_model_endpoint_is_not_used(confined: Settings) -> None:
    # The collector's own OPENAI key must not go to a URL a client chose.
    config = _config(model="openai:gpt-4o", base_url="http://attacker.invalid/v1")
    assert confine_config(config, confined.confine_to).base_url is None
