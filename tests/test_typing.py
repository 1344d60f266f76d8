"""Types users see: checked by mypy --strict (the test command runs it over tests/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from typing_extensions import assert_type

from costwise.ledger import MemoryStore
from costwise.testing import FakeProvider, fake_async_client, fake_client

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def test_create_return_types_are_the_sdks() -> None:
    """create() is typed like the SDK's, with costwise keywords accepted."""
    client = fake_client(FakeProvider(), ledger=MemoryStore())
    done = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, feature="t")
    assert_type(done, ChatCompletion)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, feature="t", cache=False
    )
    assert_type(stream, Stream[ChatCompletionChunk])
    stream.close()


async def _async_types() -> None:
    client = fake_async_client(FakeProvider(), ledger=MemoryStore())
    done = await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, task="chat")
    assert_type(done, ChatCompletion)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    assert_type(stream, AsyncStream[ChatCompletionChunk])
