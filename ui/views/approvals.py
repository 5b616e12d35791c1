"""Approvals: what paused agents want to do and why; approve or reject to resume them.

An approval's tool name, arguments, reason and rule come from the run that asked (and so from
the model and whoever can reach the collector): they are shown as text, never as markup, on the
page where a click resumes the run.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from schemas.models import ApprovalStatus
from ui._connection import client, shown_errors
from ui._escape import md_code, md_text

st.title("Approvals")

if notice := st.session_state.pop("approval-notice", None):
    st.success(notice)

with shown_errors("list pending approvals"):
    pending = client().list_approvals(status=ApprovalStatus.PENDING)

if not pending:
    st.info("No pending approval requests.")
for approval in pending:
    with st.container(border=True):
        # No raw HTML on the page where a click resumes a run: the trace is a page link.
        st.markdown(
            f"### :material/front_hand: {md_code(approval.tool_name)} wants approval\n"
            f"Run {md_code(approval.run_id)}"
            f" · requested {approval.requested_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        if approval.trace_id:
            st.page_link(
                "views/trace.py",
                label=f"Open trace {md_code(approval.trace_id)}",
                icon=":material/account_tree:",
                query_params={"trace": approval.trace_id}
                | ({"span": approval.span_id} if approval.span_id else {}),
            )
        if approval.reason or approval.rule:
            st.warning(
                f"Why: {md_text(approval.reason or 'required by policy')}"
                + (f" (rule {md_code(approval.rule)})" if approval.rule else "")
            )
        st.markdown("**Arguments**")
        st.json(approval.arguments, expanded=True)
        cols = st.columns([2, 3, 1, 1])
        who = cols[0].text_input("Your name", "ui", key=f"who-{approval.approval_id}")
        comment = cols[1].text_input("Comment", "", key=f"comment-{approval.approval_id}")
        choices: tuple[tuple[DeltaGenerator, str, Literal["approve", "reject"]], ...] = (
            (cols[2], "Approve", "approve"),
            (cols[3], "Reject", "reject"),
        )
        for column, label, decision in choices:
            if column.button(
                label,
                key=f"{decision}-{approval.approval_id}",
                type="primary" if decision == "approve" else "secondary",
            ):
                with shown_errors(f"{decision} {approval.approval_id}", stop=False):
                    decided = client().decide_approval(
                        approval.approval_id, decision, decided_by=who, comment=comment
                    )
                    st.session_state["approval-notice"] = (
                        f"{md_code(decided.tool_name)} ({md_text(decided.approval_id)}): "
                        f"{decided.status.value} by {md_text(decided.decided_by or who)}; "
                        "the run resumes."
                    )
                    st.rerun()

st.subheader("Recently decided")
with shown_errors("list decided approvals"):
    decided_list = [
        a
        for status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED)
        for a in client().list_approvals(status=status)
    ]
if decided_list:
    decided_list.sort(key=lambda a: a.decided_at or a.requested_at, reverse=True)
    st.dataframe(
        pl.DataFrame(
            {
                "tool": [a.tool_name for a in decided_list],
                "status": [a.status.value for a in decided_list],
                "decided by": [a.decided_by for a in decided_list],
                "decided at": [a.decided_at for a in decided_list],
                "comment": [a.comment for a in decided_list],
                "run": [a.run_id for a in decided_list],
            }
        ),
        hide_index=True,
    )
else:
    st.caption("None yet.")
