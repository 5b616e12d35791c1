"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine here):
env names are Settings fields, commands are real ``retrace`` subcommands with real flags, and
ports agree with the defaults and with each other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from retrace.cli import COMMANDS, cli
from schemas.settings import DEFAULT_COLLECTOR_PORT, DEFAULT_GRPC_PORT, DEFAULT_UI_PORT, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _command(argv: list[str]) -> tuple[click.Command, click.Context]:
    """Parse a ``retrace SUB ...`` argv with the real click command (raises on unknown flags)."""
    assert argv[0] == "retrace"
    assert argv[1] in COMMANDS, f"{argv[1]} is not a retrace subcommand"
    with click.Context(cli) as parent:
        command = cli.get_command(parent, argv[1])
        assert command is not None, f"retrace {argv[1]} did not load"
        ctx = command.make_context(f"retrace {argv[1]}", list(argv[2:]), parent=parent)
    return command, ctx


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    out = {}
    for spec in service.get("ports", []):
        host, _, container = str(spec).rpartition(":")
        out[int(container)] = int(host)
    return out


def test_services_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"clickhouse", "collector", "ui"}
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")


def test_env_names_are_settings_fields(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    seen = 0
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("RETRACE_"):
                seen += 1
                field = key[len("RETRACE_") :].lower()
                assert field in fields, f"{name}: {key} is not a Settings field"
    assert seen >= 5


def test_collector_command_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    collector = services["collector"]
    command, ctx = _command(collector["command"])
    assert command.name == "serve"
    assert ctx.params["port"] == DEFAULT_COLLECTOR_PORT
    assert ctx.params["host"] == "0.0.0.0"
    assert ctx.params["grpc_port"] == DEFAULT_GRPC_PORT
    assert _published(collector) == {
        DEFAULT_COLLECTOR_PORT: DEFAULT_COLLECTOR_PORT,
        DEFAULT_GRPC_PORT: DEFAULT_GRPC_PORT,
    }
    # a public bind needs keys: compose must require them
    assert "RETRACE_API_KEYS" in collector["environment"]
    url = urlsplit(ctx.params["clickhouse_url"])
    assert url.hostname == "clickhouse"
    assert url.port in _published(services["clickhouse"])
    assert collector["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert any("/readyz" in str(part) for part in collector["healthcheck"]["test"])


def test_ui_command_points_at_the_collector(compose: dict[str, Any]) -> None:
    ui = compose["services"]["ui"]
    command, ctx = _command(ui["command"])
    assert command.name == "ui"
    assert ctx.params["port"] == DEFAULT_UI_PORT
    assert _published(ui) == {DEFAULT_UI_PORT: DEFAULT_UI_PORT}
    api = urlsplit(ctx.params["api"])
    assert (api.hostname, api.port) == ("collector", DEFAULT_COLLECTOR_PORT)


def test_unknown_flags_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _command(["retrace", "serve", "--no-such-flag"])


def test_dockerfile_matches_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install -c constraints.txt ." in text
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    assert {DEFAULT_COLLECTOR_PORT, DEFAULT_GRPC_PORT, DEFAULT_UI_PORT} <= exposed
    cmd = json.loads(re.findall(r"^CMD (.+)$", text, re.M)[-1])
    command, ctx = _command(cmd)
    assert command.name == "serve" and ctx.params["port"] == DEFAULT_COLLECTOR_PORT
    assert ctx.params["grpc_port"] == DEFAULT_GRPC_PORT
    for package in ("retrace", "schemas", "collector", "runner", "replay", "ui"):
        assert f"COPY {package} ./{package}" in text
