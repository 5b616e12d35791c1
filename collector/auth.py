"""Project API keys: generated once, stored only as sha256, resolved to a project per request.

Open mode (no key needed, everything lands in project ``default``) exists only when no key is
configured AND the collector is bound to a loopback address; a collector with no keys on a public
address refuses to start. Every handler gets its project from here and passes it to the store,
so a key of project A can never read or write project B.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from collector.store import TraceStore
from schemas.errors import AuthError, ConfigError, RetraceError
from schemas.settings import DEFAULT_PROJECT

KEY_PREFIX = "rtk_"
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def hash_key(key: str) -> str:
    """The sha256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_for(key: str) -> str:
    """A stable, non-secret id for a key (from its hash, so re-registering is idempotent)."""
    return "key_" + hash_key(key)[:12]


def generate_key() -> tuple[str, str]:
    """A new random key and its id: ``(key_id, key)``. The key is shown once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key_id_for(key), key


def validate_project(project: str) -> str:
    """Return ``project`` if it is a usable project id, else raise ``ConfigError``."""
    if not _PROJECT_RE.match(project):
        raise ConfigError(
            f"invalid project id {project!r}: use 1-128 letters, digits, '_', '.', '-' "
            "starting with a letter or digit"
        )
    return project


def parse_key_specs(specs: Iterable[str]) -> list[tuple[str, str]]:
    """Parse ``PROJECT:KEY`` strings (CLI ``--api-key`` / ``RETRACE_API_KEYS``)."""
    out: list[tuple[str, str]] = []
    for raw in specs:
        for spec in raw.split(","):
            spec = spec.strip()
            if not spec:
                continue
            project, sep, key = spec.partition(":")
            if not sep or not key:
                raise ConfigError(f"API key spec {spec[:16]!r}... must be PROJECT:KEY")
            if len(key) < 8:
                raise ConfigError(f"API key for project {project!r} is too short (min 8 chars)")
            out.append((validate_project(project), key))
    return out


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Cached:
    project: str | None
    expires: float


class Authenticator:
    """Resolves ``Authorization: Bearer`` headers to projects, with a short cache.

    Keys registered at start-up (``--api-key``) are also kept in memory so ingest keeps working
    while the store is down. Lookups are cached for ``cache_ttl`` seconds, so a revoked key stops
    working within that time.
    """

    def __init__(self, store: TraceStore, *, host: str, cache_ttl: float = 5.0) -> None:
        self._store = store
        self._loopback = is_loopback(host)
        self._host = host
        self._ttl = cache_ttl
        self._lock = threading.Lock()
        self._local: dict[str, str] = {}
        self._cache: dict[str, _Cached] = {}
        self._has_keys: tuple[bool, float] | None = None

    def register(self, project: str, key: str, name: str = "") -> None:
        """Store (hashed) and remember a key given on the command line or in the environment."""
        digest = hash_key(key)
        if self._store.project_for_key_hash(digest) != project:
            self._store.add_api_key(project, key_id_for(key), digest, name)
        with self._lock:
            self._local[digest] = project
            self._has_keys = (True, time.monotonic() + self._ttl)

    def check_startup(self) -> None:
        """Refuse to serve without keys on a non-loopback address."""
        if not self.keys_required() and not self._loopback:
            raise ConfigError(
                f"refusing to listen on {self._host} without API keys: anyone could write and "
                "read traces. Create one (`retrace keys create --project P`) or pass "
                "--api-key PROJECT:KEY, or bind to 127.0.0.1"
            )

    @property
    def open_mode(self) -> bool:
        return not self.keys_required()

    def keys_required(self) -> bool:
        """Whether any key exists (re-checked every ``cache_ttl`` s; keys may be added live)."""
        now = time.monotonic()
        with self._lock:
            if self._local:
                return True
            if self._has_keys is not None and self._has_keys[1] > now:
                return self._has_keys[0]
        try:
            has = self._store.has_api_keys()
        except RetraceError:
            # Store unreachable: keep the last answer; with none, fail closed unless loopback.
            with self._lock:
                return self._has_keys[0] if self._has_keys is not None else not self._loopback
        with self._lock:
            self._has_keys = (has, now + self._ttl)
        return has

    def project_for(self, authorization: str | None) -> str:
        """The project a request acts for. Raises ``AuthError`` (401) without a valid key."""
        if not self.keys_required():
            return DEFAULT_PROJECT
        if not authorization:
            raise AuthError(
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with `retrace keys create --project P`)"
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("malformed Authorization header: expected 'Bearer <key>'")
        digest = hash_key(key.strip())
        now = time.monotonic()
        with self._lock:
            local = self._local.get(digest)
            cached = self._cache.get(digest)
        if local is not None:
            return local
        if cached is None or cached.expires <= now:
            project = self._store.project_for_key_hash(digest)
            cached = _Cached(project, now + self._ttl)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = cached
        if cached.project is None:
            raise AuthError("invalid API key (unknown or revoked)")
        return cached.project
