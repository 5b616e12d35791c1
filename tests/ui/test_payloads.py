"""Payload rendering helpers: message shapes from several conventions, manifests, truncation."""

from __future__ import annotations

import json

from ui._payloads import looks_binary, parse_json, parse_manifest, parse_messages, truncate


def test_genai_semconv_parts() -> None:
    raw = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Sum 2+2"}]},
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "c1",
                        "name": "run_python",
                        "arguments": {"code": "print(2+2)"},
                    }
                ],
            },
            {
                "role": "tool",
                "parts": [{"type": "tool_call_response", "id": "c1", "response": "4"}],
            },
        ]
    )
    turns = parse_messages(raw)
    assert turns is not None
    assert [t.role for t in turns] == ["system", "user", "assistant", "tool"]
    call = turns[2].parts[0]
    assert (call.kind, call.name, call.call_id, call.data) == (
        "tool_call",
        "run_python",
        "c1",
        {"code": "print(2+2)"},
    )
    assert turns[3].parts[0].kind == "tool_result" and turns[3].parts[0].data == 4


def test_openai_and_langchain_shapes() -> None:
    openai = json.dumps(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "x", "function": {"name": "sql", "arguments": '{"q": "select 1"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "x", "content": "[[1]]"},
        ]
    )
    turns = parse_messages(openai)
    assert turns is not None
    assert turns[0].parts[0].data == {"q": "select 1"}
    assert turns[1].parts[0].kind == "tool_result" and turns[1].parts[0].data == [[1]]
    lc = json.dumps([{"type": "human", "data": {"content": "hi"}}])
    lc_turns = parse_messages(lc)
    assert lc_turns is not None and lc_turns[0].role == "user"
    assert lc_turns[0].parts[0].text == "hi"


def test_not_messages() -> None:
    assert parse_messages("plain text") is None
    assert parse_messages("[1, 2]") is None
    assert parse_json("{bad") == "{bad"


def test_manifest_of_files_links_and_dirs() -> None:
    manifest = {
        "b.txt": {"hash": "bb", "mode": 420, "size": 2},
        "a.py": {"hash": "aa", "mode": 420, "size": 1},
        "out": {"dir": True},
        "latest": {"link": "b.txt"},
        "odd": "not an entry",
    }
    entries = parse_manifest(json.dumps(manifest).encode())
    assert [(f.path, f.kind, f.sha256, f.size, f.target) for f in entries] == [
        ("a.py", "file", "aa", 1, ""),
        ("b.txt", "file", "bb", 2, ""),
        ("latest", "link", "", -1, "b.txt"),
        ("out", "dir", "", -1, ""),
    ]
    assert parse_manifest(b"{}") == []
    assert parse_manifest(b"[1]") == []
    assert parse_manifest(b"\xff\xfe") == []


def test_truncate_and_binary() -> None:
    assert truncate("abc", 5) == ("abc", False)
    assert truncate("abcdef", 3) == ("abc", True)
    assert looks_binary(b"\x00\x01") and not looks_binary("héllo".encode())
