"""``retrace ui``: serve the Streamlit app against a collector's query API."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from schemas.settings import DEFAULT_UI_PORT, Settings

APP_SCRIPT = Path(__file__).parent / "app.py"


def streamlit_argv(port: int, address: str) -> list[str]:
    """The command that serves the app (a headless Streamlit server)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
        # Streamlit runs a full garbage collection after every script run by default: with
        # the app's modules loaded that is ~0.3 s holding the GIL, during which the server
        # cannot send the page's last elements. Python's own collector still runs.
        "--runner.postScriptGC",
        "false",
        # Pages write with st.* calls only; no bare expression is meant to be drawn. Without
        # magic a page compiles faster (Streamlit recompiles them once every tab is closed).
        "--runner.magicEnabled",
        "false",
    ]


@click.command("ui")
@click.option("--api", "api", default=None, help="Collector base URL [env RETRACE_ENDPOINT].")
@click.option(
    "--port", type=int, default=None, help=f"Port to serve on [default {DEFAULT_UI_PORT}]."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--api-key",
    default=None,
    help="Project API key [env RETRACE_API_KEY]. Prefer the env var: flags show in `ps`.",
)
@click.option(
    "--prices",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="JSON price table for cost estimates [env RETRACE_UI_PRICES_FILE].",
)
def ui(
    api: str | None, port: int | None, host: str, api_key: str | None, prices: Path | None
) -> None:
    """Serve the Retrace UI (a client of the collector's query API only)."""
    settings = Settings()
    env = dict(os.environ)
    env["RETRACE_ENDPOINT"] = (api or settings.endpoint).rstrip("/")
    if api_key:
        env["RETRACE_API_KEY"] = api_key
    if prices is not None:
        env["RETRACE_UI_PRICES_FILE"] = str(prices.resolve())
    serve_port = port if port is not None else settings.ui_port
    argv = streamlit_argv(serve_port, host)
    click.echo(f"Retrace UI on http://{host}:{serve_port} (collector {env['RETRACE_ENDPOINT']})")
    sys.stdout.flush()
    # Replace this process: signals reach Streamlit directly and the pid stays the server's.
    os.execve(sys.executable, argv, env)
