"""Where a replay's trajectory comes from: the Replayer's loader seam.

A source is a ``Trajectory`` itself, a golden trajectory file, or a trace id. The Replayer takes
a ``TrajectoryLoader``; ``DefaultTrajectoryLoader`` reads all three, trace ids from the
collector it is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from replay._trajectory import load_trajectory, trajectory_from_detail
from schemas.errors import NotFoundError, ReplayError
from schemas.models import Trajectory

if TYPE_CHECKING:
    from collector.client import CollectorClient

TrajectorySource = Trajectory | Path | str


class TrajectoryLoader(Protocol):
    """Turns a source into the trajectory to replay; ``ReplayError`` when it cannot."""

    def __call__(self, source: TrajectorySource) -> Trajectory: ...


class DefaultTrajectoryLoader:
    """A ``Trajectory`` as is; a ``Path``, or a string naming an existing ``*.json`` file, read
    as a golden trajectory; any other string a trace id read from ``client`` (a ``ReplayError``
    without one)."""

    def __init__(self, client: CollectorClient | None = None) -> None:
        self.client = client

    def __call__(self, source: TrajectorySource) -> Trajectory:
        if isinstance(source, Trajectory):
            return source
        path = Path(source)
        if isinstance(source, Path) or (path.suffix == ".json" and path.exists()):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ReplayError(f"cannot read trajectory file {path}: {exc.strerror}") from None
            return load_trajectory(text, source=str(path))
        if self.client is None:
            raise ReplayError(
                f"{source!r} is not a trajectory file, and no collector endpoint was given "
                "to look it up as a trace id"
            )
        try:
            detail = self.client.get_trace(source)
        except NotFoundError:
            raise ReplayError(
                f"unknown trace {source!r} at {self.client.endpoint} (in this project)"
            ) from None
        return trajectory_from_detail(detail)


def source_label(source: TrajectorySource) -> str:
    """How a source is named in outcomes and suite reports."""
    return source.trace_id if isinstance(source, Trajectory) else str(source)
