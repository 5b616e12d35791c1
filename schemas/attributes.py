"""Every span attribute key Retrace reads or writes, declared once.

GenAI semantic-convention keys come from ``opentelemetry-semantic-conventions``; Retrace's own keys
live under ``retrace.*``. No other package spells an attribute key as a string literal.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import service_attributes as _service

# --- OpenTelemetry GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_SYSTEM: Final = _gen_ai.GEN_AI_SYSTEM  # deprecated alias of provider.name, still sent
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_AGENT_ID: Final = _gen_ai.GEN_AI_AGENT_ID
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
GEN_AI_TOOL_DEFINITIONS: Final = _gen_ai.GEN_AI_TOOL_DEFINITIONS
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_PROMPT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_PROMPT_TOKENS  # deprecated, still seen
GEN_AI_USAGE_COMPLETION_TOKENS: Final = _gen_ai.GEN_AI_USAGE_COMPLETION_TOKENS  # deprecated
GEN_AI_TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
GEN_AI_TOOL_TYPE: Final = _gen_ai.GEN_AI_TOOL_TYPE
GEN_AI_TOOL_DESCRIPTION: Final = _gen_ai.GEN_AI_TOOL_DESCRIPTION

ERROR_TYPE: Final = _error.ERROR_TYPE
EXCEPTION_TYPE: Final = _exception.EXCEPTION_TYPE
EXCEPTION_MESSAGE: Final = _exception.EXCEPTION_MESSAGE
EXCEPTION_STACKTRACE: Final = _exception.EXCEPTION_STACKTRACE
SERVICE_NAME: Final = _service.SERVICE_NAME

# Values of gen_ai.operation.name that Retrace gives meaning to.
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CHAT: Final = "chat"
OP_EXECUTE_TOOL: Final = "execute_tool"

# --- Other agent conventions mapped onto the same columns at ingest ---------------------------
# OpenInference (Arize/Phoenix)
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_TOKEN_PROMPT: Final = "llm.token_count.prompt"
OI_LLM_TOKEN_COMPLETION: Final = "llm.token_count.completion"
OI_TOOL_NAME: Final = "tool.name"
OI_INPUT_VALUE: Final = "input.value"
OI_OUTPUT_VALUE: Final = "output.value"
OI_AGENT_NAME: Final = "agent.name"
# Flattened message lists: ``llm.output_messages.0.message.tool_calls.0.tool_call.function.name``
OI_LLM_INPUT_MESSAGES: Final = "llm.input_messages"
OI_LLM_OUTPUT_MESSAGES: Final = "llm.output_messages"
OI_LLM_TOOLS: Final = "llm.tools"  # llm.tools.0.tool.json_schema: the tools offered
OI_REDACTED: Final = "__REDACTED__"  # what a TraceConfig that hides a value writes instead
# OpenLLMetry (Traceloop)
TL_SPAN_KIND: Final = "traceloop.span.kind"
TL_ENTITY_NAME: Final = "traceloop.entity.name"
TL_ENTITY_INPUT: Final = "traceloop.entity.input"
TL_ENTITY_OUTPUT: Final = "traceloop.entity.output"
TL_WORKFLOW_NAME: Final = "traceloop.workflow.name"
LLM_USAGE_PROMPT_TOKENS: Final = "llm.usage.prompt_tokens"
LLM_USAGE_COMPLETION_TOKENS: Final = "llm.usage.completion_tokens"
LLM_REQUEST_TYPE: Final = "llm.request.type"  # OpenLLMetry LLM spans: chat | completion | ...
# Older OpenLLMetry releases: ``gen_ai.prompt.0.role`` / ``gen_ai.completion.0.tool_calls.0.name``
TL_PROMPT: Final = "gen_ai.prompt"
TL_COMPLETION: Final = "gen_ai.completion"
TL_UNKNOWN_MODEL: Final = "unknown"  # OpenLLMetry's gen_ai.request.model when it found none

# --- Sessions (conversations) and end users, mapped to SessionId/UserId at ingest -----------------
# In order of precedence; each is looked up on the span, then on its resource.
SESSION_ID: Final = "session.id"  # OpenTelemetry session conventions; OpenInference too
USER_ID: Final = "user.id"  # OpenTelemetry user conventions; OpenInference too
ENDUSER_ID: Final = "enduser.id"  # the older OpenTelemetry key user.id replaced
TL_SESSION_ID: Final = "traceloop.association.properties.session_id"  # OpenLLMetry
TL_USER_ID: Final = "traceloop.association.properties.user_id"
LANGFUSE_SESSION_ID: Final = "langfuse.session.id"
LANGFUSE_USER_ID: Final = "langfuse.user.id"
RETRACE_METADATA_PREFIX: Final = "retrace.metadata."  # + key: a run's metadata (instrument, run)
SESSION_ID_KEYS: Final = (SESSION_ID, GEN_AI_CONVERSATION_ID, TL_SESSION_ID, LANGFUSE_SESSION_ID)
USER_ID_KEYS: Final = (USER_ID, ENDUSER_ID, TL_USER_ID, LANGFUSE_USER_ID)

# --- Retrace's own keys ------------------------------------------------------------------------
RETRACE_PROJECT: Final = "retrace.project"  # resource attribute; the API key decides in the end
RETRACE_RUN_ID: Final = "retrace.run.id"
RETRACE_RUN_STATUS: Final = "retrace.run.status"  # see RunStatus
RETRACE_RUN_INPUT: Final = "retrace.run.input"
RETRACE_RUN_OUTPUT: Final = "retrace.run.output"
RETRACE_STEP_INDEX: Final = "retrace.step.index"
RETRACE_AGENT_CONFIG: Final = "retrace.agent.config"  # JSON of the agent config used
RETRACE_CODE_VERSION: Final = "retrace.code.version"
RETRACE_SEED: Final = "retrace.seed"
RETRACE_CLOCK_VALUES: Final = "retrace.clock.values"  # JSON list of the times the agent saw
RETRACE_RANDOM_VALUES: Final = "retrace.random.values"  # JSON list of random draws
RETRACE_IDS: Final = "retrace.ids"  # JSON list of ids the run minted
RETRACE_MODEL_PARAMETERS: Final = "retrace.model.parameters"  # JSON of the full request params
RETRACE_MODEL_TOOL_CALLS: Final = "retrace.model.tool_calls"  # JSON list requested by the model
RETRACE_MODEL_RESPONSE: Final = "retrace.model.response"  # JSON of the exact AIMessage
RETRACE_MCP_SERVER: Final = "retrace.mcp.server"
RETRACE_SANDBOX_BACKEND: Final = "retrace.sandbox.backend"  # gvisor | bwrap | process | remote
RETRACE_SANDBOX_POLICY: Final = "retrace.sandbox.policy"  # JSON: the server's sandbox policy
RETRACE_SANDBOX_SERVERS: Final = "retrace.sandbox.servers"  # root: JSON {server: backend}
RETRACE_SANDBOX_INSECURE: Final = "retrace.sandbox.insecure"
RETRACE_SANDBOX_LIMITS: Final = "retrace.sandbox.limits"  # JSON
RETRACE_SANDBOX_EXIT_CODE: Final = "retrace.sandbox.exit_code"
RETRACE_SANDBOX_CPU_MS: Final = "retrace.sandbox.cpu_ms"
RETRACE_SANDBOX_MEMORY_BYTES: Final = "retrace.sandbox.memory_bytes"
RETRACE_SANDBOX_TIMED_OUT: Final = "retrace.sandbox.timed_out"
RETRACE_SANDBOX_OUTPUT_TRUNCATED: Final = "retrace.sandbox.output_truncated"
RETRACE_SANDBOX_DURATION_MS: Final = "retrace.sandbox.duration_ms"  # wall time inside the sandbox
RETRACE_SANDBOX_ERROR: Final = "retrace.sandbox.error"  # the backend failed outside the code
RETRACE_WORKSPACE_BEFORE: Final = "retrace.workspace.snapshot.before"
RETRACE_WORKSPACE_AFTER: Final = "retrace.workspace.snapshot.after"
RETRACE_TOOL_ERROR: Final = "retrace.tool.error"  # "true" when the tool returned an error
RETRACE_TOOL_ATTEMPT: Final = "retrace.tool.attempt"
RETRACE_POLICY_DECISION: Final = "retrace.policy.decision"  # allow | deny | require_approval
RETRACE_POLICY_RULE: Final = "retrace.policy.rule"
RETRACE_POLICY_REASON: Final = "retrace.policy.reason"
RETRACE_APPROVAL_ID: Final = "retrace.approval.id"
RETRACE_APPROVAL_STATUS: Final = "retrace.approval.status"
RETRACE_APPROVAL_DECIDED_BY: Final = "retrace.approval.decided_by"
RETRACE_GUARDRAIL: Final = "retrace.guardrail"  # name of the guardrail that fired
RETRACE_REPLAY_OF: Final = "retrace.replay_of"  # trace id of the original
RETRACE_REPLAY_MODE: Final = "retrace.replay.mode"
RETRACE_REPLAY_ID: Final = "retrace.replay.id"
# A user's own graph (``instrument``): what replaying it needs, on the root span.
RETRACE_GRAPH_REF: Final = "retrace.graph.ref"  # "pkg.module:attr" the replay imports
RETRACE_GRAPH_INPUT: Final = "retrace.graph.input"  # JSON (langchain_core.load.dumpd) of the input
RETRACE_GRAPH_CONFIG: Final = "retrace.graph.config"  # JSON of the run config, callbacks left out
RETRACE_GRAPH_METHOD: Final = "retrace.graph.method"  # invoke | ainvoke | stream | astream
RETRACE_GRAPH_KWARGS: Final = "retrace.graph.kwargs"  # JSON of the call's JSON-able kwargs
RETRACE_RANDOM_STATE: Final = "retrace.random.state"  # the global random's state at the start
RETRACE_REDACTED: Final = "retrace.redacted"  # count of secrets redacted on this span

# Span event names.
EVENT_GUARDRAIL: Final = "retrace.guardrail"
EVENT_POLICY: Final = "retrace.policy"
EVENT_APPROVAL: Final = "retrace.approval"
EVENT_RETRY: Final = "retrace.retry"
EVENT_EXCEPTION: Final = "exception"

# Attributes whose values are payloads: moved to the payload table by content hash at ingest,
# resolved again on read.
PAYLOAD_KEYS: Final[frozenset[str]] = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        RETRACE_RUN_INPUT,
        RETRACE_RUN_OUTPUT,
        RETRACE_AGENT_CONFIG,
        RETRACE_GRAPH_INPUT,
        RETRACE_GRAPH_CONFIG,
        RETRACE_RANDOM_STATE,
        RETRACE_MODEL_RESPONSE,
        RETRACE_MODEL_TOOL_CALLS,
        RETRACE_MODEL_PARAMETERS,
        OI_INPUT_VALUE,
        OI_OUTPUT_VALUE,
        TL_ENTITY_INPUT,
        TL_ENTITY_OUTPUT,
        EXCEPTION_STACKTRACE,
    }
)
# Any other attribute value longer than this is stored as a payload too.
PAYLOAD_INLINE_MAX_BYTES: Final = 1024
