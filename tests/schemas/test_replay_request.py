"""``ReplayRequest``: the offline model's script is ``script``; ``policy``, its first name (which
means the tool policy everywhere else), is still accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.models import ReplayMode, ReplayRequest


def test_script_is_the_field_and_policy_a_deprecated_alias() -> None:
    new = ReplayRequest.model_validate({"mode": "live-model", "script": "/data/other.yaml"})
    old = ReplayRequest.model_validate({"mode": "live-model", "policy": "/data/other.yaml"})
    assert new == old == ReplayRequest(mode=ReplayMode.LIVE_MODEL, script="/data/other.yaml")
    body = new.model_dump(mode="json")
    assert body["script"] == "/data/other.yaml" and "policy" not in body
    assert ReplayRequest.model_validate_json(new.model_dump_json()) == new


def test_unknown_fields_are_still_refused() -> None:
    with pytest.raises(ValidationError):
        ReplayRequest.model_validate({"scirpt": "/data/other.yaml"})
