"""Who the runner's spans say they come from: service name, instrumentation scope, resource.

Shared by the live tracer (``runner.tracing``) and the journal that re-exports a dead run's root
(``runner.journal``), so a recovered span looks exactly like one the run would have sent.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource

from schemas import attributes as A

SERVICE_NAME = "retrace-runner"
SCOPE_NAME = "retrace.runner"


def runner_resource(project: str) -> Resource:
    """The OpenTelemetry resource of every span the runner exports for ``project``."""
    return Resource.create({A.SERVICE_NAME: SERVICE_NAME, A.RETRACE_PROJECT: project})
