"""Declarative tool policy, enforced in the tool plane: the model can only ask.

A policy file (YAML) says which tools may run, what their arguments may be, how often they may
run, and which calls need a human's approval::

    version: 1
    tools:
      allow: ["*"]                 # globs over tool names (default: everything)
      deny: ["run_shell"]          # deny wins over allow
    rules:                         # argument rules
      - name: sql-read-only
        check: sql_read_only       # sqlglot-parsed: one SELECT / WITH...SELECT / EXPLAIN
        tools: ["query"]
        arguments: ["sql"]         # default per check: sql_read_only -> sql, query
      - name: workspace-paths
        check: path_glob           # inside the workspace, matching one of the globs
        tools: ["read_file", "write_file", "list_files"]
        globs: ["**"]
      - name: offline
        check: no_network          # best-effort static check; the sandbox is the guarantee
        tools: ["run_python", "run_shell"]
    rate_limits:
      - tools: ["*"]
        max_per_run: 50            # per tool name, per run
        max_per_minute: 20
    costs: {"run_python": 0.01}    # estimated cost of one call, by tool glob
    require_approval:
      - name: writes
        tools: ["write_file"]
      - name: shell-deletions
        tools: ["run_shell", "run_python"]
        when: {deletes: true}
      - name: pattern
        tools: ["run_shell"]
        when: {argument: command, pattern: "\\bsudo\\b"}
      - name: expensive
        tools: ["*"]
        when: {cost_above: 1.0}

``Policy.decide`` is pure: it reads only the tool name, the arguments and a ``PolicyContext``
(prior calls, the clock value the runtime pinned). It never reads model text, so a prompt
injection in a task or a tool output cannot widen what tools may do.

Order: deny list, allow list, argument rules, rate limits, approval rules; the first deny wins,
then the first approval rule that matches, else allow.
"""

from __future__ import annotations

import ast
import fnmatch
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import sqlglot
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlglot import exp
from sqlglot.errors import SqlglotError

from schemas.attributes import RETRACE_POLICY_DECISION, RETRACE_POLICY_REASON, RETRACE_POLICY_RULE
from schemas.errors import PolicyError

PolicyAction = Literal["allow", "deny", "require_approval"]
CheckName = Literal["sql_read_only", "path_glob", "no_network"]

#: The workspace as the sandbox mounts it; absolute paths under it are workspace paths.
WORKSPACE_MOUNT: Final = "/workspace"

# Arguments holding a shell command (the rest of the code-bearing ones hold Python).
_SHELL_ARGUMENTS: Final = frozenset({"command", "cmd", "shell"})
_DEFAULT_ARGUMENTS: Final[dict[str, tuple[str, ...]]] = {
    "sql_read_only": ("sql", "query"),
    "path_glob": ("path", "paths", "src", "dst", "source", "destination", "filename", "file"),
    "no_network": ("code", "command", "script"),
}


# --- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy says about one call; ``rule`` names the rule that decided it."""

    action: PolicyAction
    rule: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    def attributes(self) -> dict[str, str]:
        """The span attributes (and span-event attributes) that record this decision."""
        return {
            RETRACE_POLICY_DECISION: self.action,
            RETRACE_POLICY_RULE: self.rule,
            RETRACE_POLICY_REASON: self.reason,
        }


@dataclass(frozen=True)
class PriorCall:
    """A call already made in this run (as executed), for rate limits."""

    tool: str
    at: float  # runtime clock (seconds since the epoch), pinned on replay


@dataclass(frozen=True)
class PolicyContext:
    """Everything besides the call itself that a decision may depend on. Plain data."""

    run_id: str = ""
    calls_so_far: Sequence[PriorCall] = ()
    now: float = 0.0
    server: str = ""  # MCP server the tool lives on, when known
    estimated_cost: float | None = None  # overrides the policy's cost table when given


# --- the policy file --------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolLists(_Spec):
    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)


class ArgumentRule(_Spec):
    name: str
    check: CheckName
    tools: list[str] = Field(default_factory=lambda: ["*"])
    arguments: list[str] | None = None
    globs: list[str] = Field(default_factory=lambda: ["**"])
    dialect: str | None = None  # sqlglot dialect for sql_read_only

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                sqlglot.Dialect.get_or_raise(value)
            except ValueError as exc:
                raise ValueError(f"unknown sqlglot dialect {value!r}") from exc
        return value


class RateLimit(_Spec):
    name: str = "rate-limit"
    tools: list[str] = Field(default_factory=lambda: ["*"])
    max_per_run: int | None = Field(None, ge=0)
    max_per_minute: int | None = Field(None, ge=0)


class ApprovalCondition(_Spec):
    deletes: bool | None = None
    argument: str | None = None
    pattern: str | None = None
    cost_above: float | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value


class ApprovalRule(_Spec):
    name: str
    tools: list[str] = Field(default_factory=lambda: ["*"])
    when: ApprovalCondition | None = None  # None: every call of these tools


class PolicySpec(_Spec):
    version: Literal[1] = 1
    tools: ToolLists = Field(default_factory=ToolLists)
    rules: list[ArgumentRule] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    costs: dict[str, float] = Field(default_factory=dict)
    require_approval: list[ApprovalRule] = Field(default_factory=list)


def _describe_validation_error(source: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        problems.append(f"{where}: {err['msg']}")
    return f"invalid policy {source}: " + "; ".join(problems)


# --- the policy -------------------------------------------------------------------------------


class Policy:
    """A loaded policy. ``decide`` is pure and cheap; build one per run and reuse it."""

    def __init__(self, spec: PolicySpec | None = None, *, source: str = "<policy>") -> None:
        self.spec = spec if spec is not None else PolicySpec()
        self.source = source

    @classmethod
    def allow_all(cls) -> Policy:
        """The policy used when an agent names none: everything allowed, nothing checked."""
        return cls(PolicySpec(), source="<allow-all>")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<policy>", quote: bool = True
    ) -> Policy:
        """Build from parsed YAML/JSON. Raises PolicyError naming the bad field.

        ``quote=False`` (a policy named on someone else's behalf): the error gives the number
        and kind of problems only, never a key or value taken from ``data``.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"invalid policy {source}: expected a mapping at the top level")
        try:
            return cls(PolicySpec.model_validate(dict(data)), source=source)
        except ValidationError as exc:
            if not quote:
                raise PolicyError(
                    f"invalid policy {source}: {exc.error_count()} problem(s), the first: "
                    f"{exc.errors()[0]['type']}"
                ) from None
            raise PolicyError(_describe_validation_error(source, exc)) from None

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<policy>", quote: bool = True) -> Policy:
        """Parse YAML text. Raises PolicyError on bad YAML or a bad field (``quote``: see
        :meth:`from_dict`; unquoted, a YAML error gives its line and column only)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            if quote:
                raise PolicyError(f"invalid policy {source}: not valid YAML: {exc}") from None
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise PolicyError(f"invalid policy {source}: not valid YAML{where}") from None
        return cls.from_dict(data if data is not None else {}, source=source, quote=quote)

    @classmethod
    def load(cls, path: str | Path, *, quote: bool = True) -> Policy:
        """Load a policy file. Raises PolicyError (missing file, bad YAML, bad field; ``quote``:
        see :meth:`from_dict`)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise PolicyError(f"policy file {path} is not UTF-8 text") from None
        return cls.from_yaml(text, source=str(path), quote=quote)

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: PolicyContext | None = None
    ) -> PolicyDecision:
        """Decide one call. Pure: same inputs, same decision."""
        context = context if context is not None else PolicyContext()
        names = _candidate_names(tool, context.server)
        spec = self.spec

        if _matches(names, spec.tools.deny):
            return PolicyDecision("deny", "tools.deny", f"tool {tool!r} is on the deny list")
        if not _matches(names, spec.tools.allow):
            return PolicyDecision("deny", "tools.allow", f"tool {tool!r} is not on the allow list")

        for rule in spec.rules:
            if not _matches(names, rule.tools):
                continue
            problem = _check_arguments(rule, arguments)
            if problem is not None:
                return PolicyDecision("deny", rule.name, problem)

        for limit in spec.rate_limits:
            if not _matches(names, limit.tools):
                continue
            problem = _check_rate(limit, tool, context)
            if problem is not None:
                return PolicyDecision("deny", limit.name, problem)

        cost = self.estimated_cost(tool, context)
        for approval in spec.require_approval:
            if not _matches(names, approval.tools):
                continue
            why = _approval_reason(approval, tool, arguments, cost)
            if why is not None:
                return PolicyDecision("require_approval", approval.name, why)

        return PolicyDecision("allow", "", "")

    def estimated_cost(self, tool: str, context: PolicyContext | None = None) -> float:
        """Cost of one call: ``context.estimated_cost`` if given, else the most specific glob."""
        if context is not None and context.estimated_cost is not None:
            return context.estimated_cost
        names = _candidate_names(tool, context.server if context else "")
        best: tuple[int, float] | None = None
        for glob, cost in self.spec.costs.items():
            if _matches(names, [glob]):
                specificity = len(glob.replace("*", ""))
                if best is None or specificity > best[0]:
                    best = (specificity, cost)
        return best[1] if best is not None else 0.0


def _candidate_names(tool: str, server: str) -> set[str]:
    """Names a glob may match: the exposed name, the bare name and ``server.bare``.

    The bridge prefixes colliding tools as ``server__tool``; a rule written for ``read_file``
    must still catch ``sandbox__read_file``.
    """
    names = {tool}
    bare = tool
    if "__" in tool:
        prefix, bare = tool.split("__", 1)
        names.add(bare)
        names.add(f"{prefix}.{bare}")
    if server:
        names.add(f"{server}.{bare}")
    return names


def _matches(names: Iterable[str], globs: Iterable[str]) -> bool:
    globs = list(globs)
    return any(fnmatch.fnmatchcase(name, glob) for name in names for glob in globs)


# --- argument checks --------------------------------------------------------------------------


def _check_arguments(rule: ArgumentRule, arguments: Mapping[str, Any]) -> str | None:
    keys = rule.arguments if rule.arguments is not None else _DEFAULT_ARGUMENTS[rule.check]
    for key in keys:
        if key not in arguments:
            continue
        value = arguments[key]
        values = value if rule.check == "path_glob" and isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                return f"argument {key!r} must be a string to be checked, got {type(item).__name__}"
            problem = _run_check(rule, item, _language_of(key))
            if problem is not None:
                return f"argument {key!r}: {problem}"
    return None


def _run_check(rule: ArgumentRule, value: str, language: Language) -> str | None:
    if rule.check == "sql_read_only":
        return sql_read_only_problem(value, dialect=rule.dialect)
    if rule.check == "path_glob":
        return workspace_path_problem(value, rule.globs)
    return network_use_problem(value, language)


# SQL ------------------------------------------------------------------------------------------

_WRITE_NODES: Final = (
    exp.DML,
    exp.DDL,
    exp.Command,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Into,
    exp.Lock,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Set,
    exp.Use,
    exp.Copy,
    exp.LoadData,
    exp.Grant,
    exp.Revoke,
    exp.TruncateTable,
    exp.Analyze,
    exp.Declare,
    exp.Kill,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.Export,
)
# Functions that read or write files, load code, or stall the server, in common dialects.
_FORBIDDEN_FUNCTIONS: Final = frozenset({
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "pg_read_file",
    "pg_read_binary_file", "pg_ls_dir", "pg_sleep", "lo_import", "lo_export", "dblink",
    "load_file", "sleep", "benchmark", "file", "url", "s3", "remote", "input",
})  # fmt: skip


def _strip_explain(sql: str, dialect: str | None) -> tuple[str, bool]:
    """``EXPLAIN [QUERY PLAN] <stmt>`` -> (``<stmt>``, True); otherwise (sql, False)."""
    tokens = sqlglot.tokenize(sql, read=dialect)
    if not tokens or tokens[0].text.upper() != "EXPLAIN":
        return sql, False
    rest = sql[tokens[0].end + 1 :]
    words = rest.split(None, 2)
    if len(words) >= 2 and words[0].upper() == "QUERY" and words[1].upper() == "PLAN":
        rest = words[2] if len(words) == 3 else ""
    return rest, True


def sql_read_only_problem(sql: str, *, dialect: str | None = None) -> str | None:
    """Why ``sql`` is not a single read-only query (parsed with sqlglot), or None if it is.

    Allowed: one SELECT (incl. WITH ... SELECT, UNION/INTERSECT/EXCEPT), optionally prefixed by
    EXPLAIN [QUERY PLAN]. Denied: several statements, anything writing, DDL, PRAGMA, ATTACH,
    SELECT INTO, locks, file/extension functions, anything sqlglot cannot parse.
    """
    if "\x00" in sql:
        return "SQL contains a NUL byte"
    try:
        body, _ = _strip_explain(sql, dialect)
        statements = [s for s in sqlglot.parse(body, read=dialect) if s is not None]
    except SqlglotError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"SQL could not be parsed as a read-only query ({_plain(first_line)})"
    if not statements:
        return "SQL is empty"
    if len(statements) > 1:
        return f"SQL has {len(statements)} statements; only a single query is allowed"
    root = statements[0]
    if not isinstance(root, exp.Query) or isinstance(root, exp.DML):
        return f"only SELECT queries are allowed, got {_statement_kind(root)}"
    for node in root.walk():
        if isinstance(node, _WRITE_NODES):
            return f"query contains a {_statement_kind(node)} clause; only reads are allowed"
        if isinstance(node, exp.Func):
            fname = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if fname in _FORBIDDEN_FUNCTIONS:
                return f"function {fname}() is not allowed in queries"
    return None


def _statement_kind(node: exp.Expr) -> str:
    key = getattr(node, "key", "") or type(node).__name__
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return str(key).upper()


def _plain(text: str) -> str:
    """Drop ANSI colour codes sqlglot puts into its error messages."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# Paths ----------------------------------------------------------------------------------------


def workspace_path(path: str) -> str | None:
    """Normalise ``path`` to a workspace-relative POSIX path, or None if it leaves the workspace.

    Relative paths are relative to the workspace; absolute paths must be under ``/workspace``.
    ``..`` that climbs out is refused. The result is ``"."`` for the workspace itself.
    """
    if "\x00" in path or path.strip() == "":
        return None
    path = path.replace("\\", "/")
    if path.startswith("/"):
        norm = posixpath.normpath(path)
        if norm == WORKSPACE_MOUNT:
            return "."
        if not norm.startswith(WORKSPACE_MOUNT + "/"):
            return None
        path = norm[len(WORKSPACE_MOUNT) + 1 :]
    if path.startswith("~"):
        return None
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def _glob_regex(glob: str) -> re.Pattern[str]:
    """``**`` crosses directories, ``*`` and ``?`` do not; ``**/`` may match nothing."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def workspace_path_problem(path: str, globs: Sequence[str]) -> str | None:
    """Why ``path`` is not an allowed workspace path, or None if it is."""
    rel = workspace_path(path)
    if rel is None:
        return f"path {path!r} is outside the workspace"
    if not any(_glob_regex(g).match(rel) for g in globs):
        return f"path {rel!r} does not match the allowed globs {list(globs)}"
    return None


# Network --------------------------------------------------------------------------------------

_NETWORK_MODULES: Final = frozenset({
    "socket", "ssl", "urllib", "urllib2", "urllib3", "http", "httpx", "requests", "aiohttp",
    "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc", "websocket",
    "websockets", "paramiko", "asyncssh", "socketserver",
})  # fmt: skip
_NETWORK_COMMANDS: Final = frozenset({
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync",
    "telnet", "ftp", "ping", "dig", "nslookup", "host", "git", "pip", "pip3", "apt",
    "apt-get",
})  # fmt: skip
_URL_RE: Final = re.compile(r"\b(?:https?|ftp|wss?)://", re.IGNORECASE)
_ASYNC_NET_CALLS: Final = frozenset({"open_connection", "create_connection", "getaddrinfo"})


Language = Literal["python", "shell"]


def _language_of(key: str) -> Language:
    return "shell" if key in _SHELL_ARGUMENTS else "python"


def _parse_python(code: str, language: Language) -> ast.Module | None:
    """The AST when ``code`` is Python; None for shell (or Python that does not parse)."""
    if language == "shell":
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def network_use_problem(code: str, language: Language = "python") -> str | None:
    """A best-effort static look for network use in Python code or a shell command.

    Not a guarantee (code can be obfuscated); the sandbox has no network either way. This check
    exists so the trace records *why* a call was refused rather than a timeout. Python that does
    not parse is scanned as a shell command.
    """
    if "/dev/tcp/" in code or "/dev/udp/" in code:
        return "uses /dev/tcp or /dev/udp (network)"
    if _URL_RE.search(code):
        return "contains a network URL"
    tree = _parse_python(code, language)
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            elif isinstance(node, ast.Call):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname == "__import__" and node.args:
                    arg = node.args[0]
                    is_name = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                    mods = [str(arg.value)] if is_name else []  # type: ignore[attr-defined]
                elif fname in _ASYNC_NET_CALLS:
                    return f"calls {fname}() (network)"
                else:
                    continue
            else:
                continue
            for mod in mods:
                if mod.split(".")[0] in _NETWORK_MODULES:
                    return f"imports {mod} (network)"
        return None
    return _shell_network_problem(code)


def _shell_words(command: str) -> list[str]:
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:
        return command.split()


def _command_heads(command: str) -> list[tuple[str, list[str]]]:
    """(program, args) for each simple command in a shell line (split on ; & | && || ( ))."""
    heads: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for word in [*_shell_words(command), ";"]:
        if word and set(word) <= set(";&|()"):
            if current:
                prog = current[0]
                # Skip env assignments and common wrappers to find the real program.
                idx = 0
                while idx < len(current) and (
                    "=" in current[idx].split("/")[0]
                    or current[idx] in {"sudo", "env", "nohup", "timeout", "exec", "command"}
                ):
                    idx += 1
                if idx < len(current):
                    prog = current[idx]
                    heads.append((posixpath.basename(prog), current[idx + 1 :]))
            current = []
        else:
            current.append(word)
    return heads


def _shell_network_problem(command: str) -> str | None:
    for prog, args in _command_heads(command):
        if prog in _NETWORK_COMMANDS:
            return f"runs {prog} (network)"
        if prog.startswith("python") and "-c" in args:
            inner = args[args.index("-c") + 1] if args.index("-c") + 1 < len(args) else ""
            problem = network_use_problem(inner, "python")
            if problem is not None:
                return problem
    return None


# Approvals ------------------------------------------------------------------------------------

_DELETE_COMMANDS: Final = frozenset({"rm", "rmdir", "unlink", "shred", "truncate"})
_PY_DELETE_CALLS: Final = frozenset({"remove", "unlink", "rmdir", "rmtree", "removedirs"})


def deletes_files(code: str, language: Language = "python") -> bool:
    """Best-effort: does this shell command or Python code delete files?"""
    tree = _parse_python(code, language)
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in _PY_DELETE_CALLS:
                    return True
                if fname in {"system", "run", "call", "Popen", "check_call", "check_output"}:
                    for arg in node.args:
                        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                            continue
                        if deletes_files(arg.value, "shell"):
                            return True
        return False
    for prog, args in _command_heads(code):
        if prog in _DELETE_COMMANDS:
            return True
        if prog == "find" and "-delete" in args:
            return True
        if prog.startswith("python") and "-c" in args:
            idx = args.index("-c") + 1
            if idx < len(args) and deletes_files(args[idx], "python"):
                return True
    return False


def _approval_reason(
    rule: ApprovalRule, tool: str, arguments: Mapping[str, Any], cost: float
) -> str | None:
    cond = rule.when
    if cond is None:
        return f"calls to {tool!r} need approval"
    if cond.deletes:
        for key in _DEFAULT_ARGUMENTS["no_network"]:
            value = arguments.get(key)
            if isinstance(value, str) and deletes_files(value, _language_of(key)):
                return f"{tool!r} would delete files ({key}) and needs approval"
    if cond.pattern is not None:
        keys = [cond.argument] if cond.argument else list(arguments)
        regex = re.compile(cond.pattern)
        for key in keys:
            value = arguments.get(key)
            text = value if isinstance(value, str) else None
            if text is not None and regex.search(text):
                return f"argument {key!r} matches {cond.pattern!r} and needs approval"
    if cond.cost_above is not None and cost > cond.cost_above:
        return f"estimated cost {cost:g} exceeds {cond.cost_above:g} and needs approval"
    return None


@dataclass
class CallLog:
    """Keeps the ``PriorCall`` list for one run; convenience for callers of ``decide``."""

    run_id: str = ""
    calls: list[PriorCall] = field(default_factory=list)

    def context(self, now: float, *, server: str = "") -> PolicyContext:
        return PolicyContext(
            run_id=self.run_id, calls_so_far=tuple(self.calls), now=now, server=server
        )

    def record(self, tool: str, at: float) -> None:
        self.calls.append(PriorCall(tool, at))


def _check_rate(limit: RateLimit, tool: str, context: PolicyContext) -> str | None:
    same = [c for c in context.calls_so_far if c.tool == tool]
    if limit.max_per_run is not None and len(same) >= limit.max_per_run:
        return f"{tool!r} already called {len(same)} times in this run (max {limit.max_per_run})"
    if limit.max_per_minute is not None:
        recent = [c for c in same if context.now - 60.0 < c.at <= context.now]
        if len(recent) >= limit.max_per_minute:
            return (
                f"{tool!r} called {len(recent)} times in the last minute "
                f"(max {limit.max_per_minute})"
            )
    return None


__all__ = [
    "CallLog",
    "Policy",
    "PolicyAction",
    "PolicyContext",
    "PolicyDecision",
    "PolicySpec",
    "PriorCall",
    "deletes_files",
    "network_use_problem",
    "sql_read_only_problem",
    "workspace_path",
    "workspace_path_problem",
]
