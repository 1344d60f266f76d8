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


def test_recorded_endpoint_kwargs_cover_the_sdk() -> None:
    """The typed embeddings/responses create() accept every SDK parameter, plus feature=."""
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings
    from openai.resources.responses import AsyncResponses, Responses

    from costwise.typing import EmbeddingsKwargs, ResponsesKwargs, ResponsesStreamKwargs

    for embed in (Embeddings.create, AsyncEmbeddings.create):
        assert _sdk_params(embed) - set(EmbeddingsKwargs.__annotations__) == set()
        assert "feature" not in _sdk_params(embed)
    for method in (Responses.create, AsyncResponses.create):
        fn: object = method
        assert _sdk_params(fn) - set(ResponsesKwargs.__annotations__) - {"stream"} == set()
        assert _sdk_params(fn) - set(ResponsesStreamKwargs.__annotations__) == set()
        assert "feature" not in _sdk_params(fn)
    assert "feature" in EmbeddingsKwargs.__annotations__ | ResponsesKwargs.__annotations__
