"""Ingest throughput: realistic agent spans, gzip protobuf, concurrent client processes.

    .venv/bin/python bench/bench_ingest.py [--spans 200000] [--clients 4] [--batch 512]
                                           [--transport http|grpc|both]
                                           [--endpoint URL [--grpc-endpoint HOST:PORT]]
                                           [--data-dir DIR]

Starts a real ``retrace serve`` (embedded chDB in a temp dir; a fresh one per transport) unless
--endpoint is given. ``--transport grpc`` sends the same requests over OTLP/gRPC (gzip message
compression, RESOURCE_EXHAUSTED retried after the server's RetryInfo); ``both`` runs HTTP, then
gRPC, and prints the two rates side by side. Each
agent run is one ``invoke_agent`` root, chat spans carrying ~2 KB of distinct input messages and
tool spans with arguments/results, as the OTel SDK's BatchSpanProcessor would send them (up to
--batch spans per request). Client processes pre-encode their requests, then post them as fast
as the collector acknowledges (honouring 503/429 Retry-After). Reports spans/s from the first
request until ``retrace_spans_stored_total`` (i.e. queryable) covers every span, plus the
acknowledgement rate and the spool's fsync grouping.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.metrics import parse_metrics  # noqa: E402
from schemas import attributes as A  # noqa: E402

_VOCABULARY = (
    "the agent queried table rows revenue region customer order total average month year sql "
    "select from where group by join error retry tool result answer analysis data frame column "
    "python print value count distinct limit filter sort ascending descending null missing"
)
WORDS = _VOCABULARY.split()


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    return " ".join(words)


def build_requests(n_spans: int, batch: int, seed: int) -> list[bytes]:
    """gzip'd ExportTraceServiceRequest bodies holding ``n_spans`` spans of agent runs."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    rng = random.Random(seed)

    def kv(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    spans: list[Span] = []
    now = time.time_ns()
    while len(spans) < n_spans:
        trace_id = secrets.token_bytes(16)
        root_id = secrets.token_bytes(8)
        start = now - rng.randint(0, 3600) * 1_000_000_000
        steps = 10
        t = start
        children = []
        for step in range(steps):
            sid = secrets.token_bytes(8)
            if step % 2 == 0:
                messages = json.dumps(
                    [
                        {"role": "system", "content": "You are a data analyst."},
                        {"role": "user", "content": _text(rng, 1800)},
                    ]
                )
                output = json.dumps([{"role": "assistant", "content": _text(rng, 300)}])
                attrs = [
                    kv(A.GEN_AI_OPERATION_NAME, "chat"),
                    kv(A.GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
                    kv(A.GEN_AI_PROVIDER_NAME, "openai"),
                    kv(A.GEN_AI_INPUT_MESSAGES, messages),
                    kv(A.GEN_AI_OUTPUT_MESSAGES, output),
                    kv(A.GEN_AI_USAGE_INPUT_TOKENS, rng.randint(200, 2000)),
                    kv(A.GEN_AI_USAGE_OUTPUT_TOKENS, rng.randint(20, 400)),
                ]
                name = "chat gpt-4o-mini"
            else:
                attrs = [
                    kv(A.GEN_AI_OPERATION_NAME, "execute_tool"),
                    kv(A.GEN_AI_TOOL_NAME, "run_sql"),
                    kv(A.GEN_AI_TOOL_CALL_ID, secrets.token_hex(6)),
                    kv(A.GEN_AI_TOOL_CALL_ARGUMENTS, json.dumps({"sql": _text(rng, 120)})),
                    kv(A.GEN_AI_TOOL_CALL_RESULT, _text(rng, 400)),
                ]
                name = "execute_tool run_sql"
            dur = rng.randint(5, 900) * 1_000_000
            children.append(
                Span(
                    trace_id=trace_id,
                    span_id=sid,
                    parent_span_id=root_id,
                    name=name,
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=t,
                    end_time_unix_nano=t + dur,
                    attributes=attrs,
                    status=Status(code=Status.STATUS_CODE_OK),
                )
            )
            t += dur
        root = Span(
            trace_id=trace_id,
            span_id=root_id,
            name="invoke_agent analyst",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=t,
            attributes=[
                kv(A.GEN_AI_OPERATION_NAME, "invoke_agent"),
                kv(A.GEN_AI_AGENT_NAME, "analyst"),
            ],
            status=Status(code=Status.STATUS_CODE_OK),
        )
        spans.extend([*children, root])
    spans = spans[:n_spans]
    resource = {"service.name": "bench-agent", "telemetry.sdk.language": "python"}
    bodies = []
    for i in range(0, len(spans), batch):
        req = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": [kv(k, v) for k, v in resource.items()]},
                    scope_spans=[ScopeSpans(scope={"name": "bench"}, spans=spans[i : i + batch])],
                )
            ]
        )
        bodies.append(gzip.compress(req.SerializeToString(), compresslevel=6))
    return bodies


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_collector(
    data_dir: Path, log_path: Path, grpc_port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """``retrace serve --port 0`` in ``data_dir``; returns the process and its URL once healthy."""
    argv = [sys.executable, "-m", "retrace", "serve", "--port", "0", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        [*argv, "--grpc-port", str(grpc_port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=open(log_path, "wb"),  # noqa: SIM115 - the child keeps it
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"listening on (http://\S+)", line)
    if found is None:
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r} (see {log_path})")
    url = found.group(1)
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise SystemExit("collector did not become healthy")
        time.sleep(0.2)


def process_tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user+sys) used so far by ``pid`` itself and by its live children (decode
    workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        if int(entry) == pid:
            own += (utime + stime) / tick
        elif ppid == pid:
            children += (utime + stime) / tick
    return own, children


def server_threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the server process's threads, by thread name.

    chDB names its threads (``MergeMutate``: background merges of parts, ``ThreadPool``: insert
    and query work, ...); Python threads are all called ``python`` (HTTP, spool, writer, the
    decode pool's result thread).
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _grpc_worker(
    target: str, bodies: list[bytes], queue: list[int], lock: threading.Lock, retries: list[int]
) -> None:
    """Send ``bodies`` (plain protobuf; gRPC gzips each message) over one channel."""
    import grpc
    from google.rpc.error_details_pb2 import RetryInfo

    from collector.grpc_ingest import EXPORT_METHOD

    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(target, options=options) as channel:
        export = channel.unary_unary(EXPORT_METHOD)
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            while True:
                try:
                    export(bodies[i], timeout=120, compression=grpc.Compression.Gzip)
                    break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                        raise
                    trailing = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
                    delay = 1.0
                    if "google.rpc.retryinfo-bin" in trailing:
                        info = RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"])
                        delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
                    with lock:
                        retries[0] += 1
                    time.sleep(delay)


def client_process(
    url: str, bodies_path: str, start_evt: mp.Event, threads: int, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    """Post this client's bodies; ``url`` is ``grpc://HOST:PORT`` for OTLP/gRPC."""
    import pickle

    with open(bodies_path, "rb") as f:
        bodies: list[bytes] = pickle.load(f)
    lock = threading.Lock()
    queue = list(range(len(bodies)))
    retries = [0]
    start_evt.wait()
    first = time.time()

    def worker() -> None:
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop()
                while True:
                    r = http.post(url + "/v1/traces", content=bodies[i], headers=headers)
                    if r.status_code == 200:
                        break
                    if r.status_code in (429, 503):
                        with lock:
                            retries[0] += 1
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:200]}")

    if url.startswith("grpc://"):
        target = url.removeprefix("grpc://")
        pool = [
            threading.Thread(target=_grpc_worker, args=(target, bodies, queue, lock, retries))
            for _ in range(threads)
        ]
    else:
        pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((first, time.time(), retries[0]))


def spool_bench(threads: int, records: int, size: int) -> None:
    """Group commit alone: ``threads`` writers each appending and waiting for durability."""
    from collector.spool import Spool

    directory = Path(tempfile.mkdtemp(prefix="retrace-spool-bench-"))
    spool = Spool(directory, max_bytes=1 << 34)
    payload = os.urandom(size)
    per_thread = records // threads

    def writer() -> None:
        for _ in range(per_thread):
            spool.wait_durable(spool.append(payload), timeout=60)

    pool = [threading.Thread(target=writer) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    n = per_thread * threads
    print(f"spool: {n} durable appends of {size} B from {threads} threads in {elapsed:.2f}s")
    print(
        f"       {n / elapsed:,.0f} acked appends/s, {spool.stats.fsyncs} fsyncs "
        f"({n / max(spool.stats.fsyncs, 1):.1f} appends per fsync)"
    )
    spool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="concurrent requests per client")
    parser.add_argument("--transport", choices=("http", "grpc", "both"), default="http")
    parser.add_argument("--endpoint", default=None, help="use a running collector")
    parser.add_argument("--grpc-endpoint", default=None, help="its OTLP/gRPC HOST:PORT")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--spool-only", action="store_true", help="measure the spool's group commit alone"
    )
    args = parser.parse_args()
    if args.spool_only:
        spool_bench(threads=32, records=20_000, size=2048)
        spool_bench(threads=1, records=2_000, size=2048)
        return
    transports = ["http", "grpc"] if args.transport == "both" else [args.transport]
    rates = {transport: run(args, transport) for transport in transports}
    if len(rates) > 1:
        print(
            "summary:          "
            + ", ".join(
                f"{t} {acked:,.0f} acked / {stored:,.0f} stored spans/s"
                for t, (acked, stored) in rates.items()
            )
            + f" (load average {os.getloadavg()[0]:.1f})"
        )


def run(args: argparse.Namespace, transport: str) -> tuple[float, float]:
    """One measurement over ``transport``; returns (acknowledged, stored) spans/s."""
    print(f"--- transport: {transport}")
    tmp = Path(tempfile.mkdtemp(prefix="retrace-bench-"))
    proc = None
    url = args.endpoint
    grpc_port = _free_port() if transport == "grpc" else 0
    if url is None:
        data_dir = Path(args.data_dir) / transport if args.data_dir else tmp / "data"
        proc, url = start_collector(data_dir, tmp / "collector.log", grpc_port)
    send_to = url
    if transport == "grpc":
        send_to = "grpc://" + (args.grpc_endpoint or f"127.0.0.1:{grpc_port}")
    try:
        before = parse_metrics(httpx.get(url + "/metrics").text)

        import pickle

        t_build = time.time()
        per_client = args.spans // args.clients
        paths = []
        raw_bytes = 0
        for c in range(args.clients):
            bodies = build_requests(per_client, args.batch, seed=c)
            raw_bytes += sum(len(b) for b in bodies)
            if transport == "grpc":  # gRPC compresses each message itself
                bodies = [gzip.decompress(b) for b in bodies]
            p = tmp / f"bodies-{c}.pkl"
            with open(p, "wb") as f:
                pickle.dump(bodies, f)
            paths.append(str(p))
        total = per_client * args.clients
        print(
            f"built {total} spans in {len(paths)} clients x ~{per_client // args.batch + 1} "
            f"requests ({raw_bytes / 1e6:.1f} MB gzip) in {time.time() - t_build:.1f}s"
        )

        ctx = mp.get_context("spawn")
        start_evt = ctx.Event()
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        procs = [
            ctx.Process(target=client_process, args=(send_to, p, start_evt, args.threads, out))
            for p in paths
        ]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let the clients load their bodies
        start_evt.set()
        target = before.get("retrace_spans_stored_total", 0) + total
        cpu_before = process_tree_cpu(proc.pid) if proc is not None else (0.0, 0.0)
        threads_before = server_threads_cpu(proc.pid) if proc is not None else {}
        t0 = time.time()
        stored = 0.0
        while True:
            m = parse_metrics(httpx.get(url + "/metrics", timeout=30).text)
            stored = m.get("retrace_spans_stored_total", 0)
            if stored >= target:
                break
            if time.time() - t0 > 900:
                raise SystemExit(f"timed out: stored {stored} of {target}")
            time.sleep(0.05)
        t_end = time.time()
        cpu_after = process_tree_cpu(proc.pid) if proc is not None else (0.0, 0.0)
        threads_after = server_threads_cpu(proc.pid) if proc is not None else {}
        cpu_server = cpu_after[0] - cpu_before[0]
        cpu_workers = cpu_after[1] - cpu_before[1]
        cpu_used = cpu_server + cpu_workers
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        first = min(r[0] for r in results)
        acked = max(r[1] for r in results)
        retries = sum(r[2] for r in results)
        stored_s = t_end - first
        appends = m["retrace_spool_appends_total"] - before.get("retrace_spool_appends_total", 0)
        fsyncs = m["retrace_spool_fsyncs_total"] - before.get("retrace_spool_fsyncs_total", 0)
        spooled = m.get("retrace_spool_appended_bytes_total", 0.0) - before.get(
            "retrace_spool_appended_bytes_total", 0.0
        )
        batches = m["retrace_store_batches_total"] - before.get("retrace_store_batches_total", 0)
        print(f"spans:            {total}")
        print(f"acknowledged in:  {acked - first:.2f}s  ({total / (acked - first):,.0f} spans/s)")
        print(f"stored in:        {stored_s:.2f}s  ({total / stored_s:,.0f} spans/s, queryable)")
        print(
            f"spool:            {appends:.0f} appends, {fsyncs:.0f} fsyncs "
            f"({appends / max(fsyncs, 1):.1f} requests per fsync), "
            f"{spooled / 1e6:.1f} MB written"
        )
        print(f"store batches:    {batches:.0f} ({total / max(batches, 1):,.0f} spans per insert)")
        print(f"back-pressure:    {retries} retries (503/429 or RESOURCE_EXHAUSTED)")
        if cpu_used:
            print(
                f"collector CPU:    {cpu_used:.1f}s for {total} spans = "
                f"{cpu_used / total * 1e6:.0f} us/span ({total / cpu_used:,.0f} spans per CPU-s)"
            )
            print(
                f"  of which:       server process {cpu_server / total * 1e6:.0f} us/span "
                f"(HTTP, spool, writer, store), decode workers "
                f"{cpu_workers / total * 1e6:.0f} us/span"
            )
            used = {
                name: threads_after[name] - threads_before.get(name, 0.0) for name in threads_after
            }
            busiest = sorted(used.items(), key=lambda item: -item[1])[:6]
            print(
                "  server threads: "
                + ", ".join(f"{name} {cpu / total * 1e6:.0f}" for name, cpu in busiest)
                + " us/span"
            )
        stages = ", ".join(
            f"{k} {m.get(f'retrace_writer_{k}_seconds_total', 0):.1f}s"
            for k in ("group", "insert", "commit")
        )
        print(f"writer wall time: {stages}")
        print(f"load average:     {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        return total / (acked - first), total / stored_s
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
