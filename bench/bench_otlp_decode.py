"""Benchmark: spans/s of OTLP decoding (collector.otlp.decode_export_request), which is a decode
worker's whole job per request: parse, validate, redact, move payloads, derive columns, and build
the store's Arrow batch (``SpanBatch``). Before issue 10 the Arrow table was built in a separate
step this benchmark did not count.

Realistic agent spans built with the official OTel SDK and encoded with its OTLP encoder: per run
one ``invoke_agent`` root, then alternating ``chat`` spans (~2 KB of input messages growing with
the conversation, output message, repeated system prompt and tool definitions, token usage) and
``execute_tool`` spans (arguments, ~500 B results, sandbox attributes). Requests hold 512 spans
(the SDK's BatchSpanProcessor default), gzip protobuf and JSON. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_otlp_decode.py [--spans 20000] [--repeat 5]

Figures are per core: CPU time of this process (robust on a shared machine) and wall time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.otlp import decode_export_request
from collector.redact import SCANNER
from schemas import attributes as A

SYSTEM = "You are a careful data analyst. Use the tools; never guess numbers. " * 6
TOOLS = json.dumps(
    [
        {
            "type": "function",
            "name": n,
            "description": f"Run {n} in the sandbox " * 4,
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
        }
        for n in ("run_python", "run_shell", "read_file", "write_file", "sql_query")
    ]
)


def _agent_spans(n_spans: int, *, secret: str = "") -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({A.SERVICE_NAME: "bench-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("retrace.runner", "0.1.0")
    made = 0
    run = 0
    while made < n_spans:
        run += 1
        task = f"Run {run}: compute revenue by region for 2024 and explain the top three. " * 2
        task += secret
        with tracer.start_as_current_span(
            "invoke_agent analyst",
            attributes={
                A.GEN_AI_OPERATION_NAME: "invoke_agent",
                A.GEN_AI_AGENT_NAME: "analyst",
                A.RETRACE_RUN_INPUT: task,
                A.RETRACE_RUN_ID: f"run-{run}",
            },
        ):
            made += 1
            messages = [{"role": "user", "parts": [{"type": "text", "content": task}]}]
            for step in range(9):
                if made >= n_spans:
                    break
                history = messages[-6:]
                with tracer.start_as_current_span(
                    "chat gpt-4o",
                    attributes={
                        A.GEN_AI_OPERATION_NAME: "chat",
                        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
                        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                        A.GEN_AI_SYSTEM_INSTRUCTIONS: SYSTEM,
                        A.GEN_AI_TOOL_DEFINITIONS: TOOLS,
                        A.GEN_AI_INPUT_MESSAGES: json.dumps(history),
                        A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [
                                        {
                                            "type": "tool_call",
                                            "name": "run_python",
                                            "id": f"call_{run}_{step}",
                                            "arguments": {"code": "print(1)"},
                                        }
                                    ],
                                }
                            ]
                        ),
                        A.GEN_AI_USAGE_INPUT_TOKENS: 900 + step * 120,
                        A.GEN_AI_USAGE_OUTPUT_TOKENS: 40 + step,
                        A.GEN_AI_REQUEST_TEMPERATURE: 0.0,
                        A.RETRACE_STEP_INDEX: 2 * step,
                        A.GEN_AI_RESPONSE_ID: f"chatcmpl-{run}-{step}",
                        A.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
                    },
                ):
                    made += 1
                result = f"region,revenue\nnorth,{run * 1000 + step}\n" * 25
                with tracer.start_as_current_span(
                    "execute_tool run_python",
                    attributes={
                        A.GEN_AI_OPERATION_NAME: "execute_tool",
                        A.GEN_AI_TOOL_NAME: "run_python",
                        A.GEN_AI_TOOL_CALL_ID: f"call_{run}_{step}",
                        A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"code": "import pandas\n" * 5}),
                        A.GEN_AI_TOOL_CALL_RESULT: result,
                        A.RETRACE_SANDBOX_BACKEND: "gvisor",
                        A.RETRACE_SANDBOX_EXIT_CODE: 0,
                        A.RETRACE_SANDBOX_CPU_MS: 12,
                        A.RETRACE_STEP_INDEX: 2 * step + 1,
                        A.RETRACE_MCP_SERVER: "sandbox",
                    },
                ):
                    made += 1
                messages.append(
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "text", "content": f"Step {step}: looked at the data. " * 8}
                        ],
                    }
                )
                messages.append({"role": "tool", "parts": [{"type": "text", "content": result}]})
    return list(exporter.get_finished_spans())[:n_spans]


def _to_json(request) -> bytes:  # type: ignore[no-untyped-def]
    """The OTLP JSON mapping of a request (hex ids, int enums)."""
    from google.protobuf.json_format import MessageToDict

    body = MessageToDict(request, use_integers_for_enums=True)
    for rs in body.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                import base64

                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(body).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spans = _agent_spans(args.spans)
    requests = [encode_spans(spans[i : i + args.batch]) for i in range(0, len(spans), args.batch)]
    bodies = {
        "protobuf": [r.SerializeToString() for r in requests],
        "protobuf+gzip": [gzip.compress(r.SerializeToString(), 6) for r in requests],
        "json": [_to_json(r) for r in requests],
    }
    # Worst case: a secret in every run's task, so every value of every batch is scanned.
    leaky = _agent_spans(args.spans, secret=" key sk-proj-Abc123Def456Ghi789Jkl012Mno345")
    bodies |= {
        "protobuf+secrets": [
            encode_spans(leaky[i : i + args.batch]).SerializeToString()
            for i in range(0, len(leaky), args.batch)
        ],
    }
    raw_bytes = sum(len(b) for b in bodies["protobuf"])
    print(f"redaction prefilter: {SCANNER}")
    print(
        f"{len(spans)} spans in {len(requests)} requests, {raw_bytes / len(spans):.0f} B/span "
        "protobuf"
    )
    for label, payload in bodies.items():
        content_type = "application/json" if label == "json" else "application/x-protobuf"
        encoding = "gzip" if label.endswith("gzip") else None
        best_cpu = best_wall = float("inf")
        decoded = 0
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            decoded = 0
            for body in payload:
                batch = decode_export_request(
                    body,
                    content_type=content_type,
                    content_encoding=encoding,
                    project="bench",
                    max_body_bytes=64 << 20,
                )
                decoded += batch.span_count
            best_cpu = min(best_cpu, time.process_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
        cpu_us, wall_us = best_cpu * 1e6 / decoded, best_wall * 1e6 / decoded
        print(
            f"{label:17s} {decoded / best_cpu:9,.0f} spans/s per CPU-second "
            f"({cpu_us:5.1f} µs/span CPU, {wall_us:5.1f} µs wall)"
        )


if __name__ == "__main__":
    main()
