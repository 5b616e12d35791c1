"""ui._escape: whatever a client sends, a CommonMark renderer shows it back as literal text.

markdown-it-py (CommonMark, raw HTML enabled) stands in for Streamlit's renderer here; the browser
test (test_hostile_browser.py) checks the real one.
"""

from __future__ import annotations

import html

from hypothesis import example, given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from ui._escape import html_text, md_code, md_text

_MD = MarkdownIt("commonmark")  # html=True: unescaped HTML would come out as HTML
_HOSTILE = [
    'x` <iframe srcdoc="<script>alert(1)</script>"></iframe> `y',
    "![i](http://127.0.0.1:9/leak) [l](http://127.0.0.1:9/) <http://127.0.0.1:9/>",
    "<img src=x onerror=alert(1)> &lt;b&gt; &amp; :red[r] :material/home: $x^2$",
    "# heading\n1. item\n- item\n> quote\n===\n```code```\n    indented",
    "\\`\\*trailing backslash\\",
    "",
    "`",
    "``` ``",
]
# Printable text, heavy on the characters markdown and HTML give meaning to.
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("`*_{}[]()<>#+-.!|$~&:=;\"'\\/ \n\t"),
        st.characters(blacklist_categories=("Cs", "Cc")),
    )
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@given(_TEXT)
@example("")
def test_md_text_renders_as_the_literal_text(text: str) -> None:
    for value in [text, *_HOSTILE]:
        rendered = _MD.render(md_text(value))
        expected = f"<p>{escapeHtml(_one_line(value))}</p>\n" if _one_line(value) else ""
        assert rendered == expected, value


@given(_TEXT)
def test_md_code_is_one_code_span_of_the_literal_text(text: str) -> None:
    for value in [text, *_HOSTILE]:
        shown = _one_line(value) or " "
        rendered = _MD.renderInline(f"before {md_code(value)} after")
        assert rendered == f"before <code>{escapeHtml(shown)}</code> after", value


@given(_TEXT)
def test_html_text_is_the_literal_text_in_html(text: str) -> None:
    for value in [text, *_HOSTILE]:
        assert "<" not in html_text(value) and '"' not in html_text(value)
        assert html.unescape(html_text(value)) == value
