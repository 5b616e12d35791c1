"""``retrace doctor``: which sandbox backends work here, and why the others do not."""

from __future__ import annotations

import sys

import click

from runner.sandbox._probe import probe_backends
from schemas.settings import Settings


@click.command("doctor")
@click.option("--runsc-path", default=None, help="runsc binary (default: settings).")
@click.option(
    "--insecure", is_flag=True, default=None, help="Also try the 'process' backend (no isolation)."
)
def doctor(runsc_path: str | None, insecure: bool | None) -> None:
    """Check the sandbox backends: one line each; exit 0 when the default backend works."""
    settings = Settings()
    statuses = probe_backends(
        runsc_path=runsc_path or settings.runsc_path,
        insecure=settings.insecure if insecure is None else insecure,
    )
    default = settings.sandbox_backend
    for status in statuses:
        mark = " (default)" if status.name == default else ""
        if status.available:
            timing = f", {status.cold_start_s:.2f} s cold" if status.cold_start_s else ""
            click.echo(f"{status.name:<8} ok           {status.detail}{timing}{mark}")
        else:
            click.echo(f"{status.name:<8} unavailable: {status.detail}{mark}")
    ok = any(s.name == default and s.available for s in statuses)
    if not ok:
        click.echo(f"the default sandbox backend {default!r} does not work here", err=True)
    sys.exit(0 if ok else 1)
