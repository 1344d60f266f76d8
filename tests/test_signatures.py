"""Drift alarm: costwise's typed create() covers every parameter of the SDK's create()."""

from __future__ import annotations

import inspect

from openai.resources.chat.completions import AsyncCompletions, Completions

from costwise.typing import CostwiseOptions, CreateKwargs, CreateStreamKwargs

SDK_ONLY_INTERNAL = {"self"}


def _sdk_params(fn: object) -> set[str]:
    return set(inspect.signature(fn).parameters) - SDK_ONLY_INTERNAL  # type: ignore[arg-type]


def test_create_kwargs_cover_sdk_create() -> None:
    """Every SDK create() parameter is a key of CreateKwargs and CreateStreamKwargs."""
    for fn in (Completions.create, AsyncCompletions.create):
        params = _sdk_params(fn)
        assert params - set(CreateKwargs.__annotations__) - {"stream"} == set()
        assert params - set(CreateStreamKwargs.__annotations__) == set()


def test_costwise_options_do_not_shadow_sdk_parameters() -> None:
    """costwise's own per-call options never collide with an SDK parameter name."""
    params = _sdk_params(Completions.create) | _sdk_params(Completions.parse)
    assert set(CostwiseOptions.__annotations__) & params == set()
