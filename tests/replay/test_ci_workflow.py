"""The GitHub Actions example in docs/ci.md (and its copy docs/examples/retrace-ci.yml) parses,
runs on pull requests, and calls `retrace ci` with options the real command has, then posts the
markdown file that command writes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from replay.cli import ci

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return list(job["steps"])


def test_the_workflow_example_parses_and_uses_the_real_options() -> None:
    text = (DOCS / "examples" / "retrace-ci.yml").read_text()
    workflow = yaml.safe_load(text)
    # the doc shows the same file
    block = re.search(r"```yaml\n(.*?)```", (DOCS / "ci.md").read_text(), re.S)
    assert block is not None and block.group(1) == text
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    assert workflow["permissions"]["pull-requests"] == "write"

    steps = _steps(workflow)
    runs = [s for s in steps if "retrace ci" in s.get("run", "")]
    assert len(runs) == 1
    argv = shlex.split(runs[0]["run"])
    assert argv[:2] == ["retrace", "ci"]
    known = {opt for p in ci.params for opt in p.opts}
    used = [a for a in argv if a.startswith("--")]
    assert set(used) <= known, set(used) - known
    assert {"--suite", "--endpoint", "--markdown", "--junit"} <= set(used)
    markdown = argv[argv.index("--markdown") + 1]
    assert argv[argv.index("--endpoint") + 1] == "$RETRACE_ENDPOINT"
    env = runs[0]["env"]
    assert env["RETRACE_ENDPOINT"] == "${{ secrets.RETRACE_ENDPOINT }}"
    assert env["RETRACE_API_KEY"] == "${{ secrets.RETRACE_API_KEY }}"

    # after it (also when it failed), the summary is posted on the pull request
    post = steps[steps.index(runs[0]) + 1]
    assert "always()" in post["if"]
    assert f'gh pr comment "$PR" --body-file {markdown}' in post["run"]
    assert post["env"]["PR"] == "${{ github.event.pull_request.number }}"
