"""MCP servers that ship with Retrace, each run as ``python -m runner.mcp_servers.<name>``.

* ``sandbox_server``: run Python / shell and read, write, list files, all inside a sandbox
  backend (gVisor by default) with the run's workspace mounted at ``/workspace``.
* ``data_server``: read-only SQL over the bundled sample dataset (``runner.data.SAMPLE_DB``).

Both export their spans (the MCP SDK's ``tools/call`` server spans, which join the caller's trace
through the W3C ``traceparent`` in each request's ``_meta``) over OTLP/HTTP to
``RETRACE_ENDPOINT`` when it is set.
"""

from typing import Final

#: ``python -m`` module of the bundled sandbox server (the bridge snapshots around its calls).
SANDBOX_SERVER_MODULE: Final = "runner.mcp_servers.sandbox_server"
#: ``python -m`` module of the bundled data server.
DATA_SERVER_MODULE: Final = "runner.mcp_servers.data_server"
#: Key in a sandbox tool result's ``_meta`` holding the execution stats (backend, exit code,
#: CPU, memory, limits...); timings live here, not in the structured result, so that results
#: stay reproducible for replay.
SANDBOX_META_KEY: Final = "retrace/sandbox"

__all__ = ["DATA_SERVER_MODULE", "SANDBOX_META_KEY", "SANDBOX_SERVER_MODULE"]
