"""Relative URLs between pages, so links work behind any base path and can be shared."""

from __future__ import annotations

import html
from urllib.parse import urlencode


def trace_link(trace_id: str, span_id: str = "") -> str:
    params = {"trace": trace_id} | ({"span": span_id} if span_id else {})
    return f"trace?{urlencode(params)}"


def replay_link(trace_id: str) -> str:
    return f"replay?{urlencode({'trace': trace_id})}"


def divergence_link(trace_id: str, replay_id: str) -> str:
    return f"divergence?{urlencode({'trace': trace_id, 'replay': replay_id})}"


_MARKDOWN_SPECIAL = "\\`*_{}[]<>()#+-.!|$~"


def escape_markdown(text: str) -> str:
    """``text`` shown literally inside Streamlit markdown (one line)."""
    flat = " ".join(text.split())
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in flat)


def same_tab_link(href: str, text: str, *, code: bool = False) -> str:
    """An HTML anchor that opens in this tab (Streamlit's markdown links open a new tab).

    Render with ``st.markdown(..., unsafe_allow_html=True)``; both parts are escaped here.
    """
    label = html.escape(text)
    if code:
        label = f"<code>{label}</code>"
    return f'<a href="{html.escape(href, quote=True)}" target="_self">{label}</a>'
