"""Structured outputs (``chat.completions.parse``) in the cache.

``parse(response_format=SomeModel)`` sends the model's JSON schema and returns a
`ParsedChatCompletion` whose messages carry ``parsed``, an instance of ``SomeModel``. The
cache stores the completion as JSON like any other; a hit rebuilds the parsed completion
from it with the caller's class, so the object has the type and the values the SDK would
have returned. The key covers the class's JSON schema (not its Python identity), and parse
requests never share entries with ``create`` requests.

Not cached: ``parse`` with ``tools`` (the SDK also parses tool-call arguments of strict
function tools, which this does not rebuild), and a ``response_format`` that is not a
pydantic model class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openai.types.chat import ChatCompletion, ParsedChatCompletion

__all__ = ["as_parsed", "parse_cacheable", "parse_key_kwargs"]

_MARK = "\x00costwise-parse"  # no API argument has this name


def _model_class(value: Any) -> type | None:
    import pydantic

    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        return value
    return None


def parse_cacheable(kwargs: Mapping[str, Any]) -> bool:
    """Whether a ``parse`` request's answer can be rebuilt from a stored completion."""
    if kwargs.get("tools"):
        return False
    fmt = kwargs.get("response_format")
    return fmt is None or _is_omitted(fmt) or _model_class(fmt) is not None


def _is_omitted(value: Any) -> bool:
    from openai import NotGiven, Omit

    return isinstance(value, NotGiven | Omit)


def parse_key_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a ``parse`` request is keyed by: its class as a JSON schema."""
    import pydantic

    keyed = dict(kwargs)
    cls = _model_class(kwargs.get("response_format"))
    if cls is not None:
        keyed["response_format"] = {
            "name": cls.__name__,
            "schema": pydantic.TypeAdapter(cls).json_schema(),
        }
    keyed[_MARK] = True
    return keyed


def as_parsed(completion: ChatCompletion, response_format: Any) -> ParsedChatCompletion[Any]:
    """`completion` as the `ParsedChatCompletion` that ``parse`` returns for it.

    Raises:
        ValueError: a message's content does not validate as `response_format` (a corrupt
            entry; pydantic's ValidationError is a ValueError).
    """
    cls = _model_class(response_format)
    data = completion.model_dump()
    for choice in data["choices"]:
        message = choice["message"]
        content = message.get("content")
        message["parsed"] = (
            cls.model_validate_json(content)  # type: ignore[attr-defined]
            if cls is not None and content and not message.get("refusal")
            else None
        )
    parsed_type: Any = ParsedChatCompletion[cls] if cls is not None else ParsedChatCompletion[None]  # type: ignore[valid-type]
    result: ParsedChatCompletion[Any] = parsed_type.model_validate(data)
    return result
