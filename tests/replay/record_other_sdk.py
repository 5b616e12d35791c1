"""Run the fixture LangGraph app instrumented only by another SDK, exporting OTLP/HTTP.

``python -m tests.replay.record_other_sdk --sdk openinference|openllmetry --endpoint URL
[--question TEXT] [--hide-outputs]`` prints the trace id. Nothing from Retrace is imported: the
app is the user's graph (``tests.replay.langgraph_fixture``), the tracing is the SDK's
``LangChainInstrumentor`` / ``LangchainInstrumentor`` with the stock OTLP exporter.
``--hide-outputs`` records with OpenInference's ``TraceConfig(hide_outputs=True)`` or, for
OpenLLMetry, ``TRACELOOP_TRACE_CONTENT=false`` (set by the caller in the environment).
"""

from __future__ import annotations

import argparse

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sdk", choices=["openinference", "openllmetry"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--question", default=None)
    parser.add_argument("--hide-outputs", action="store_true")
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{args.endpoint}/v1/traces"))
    )
    seen = InMemorySpanExporter()  # only to print the trace id
    provider.add_span_processor(SimpleSpanProcessor(seen))
    if args.sdk == "openinference":
        from openinference.instrumentation import TraceConfig
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(
            tracer_provider=provider, config=TraceConfig(hide_outputs=args.hide_outputs)
        )
    else:
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=provider)

    from tests.replay.langgraph_fixture import QUESTION, graph

    graph.invoke({"messages": [("user", args.question or QUESTION)]})
    provider.force_flush()
    provider.shutdown()
    (trace_id,) = {format(s.context.trace_id, "032x") for s in seen.get_finished_spans()}
    print(trace_id)


if __name__ == "__main__":
    main()
