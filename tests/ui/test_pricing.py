"""Cost estimates: longest-prefix model match, provider prefixes, and a JSON override file."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from ui._pricing import DEFAULT_PRICES, Price, PriceTable, load_price_table


def test_longest_prefix_wins_and_provider_prefix_is_ignored() -> None:
    table = PriceTable(DEFAULT_PRICES)
    assert table.price_for("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price_for("openai:gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.price_for("some-unknown-model") is None


def test_cost_uses_first_priced_model() -> None:
    table = PriceTable({"m": Price(1.0, 2.0)})
    assert table.cost(["unknown", "m"], 1_000_000, 500_000) == pytest.approx(2.0)
    assert table.cost(["unknown"], 10, 10) is None


def test_price_file_overrides_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-4o": {"input": 1, "output": 1}, "local-llm": {"input": 0, "output": 0}}')
    table = load_price_table(path)
    assert table.price_for("gpt-4o") == Price(1.0, 1.0)
    assert table.price_for("local-llm-7b") == Price(0.0, 0.0)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"m": {"input": "x"}}'])
def test_bad_price_file_is_a_config_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(body)
    with pytest.raises(ConfigError, match="price file"):
        load_price_table(path)
