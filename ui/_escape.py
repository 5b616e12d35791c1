"""The one way a client's value reaches the page as markup: escaped here, shown as literal text.

Span data, approvals, replay records, collector errors and URL parameters are written by whoever
can reach the collector or send a link. Streamlit renders markdown in ``st.markdown``, alerts,
captions, headers, metric labels *and values*, widget labels, help tooltips and expander labels;
markdown there can embed images (the viewer's browser fetches any URL), links, Streamlit
directives, LaTeX, and with ``unsafe_allow_html`` raw HTML. So a value put into any of those goes
through ``md_text`` (running text) or ``md_code`` (an inline code span); a value put into HTML we
build, or into a plotly label (plotly reads a subset of HTML), goes through ``html_text``.

Raw values are better still shown with elements that never interpret them: ``st.text``,
``st.code``, ``st.json``, ``st.dataframe`` and selectbox options.
"""

from __future__ import annotations

import html
import re
import string

# CommonMark lets any ASCII punctuation be backslash-escaped, and an escaped character is always
# literal text. Escaping all of it (not a hand-picked list) also covers GFM autolinks (``:``,
# ``/``, ``.``), entities (``&``), setext underlines (``=``), Streamlit's ``:color[...]``
# directives and ``$`` LaTeX.
_MARKDOWN_SPECIAL = frozenset(string.punctuation)
_BACKTICK_RUN = re.compile(r"`+")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def md_text(value: object) -> str:
    """``value`` as literal text inside Streamlit markdown, on one line (whitespace collapsed)."""
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in _one_line(value))


def md_code(value: object) -> str:
    """``value`` as an inline code span of Streamlit markdown, literally, on one line.

    A code span's content is never interpreted, but it ends at the first backtick run as long as
    its opening one; the fence here is longer than any run in ``value``, so it cannot be closed
    from inside.
    """
    text = _one_line(value)
    fence = "`" * (max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0) + 1)
    if not text:
        text = " "  # a span of spaces only is kept as it is
    elif text.startswith("`") or text.endswith("`"):
        text = f" {text} "  # one space each side is stripped by the renderer
    return f"{fence}{text}{fence}"


def html_text(value: object) -> str:
    """``value`` as literal text (or an attribute value) inside HTML or a plotly label."""
    return html.escape(str(value), quote=True)
