"""The DEFAULT expressions deriving Retrace's span columns in ClickHouse (migrations 0007, 0012).

Retrace's collector derives Operation, AgentName, Model, ToolName, token counts, step index,
session, user and the input/output previews in Python (``collector.conventions``,
``collector.otlp._previews``) and inserts them. A stock OpenTelemetry Collector writing straight
into ``otel_traces`` (its ClickHouse exporter) names only the exporter's 22 columns: ClickHouse
then computes each omitted Retrace column from its ``DEFAULT`` below, over ``SpanName``,
``SpanAttributes`` and ``ResourceAttributes``, with the same rules (GenAI, OpenInference,
OpenLLMetry keys; explicit attributes before what the span name implies).
``tests/schemas/test_derived_defaults.py`` checks that both give the same rows and summaries.

A default may name another column (``AgentName`` reads ``Operation``): ClickHouse computes the
omitted columns in dependency order. Retrace's own inserts name every column, so these
expressions never run for them. The project of an exporter row is its resource's
``retrace.project`` when that is a valid project id, else ``default``.

``schemas.tables`` declares these as the columns' defaults; the migration holds the same text.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DERIVED_DEFAULTS", "alter_statement"]


def _a(key: str) -> str:
    return f"SpanAttributes['{key}']"


def _r(key: str) -> str:
    return f"ResourceAttributes['{key}']"


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _first_nonempty(*exprs: str, otherwise: str = "''") -> str:
    args: list[str] = []
    for expr in exprs:
        args += [f"{expr} != ''", expr]
    return f"multiIf({', '.join(args)}, {otherwise})"


# "chat gpt-4o" -> head "chat", target "gpt-4o" (str.partition(" ")).
_HEAD: Final = (
    "if(position(SpanName, ' ') > 0, substring(SpanName, 1, position(SpanName, ' ') - 1), SpanName)"
)
_TARGET: Final = (
    "if(position(SpanName, ' ') > 0, substring(SpanName, position(SpanName, ' ') + 1), '')"
)
# collector.conventions: _GEN_AI_OPERATIONS (and _NAME_OPERATIONS for span names).
_GEN_AI_OPS: Final = ("chat", "text_completion", "generate_content", "execute_tool", "invoke_agent")
_NAME_OPS: Final = (
    "(" + ", ".join(f"'{o}'" for o in (*_GEN_AI_OPS, "create_agent", "embeddings")) + ")"
)


def _gen_ai_op(expr: str) -> str:
    return f"transform({expr}, ['text_completion', 'generate_content'], ['chat', 'chat'], {expr})"


_OI_KINDS: Final = (
    ("LLM", "chat"),
    ("TOOL", "execute_tool"),
    ("AGENT", "invoke_agent"),
    ("CHAIN", "chain"),
    ("RETRIEVER", "retrieval"),
    ("EMBEDDING", "embeddings"),
    ("RERANKER", "rerank"),
    ("GUARDRAIL", "guardrail"),
    ("EVALUATOR", "evaluate"),
)
_GA_OP = _a("gen_ai.operation.name")
_OI = _a("openinference.span.kind")
_TL = _a("traceloop.span.kind")
_RT = _a("llm.request.type")

OPERATION: Final = (
    f"multiIf({_GA_OP} != '', {_gen_ai_op(_GA_OP)}, "
    f"{_OI} != '', transform(upperUTF8({_OI}), {_list(tuple(k for k, _ in _OI_KINDS))}, "
    f"{_list(tuple(v for _, v in _OI_KINDS))}, lowerUTF8({_OI})), "
    f"{_TL} != '', transform({_TL}, ['agent', 'tool'], ['invoke_agent', 'execute_tool'], {_TL}), "
    f"{_RT} != '', transform({_RT}, ['chat', 'completion', 'embedding'], "
    f"['chat', 'chat', 'embeddings'], {_RT}), "
    f"{_HEAD} IN {_NAME_OPS}, {_gen_ai_op(_HEAD)}, '')"
)


def _named(explicit: tuple[str, str], operation: str) -> str:
    """AgentName / ToolName: the explicit attribute, else the OpenInference span's name, the
    OpenLLMetry entity (or span) name, else the span name's target."""
    first, second = (_a(k) for k in explicit)
    entity = _a("traceloop.entity.name")
    return (
        f"multiIf({first} != '', {first}, {second} != '', {second}, "
        f"Operation != '{operation}', '', "
        f"{_GA_OP} = '' AND {_OI} != '', SpanName, "
        f"{_GA_OP} = '' AND {_TL} != '', if({entity} != '', {entity}, SpanName), "
        f"{_HEAD} IN {_NAME_OPS}, {_TARGET}, '')"
    )


AGENT_NAME: Final = _named(("gen_ai.agent.name", "agent.name"), "invoke_agent")
TOOL_NAME: Final = _named(("gen_ai.tool.name", "tool.name"), "execute_tool")
MODEL: Final = (
    f"multiIf({_a('gen_ai.request.model')} != '', {_a('gen_ai.request.model')}, "
    f"{_a('gen_ai.response.model')} != '', {_a('gen_ai.response.model')}, "
    f"{_a('llm.model_name')} != '', {_a('llm.model_name')}, "
    f"Operation = 'chat' AND {_HEAD} IN {_NAME_OPS}, {_TARGET}, '')"
)

_UINT64_MAX: Final = 2**64 - 1
_INT32_MAX: Final = 2**31 - 1


def _count(expr: str) -> str:
    """conventions.parse_count: Nullable(UInt64), NULL when the value is no count."""
    number = f"toFloat64OrZero({expr})"
    return (
        f"if(match({expr}, '^[0-9]{{1,19}}$'), toUInt64OrZero({expr}), "
        f"if(toFloat64OrNull({expr}) >= 0 AND isFinite({number}), "
        f"if({number} >= 18446744073709551615., {_UINT64_MAX}, toUInt64({number})), NULL))"
    )


def _first_count(keys: tuple[str, ...]) -> str:
    """The first of the keys' values that is a count, else 0 (one ``_count`` mapped over them)."""
    values = ", ".join(_a(k) for k in keys)
    return f"ifNull(arrayFirst(x -> isNotNull(x), arrayMap(v -> {_count('v')}, [{values}])), 0)"


INPUT_TOKENS: Final = _first_count(
    (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "llm.usage.prompt_tokens",
    )
)
OUTPUT_TOKENS: Final = _first_count(
    (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "llm.usage.completion_tokens",
    )
)


def _step_index() -> str:
    step = _count(_a("retrace.step.index"))
    body = f"toInt32(if(isNull(n), -1, toInt64(least(assumeNotNull(n), {_INT32_MAX}))))"
    return _let("n", step, body)


def _first_text(keys: tuple[str, ...]) -> str:
    """conventions._first_text: the span's keys, then the resource's; a gen_ai.conversation.id
    equal to the span's retrace.run.id is skipped."""
    run_id = _a("retrace.run.id")
    values: list[str] = []
    for source in (_a, _r):
        for key in keys:
            value = source(key)
            if key == "gen_ai.conversation.id":
                values.append(f"if({value} IN ('', {run_id}), NULL, {value})")
            else:
                values.append(f"nullIf({value}, '')")
    return f"ifNull(coalesce({', '.join(values)}), '')"


SESSION_ID: Final = _first_text(
    (
        "session.id",
        "gen_ai.conversation.id",
        "traceloop.association.properties.session_id",
        "langfuse.session.id",
    )
)
USER_ID: Final = _first_text(
    (
        "user.id",
        "enduser.id",
        "traceloop.association.properties.user_id",
        "langfuse.user.id",
    )
)
PROJECT_ID: Final = (
    f"if(match({_r('retrace.project')}, '^[A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}$'), "
    f"{_r('retrace.project')}, 'default')"
)

# --- previews (collector.otlp._previews) ----------------------------------------------------------
_PREVIEW_CHARS: Final = 300


def _let(name: str, value: str, body: str) -> str:
    """``body`` with ``name`` bound to ``value`` once (a one-element arrayMap)."""
    return f"arrayMap({name} -> {body}, [{value}])[1]"


def _tool_call_part(p: str) -> str:
    return (
        f"if(JSONExtractString({p}, 'type') = 'tool_call' AND JSONType({p}, 'name') = 'String', "
        f"concat('[tool call: ', JSONExtractString({p}, 'name'), ']'), NULL)"
    )


def _part(p: str) -> str:
    """One part of a message: its text, a tool call's "[tool call: NAME]", else NULL."""
    text_is_str = (
        f"if(JSONHas({p}, 'content'), JSONType({p}, 'content') = 'String', "
        f"JSONType({p}, 'text') = 'String')"
    )
    text = (
        f"if(JSONHas({p}, 'content'), JSONExtractString({p}, 'content'), "
        f"JSONExtractString({p}, 'text'))"
    )
    return (
        f"multiIf(JSONType({p}) = 'String', toNullable(JSONExtractString({p})), "
        f"JSONType({p}) != 'Object', NULL, {text_is_str}, toNullable({text}), "
        f"{_tool_call_part(p)})"
    )


def _message_text(m: str) -> str:
    """_message_text: Nullable(String)."""
    parts = (
        f"if(JSONType({m}, 'parts') = 'Array', JSONExtractArrayRaw({m}, 'parts'), "
        f"if(JSONType({m}, 'content') = 'Array', JSONExtractArrayRaw({m}, 'content'), []))"
    )
    pieces = f"arrayFilter(x -> isNotNull(x), arrayMap(p -> {_part('p')}, {parts}))"
    call_name = (
        "if(JSONType(c, 'name') = 'String', toNullable(JSONExtractString(c, 'name')), "
        "if(JSONType(c, 'function', 'name') = 'String', "
        "toNullable(JSONExtractString(c, 'function', 'name')), NULL))"
    )
    calls = (
        f"arrayMap(n -> concat('[tool call: ', assumeNotNull(n), ']'), "
        f"arrayFilter(n -> isNotNull(n), arrayMap(c -> {call_name}, "
        f"arrayFilter(c -> JSONType(c) = 'Object', JSONExtractArrayRaw({m}, 'tool_calls')))))"
    )
    joined = (
        "if(length(ps) > 0, toNullable(arrayStringConcat(arrayMap(x -> assumeNotNull(x), ps), "
        "' ')), if(length(cs) > 0, toNullable(arrayStringConcat(cs, ' ')), NULL))"
    )
    return (
        f"if(JSONType({m}, 'content') = 'String' AND JSONExtractString({m}, 'content') != '', "
        f"toNullable(JSONExtractString({m}, 'content')), "
        f"{_let('ps', pieces, _let('cs', calls, joined))})"
    )


def _from_json(v: str, role: str) -> str:
    """_preview_from_json over a JSON text ``v``: Nullable(String).

    ``role`` is an SQL expression: the role whose last message is chosen in a list of messages,
    or '' for the last message whatever its role.
    """
    keys = ("input", "output", "text", "content", "answer", "result", "query", "task")
    object_value = (
        f"if(JSONHas({v}, 'role') OR JSONHas({v}, 'parts') OR JSONHas({v}, 'content'), "
        f"{_message_text(v)}, "
        f"arrayFirst(x -> isNotNull(x), arrayMap(k -> if(JSONType({v}, k) = 'String', "
        f"toNullable(JSONExtractString({v}, k)), NULL), {_list(keys)})))"
    )
    dicts = f"arrayFilter(m -> JSONType(m) = 'Object', JSONExtractArrayRaw({v}))"
    chosen = (
        f"if({role} != '' AND has(arrayMap(m -> JSONExtractString(m, 'role'), ds), {role}), "
        f"arrayLast(m -> JSONExtractString(m, 'role') = {role}, ds), ds[-1])"
    )
    array_value = _let(
        "ds", dicts, f"if(length(ds) = 0, NULL, {_let('mm', chosen, _message_text('mm'))})"
    )
    return (
        f"multiIf(NOT isValidJSON({v}), NULL, JSONType({v}) = 'String', "
        f"toNullable(JSONExtractString({v})), JSONType({v}) = 'Object', {object_value}, "
        f"JSONType({v}) = 'Array', {array_value}, NULL)"
    )


def _shorten(x: str) -> str:
    collapsed = (
        f"trimBoth(replaceRegexpAll(substringUTF8({x}, 1, {_PREVIEW_CHARS + 64}), '\\\\s+', ' '))"
    )
    return _let(
        "h",
        collapsed,
        f"if(lengthUTF8(h) > {_PREVIEW_CHARS}, "
        f"concat(substringUTF8(h, 1, {_PREVIEW_CHARS - 1}), '…'), h)",
    )


def _message_preview(v: str, role: str) -> str:
    """message_preview of one attribute value ('' when the value is empty)."""
    json_like = f"substring(trimLeft({v}), 1, 1) IN ('[', '{{', '\"')"
    extracted = f"if({json_like}, {_from_json(v, role)}, NULL)"
    return _let("e", extracted, f"if(isNotNull(e), {_shorten('assumeNotNull(e)')}, {_shorten(v)})")


def _preview(keys: tuple[tuple[str, str], ...]) -> str:
    """The first non-empty preview among the keys, on root and chat spans only.

    One preview expression mapped over the keys' values (``v``) and roles (``r``), not one copy
    per key: ClickHouse analyses every column's default for each statement on the table, so a
    default four times this size cost every read of ``otel_traces`` milliseconds (migration 0012).
    """
    values = ", ".join(_a(k) for k, _ in keys)
    roles = ", ".join(f"'{role}'" for _, role in keys)
    return (
        "if(ParentSpanId = '' OR Operation = 'chat', arrayFirst(x -> x != '', "
        f"arrayMap((v, r) -> if(v = '', '', {_message_preview('v', 'r')}), "
        f"[{values}], [{roles}])), '')"
    )


INPUT_PREVIEW: Final = _preview(
    (
        ("retrace.run.input", ""),
        ("gen_ai.input.messages", "user"),
        ("input.value", ""),
        ("traceloop.entity.input", ""),
    )
)
OUTPUT_PREVIEW: Final = _preview(
    (
        ("retrace.run.output", ""),
        ("gen_ai.output.messages", ""),
        ("output.value", ""),
        ("traceloop.entity.output", ""),
    )
)

STEP_INDEX: Final = _step_index()

# Column -> its DEFAULT expression (migration 0007), in table order.
DERIVED_DEFAULTS: Final[dict[str, str]] = {
    "ProjectId": PROJECT_ID,
    "Operation": OPERATION,
    "AgentName": AGENT_NAME,
    "Model": MODEL,
    "ToolName": TOOL_NAME,
    "InputTokens": INPUT_TOKENS,
    "OutputTokens": OUTPUT_TOKENS,
    "StepIndex": STEP_INDEX,
    "SessionId": SESSION_ID,
    "UserId": USER_ID,
    "InputPreview": INPUT_PREVIEW,
    "OutputPreview": OUTPUT_PREVIEW,
}


def alter_statement(
    types: dict[str, str], codecs: dict[str, str], columns: tuple[str, ...] | None = None
) -> str:
    """The ``ALTER TABLE otel_traces MODIFY COLUMN ...`` giving ``columns`` (default: every
    derived column) its default: the text of a migration that changes them."""
    clauses = [
        f"    MODIFY COLUMN {name} {types[name]} DEFAULT {expr} CODEC({codecs[name]})"
        for name, expr in DERIVED_DEFAULTS.items()
        if columns is None or name in columns
    ]
    return "ALTER TABLE otel_traces\n" + ",\n".join(clauses)
