"""Retrace UI entry point (``streamlit run ui/app.py``; normally started by ``retrace ui``).

Pages are files under ``ui/views/``; each is reachable by URL (``/traces``, ``/trace?trace=<id>``,
``/replay``, ``/divergence``, ``/compare?a=<id>&b=<id>``, ``/approvals``, ``/overview``,
``/session?session=<id>``).
``/?trace=<id>`` opens the trace too.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui._connection import settings
from ui._escape import md_text

_VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Retrace", page_icon=":material/replay:", layout="wide")

pages = {
    "traces": st.Page(_VIEWS / "traces.py", title="Traces", icon=":material/list:", default=True),
    "trace": st.Page(
        _VIEWS / "trace.py", title="Trace detail", icon=":material/account_tree:", url_path="trace"
    ),
    "replay": st.Page(
        _VIEWS / "replay.py", title="Replay", icon=":material/replay:", url_path="replay"
    ),
    "divergence": st.Page(
        _VIEWS / "divergence.py",
        title="Divergence",
        icon=":material/difference:",
        url_path="divergence",
    ),
    "compare": st.Page(
        _VIEWS / "compare.py",
        title="Compare traces",
        icon=":material/compare_arrows:",
        url_path="compare",
    ),
    "approvals": st.Page(
        _VIEWS / "approvals.py",
        title="Approvals",
        icon=":material/front_hand:",
        url_path="approvals",
    ),
    "session": st.Page(
        _VIEWS / "session.py",
        title="Session",
        icon=":material/forum:",
        url_path="session",
    ),
    "overview": st.Page(
        _VIEWS / "overview.py", title="Overview", icon=":material/monitoring:", url_path="overview"
    ),
}
current = st.navigation(list(pages.values()))
st.sidebar.caption(f"Collector: {md_text(settings().endpoint)}")

trace_param = st.query_params.get("trace", "")
if current.url_path == pages["traces"].url_path and trace_param:
    # A shared link of the form /?trace=<id> opens the trace's page.
    st.switch_page(pages["trace"], query_params={"trace": trace_param})

current.run()
