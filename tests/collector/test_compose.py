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


# --- the "cluster" profile (docs/scale-out.md) --------------------------------------------------
CLUSTER_SERVICES = {
    "keeper",
    "ch1",
    "ch2",
    "migrate",
    "collector-1",
    "collector-2",
    "lb",
    "otelcol",
}


def test_cluster_profile_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    profiled = {n for n, s in services.items() if "cluster" in s.get("profiles", [])}
    assert profiled == CLUSTER_SERVICES
    # The default `docker compose up` starts none of them.
    assert not any(services[n].get("profiles") for n in ("clickhouse", "collector", "ui"))
    for name in ("ch1", "ch2", "keeper", "lb", "otelcol"):
        for volume in services[name]["volumes"]:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name}: {source} is missing"


def test_cluster_nodes_are_two_shards_of_the_named_cluster(compose: dict[str, Any]) -> None:
    import xml.etree.ElementTree as ET

    cluster = ET.parse(ROOT / "deploy/cluster/clickhouse-cluster.xml").getroot()
    (named,) = list(cluster.find("remote_servers"))  # type: ignore[arg-type]
    hosts = [r.findtext("host") for r in named.iter("replica")]
    assert hosts == ["ch1", "ch2"]
    assert cluster.findtext("zookeeper/node/host") == "keeper"
    keeper = ET.parse(ROOT / "deploy/cluster/keeper.xml").getroot()
    assert keeper.findtext("keeper_server/tcp_port") == cluster.findtext("zookeeper/node/port")
    shards = []
    for node in ("ch1", "ch2"):
        macros = ET.parse(ROOT / f"deploy/cluster/clickhouse-{node}.xml").getroot()
        assert macros.findtext("macros/replica") == node
        shards.append(macros.findtext("macros/shard"))
    assert len(set(shards)) == 2
    migrate = compose["services"]["migrate"]
    command, ctx = _command(migrate["command"])
    assert command.name == "migrate" and ctx.params["cluster"] == named.tag
    assert migrate["environment"]["RETRACE_CLICKHOUSE_CLUSTER"] == named.tag


def test_cluster_collectors_have_their_own_spools_behind_the_balancer(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    spools = []
    for name in ("collector-1", "collector-2"):
        collector = services[name]
        command, ctx = _command(collector["command"])
        assert command.name == "serve" and ctx.params["port"] == DEFAULT_COLLECTOR_PORT
        assert urlsplit(ctx.params["clickhouse_url"]).hostname in ("ch1", "ch2")
        assert collector["environment"]["RETRACE_CLICKHOUSE_CLUSTER"] == "retrace"
        assert collector["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        spools.append(collector["volumes"][0].split(":")[0])
    assert len(set(spools)) == 2
    assert set(spools) <= set(compose["volumes"])
    nginx = (ROOT / "deploy/cluster/nginx.conf").read_text()
    upstream = re.findall(r"server (collector-\d):(\d+)", nginx)
    port = str(DEFAULT_COLLECTOR_PORT)
    assert upstream == [("collector-1", port), ("collector-2", port)]
    assert f"listen {DEFAULT_COLLECTOR_PORT};" in nginx


def test_stock_otel_collector_writes_into_retraces_tables(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy/cluster/otelcol.yaml").read_text())
    exporter = config["exporters"]["clickhouse"]
    assert exporter["create_schema"] is False
    assert exporter["traces_table_name"] == "otel_traces"
    assert (
        exporter["database"]
        == compose["services"]["migrate"]["environment"]["RETRACE_CLICKHOUSE_DATABASE"]
    )
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["clickhouse"]
