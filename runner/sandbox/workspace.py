"""Content-addressed workspace snapshots: each file stored once by sha256, a manifest per snapshot.

``snapshot(dir)`` returns the sha256 of a canonical JSON manifest ``{path: entry}`` where a file's
entry is ``{"hash", "size", "mode"}``, a symlink's ``{"link", "mode"}`` (only links that stay
inside the workspace; others are skipped) and an empty directory's ``{"dir": true, "mode"}``.
Blobs and manifests live in ``cas_dir/ab/abcdef...``; ``sink(hash, bytes)`` is called once for
each object new to this store (the runner uploads them to the collector's payload API), so a
replay on another machine restores any step with ``fetch(hash) -> bytes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from schemas.errors import InvalidInputError, NotFoundError, SandboxError

Sink = Callable[[str, bytes], None]
Fetch = Callable[[str], bytes]

_HASH = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_TOTAL_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_FILES = 20_000


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_hash(value: str, what: str) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise InvalidInputError(f"{what} must be a sha256 hex digest, got {value!r}")
    return value


def safe_relative_path(path: str) -> PurePosixPath:
    """A manifest path as a safe relative path; InvalidInputError for traversal or absolutes."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise InvalidInputError(f"invalid path in workspace manifest: {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in path.split("/")):
        raise InvalidInputError(f"path escapes the workspace in manifest: {path!r}")
    return pure


class WorkspaceSnapshots:
    """Snapshots of workspaces into the content-addressed store at ``cas_dir``."""

    def __init__(
        self,
        cas_dir: Path,
        sink: Sink | None = None,
        *,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
    ) -> None:
        self.cas_dir = Path(cas_dir)
        self.cas_dir.mkdir(parents=True, exist_ok=True)
        self.sink = sink
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files

    # --- the store ---------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        return self.cas_dir / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self._blob_path(_check_hash(digest, "hash")).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` once; the sink hears about it the first time. Returns its sha256."""
        digest = _sha256(data)
        path = self._blob_path(digest)
        if path.is_file():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.sink is not None:
            self.sink(digest, data)
        return digest

    def get(self, digest: str, fetch: Fetch | None = None) -> bytes:
        """The bytes of ``digest``, from this store or (verified, then kept) from ``fetch``."""
        path = self._blob_path(_check_hash(digest, "hash"))
        if path.is_file():
            return path.read_bytes()
        if fetch is None:
            raise NotFoundError(f"workspace object {digest} is not in {self.cas_dir}")
        data = fetch(digest)
        if _sha256(data) != digest:
            raise InvalidInputError(f"fetched workspace object does not match its hash {digest}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return data

    # --- snapshot ----------------------------------------------------------------------------

    def manifest_of(self, workspace: Path) -> dict[str, dict[str, Any]]:
        """Walk ``workspace`` and store its files; the manifest (not yet stored)."""
        root = Path(workspace)
        if not root.is_dir():
            raise SandboxError(f"cannot snapshot {workspace}: not a directory")
        manifest: dict[str, dict[str, Any]] = {}
        total = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(root)
            if rel_dir != Path(".") and not dirnames and not filenames:
                mode = stat.S_IMODE(os.lstat(dirpath).st_mode)
                manifest[rel_dir.as_posix()] = {"dir": True, "mode": mode}
            for name in sorted(filenames) + [
                d for d in dirnames if os.path.islink(Path(dirpath, d))
            ]:
                full = Path(dirpath, name)
                rel = (rel_dir / name).as_posix()
                info = os.lstat(full)
                if stat.S_ISLNK(info.st_mode):
                    target = os.readlink(full)
                    resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                    if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
                        continue  # points outside the workspace: not part of it
                    manifest[rel] = {"link": target, "mode": 0o777}
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue  # fifos, sockets, devices
                total += info.st_size
                if total > self.max_total_bytes:
                    raise SandboxError(
                        f"workspace {workspace} is larger than the snapshot limit "
                        f"({self.max_total_bytes} bytes)"
                    )
                if len(manifest) >= self.max_files:
                    raise SandboxError(
                        f"workspace {workspace} has more than {self.max_files} entries"
                    )
                data = full.read_bytes()
                manifest[rel] = {
                    "hash": self.put(data),
                    "size": len(data),
                    "mode": stat.S_IMODE(info.st_mode),
                }
        return manifest

    def snapshot(self, workspace: Path) -> str:
        """Store the workspace's files and manifest; return the manifest's sha256."""
        manifest = self.manifest_of(workspace)
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        return self.put(body)

    def load_manifest(self, manifest_hash: str, fetch: Fetch | None = None) -> dict[str, Any]:
        """The validated manifest ``manifest_hash`` (paths checked for traversal)."""
        raw = self.get(_check_hash(manifest_hash, "manifest hash"), fetch)
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise InvalidInputError(f"workspace manifest {manifest_hash} is not JSON") from exc
        if not isinstance(manifest, dict):
            raise InvalidInputError(f"workspace manifest {manifest_hash} is not an object")
        for path, entry in manifest.items():
            safe_relative_path(path)
            if not isinstance(entry, dict):
                raise InvalidInputError(f"bad manifest entry for {path!r}")
            if "hash" in entry:
                _check_hash(entry["hash"], f"hash of {path!r}")
            elif "link" in entry:
                target = entry["link"]
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), str(target)))
                if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
                    raise InvalidInputError(f"symlink {path!r} points outside the workspace")
            elif entry.get("dir") is not True:
                raise InvalidInputError(f"bad manifest entry for {path!r}")
        return manifest

    # --- restore -----------------------------------------------------------------------------

    def restore(self, manifest_hash: str, workspace: Path, fetch: Fetch | None = None) -> None:
        """Make ``workspace`` exactly the snapshot: same files, contents, modes; extras deleted."""
        manifest = self.load_manifest(manifest_hash, fetch)
        root = Path(workspace)
        root.mkdir(parents=True, exist_ok=True)
        wanted_dirs = {"."}
        for path, entry in manifest.items():
            parts = PurePosixPath(path).parts
            for i in range(1, len(parts)):
                wanted_dirs.add("/".join(parts[:i]))
            if entry.get("dir"):
                wanted_dirs.add(path)
        # fetch every blob first: a missing one fails before the workspace is touched
        blobs = {e["hash"]: self.get(e["hash"], fetch) for e in manifest.values() if "hash" in e}
        self._remove_extras(root, manifest, wanted_dirs)
        for path in sorted(wanted_dirs - {"."}):
            target = root / path
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(exist_ok=True)
        for path, entry in sorted(manifest.items()):
            target = root / path
            if entry.get("dir"):
                os.chmod(target, entry.get("mode", 0o755) & 0o777)
                continue
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if "link" in entry:
                os.symlink(entry["link"], target)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blobs[entry["hash"]])
            os.chmod(target, int(entry.get("mode", 0o644)) & 0o777)

    @staticmethod
    def _remove_extras(root: Path, manifest: dict[str, Any], wanted_dirs: set[str]) -> None:
        for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
            rel_dir = Path(dirpath).relative_to(root)
            for name in filenames + dirnames:
                full = Path(dirpath, name)
                rel = (rel_dir / name).as_posix()
                if full.is_symlink() or not full.is_dir():
                    if rel not in manifest or "link" in manifest[rel]:
                        full.unlink()
                elif rel not in wanted_dirs:
                    shutil.rmtree(full)
