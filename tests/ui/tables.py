"""Reading the HTML tables the UI draws with ``st.html`` (the trace list) in AppTest tests."""

from __future__ import annotations

from html.parser import HTMLParser

from streamlit.testing.v1 import AppTest


class TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.header: list[str] = []
        self.rows: list[list[tuple[str, list[str]]]] = []
        self._cell: list[str] | None = None
        self._links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "style":
            self._in_style = True
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._links = [], []
        elif tag == "a":
            self._links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(("".join(self._cell), self._links))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._in_style:
            self._cell.append(data)


def parse_table(body: str) -> TableParser:
    parser = TableParser()
    parser.feed(body)
    parser.close()
    return parser


def table_rows(body: str) -> list[dict[str, str]]:
    """The body rows as ``{column: text}``; a cell's first link as ``column + " href"``."""
    parsed = parse_table(body)
    header, *rows = parsed.rows
    names = [text for text, _ in header]
    out = []
    for row in rows:
        record: dict[str, str] = {}
        for name, (text, links) in zip(names, row, strict=True):
            record[name] = text
            if links:
                record[f"{name} href"] = links[0]
        out.append(record)
    return out


def _one_table(at: AppTest, css_class: str) -> list[dict[str, str]]:
    marker = f'<table class="{css_class}"'
    tables = [e.value for e in at.get("html") if marker in e.value]  # type: ignore[attr-defined]
    assert len(tables) == 1, f"{len(tables)} tables {css_class} on the page"
    return table_rows(tables[0])


def trace_list(at: AppTest) -> list[dict[str, str]]:
    """The rows of the traces page's list (one ``st.html`` table)."""
    return _one_table(at, "retrace-traces")


def span_tree(at: AppTest) -> list[dict[str, str]]:
    """The rows of a trace page's span tree with its waterfall (one ``st.html`` table)."""
    return _one_table(at, "retrace-spans")
