"""Relative URLs between pages, so links work behind any base path and can be shared."""

from __future__ import annotations

from urllib.parse import urlencode

from ui._escape import html_text, md_text


def trace_link(trace_id: str, span_id: str = "") -> str:
    params = {"trace": trace_id} | ({"span": span_id} if span_id else {})
    return f"trace?{urlencode(params)}"


def replay_link(trace_id: str) -> str:
    return f"replay?{urlencode({'trace': trace_id})}"


def divergence_link(trace_id: str, replay_id: str) -> str:
    return f"divergence?{urlencode({'trace': trace_id, 'replay': replay_id})}"


def compare_link(a: str, b: str = "") -> str:
    params = {"a": a} | ({"b": b} if b else {})
    return f"compare?{urlencode(params)}"


def session_link(session_id: str) -> str:
    return f"session?{urlencode({'session': session_id})}"


def same_tab_link(href: str, text: str, *, code: bool = False) -> str:
    """An HTML anchor that opens in this tab (Streamlit's markdown links open a new tab).

    Render with ``st.markdown(..., unsafe_allow_html=True)``; both parts are escaped here (the
    markdown between the tags is still parsed, so the label is escaped as markdown), and every
    other value in that markdown must go through ``ui._escape`` too.
    """
    label = md_text(text)
    if code:
        label = f"<code>{label}</code>"
    return f'<a href="{html_text(href)}" target="_self">{label}</a>'
