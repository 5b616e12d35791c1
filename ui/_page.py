"""What every trace-scoped page starts with: the trace id from the URL, or a way to enter one."""

from __future__ import annotations

import streamlit as st


def trace_id_from_url(prompt: str) -> str:
    """The ``trace`` query parameter; without one, show ``prompt`` and an id box, then stop."""
    trace_id = st.query_params.get("trace", "").strip().lower()
    if trace_id:
        return trace_id
    st.info(prompt)
    entered = st.text_input("Trace id")
    if entered:
        st.query_params["trace"] = entered.strip()
        st.rerun()
    st.stop()
    raise AssertionError("st.stop() returned")  # pragma: no cover - st.stop raises
