"""Run assembly (``runner/assembly.py``): live providers from an agent config + ``Settings``,
suites; and the model providers taking their settings from the caller."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from runner import assembly
from runner.assembly import SuiteOutcome, SuiteTask, load_suite, mcp_servers, run_suite
from runner.config import AgentConfig, McpServerConfig, SandboxConfig
from runner.providers import make_model, offline_model
from runner.run import RunResult
from schemas.errors import ConfigError, InvalidInputError
from schemas.models import RunStatus
from schemas.settings import Settings


def test_mcp_servers_resolve_python_and_configure_the_sandbox(tmp_path: Path) -> None:
    config = AgentConfig(
        name="a",
        model="offline:data-scientist",
        mcp_servers=[
            McpServerConfig(
                name="sandbox", command="{python}", args=["-m", "runner.mcp_servers.sandbox_server"]
            ),
            McpServerConfig(name="other", command="other-server", args=["--x"]),
        ],
        sandbox=SandboxConfig(insecure=True),
    )
    settings = Settings(sandbox_backend="process")
    sandbox, other = mcp_servers(config, settings, tmp_path)
    assert sandbox.command == sys.executable
    assert sandbox.args[:2] == ["-m", "runner.mcp_servers.sandbox_server"]
    args = sandbox.args
    assert args[args.index("--backend") + 1] == "process"
    assert args[args.index("--workspace") + 1] == str(tmp_path)
    assert "--insecure" in args and "--wall-timeout-s" in args
    assert (other.command, other.args) == ("other-server", ["--x"])  # not a sandbox: untouched
    assert config.mcp_servers[0].args == ["-m", "runner.mcp_servers.sandbox_server"]
    # --backend process + insecure: the other server follows as a host process, marked so
    assert other.policy is not None and other.policy.backend == "none" and other.policy.insecure


def test_only_the_real_sandbox_server_runs_outside_a_sandbox(tmp_path: Path) -> None:
    module = "runner.mcp_servers.sandbox_server"
    config = AgentConfig(
        mcp_servers=[
            McpServerConfig(name="real", command="{python}", args=["-m", module]),
            McpServerConfig(name="fake", command="/opt/evil", args=["-m", module]),
            McpServerConfig(name="cwd", command="{python}", args=["-m", module], cwd="/tmp"),
            McpServerConfig(
                name="pp", command="{python}", args=["-m", module], env={"PYTHONPATH": "/x"}
            ),
        ]
    )
    real, *others = mcp_servers(config, Settings(sandbox_backend="gvisor"), tmp_path)
    assert real.policy is None  # it is the sandbox: each of its calls runs in gVisor
    for server in others:  # a look-alike is a third-party server like any other
        assert server.policy is not None and server.policy.backend == "gvisor", server.name
        assert "--workspace" not in server.args
    data = McpServerConfig(
        name="d", command="{python}", args=["-m", "runner.mcp_servers.data_server"]
    )
    span_env = {"RETRACE_ENDPOINT": "http://127.0.0.1:4318", "RETRACE_API_KEY": "k"}
    (server,) = mcp_servers(
        AgentConfig(mcp_servers=[data]), Settings(sandbox_backend="bwrap"), tmp_path, span_env
    )
    assert server.policy is not None and server.policy.backend == "bwrap"
    assert server.policy.env == span_env
    assert server.policy.implicit_allow == ("127.0.0.1:4318",)  # its spans reach the collector


def test_load_suite_reads_tasks_and_its_agent(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("agent: agent.yaml\ntasks:\n  - first task\n  - {name: two, task: second}\n")
    tasks, agent = load_suite(suite)
    assert tasks == [SuiteTask("task-1", "first task"), SuiteTask("two", "second")]
    assert agent == (tmp_path / "agent.yaml").resolve()
    suite.write_text("tasks: []\n")
    with pytest.raises(ConfigError, match="non-empty list"):
        load_suite(suite)


def test_run_suite_reports_each_task_and_goes_on_after_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def execute(task: str, config: AgentConfig, settings: Settings, client: Any) -> RunResult:
        if task == "bad":
            raise InvalidInputError("bad task")
        return RunResult("t" * 32, "r1", RunStatus.COMPLETED, f"did {task}", 1)

    monkeypatch.setattr(assembly, "execute_task", execute)
    started: list[str] = []
    done: list[SuiteOutcome] = []
    outcomes = run_suite(
        [SuiteTask("a", "bad"), SuiteTask("b", "good")],
        AgentConfig(name="a", model="offline:data-scientist"),
        Settings(),
        client=None,  # type: ignore[arg-type]
        on_start=lambda item: started.append(item.name),
        on_done=done.append,
    )
    assert started == ["a", "b"] and done == outcomes
    (first, second) = outcomes
    assert (first.result, first.error) == (None, "bad task")
    assert second.result is not None and second.result.answer == "did good"


def test_a_live_model_takes_its_endpoint_and_key_from_the_settings_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETRACE_OPENAI_BASE_URL", "http://from-the-environment.invalid/v1")
    settings = Settings(openai_base_url="http://from-the-settings.invalid/v1")
    model: Any = make_model(AgentConfig(name="a", model="openai:some-model"), settings)
    assert str(model.model.openai_api_base) == "http://from-the-settings.invalid/v1"


def test_the_offline_model_needs_no_settings() -> None:
    model = offline_model(AgentConfig(name="a", model="offline:data-scientist"))
    assert model.name == "data-scientist"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="not an offline model"):
        offline_model(AgentConfig(name="a", model="openai:some-model"))
