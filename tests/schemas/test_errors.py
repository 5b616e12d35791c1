"""The error hierarchy: one class per code, every class registered, codes stable."""

from __future__ import annotations

import pytest

import schemas.errors as errors
from schemas.errors import (
    CollectorUnreachableError,
    InvalidInputError,
    RetraceError,
    StoreError,
    error_class,
    registered_errors,
)


def _all_subclasses(cls: type[RetraceError]) -> list[type[RetraceError]]:
    found: list[type[RetraceError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def test_every_error_class_has_its_own_code_and_is_registered() -> None:
    classes = [RetraceError, *_all_subclasses(RetraceError)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    for cls in classes:
        assert "code" in vars(cls), f"{cls.__name__} inherits its code"
        assert error_class(cls.code) is cls
    assert set(registered_errors().values()) == set(classes)


def test_every_class_of_the_module_is_registered() -> None:
    declared = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, RetraceError)
    }
    assert declared <= set(registered_errors().values())
    assert {"conflict", "too_many_jobs", "collector_unreachable"} <= set(registered_errors())


def test_a_subclass_without_its_own_code_is_refused() -> None:
    with pytest.raises(TypeError, match="must declare its own error code"):

        class Vague(InvalidInputError):
            pass

    assert error_class("invalid_input") is InvalidInputError


def test_a_reused_code_is_refused() -> None:
    with pytest.raises(TypeError, match=r"'not_found' .* is already NotFoundError's"):

        class Missing(RetraceError):
            code = "not_found"

    assert error_class("not_found") is errors.NotFoundError


def test_unknown_code_has_no_class() -> None:
    assert error_class("no_such_code") is None
    assert error_class("") is None


def test_collector_unreachable_is_a_store_error() -> None:
    """Callers that treated an unreachable collector as a ``StoreError`` still do."""
    assert issubclass(CollectorUnreachableError, StoreError)
    assert CollectorUnreachableError.http_status == 503
