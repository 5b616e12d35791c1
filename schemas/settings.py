"""The one Settings object: ``RETRACE_*`` environment variables, overridden by CLI flags.

Read once at the edge (CLI, app factory) and passed down; nothing deeper reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_COLLECTOR_PORT = 4318  # the OTLP/HTTP port
DEFAULT_GRPC_PORT = 4317  # the OTLP/gRPC port
DEFAULT_UI_PORT = 8501
DEFAULT_PROJECT = "default"

SandboxBackendName = Literal["gvisor", "bwrap", "process"]


class Settings(BaseSettings):
    """Every knob Retrace has. Env names are the field names upper-cased with ``RETRACE_``."""

    model_config = SettingsConfigDict(env_prefix="RETRACE_", extra="ignore")

    # --- store -------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".retrace"), description="Embedded (chDB) store directory.")
    clickhouse_url: str | None = Field(None, description="Use a ClickHouse server instead.")
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "retrace"
    clickhouse_cluster: str | None = Field(
        None,
        description=(
            "A ClickHouse cluster name (remote_servers): create the schema ON CLUSTER as "
            "Replicated*MergeTree local tables behind Distributed tables (schemas/cluster.py)."
        ),
    )

    # --- collector ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = DEFAULT_COLLECTOR_PORT
    grpc_port: int = Field(
        DEFAULT_GRPC_PORT,
        ge=0,
        le=65535,
        description=(
            "OTLP/gRPC port (0: no gRPC). When left at the default and busy, the collector "
            "warns and serves HTTP only; a port given explicitly must be free."
        ),
    )
    dead_letter_after: int = Field(
        10,
        ge=1,
        description=(
            "Failed inserts of one batch, while the store answers pings, before it goes to "
            "DATA_DIR/dead-letter (a ClickHouse data error such as VIOLATED_CONSTRAINT goes "
            "there at once; store outages and overload errors are retried forever)."
        ),
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, description="Larger OTLP bodies get 413.")
    spool_dir: Path | None = Field(None, description="Write-ahead spool; default DATA_DIR/spool.")
    spool_max_bytes: int = Field(1024 * 1024 * 1024, description="Above this, ingest answers 503.")
    batch_max_spans: int = 50_000
    batch_max_wait_s: float = 0.5
    api_keys_file: Path | None = Field(None, description="Optional 'project:key' lines to load.")
    api_keys: str = Field(
        "", description="Comma-separated PROJECT:KEY pairs registered at collector start-up."
    )
    decode_workers: int = Field(
        -1, description="OTLP decode processes: -1 = one per CPU, 0 = in the server process."
    )
    resume_on_decision: bool = Field(
        True, description="After an approval decision, launch `retrace resume RUN_ID`."
    )
    max_jobs: int = Field(
        2,
        ge=1,
        description="Replay/resume processes one collector runs at once; beyond it, 429.",
    )

    # --- clients (runner, replay, ui, CLI) ---------------------------------------------------
    endpoint: str = Field(
        f"http://127.0.0.1:{DEFAULT_COLLECTOR_PORT}", description="Collector base URL."
    )
    api_key: SecretStr | None = None
    project: str = DEFAULT_PROJECT

    # --- runner ------------------------------------------------------------------------------
    sandbox_backend: SandboxBackendName = "gvisor"
    insecure: bool = Field(False, description="Allow the 'process' backend (no isolation).")
    runsc_path: str = "runsc"
    warm_pool_size: int = 2
    model: str = Field("offline:data-scientist", description="provider:model for the agent.")
    confine_to: Path | None = Field(
        None,
        description=(
            "Treat the agent config as someone else's (set for replays the collector starts on "
            "a client's behalf): read offline scripts and policies only from the bundled demo "
            "files and under this directory, start only the bundled MCP servers, never the "
            "'process' backend (runner/confinement.py)."
        ),
    )
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None

    # --- ui ----------------------------------------------------------------------------------
    ui_port: int = DEFAULT_UI_PORT
    ui_prices_file: Path | None = Field(
        None, description="JSON of model -> USD per million input/output tokens for cost estimates."
    )

    @property
    def effective_spool_dir(self) -> Path:
        return self.spool_dir if self.spool_dir is not None else self.data_dir / "spool"
