"""Feature tags: the ``feature=`` argument and the `feature` context manager."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["UNTAGGED", "current_feature", "feature", "validate_feature"]

UNTAGGED = "untagged"
"""The feature calls are recorded under when nobody tagged them."""

# The only module-level state in costwise (structlog.contextvars style): each thread and each
# asyncio task sees its own value, copied from where it was started.
_FEATURE: ContextVar[str | None] = ContextVar("costwise_feature", default=None)


def validate_feature(value: object) -> str:
    """Return `value` if it is a usable tag.

    Raises:
        TypeError: it is not a string.
        ValueError: it is empty, only whitespace, or longer than 200 characters.
    """
    if not isinstance(value, str):
        msg = f"feature must be a string, got {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    if not value.strip():
        msg = "feature must be a non-empty string, got an empty or blank one"
        raise ValueError(msg)
    if len(value) > 200:
        msg = f"feature must be at most 200 characters, got {len(value)}"
        raise ValueError(msg)
    return value


def current_feature() -> str | None:
    """The feature set by the innermost active `feature` block, if any."""
    return _FEATURE.get()


@contextmanager
def feature(name: str) -> Iterator[str]:
    """Tag every costwise call made inside the block with `name`.

    Use it when the code that makes the call cannot pass ``feature=`` (a third-party
    library, ``.parse()`` deep in a helper). An explicit ``feature=`` argument wins over it.
    It is a context variable, so it follows the code into asyncio tasks started inside the
    block and stays out of other threads.

    Raises:
        TypeError, ValueError: `name` is not a usable tag (see `validate_feature`).

    Example:
        >>> with costwise.feature("support-bot"):
        ...     client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    """
    token = _FEATURE.set(validate_feature(name))
    try:
        yield name
    finally:
        _FEATURE.reset(token)
