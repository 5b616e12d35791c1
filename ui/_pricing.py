"""Estimated cost of LLM tokens: a per-model price table, overridable by a JSON file.

Prices are USD per million tokens. They are estimates for orientation, not billing: the table is
matched by the longest model-name prefix, so ``gpt-4o-2024-08-06`` uses ``gpt-4o``'s price.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigError


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5": Price(1.25, 10.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-haiku-4": Price(1.00, 5.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-pro": Price(1.25, 10.00),
    # The offline deterministic model costs nothing; listed so its runs show $0, not "unknown".
    "offline": Price(0.0, 0.0),
    "data-scientist": Price(0.0, 0.0),
}


class PriceTable:
    """Model-name -> price lookup by longest prefix (provider prefixes like ``openai:`` ignored)."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._names = sorted(self._prices, key=len, reverse=True)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def price_for(self, model: str) -> Price | None:
        name = model.lower().strip()
        candidates = [name, name.split(":", 1)[-1], name.rsplit("/", 1)[-1]]
        for candidate in candidates:
            for known in self._names:
                if candidate.startswith(known):
                    return self._prices[known]
        return None

    def cost(self, models: Iterable[str], input_tokens: int, output_tokens: int) -> float | None:
        """Cost of the tokens at the price of the first model with a known price, else None."""
        for model in models:
            price = self.price_for(model)
            if price is not None:
                return (
                    input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok
                ) / 1_000_000
        return None


def load_price_table(path: Path | None) -> PriceTable:
    """The default table, updated from a JSON file ``{"model": {"input": x, "output": y}}``."""
    prices = dict(DEFAULT_PRICES)
    if path is None:
        return PriceTable(prices)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"price file {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"price file {path} must hold a JSON object of model -> prices")
    for model, entry in raw.items():
        try:
            prices[str(model)] = Price(float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"price file {path}: entry {model!r} needs numeric 'input' and 'output' "
                "(USD per million tokens)"
            ) from exc
    return PriceTable(prices)
