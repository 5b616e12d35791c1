"""``retrace serve`` (the collector) and ``retrace keys create|list|revoke``."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from collector.auth import generate_key, hash_key, validate_project
from schemas.errors import ConfigError, StoreLockedError
from schemas.settings import Settings

if TYPE_CHECKING:
    from collector.store import TraceStore

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the CLI flags that were given on top."""
    base = Settings()
    given = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=given)


@click.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1; RETRACE_HOST).")
@click.option("--port", type=int, default=None, help="Port (default 4318; RETRACE_PORT).")
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="OTLP/gRPC port (default 4317, 0 turns gRPC off; RETRACE_GRPC_PORT).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedded store + spool directory (default .retrace; RETRACE_DATA_DIR).",
)
@click.option("--clickhouse-url", default=None, help="Use a ClickHouse server as the store.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="PROJECT:KEY",
    help="Register a project API key at start-up (repeatable; also RETRACE_API_KEYS).",
)
@click.option("--spool-max-bytes", type=int, default=None, help="Spool cap; over it ingest 503s.")
@click.option("--log-level", default="warning", show_default=True, help="uvicorn log level.")
def serve(
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    data_dir: Path | None,
    clickhouse_url: str | None,
    api_keys: tuple[str, ...],
    spool_max_bytes: int | None,
    log_level: str,
) -> None:
    """Run the collector: OTLP/HTTP ingest on /v1/traces, OTLP/gRPC on --grpc-port and the
    query API on /api/v1."""
    import uvicorn

    from collector.app import create_app

    settings = _settings(
        host=host,
        port=port,
        grpc_port=grpc_port,
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        spool_max_bytes=spool_max_bytes,
    )
    if api_keys:
        joined = ",".join(filter(None, [settings.api_keys, *api_keys]))
        settings = settings.model_copy(update={"api_keys": joined})
    # Bind before opening the store: a busy port is a one-line error, and --port 0 works.
    sock = _bind(settings.host, settings.port)
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    settings = _check_grpc_port(settings)
    app = create_app(settings)
    state = app.state.collector
    where = (
        f"clickhouse at {settings.clickhouse_url}"
        if settings.clickhouse_url
        else f"chdb at {settings.data_dir}"
    )
    mode = "open mode, project 'default'" if state.auth.open_mode else "API keys required"
    click.echo(
        f"Retrace collector listening on {_url(settings.host, settings.port)} "
        f"(store: {where}; {mode})"
    )
    if settings.grpc_port:
        click.echo(f"OTLP/gRPC on {_grpc_address(settings.host, settings.grpc_port)}")
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _check_grpc_port(settings: Settings) -> Settings:
    """Settings with gRPC off when its default port is taken (a one-line warning); a port given
    explicitly (flag or RETRACE_GRPC_PORT) that is taken is a one-line error."""
    if settings.grpc_port == 0:
        return settings
    try:
        _bind(settings.host, settings.grpc_port).close()
    except ConfigError as exc:
        if "grpc_port" in settings.model_fields_set:
            raise ConfigError(f"OTLP/gRPC: {exc.message} (--grpc-port 0 turns gRPC off)") from None
        click.echo(f"warning: OTLP/gRPC off: {exc.message} (set --grpc-port)", err=True)
        return settings.model_copy(update={"grpc_port": 0})
    return settings


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# --- keys -------------------------------------------------------------------------------------


def _store_options(func: _Command) -> _Command:
    func = click.option(
        "--clickhouse-url", default=None, help="ClickHouse server (else the embedded store)."
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Embedded store directory (default .retrace).",
    )(func)
    return func


def _open(data_dir: Path | None, clickhouse_url: str | None) -> TraceStore:
    from collector.store import open_store

    settings = _settings(data_dir=data_dir, clickhouse_url=clickhouse_url)
    try:
        store = open_store(settings)
    except StoreLockedError as exc:
        raise StoreLockedError(
            f"{exc.message}. Stop the running collector to manage keys of an embedded store, "
            "or register keys at start-up with `retrace serve --api-key PROJECT:KEY`"
        ) from exc
    return store


@click.group()
def keys() -> None:
    """Manage project API keys (stored hashed; a key is shown once)."""


@keys.command("create")
@click.option("--project", required=True, help="Project the key writes to and reads from.")
@click.option("--name", default="", help="A label to recognise the key by.")
@_store_options
def create_key(project: str, name: str, data_dir: Path | None, clickhouse_url: str | None) -> None:
    """Create a key and print it once."""
    validate_project(project)
    store = _open(data_dir, clickhouse_url)
    try:
        key_id, key = generate_key()
        store.add_api_key(project, key_id, hash_key(key), name)
    finally:
        store.close()
    click.echo(key)
    click.echo(
        f"key id {key_id} for project {project!r}: store it now, it is not shown again", err=True
    )


@keys.command("list")
@_store_options
def list_keys(data_dir: Path | None, clickhouse_url: str | None) -> None:
    """List key ids, projects and names (never the keys)."""
    store = _open(data_dir, clickhouse_url)
    try:
        lister = getattr(store, "list_api_keys", None)
        if lister is None:
            raise ConfigError(
                f"the {store.backend_name} store cannot list API keys yet (it lacks "
                "list_api_keys); revoke a key by the id printed when it was created"
            )
        rows = lister()
    finally:
        store.close()
    for row in rows:
        fields = row if isinstance(row, dict) else getattr(row, "__dict__", {"row": row})
        click.echo("\t".join(str(v) for v in fields.values()))


@keys.command("revoke")
@click.argument("key_id")
@_store_options
def revoke_key(key_id: str, data_dir: Path | None, clickhouse_url: str | None) -> None:
    """Revoke a key by id (a running collector stops accepting it within seconds)."""
    store = _open(data_dir, clickhouse_url)
    try:
        found = store.revoke_api_key(key_id)
    finally:
        store.close()
    if not found:
        raise ConfigError(f"no API key with id {key_id!r}")
    click.echo(f"revoked {key_id}")


# --- migrate ----------------------------------------------------------------------------------


@click.command()
@_store_options
@click.option(
    "--database",
    default=None,
    help="ClickHouse database (default retrace; RETRACE_CLICKHOUSE_DATABASE).",
)
@click.option(
    "--cluster",
    default=None,
    help="Create the schema ON CLUSTER (replicated + Distributed; RETRACE_CLICKHOUSE_CLUSTER).",
)
def migrate(
    data_dir: Path | None, clickhouse_url: str | None, database: str | None, cluster: str | None
) -> None:
    """Create or upgrade the store's schema, then exit.

    Run it once before starting several collectors on one ClickHouse (or cluster), or before
    pointing stock OpenTelemetry Collectors' ClickHouse exporter at its database.
    """
    from collector.store import open_store
    from schemas.migrations import SCHEMA_VERSION

    settings = _settings(
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        clickhouse_database=database,
        clickhouse_cluster=cluster,
    )
    store = open_store(settings)
    try:
        where = (
            f"database {settings.clickhouse_database} at {settings.clickhouse_url}"
            + (f" (cluster {settings.clickhouse_cluster})" if settings.clickhouse_cluster else "")
            if settings.clickhouse_url
            else f"the embedded store in {settings.data_dir}"
        )
    finally:
        store.close()
    click.echo(f"schema version {SCHEMA_VERSION} in {where}")
