"""The collector's own metrics, rendered as Prometheus text for ``GET /metrics``.

Counters are plain integers behind one lock (no client library needed); gauges are read from
callables at scrape time so they are never stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_COUNTERS: dict[str, str] = {
    "retrace_spans_accepted_total": "Spans acknowledged by OTLP/HTTP or OTLP/gRPC (in the spool).",
    "retrace_spans_rejected_total": "Spans refused at ingest (partial success).",
    "retrace_spans_stored_total": "Spans written to the store by the spool writer.",
    "retrace_ingest_requests_rejected_total": "OTLP requests refused whole (4xx/5xx).",
    "retrace_store_insert_failures_total": "Failed store inserts (retried with backoff).",
    "retrace_store_batches_total": "Batches written to the store.",
    "retrace_dead_letter_batches_total": "Batches (or spool records) the store refused for good, "
    "written to DATA_DIR/dead-letter instead.",
    "retrace_dead_letter_spans_total": "Spans in dead-lettered batches.",
}


class CollectorMetrics:
    """Counters, request latency histograms and scrape-time gauges. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts + [sum, count]
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, value: int = 1) -> None:
        """Add ``value`` to one of the known counters."""
        with self._lock:
            self._counters[name] += value

    def value(self, name: str) -> int:
        with self._lock:
            return self._counters[name]

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Register a gauge read at scrape time."""
        self._gauges[name] = (help_text, read)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency, by route template (not raw path)."""
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.get((method, route))
            if hist is None:
                hist = [0.0] * (len(_LATENCY_BUCKETS) + 2)
                self._latency[(method, route)] = hist
            for i, bound in enumerate(_LATENCY_BUCKETS):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def render(self) -> str:
        """Prometheus text exposition format."""
        lines: list[str] = []
        with self._lock:
            counters = dict(self._counters)
            requests = dict(self._requests)
            latency = {k: list(v) for k, v in self._latency.items()}
        for name, help_text in _COUNTERS.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name} {counters[name]}")
        for name, (help_text, read) in self._gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines.append(f"{name} {_num(read())}")
        name = "retrace_http_requests_total"
        lines.append(f"# HELP {name} HTTP requests by method, route and status.")
        lines.append(f"# TYPE {name} counter")
        for (method, route, status), count in sorted(requests.items()):
            labels = f'method="{method}",route="{_esc(route)}",status="{status}"'
            lines.append(f"{name}{{{labels}}} {count}")
        name = "retrace_http_request_duration_seconds"
        lines += [f"# HELP {name} HTTP request latency.", f"# TYPE {name} histogram"]
        for (method, route), hist in sorted(latency.items()):
            base = f'method="{method}",route="{_esc(route)}"'
            for i, bound in enumerate(_LATENCY_BUCKETS):
                lines.append(f'{name}_bucket{{{base},le="{bound}"}} {int(hist[i])}')
            lines.append(f'{name}_bucket{{{base},le="+Inf"}} {int(hist[-1])}')
            lines.append(f"{name}_sum{{{base}}} {hist[-2]:.6f}")
            lines.append(f"{name}_count{{{base}}} {int(hist[-1])}")
        return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text body, by name (for clients, tests and benches)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
