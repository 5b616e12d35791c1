"""ChatOpenAI (langchain-openai) through the graph, against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runner.config import AgentConfig
from runner.providers import LangChainModel, make_model
from runner.run import run_agent
from runner.runtime import LiveRuntime
from runner.seams import ToolResult, ToolSpec
from schemas import attributes as A
from schemas.errors import ConfigError
from schemas.models import RunStatus
from schemas.settings import Settings


class ChatServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        has_tool_result = any(m["role"] == "tool" for m in body["messages"])
        if has_tool_result:
            tool_message = next(m for m in body["messages"] if m["role"] == "tool")
            message: dict[str, Any] = {
                "role": "assistant",
                "content": f"The weather is {tool_message['content']}.",
            }
            finish = "stop"
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "weather", "arguments": json.dumps({"city": "Oslo"})},
                    }
                ],
            }
            finish = "tool_calls"
        payload = {
            "id": f"chatcmpl-{len(self.server.requests)}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "fake-gpt-2024",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer(("127.0.0.1", 0), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class WeatherTools:
    async def list_tools(self) -> list[ToolSpec]:
        schema = {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }
        return [ToolSpec("weather", "current weather of a city", schema, server="wx")]

    async def call(
        self, name: str, arguments: dict[str, Any], *, step_index: int, call_id: str
    ) -> ToolResult:
        return ToolResult(f"sunny in {arguments['city']}")


def test_chat_openai_drives_the_graph(chat_server: ChatServer) -> None:
    port = chat_server.server_address[1]
    config = AgentConfig(
        name="weather-agent",
        model="openai:fake-gpt",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="sk-test-not-recorded",
        model_parameters={"temperature": 0.2},
    )
    model = make_model(config, Settings())
    assert isinstance(model, LangChainModel)
    exporter = InMemorySpanExporter()
    result = asyncio.run(
        run_agent(
            "weather in Oslo?",
            config,
            model=model,
            tools=WeatherTools(),
            runtime=LiveRuntime(),
            span_exporter=exporter,
        )
    )
    assert result.status == RunStatus.COMPLETED
    assert result.answer == "The weather is sunny in Oslo."
    first, second = chat_server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-test-not-recorded"
    assert first["body"]["tools"][0]["function"]["name"] == "weather"
    assert first["body"]["temperature"] == 0.2
    assert second["body"]["messages"][-1] == {
        "role": "tool",
        "content": "sunny in Oslo",
        "tool_call_id": "call_abc",
    }
    spans = exporter.get_finished_spans()
    chat = next(s for s in spans if s.attributes.get(A.RETRACE_STEP_INDEX) == 0)
    assert chat.name == "chat fake-gpt"
    assert chat.attributes[A.GEN_AI_PROVIDER_NAME] == "openai"
    assert chat.attributes[A.GEN_AI_RESPONSE_MODEL] == "fake-gpt-2024"
    assert chat.attributes[A.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    assert chat.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 31
    assert chat.attributes[A.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert tuple(chat.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS]) == ("tool_calls",)
    root = next(s for s in spans if s.parent is None)
    assert "sk-test" not in root.attributes[A.RETRACE_AGENT_CONFIG]


def test_unknown_provider_without_langchain_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="provider 'anthropic'"):
        make_model(AgentConfig(model="anthropic:claude"), Settings())
