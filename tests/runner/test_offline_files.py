"""Which file ``offline:NAME`` reads: a bundled script, or a path — any path for a local user,
only under the allowed directories for a run on a collector client's behalf (``confine_to``),
with errors that never quote the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.config import AgentConfig
from runner.offline import BUNDLED_SCRIPTS, OfflineModel, load_script, resolve_script
from runner.providers import make_model
from schemas.errors import ConfigError, InvalidInputError, RetraceError
from schemas.paths import is_script_path
from schemas.settings import Settings

SECRET = "hunter2-do-not-show"
SCRIPT = "name: mine\ntasks:\n  - name: t\n    match: .\n    steps: [{answer: done}]\n"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A data dir with a script in it, and a secret file next to it (outside)."""
    data = tmp_path / "data"
    (data / "scripts").mkdir(parents=True)
    mine = data / "scripts" / "mine.yaml"
    mine.write_text(SCRIPT)
    secret = tmp_path / "secret.yaml"
    secret.write_text(f"token: {SECRET}\n  {SECRET}: [\n")
    return {"data": data, "mine": mine, "secret": secret}


@pytest.mark.parametrize(
    ("name", "is_path"),
    [
        ("data-scientist", False),
        ("bench", False),
        ("v1.2_model", False),
        ("mine.yaml", True),
        ("MINE.YML", True),
        ("./mine.yaml", True),
        ("/abs/mine", True),
        ("../escape", True),
        ("a..b", True),
        (".hidden", True),
        ("dir/name", True),
        ("", True),
    ],
)
def test_a_name_is_a_bundled_script_or_a_path(name: str, is_path: bool) -> None:
    assert is_script_path(name) is is_path


def test_a_local_user_may_name_their_own_script_file(
    layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(layout["mine"].parent)
    assert resolve_script("./mine.yaml") == Path("./mine.yaml")
    assert resolve_script("mine.yaml") == Path("mine.yaml")
    assert resolve_script(str(layout["secret"])) == layout["secret"]  # their file, their call
    model = make_model(AgentConfig(model="offline:./mine.yaml"), Settings())
    assert isinstance(model, OfflineModel) and model.script.name == "mine"
    # unconfined errors may quote the file: it is the user's own
    with pytest.raises(ConfigError, match=SECRET):
        load_script(layout["secret"])


def test_confined_resolution_reads_only_bundled_or_data_dir_files(
    layout: dict[str, Path],
) -> None:
    data, mine, secret = layout["data"], layout["mine"], layout["secret"]
    assert resolve_script("data-scientist", confine_to=data) == BUNDLED_SCRIPTS / (
        "data-scientist.yaml"
    )
    assert resolve_script(str(mine), confine_to=data) == mine.resolve()
    assert resolve_script("x", str(mine), confine_to=data) == mine.resolve()
    bundled = BUNDLED_SCRIPTS / "data-scientist.yaml"
    assert resolve_script(str(bundled), confine_to=data) == bundled.resolve()
    link = data / "link.yaml"
    link.symlink_to(secret)
    refused = [
        str(secret),
        str(secret.with_suffix("")),
        str(data / ".." / "secret.yaml"),
        os.path.relpath(secret, Path.cwd()),
        str(link),
        "/etc/passwd",
        str(data / "scripts"),  # a directory
        str(data / "missing.yaml"),
        "bad\x00name.yaml",
    ]
    for name in refused:
        with pytest.raises(InvalidInputError, match="must be an existing file under") as caught:
            resolve_script(name, confine_to=data)
        assert SECRET not in caught.value.message
        with pytest.raises(InvalidInputError):
            resolve_script("x", name, confine_to=data)  # an explicit offline_script alike


def test_confined_models_never_quote_the_script(layout: dict[str, Path]) -> None:
    data = layout["data"]
    bad_yaml = data / "bad.yaml"
    bad_yaml.write_text(f"token: {SECRET}\n  {SECRET}: [\n")
    bad_script = data / "unknown-key.yaml"
    bad_script.write_text(f"{SECRET}: 1\ntasks: []\n")
    bad_regex = data / "regex.yaml"
    bad_regex.write_text(f"tasks: [{{name: t, match: '({SECRET}', steps: [{{answer: x}}]}}]\n")
    binary = data / "binary.yaml"
    binary.write_bytes(b"\xff\xfe" + SECRET.encode())
    confined = Settings(confine_to=data)
    for path, problem in [
        (bad_yaml, "not valid YAML (line 2, column"),
        (bad_script, "not a valid script"),
        (bad_regex, "not a valid script"),
        (binary, "not UTF-8 text"),
    ]:
        config = AgentConfig(model=f"offline:{path}")
        with pytest.raises(ConfigError, match="offline script") as caught:
            make_model(config, confined)
        assert problem in caught.value.message
        assert SECRET not in caught.value.message, caught.value.message
        config = AgentConfig(model="offline:x", offline_script=str(path))
        with pytest.raises(ConfigError) as caught:
            make_model(config, confined)
        assert SECRET not in caught.value.message, caught.value.message


NAMES = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["..", ".", "data", "scripts", "mine.yaml", "secret.yaml", "link.yaml"]),
        min_size=1,
        max_size=6,
    ).map("/".join),
    st.sampled_from(["/", "/etc/passwd", "~", "~/x.yaml", "data-scientist", "\x00"]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, absolute=st.booleans(), explicit=st.booleans())
def test_any_name_resolves_inside_the_roots_or_is_refused(
    layout: dict[str, Path], name: str, absolute: bool, explicit: bool
) -> None:
    data = layout["data"]
    link = data / "link.yaml"
    if not link.exists():
        link.symlink_to(layout["secret"])
    candidate = str(data.parent / name) if absolute else name
    try:
        if explicit:
            path = resolve_script("x", candidate, confine_to=data)
        else:
            path = resolve_script(candidate, confine_to=data)
    except RetraceError as error:
        assert SECRET not in error.message
        return
    resolved = path.resolve()
    assert path.is_file()
    assert resolved.is_relative_to(data.resolve()) or resolved.is_relative_to(
        BUNDLED_SCRIPTS.parent.resolve()
    )
    assert resolved != layout["secret"].resolve()
