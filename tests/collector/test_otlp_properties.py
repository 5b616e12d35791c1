"""Property tests: whatever the body, decoding returns a batch or raises a RetraceError.

Random bytes, truncations and bit flips of valid protobuf/JSON/gzip bodies, random JSON values and
random OTLP-shaped JSON documents. A returned batch's rows must pass pydantic validation when read
back, and its table must be what the model path builds (the builder fills it without any model).
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.otlp import SpanBatch, decode_export_request
from collector.redact import redact_text
from schemas.errors import RetraceError
from tests.collector.test_otlp import (
    JSON,
    PROTOBUF,
    Decoded,
    agent_run,
    encode,
    json_body,
    kv,
    manual_request,
    read_back,
    request_json,
    sdk_tracer,
    valid_span,
)

LIMIT = 1 << 20
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_bodies() -> dict[str, bytes]:
    with sdk_tracer() as (tracer, exporter):
        agent_run(tracer)
        request = encode(list(exporter.get_finished_spans()))
    raw = request.SerializeToString()
    return {"protobuf": raw, "json": json_body(request)}


BODIES = _valid_bodies()


def check(body: bytes, content_type: str, encoding: str | None = None) -> Decoded | None:
    """Decode; a RetraceError is an allowed outcome, any other exception fails the test."""
    try:
        batch = decode_export_request(
            body,
            content_type=content_type,
            content_encoding=encoding,
            project="prop",
            max_body_bytes=LIMIT,
        )
    except RetraceError as error:
        assert error.message
        return None
    assert isinstance(batch, SpanBatch)
    assert batch.rejected >= 0
    assert bool(batch.message) == (batch.rejected > 0)
    decoded = read_back(batch)  # the rows pass validation, and the table is the model path's
    for span in decoded.spans:
        assert span.project_id == "prop"
        assert set(span.payload_refs.values()) <= set(batch.payloads)
    return decoded


ENCODINGS = st.sampled_from([None, "gzip", "deflate", "identity"])
CONTENT_TYPES = st.sampled_from([PROTOBUF, JSON])


@SETTINGS
@given(body=st.binary(max_size=2048), content_type=CONTENT_TYPES, encoding=ENCODINGS)
def test_random_bytes(body: bytes, content_type: str, encoding: str | None) -> None:
    check(body, content_type, encoding)


@SETTINGS
@given(kind=st.sampled_from(sorted(BODIES)), data=st.data())
def test_truncated_bodies(kind: str, data: st.DataObject) -> None:
    body = BODIES[kind]
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    content_type = PROTOBUF if kind == "protobuf" else JSON
    check(body[:cut], content_type)
    compressed = gzip.compress(body)
    gz_cut = data.draw(st.integers(min_value=0, max_value=len(compressed)))
    check(compressed[:gz_cut], content_type, "gzip")


@SETTINGS
@given(kind=st.sampled_from(sorted(BODIES)), data=st.data())
def test_bit_flipped_bodies(kind: str, data: st.DataObject) -> None:
    body = bytearray(BODIES[kind])
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), min_size=1, max_size=8
        )
    )
    for index, value in flips:
        body[index] = value
    content_type = PROTOBUF if kind == "protobuf" else JSON
    check(bytes(body), content_type)
    check(zlib.compress(bytes(body)), content_type, "deflate")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(value=JSON_VALUES)
def test_random_json_values(value: Any) -> None:
    check(json.dumps(value).encode(), JSON)


# OTLP-shaped documents: the right keys with random (often wrong) values reach the deep paths.
HEX_IDS = st.one_of(
    st.text("0123456789abcdefABCDEF", min_size=0, max_size=34),
    st.sampled_from(["0" * 32, "0" * 16, "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAA="]),
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "12", "-7", "SPAN_KIND_SERVER"]),
)
ANY_VALUE = st.recursive(
    st.one_of(
        st.fixed_dictionaries({"stringValue": SCALAR}),
        st.fixed_dictionaries({"boolValue": SCALAR}),
        st.fixed_dictionaries({"intValue": SCALAR}),
        st.fixed_dictionaries({"doubleValue": SCALAR}),
        st.fixed_dictionaries({"bytesValue": SCALAR}),
        st.just({}),
        SCALAR,
    ),
    lambda children: st.one_of(
        st.fixed_dictionaries(
            {"arrayValue": st.fixed_dictionaries({"values": st.lists(children, max_size=3)})}
        ),
        st.fixed_dictionaries(
            {
                "kvlistValue": st.fixed_dictionaries(
                    {
                        "values": st.lists(
                            st.fixed_dictionaries({"key": SCALAR, "value": children}), max_size=3
                        )
                    }
                )
            }
        ),
    ),
    max_leaves=8,
)
ATTRIBUTES = st.one_of(
    st.lists(st.fixed_dictionaries({"key": st.text(max_size=10), "value": ANY_VALUE}), max_size=4),
    SCALAR,
)
TIMES = st.one_of(
    st.integers(min_value=-1, max_value=2**64 + 1), st.integers(0, 2**64).map(str), SCALAR
)
SPAN = st.fixed_dictionaries(
    {},
    optional={
        "traceId": HEX_IDS,
        "spanId": HEX_IDS,
        "parentSpanId": HEX_IDS,
        "traceState": SCALAR,
        "name": st.one_of(st.text(max_size=10), SCALAR),
        "kind": SCALAR,
        "startTimeUnixNano": TIMES,
        "endTimeUnixNano": TIMES,
        "attributes": ATTRIBUTES,
        "events": st.lists(
            st.fixed_dictionaries(
                {}, optional={"timeUnixNano": TIMES, "name": SCALAR, "attributes": ATTRIBUTES}
            ),
            max_size=2,
        ),
        "links": st.lists(
            st.fixed_dictionaries(
                {}, optional={"traceId": HEX_IDS, "spanId": HEX_IDS, "attributes": ATTRIBUTES}
            ),
            max_size=2,
        ),
        "status": st.one_of(
            SCALAR, st.fixed_dictionaries({}, optional={"code": SCALAR, "message": SCALAR})
        ),
    },
)
DOCUMENT = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "resource": st.one_of(
                        SCALAR, st.fixed_dictionaries({}, optional={"attributes": ATTRIBUTES})
                    ),
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "scope": st.one_of(
                                    SCALAR,
                                    st.fixed_dictionaries(
                                        {}, optional={"name": SCALAR, "version": SCALAR}
                                    ),
                                ),
                                "spans": st.lists(SPAN, max_size=3),
                            },
                        ),
                        max_size=2,
                    ),
                },
            ),
            max_size=2,
        )
    }
)


@SETTINGS
@given(document=DOCUMENT)
def test_random_otlp_shaped_json(document: dict[str, Any]) -> None:
    body = json.dumps(document, allow_nan=True).encode()
    check(body, JSON)


def test_a_valid_span_among_random_ones_is_kept() -> None:
    # Sanity check of the strategy's target: a well-formed span passes through check().
    good = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "ok",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000000001000,
        "attributes": [{"key": "n", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}}],
    }
    batch = check(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good]}]}]}).encode(), JSON
    )
    assert batch is not None and [s.name for s in batch.spans] == ["ok"]


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_prefix_of_a_small_body(kind: str) -> None:
    body = BODIES[kind]
    content_type = PROTOBUF if kind == "protobuf" else JSON
    for cut in range(0, len(body), max(1, len(body) // 300)):
        check(body[:cut], content_type)


SECRETISH = st.lists(
    st.sampled_from(
        [
            "sk-proj-Abc123Def456Ghi789Jkl012Mno345",
            "AKIAIOSFODNN7EXAMPLE",
            "Bearer abc123def456ghi",
            "password=hunter2",
            '"api_key": "xyz"',
            "postgres://u:pw@db/x",
            "max_tokens: 5",
            "plain words ",
            "\\u002d",
            " ",
            "\n",
        ]
    )
    | st.text(max_size=8),
    max_size=8,
).map("".join)


@SETTINGS
@given(values=st.lists(SECRETISH, min_size=1, max_size=6), as_json=st.booleans())
def test_decode_redacts_exactly_like_redact_text(values: list[str], as_json: bool) -> None:
    # Whatever the fast paths skip (clean bodies, clean spans, caches), every stored value is
    # what redact_text makes of it.
    attributes = [kv(f"app.v{i}", string_value=value) for i, value in enumerate(values)]
    body = manual_request([valid_span(1, attributes=attributes)])
    if as_json:
        body = json.dumps(request_json(ExportTraceServiceRequest.FromString(body))).encode()
    batch = check(body, JSON if as_json else PROTOBUF)
    assert batch is not None
    span = batch.spans[0]
    for i, value in enumerate(values):
        key = f"app.v{i}"
        stored = (
            batch.payloads[span.payload_refs[key]].decode()
            if key in span.payload_refs
            else span.attributes[key]
        )
        assert stored == redact_text(value)[0]
