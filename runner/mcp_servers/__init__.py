"""MCP servers that ship with Retrace, each run as ``python -m runner.mcp_servers.<name>``.

* ``sandbox_server``: run Python / shell and read, write, list files, all inside a sandbox
  backend (gVisor by default) with the run's workspace mounted at ``/workspace``.
* ``data_server``: read-only SQL over the bundled sample dataset (``runner.data.SAMPLE_DB``).

Both export their spans (the MCP SDK's ``tools/call`` server spans, which join the caller's trace
through the W3C ``traceparent`` in each request's ``_meta``) over OTLP/HTTP to
``RETRACE_ENDPOINT`` when it is set.
"""
