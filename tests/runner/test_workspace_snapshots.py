"""WorkspaceSnapshots: content-addressed store, exact restore, traversal refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.sandbox import WorkspaceSnapshots
from schemas.errors import InvalidInputError, NotFoundError, SandboxError


def tree(root: Path) -> dict[str, object]:
    """Everything observable about a directory tree (contents, modes, links, empty dirs)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir", oct(full.stat().st_mode & 0o777))
            else:
                out[rel] = ("file", full.read_bytes(), oct(full.stat().st_mode & 0o777))
    return out


def make_workspace(ws: Path) -> None:
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "out.csv").write_text("a,b\n1,2\n")
    (ws / "script.py").write_text("print('hi')\n")
    (ws / "script.py").chmod(0o755)
    (ws / "copy.csv").write_text("a,b\n1,2\n")  # same content: stored once
    (ws / "empty").mkdir()
    (ws / "link.csv").symlink_to("data/out.csv")


def test_round_trip_restores_exactly(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    uploaded: dict[str, bytes] = {}
    snaps = WorkspaceSnapshots(tmp_path / "cas", sink=uploaded.__setitem__)
    before = tree(ws)
    digest = snaps.snapshot(ws)
    assert digest == hashlib.sha256(uploaded[digest]).hexdigest()
    manifest = json.loads(uploaded[digest])
    assert manifest["data/out.csv"]["size"] == 8
    assert manifest["script.py"]["mode"] == 0o755
    assert manifest["empty"] == {"dir": True, "mode": 0o755}
    assert manifest["link.csv"] == {"link": "data/out.csv", "mode": 0o777}
    # every blob uploaded exactly once; identical files share one blob
    assert len(uploaded) == 3  # csv, script, manifest
    assert snaps.snapshot(ws) == digest  # same tree, same id, nothing new uploaded
    assert len(uploaded) == 3

    # wipe, add junk, restore: identical
    (ws / "data" / "out.csv").write_text("changed")
    (ws / "junk.txt").write_text("junk")
    (ws / "junkdir" / "deep").mkdir(parents=True)
    (ws / "script.py").unlink()
    snaps.restore(digest, ws)
    assert tree(ws) == before


def test_restore_elsewhere_fetches_missing_blobs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    make_workspace(ws)
    remote: dict[str, bytes] = {}
    digest = WorkspaceSnapshots(tmp_path / "cas1", sink=remote.__setitem__).snapshot(ws)
    other = WorkspaceSnapshots(tmp_path / "cas2")
    with pytest.raises(NotFoundError):
        other.restore(digest, tmp_path / "fresh")
    other.restore(digest, tmp_path / "fresh", fetch=remote.__getitem__)
    assert tree(tmp_path / "fresh") == tree(ws)
    # a fetched blob that does not match its hash is refused
    bad = WorkspaceSnapshots(tmp_path / "cas3")
    with pytest.raises(InvalidInputError, match="does not match"):
        bad.restore(digest, tmp_path / "x", fetch=lambda h: b"tampered")


def test_symlinks_outside_are_skipped(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "secret").write_text("host secret")
    (ws / "abs").symlink_to(tmp_path / "secret")
    (ws / "rel").symlink_to("../secret")
    (ws / "ok.txt").write_text("ok")
    snaps = WorkspaceSnapshots(tmp_path / "cas")
    manifest = json.loads(snaps.get(snaps.snapshot(ws)))
    assert sorted(manifest) == ["ok.txt"]


@pytest.mark.parametrize(
    "path", ["../evil", "/etc/passwd", "a/../../evil", "a/./b", "", "a//b", "a\\..\\b"]
)
def test_manifest_path_traversal_is_rejected(tmp_path: Path, path: str) -> None:
    snaps = WorkspaceSnapshots(tmp_path / "cas")
    blob = snaps.put(b"x")
    digest = snaps.put(json.dumps({path: {"hash": blob, "size": 1, "mode": 0o644}}).encode())
    with pytest.raises(InvalidInputError):
        snaps.restore(digest, tmp_path / "ws")
    assert not (tmp_path / "evil").exists()


def test_manifest_symlink_escape_and_bad_hashes_rejected(tmp_path: Path) -> None:
    snaps = WorkspaceSnapshots(tmp_path / "cas")
    digest = snaps.put(json.dumps({"l": {"link": "../../etc", "mode": 0o777}}).encode())
    with pytest.raises(InvalidInputError, match="outside"):
        snaps.restore(digest, tmp_path / "ws")
    with pytest.raises(InvalidInputError, match="sha256"):
        snaps.restore("not-a-hash", tmp_path / "ws")
    digest = snaps.put(b"[1, 2]")
    with pytest.raises(InvalidInputError, match="not an object"):
        snaps.restore(digest, tmp_path / "ws")


def test_restore_does_not_follow_planted_symlinks(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "f.txt").write_text("inside")
    snaps = WorkspaceSnapshots(tmp_path / "cas")
    digest = snaps.snapshot(ws)
    outside = tmp_path / "outside"
    outside.mkdir()
    # replace the directory by a symlink to outside: restore must not write through it
    (ws / "sub" / "f.txt").unlink()
    (ws / "sub").rmdir()
    (ws / "sub").symlink_to(outside)
    snaps.restore(digest, ws)
    assert list(outside.iterdir()) == []
    assert (ws / "sub").is_dir() and not (ws / "sub").is_symlink()
    assert (ws / "sub" / "f.txt").read_text() == "inside"


def test_size_cap(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(SandboxError, match="larger than"):
        WorkspaceSnapshots(tmp_path / "cas", max_total_bytes=1000).snapshot(ws)


_names = st.text(alphabet="abcXYZ019_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@settings(max_examples=30, deadline=None)
@given(
    files=st.dictionaries(st.tuples(_names, _names).map("/".join) | _names, st.binary(max_size=64))
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    base = tmp_path_factory.mktemp("prop")
    ws = base / "ws"
    ws.mkdir()
    for parts, data in files.items():
        target = ws / parts
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            continue  # a name used both as file and directory
    snaps = WorkspaceSnapshots(base / "cas")
    before = tree(ws)
    digest = snaps.snapshot(ws)
    restored = base / "restored"
    (restored / "stale").mkdir(parents=True)
    snaps.restore(digest, restored)
    assert tree(restored) == before


@pytest.mark.integration
def test_csv_written_in_gvisor_survives_wipe_and_restore(tmp_path: Path) -> None:
    from runner.sandbox import Limits, get_backend

    ws = tmp_path / "ws"
    ws.mkdir()
    snaps = WorkspaceSnapshots(tmp_path / "cas")
    code = (
        "import csv, os\n"
        "os.makedirs('out', exist_ok=True)\n"
        "with open('out/summary.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows([['region', 'total'], ['north', 42], ['south', 7]])\n"
    )
    with get_backend("gvisor") as backend:
        limits = Limits(wall_timeout_s=15.0)
        assert backend.run(["python3", "-c", code], workspace=ws, limits=limits).exit_code == 0
        step1 = snaps.snapshot(ws)
        before = tree(ws)
        for child in ws.iterdir():
            shutil.rmtree(child)
        (ws / "other.txt").write_text("a later step's file")
        snaps.restore(step1, ws)
        assert tree(ws) == before
        # a later sandbox reads the restored CSV
        read = backend.run(
            ["python3", "-c", "print(open('out/summary.csv').read().splitlines()[1])"],
            workspace=ws,
            limits=limits,
        )
        assert read.stdout == b"north,42\n"
