"""``retrace suite``: named suites of recorded traces kept on the collector, as regression tests.

``retrace suite add NAME TRACE…`` keeps traces in a suite (adding one twice keeps it once; an
unknown trace adds nothing and names it), ``list``/``show``/``remove`` manage them, ``export``
writes the suite's golden files to commit (the ``retrace export`` format, so ``retrace ci DIR``
replays them), and ``retrace ci --suite NAME --endpoint URL`` replays the suite itself.
Every command is a client of a running collector, scoped to the API key's project.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from replay.browse_cli import _API_KEY, _ENDPOINT, _JSON, _client, _console, _cut, _time
from schemas.errors import InvalidInputError, NotFoundError
from schemas.ids import check_id
from schemas.models import Suite, SuiteSource

log = logging.getLogger(__name__)

__all__ = ["suite"]


def _fetch(client: object, name: str) -> Suite:
    from collector.client import CollectorClient

    assert isinstance(client, CollectorClient)
    try:
        return client.get_suite(name)
    except NotFoundError:
        raise InvalidInputError(
            f"suite {name!r} has no traces at {client.endpoint} (`retrace suite list` shows "
            "the suites)"
        ) from None


@click.group()
def suite() -> None:
    """Named suites of recorded traces, replayed in CI by `retrace ci --suite NAME`."""


@suite.command("add")
@click.argument("name")
@click.argument("trace_ids", nargs=-1, required=True)
@click.option("--note", default="", help="Why these traces are in the suite.")
@_JSON
@_ENDPOINT
@_API_KEY
def add(
    name: str,
    trace_ids: tuple[str, ...],
    note: str,
    as_json: bool,
    endpoint: str | None,
    api_key: str | None,
) -> None:
    """Add TRACE_IDS to suite NAME (created by its first trace). A trace already in the suite
    stays as it was; if any trace is unknown, nothing is added."""
    check_id(name, "suite name")
    for trace_id in trace_ids:
        check_id(trace_id, "trace id")
    with _client(endpoint, api_key) as client:
        stored = client.add_to_suite(name, trace_ids, note=note, source=SuiteSource.CLI)
    if as_json:
        click.echo(stored.model_dump_json(indent=2))
        return
    already = [t for t in dict.fromkeys(trace_ids) if t not in stored.added]
    click.echo(
        f"suite {name}: added {len(stored.added)} trace(s)"
        + (f", {len(already)} already in it" if already else "")
        + f"; {stored.trace_count} in all"
    )


@suite.command("list")
@_JSON
@_ENDPOINT
@_API_KEY
def list_(as_json: bool, endpoint: str | None, api_key: str | None) -> None:
    """The project's suites, by name."""
    with _client(endpoint, api_key) as client:
        suites = client.list_suites()
    if as_json:
        click.echo(json.dumps({"suites": [s.model_dump(mode="json") for s in suites]}, indent=2))
        return
    if not suites:
        click.echo("no suites yet (`retrace suite add NAME TRACE_ID` makes one)")
        return
    table = Table()
    table.add_column("suite", no_wrap=True)
    table.add_column("traces", justify="right")
    table.add_column("updated (UTC)", no_wrap=True)
    for s in suites:
        table.add_row(escape(s.name), str(s.trace_count), _time(s.updated_at))
    _console().print(table)


@suite.command("show")
@click.argument("name")
@_JSON
@_ENDPOINT
@_API_KEY
def show(name: str, as_json: bool, endpoint: str | None, api_key: str | None) -> None:
    """The traces of suite NAME, in the order they were added, with each run's input."""
    check_id(name, "suite name")
    with _client(endpoint, api_key) as client:
        found = _fetch(client, name)
        if as_json:
            click.echo(found.model_dump_json(indent=2))
            return
        inputs: dict[str, str] = {}
        for t in found.traces:
            try:
                inputs[t.trace_id] = client.get_trace(t.trace_id).trace.input_preview
            except NotFoundError:  # deleted since (a deleted trace leaves its suites)
                inputs[t.trace_id] = ""
    table = Table(title=f"suite {escape(name)}: {found.trace_count} trace(s)")
    table.add_column("trace", no_wrap=True, min_width=32)
    table.add_column("added (UTC)", no_wrap=True)
    table.add_column("by", no_wrap=True)
    table.add_column("input")
    table.add_column("note")
    for t in found.traces:
        table.add_row(
            t.trace_id,
            _time(t.added_at),
            t.source.value,
            escape(_cut(inputs[t.trace_id], 60)),
            escape(_cut(t.note, 40)),
        )
    _console().print(table)


@suite.command("remove")
@click.argument("name")
@click.argument("trace_id")
@_ENDPOINT
@_API_KEY
def remove(name: str, trace_id: str, endpoint: str | None, api_key: str | None) -> None:
    """Remove TRACE_ID from suite NAME."""
    check_id(name, "suite name")
    check_id(trace_id, "trace id")
    with _client(endpoint, api_key) as client:
        try:
            client.remove_from_suite(name, trace_id)
        except NotFoundError:
            raise InvalidInputError(f"trace {trace_id} is not in suite {name!r}") from None
    click.echo(f"removed {trace_id} from suite {name}")


@suite.command("export")
@click.argument("name")
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the golden trajectories into (one <trace_id>.json each).",
)
@_ENDPOINT
@_API_KEY
def export(name: str, directory: Path, endpoint: str | None, api_key: str | None) -> None:
    """Write the traces of suite NAME as golden files to commit (`retrace ci DIR` replays
    them)."""
    from replay.cli import write_golden

    check_id(name, "suite name")
    with _client(endpoint, api_key) as client:
        found = _fetch(client, name)
        directory.mkdir(parents=True, exist_ok=True)
        for t in found.traces:
            path, steps = write_golden(client, t.trace_id, directory, client.endpoint)
            click.echo(f"{path}  ({steps} steps)")
    click.echo(f"suite {name}: {found.trace_count} golden file(s) in {directory}")
