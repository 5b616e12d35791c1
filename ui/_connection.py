"""The UI's one way to the collector: a cached ``CollectorClient`` and page-level error display.

Settings are read once here (the UI's edge): ``RETRACE_ENDPOINT``, ``RETRACE_API_KEY`` (a project
key; the UI never holds store credentials) and ``RETRACE_UI_PRICES_FILE``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from collector.client import CollectorClient
from schemas.errors import NotFoundError, RetraceError
from schemas.settings import Settings
from ui._escape import md_text
from ui._pricing import PriceTable, load_price_table

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _settings(environment: tuple[tuple[str, str], ...]) -> Settings:
    return Settings()


def settings() -> Settings:
    """The settings of the current environment: a changed environment is seen without a restart.

    Built once per distinct set of ``RETRACE_*`` variables (the only source ``Settings`` reads):
    building them costs ~15 ms, and a page asks several times per run.
    """
    environment = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("RETRACE_"))
    )
    return _settings(environment)


@st.cache_resource(show_spinner=False)
def _client(endpoint: str, api_key: str | None) -> CollectorClient:
    return CollectorClient(endpoint, api_key=api_key)


def client() -> CollectorClient:
    """The collector client for this app (one per endpoint/key, shared by sessions)."""
    config = settings()
    key = config.api_key.get_secret_value() if config.api_key is not None else None
    return _client(config.endpoint, key)


@st.cache_resource(show_spinner=False)
def _price_table(path: Path | None) -> PriceTable:
    return load_price_table(path)


def price_table() -> PriceTable:
    """The configured price table; a broken price file is reported and the defaults used."""
    try:
        return _price_table(settings().ui_prices_file)
    except RetraceError as exc:
        log.warning("using default prices: %s", exc.message)
        st.warning(f"Using default prices: {md_text(exc.message)}")
        return _price_table(None)


@contextmanager
def shown_errors(what: str, *, stop: bool = True) -> Iterator[None]:
    """Show a failure of the block as a message in the page, never a traceback.

    The client raises Retrace's errors only (an unreachable collector is a
    ``CollectorUnreachableError`` naming its URL), so those are all this catches.

    ``what`` names the action for the message, e.g. "load trace 4bf9…"; it may hold values from
    the URL or the collector and is shown as text, as is the error. With ``stop`` the rest of the
    page is not run after a failure.
    """
    try:
        yield
    except NotFoundError as exc:
        st.error(f"Could not {md_text(what)}: not found. {md_text(exc.message)}")
    except RetraceError as exc:
        # the page shows it to the user; the operator sees the server-side failures
        if exc.http_status >= 500:
            log.warning("could not %s: %s", what, exc.message)
        st.error(f"Could not {md_text(what)}: {md_text(exc.message)}")
    else:
        return
    if stop:
        st.stop()
