"""Agent config files: defaults, relative paths, errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_config
from runner.run import load_policy
from schemas.errors import ConfigError


def test_demo_config_loads_with_paths_resolved() -> None:
    config = load_config(Path(__file__).parents[2] / "runner" / "demo" / "agent.yaml")
    assert config.name == "data-scientist"
    assert config.provider == "offline" and config.model_name == "data-scientist"
    assert Path(str(config.policy)).is_absolute()
    assert {s.name for s in config.mcp_servers} == {"data", "sandbox"}
    assert load_policy(config).decide("query", {"sql": "DROP TABLE orders"}).action == "deny"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model: gpt4\n", "model"),
        ("guardrails: {max_turns: 0}\n", "guardrails.max_turns"),
        ("mcp_servers: [{name: a}]\n", "mcp_servers.0"),
        ("surprise: 1\n", "surprise"),
        ("sandbox: {backend: docker}\n", "sandbox.backend"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"invalid field '{field}'"):
        load_config(path)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read agent config"):
        load_config(tmp_path / "none.yaml")
    path = tmp_path / "a.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
