"""The deterministic offline model: a scripted policy file stands in for an LLM.

A script is YAML: a list of tasks, each with a ``match`` regex (searched, case-insensitively, in the
task text) and ``steps``. A step either calls a tool (``call``, ``args``, optional ``thought``,
``on_error: retry|continue|stop``, ``max_retries``, ``alternative``) or gives the final ``answer``.
Strings in arguments and answers may use ``{{ last }}``, ``{{ results.0.rows.1.name }}`` or
``{{ task }}``: values taken from earlier tool results (parsed when they are JSON or CSV with a
header); ``{{ last | json }}`` writes the parsed value as JSON.

The model is stateless: where it is in the script is derived from the conversation alone (the
tool results so far), so the same messages always give the same answer — which is what replay
needs. Token usage is word counts; response metadata looks like a real provider's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runner.seams import ToolSpec
from schemas.errors import ConfigError
from schemas.paths import file_under, is_script_path

BUNDLED_SCRIPTS = Path(__file__).parent / "demo" / "offline"
_TEMPLATE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCallStep(_Strict):
    call: str
    args: dict[str, Any] = Field(default_factory=dict)


class ScriptStep(_Strict):
    """One move of the script: a tool call (``call``) or the final ``answer``."""

    thought: str = ""
    call: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["retry", "continue", "stop"] = "continue"
    max_retries: int = Field(1, ge=0)
    alternative: ToolCallStep | None = None
    answer: str | None = None
    error_answer: str = "I could not complete the task: {{ last }}"

    @model_validator(mode="after")
    def _call_or_answer(self) -> ScriptStep:
        if (self.call is None) == (self.answer is None):
            raise ValueError("a step needs exactly one of 'call' or 'answer'")
        return self


class ScriptedTask(_Strict):
    name: str
    match: str
    steps: list[ScriptStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_regex(self) -> ScriptedTask:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"task {self.name!r}: bad match regex: {exc}") from None
        return self


class OfflineScript(_Strict):
    name: str = "offline"
    fallback: str = "I don't know how to do that task."
    tasks: list[ScriptedTask] = Field(default_factory=list)

    def find(self, task: str) -> ScriptedTask | None:
        for candidate in self.tasks:
            if re.search(candidate.match, task, flags=re.IGNORECASE):
                return candidate
        return None


def load_script(path: Path | str, *, quote: bool = True) -> OfflineScript:
    """Load and validate a script file; ``ConfigError`` names the file and where it is wrong.

    ``quote=False`` (a file named on someone else's behalf): the error gives the line and column
    or the field's position only, never text taken from the file (the parser's own description
    of a problem can quote it, and unknown keys are the file's text).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read offline script {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"offline script {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        if quote:
            raise ConfigError(f"offline script {path} is not valid YAML: {exc}") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"offline script {path} is not valid YAML{where}") from None
    try:
        return OfflineScript.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not quote:
            raise ConfigError(
                f"offline script {path} is not a valid script "
                f"({exc.error_count()} problem(s), the first: {first['type']})"
            ) from None
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"offline script {path}: invalid field '{where}': {first['msg']}"
        ) from None


def resolve_script(
    name: str, explicit: str | None = None, *, confine_to: Path | None = None
) -> Path:
    """The script file for ``offline:NAME``: ``explicit`` if given, else NAME.

    NAME is a bundled script (``runner/demo/offline/NAME.yaml``) or, when it looks like a path
    (``schemas.paths.is_script_path``: ``./mine.yaml``, ``/abs/x.yml``), that file. With
    ``confine_to`` (a run on a collector client's behalf) a file must lie under that directory
    or the bundled demo scripts, symlinks and ``..`` resolved: ``InvalidInputError`` otherwise.
    """
    if not explicit and not is_script_path(name):
        path = BUNDLED_SCRIPTS / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in BUNDLED_SCRIPTS.glob("*.yaml"))
            raise ConfigError(f"no offline script named {name!r} (bundled: {', '.join(known)})")
        return path
    given = explicit or name
    if confine_to is None:
        return Path(given)
    return file_under(
        given,
        [confine_to, BUNDLED_SCRIPTS.parent],
        what=f"offline script {given!r}",
        where=f"{confine_to} or the bundled demo scripts",
    )


@dataclass
class _Position:
    step: ScriptStep | None
    use_alternative: bool = False
    give_up: bool = False
    results: list[Any] = field(default_factory=list)


class OfflineModel:
    """A ``ModelProvider`` that follows an :class:`OfflineScript` deterministically."""

    def __init__(self, script: OfflineScript, *, name: str | None = None) -> None:
        self.script = script
        self.name = name or script.name

    @classmethod
    def from_file(
        cls, path: Path | str, *, name: str | None = None, quote: bool = True
    ) -> OfflineModel:
        """The model following the script at ``path`` (``quote``: see :func:`load_script`)."""
        return cls(load_script(path, quote=quote), name=name)

    async def ainvoke(
        self,
        messages: list[BaseMessage],
        tools: list[ToolSpec],
        *,
        step_index: int,
        parameters: dict[str, Any],
    ) -> AIMessage:
        task = next((_text(m) for m in messages if isinstance(m, HumanMessage)), "")
        results = [m for m in messages if isinstance(m, ToolMessage)]
        scripted = self.script.find(task)
        context: dict[str, Any] = {
            "task": task,
            "results": [_parse(_text(m)) for m in results],
        }
        context["last"] = context["results"][-1] if results else ""
        content: str
        tool_calls: list[dict[str, Any]] = []
        if scripted is None:
            content = self.script.fallback
        else:
            position = _locate(scripted, results)
            step = position.step
            if position.give_up and step is not None:
                content = render(step.error_answer, context)
            elif step is None:
                content = render("{{ last }}", context)
            elif step.answer is not None:
                content = render(step.answer, context)
            else:
                call = step.alternative if position.use_alternative else None
                name = call.call if call else step.call
                args = call.args if call else step.args
                content = render(step.thought, context)
                tool_calls.append(
                    {
                        "name": name,
                        "args": render_value(args, context),
                        "id": f"call_{step_index}_0",
                        "type": "tool_call",
                    }
                )
        return self._message(messages, content, tool_calls, step_index)

    def _message(
        self,
        messages: list[BaseMessage],
        content: str,
        tool_calls: list[dict[str, Any]],
        step_index: int,
    ) -> AIMessage:
        input_tokens = sum(_words(_text(m)) for m in messages)
        output_tokens = _words(content) + sum(_words(json.dumps(c["args"])) for c in tool_calls)
        digest = hashlib.sha256(
            json.dumps([_text(m) for m in messages] + [step_index]).encode()
        ).hexdigest()[:16]
        finish = "tool_calls" if tool_calls else "stop"
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            id=f"offline-{digest}",
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
            response_metadata={
                "model_name": self.name,
                "model_provider": "offline",
                "finish_reason": finish,
                "id": f"offline-{digest}",
            },
        )


def _locate(task: ScriptedTask, results: list[ToolMessage]) -> _Position:
    """Replay the tool results so far against the script to find the next move."""
    index, retries, alternative = 0, 0, False
    for message in results:
        if index >= len(task.steps):
            break
        step = task.steps[index]
        if getattr(message, "status", "success") == "error":
            if step.on_error == "retry" and retries < step.max_retries:
                retries += 1
                continue
            if step.alternative is not None and not alternative:
                alternative, retries = True, 0
                continue
            if step.on_error == "stop":
                return _Position(step, give_up=True)
        index, retries, alternative = index + 1, 0, False
    if index >= len(task.steps):
        return _Position(None)
    return _Position(task.steps[index], use_alternative=alternative)


def render(template: str, context: dict[str, Any]) -> str:
    """Substitute ``{{ path }}`` expressions with values from ``context``."""

    def substitute(match: re.Match[str]) -> str:
        expression, _, fmt = match.group(1).partition("|")
        value = lookup(context, expression.strip())
        if fmt.strip() == "json":
            return json.dumps(_parse(value) if isinstance(value, str) else value, default=str)
        return value.strip() if isinstance(value, str) else json.dumps(value, default=str)

    return _TEMPLATE.sub(substitute, template)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """``render`` applied to every string inside a JSON-like value. A string that is exactly one
    expression keeps the value's type (a number stays a number)."""
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole and "|" not in whole.group(1):
            return lookup(context, whole.group(1))
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def lookup(context: dict[str, Any], path: str) -> Any:
    """Follow a dotted path (``results.0.rows.2.name``) through dicts and lists."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, str):
            value = _parse(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return f"<{path}: not found>"
    return value


def _parse(text: str) -> Any:
    """A tool result as data: JSON, else CSV with a header (a list of row dicts), else text."""
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        pass
    lines = text.strip().splitlines()
    header = lines[0] if lines else ""
    tabular = "," in header or re.fullmatch(r"[A-Za-z_]\w*", header) is not None
    if len(lines) >= 2 and tabular and not header.startswith(("{", "[")):
        try:
            rows = list(csv.DictReader(io.StringIO(text.strip())))
        except csv.Error:
            return text
        if rows and all(len(r) == len(rows[0]) and None not in r for r in rows):
            return [{k: _number(v) for k, v in r.items()} for r in rows]
    return text


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def _words(text: str) -> int:
    return len(text.split())
