"""Model providers behind the ``ModelProvider`` seam: any LangChain chat model, or the offline one.

``make_model(config, settings)`` turns ``provider:model`` into a provider. ``offline:NAME`` is the
scripted model (runner/offline.py); anything else is a LangChain chat model, built with
``langchain.chat_models.init_chat_model`` when the ``langchain`` package is installed, else
``ChatOpenAI`` for ``openai:`` (any OpenAI-compatible endpoint via ``base_url``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from runner.config import AgentConfig
from runner.offline import OfflineModel, resolve_script
from runner.seams import ModelProvider, ToolSpec
from schemas.errors import ConfigError
from schemas.settings import Settings


def tool_to_openai(spec: ToolSpec) -> dict[str, Any]:
    """A tool spec in the OpenAI function-calling format every LangChain model accepts."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.input_schema or {"type": "object", "properties": {}},
        },
    }


class LangChainModel:
    """Wraps a LangChain ``BaseChatModel``: binds the tools, passes parameters per call."""

    def __init__(self, model: BaseChatModel, *, name: str) -> None:
        self.model = model
        self.name = name

    async def ainvoke(
        self,
        messages: list[BaseMessage],
        tools: list[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> AIMessage:
        runnable: Any = self.model
        if tools:
            runnable = self.model.bind_tools([tool_to_openai(t) for t in tools])
        result = await runnable.ainvoke(messages, **parameters)
        if not isinstance(result, AIMessage):
            raise TypeError(f"model {self.name} returned {type(result).__name__}, not AIMessage")
        return result


def make_model(config: AgentConfig, settings: Settings) -> ModelProvider:
    """The provider named by ``config.model``. Raises ``ConfigError`` for an unknown provider.

    ``settings`` (read once at the edge) give an ``openai:`` model its default base URL and key;
    the agent config's own ``base_url``/``api_key`` win.
    """
    provider, name = config.provider, config.model_name
    if provider == "offline":
        return offline_model(config, confine_to=settings.confine_to)
    chat = _chat_model(provider, name, config, settings)
    return LangChainModel(chat, name=name)


def offline_model(config: AgentConfig, *, confine_to: Path | None = None) -> ModelProvider:
    """The scripted model ``offline:NAME`` (no settings needed). Raises ``ConfigError`` for
    any other provider: a live model's endpoint and key come from ``Settings`` (``make_model``).

    ``confine_to`` (a replay the collector started): the script is a file a client named, so it
    must lie under that directory or be bundled, and errors never quote it."""
    if config.provider != "offline":
        raise ConfigError(
            f"model {config.model} is not an offline model; a live model is built from the "
            "settings (runner.providers.make_model)"
        )
    name = config.model_name
    path = resolve_script(name, config.offline_script, confine_to=confine_to)
    return OfflineModel.from_file(path, name=name, quote=confine_to is None)


def _chat_model(provider: str, name: str, config: AgentConfig, settings: Settings) -> BaseChatModel:
    base_url = config.base_url or (settings.openai_base_url if provider == "openai" else None)
    secret = config.api_key or (settings.openai_api_key if provider == "openai" else None)
    kwargs: dict[str, Any] = {}
    if base_url:
        kwargs["base_url"] = base_url
    if secret is not None:
        kwargs["api_key"] = secret.get_secret_value()
    try:
        chat_models = importlib.import_module("langchain.chat_models")
    except ImportError:
        chat_models = None
    if chat_models is not None:
        try:
            model: BaseChatModel = chat_models.init_chat_model(
                name, model_provider=provider, **kwargs
            )
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"model {provider}:{name}: {exc}") from None
        return model
    if provider != "openai":
        raise ConfigError(
            f"model provider {provider!r} needs the 'langchain' package "
            "(only 'openai:' and 'offline:' work without it)"
        )
    from langchain_openai import ChatOpenAI

    kwargs.setdefault("api_key", "not-needed")  # local OpenAI-compatible servers ignore it
    return ChatOpenAI(model=name, **kwargs)
