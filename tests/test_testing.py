"""The public test kit: FakeProvider, builders and the loopback server, over the real SDK."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from costwise.testing import (
    Disconnect,
    Error,
    FakeProvider,
    RecordedRequest,
    Reply,
    Timeout,
    bare_async_client,
    bare_client,
    chat_completion,
    chat_completion_chunks,
    fake_async_client,
    fake_client,
    serve,
    sse,
)

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How do I make my LLM calls cheaper?"},
]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"})


def make_client(provider: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(provider)),
        _strict_response_validation=True,
    )


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with make_client(provider) as sdk:
        yield sdk


def _create(client: openai.OpenAI, **kwargs: Any) -> ChatCompletion:
    options: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES, **kwargs}
    response: ChatCompletion = client.chat.completions.create(**options)
    return response


class TestChat:
    def test_non_stream_answer_looks_real(
        self, client: openai.OpenAI, provider: FakeProvider
    ) -> None:
        """A plain call returns a realistic, deterministic completion with counted usage."""
        first = _create(client, model="gpt-4o")
        again = _create(client, model="gpt-4o")
        assert first.model == "gpt-4o-2024-08-06"
        assert first.id == "chatcmpl-1"
        assert again.id == "chatcmpl-2"
        assert first.object == "chat.completion"
        assert first.system_fingerprint is not None
        assert first.system_fingerprint.startswith("fp_")
        content = first.choices[0].message.content
        assert content is not None
        assert len(content.split()) > 20
        assert content == again.choices[0].message.content
        assert first.choices[0].finish_reason == "stop"
        usage = first.usage
        assert usage is not None
        assert usage.prompt_tokens > 10
        assert usage.completion_tokens > 20
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 0
        other = _create(client, messages=[{"role": "user", "content": "Something else"}])
        assert other.choices[0].message.content != content

    def test_requests_are_recorded(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """Every request is recorded with method, path, lower-cased headers and JSON."""
        _create(client, temperature=0.2)
        (call,) = provider.calls()
        assert isinstance(call, RecordedRequest)
        assert call.method == "POST"
        assert call.path == "/v1/chat/completions"
        assert call.headers["authorization"] == "Bearer test"
        assert call.json["temperature"] == 0.2
        client.models.list()
        assert len(provider.requests) == 2
        assert len(provider.calls(path="/models")) == 1
        provider.reset()
        assert provider.requests == []
        assert _create(client).id == "chatcmpl-1"

    def test_stream_without_usage(self, client: openai.OpenAI) -> None:
        """A stream sends role, token deltas and a finish chunk, with no usage chunk."""
        expected = _create(client).choices[0].message.content
        chunks = list(_create_stream(client))
        assert len(chunks) > 10
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in chunks)
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected

    def test_stream_with_usage_and_helper(self, client: openai.OpenAI) -> None:
        """include_usage adds a final chunk with empty choices; the SDK's stream() helper works."""
        plain = _create(client)
        chunks = list(_create_stream(client, stream_options={"include_usage": True}))
        last = chunks[-1]
        assert last.choices == []
        assert last.usage == plain.usage
        assert all(chunk.usage is None for chunk in chunks[:-1])

        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "content.delta"]
            final = stream.get_final_completion()
        assert "".join(deltas) == plain.choices[0].message.content
        assert final.choices[0].message.content == plain.choices[0].message.content
        assert final.choices[0].finish_reason == "stop"
        assert final.usage == plain.usage

    def test_n_choices(self, client: openai.OpenAI) -> None:
        """n=3 gives three distinct choices, and usage counts all of them."""
        response = _create(client, n=3)
        assert [c.index for c in response.choices] == [0, 1, 2]
        assert len({c.message.content for c in response.choices}) == 3
        single = _create(client)
        assert response.usage is not None
        assert single.usage is not None
        assert response.usage.prompt_tokens == single.usage.prompt_tokens
        assert response.usage.completion_tokens > 2 * single.usage.completion_tokens

        chunks = list(_create_stream(client, n=3))
        by_index = {i: "".join(_deltas(chunks, i)) for i in range(3)}
        assert by_index == {i: c.message.content for i, c in enumerate(response.choices)}

    @pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
    def test_token_limit_truncates(self, client: openai.OpenAI, limit: str) -> None:
        """A token limit cuts the answer and reports finish_reason="length"."""
        full = _create(client).choices[0].message.content
        response = _create(client, **{limit: 5})
        content = response.choices[0].message.content
        assert response.choices[0].finish_reason == "length"
        assert response.usage is not None
        assert response.usage.completion_tokens == 5
        assert content is not None
        assert full is not None
        assert full.startswith(content)
        assert len(content) < len(full)

    def test_json_object_format(self, client: openai.OpenAI) -> None:
        """response_format json_object gets a JSON object back."""
        response = _create(client, response_format={"type": "json_object"})
        content = response.choices[0].message.content
        assert content is not None
        assert isinstance(json.loads(content)["answer"], str)

    def test_json_schema_parse(self, client: openai.OpenAI) -> None:
        """response_format json_schema gets an instance of the schema; parse() validates it."""

        class Plan(BaseModel):
            title: str
            steps: list[str]
            budget: float
            urgent: bool

        completion = client.chat.completions.parse(
            model="gpt-4o-mini", messages=MESSAGES, response_format=Plan
        )
        parsed = completion.choices[0].message.parsed
        assert isinstance(parsed, Plan)
        assert parsed.steps

    def test_forced_tool_call(self, client: openai.OpenAI) -> None:
        """A named tool_choice returns a call whose arguments fit the tool's schema."""
        response = _create(
            client,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        message = response.choices[0].message
        assert message.content is None
        assert message.tool_calls is not None
        (call,) = message.tool_calls
        assert call.type == "function"
        assert call.id.startswith("call_")
        assert call.function.name == "get_weather"
        arguments = json.loads(call.function.arguments)
        assert arguments["unit"] == "c"
        assert 1 <= arguments["days"] <= 7
        # The API reports "stop" when tool_choice names the function.
        assert response.choices[0].finish_reason == "stop"
        required = _create(client, tools=[WEATHER_TOOL], tool_choice="required")
        assert required.choices[0].finish_reason == "tool_calls"
        assert _create(client, tools=[WEATHER_TOOL]).choices[0].message.tool_calls is None

    def test_streamed_tool_call(self, client: openai.OpenAI) -> None:
        """A streamed tool call accumulates into the same call through the stream() helper."""
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="required"
        ) as stream:
            final = stream.get_final_completion()
        calls = final.choices[0].message.tool_calls
        assert calls is not None
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments)["city"]
        assert final.choices[0].finish_reason == "tool_calls"

    def test_reply_callable(self) -> None:
        """reply() overrides the answer: a string, or a dict with tool calls and usage."""

        def reply(body: dict[str, Any]) -> str | dict[str, Any]:
            if body.get("tools"):
                return {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}
            return {"content": f"echo {body['model']}", "usage": (7, 3)}

        provider = FakeProvider(reply=reply)
        with make_client(provider) as client:
            plain = _create(client)
            assert plain.choices[0].message.content == "echo gpt-4o-mini"
            assert plain.usage is not None
            assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (7, 3)
            tooled = _create(client, tools=[WEATHER_TOOL])
            calls = tooled.choices[0].message.tool_calls
            assert calls is not None
            call = calls[0]
            assert call.type == "function"
            assert call.function.name == "lookup"
            assert json.loads(call.function.arguments) == {"q": "x"}
            assert tooled.choices[0].finish_reason == "tool_calls"

    def test_logprobs(self, client: openai.OpenAI) -> None:
        """logprobs come per token, and the tokens spell the content."""
        response = _create(client, logprobs=True, top_logprobs=3)
        choice = response.choices[0]
        assert choice.logprobs is not None
        assert choice.logprobs.content is not None
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in choice.logprobs.content)

        chunks = list(_create_stream(client, logprobs=True, top_logprobs=1))
        streamed = [
            entry.token
            for chunk in chunks
            for c in chunk.choices
            if c.logprobs is not None and c.logprobs.content
            for entry in c.logprobs.content
        ]
        assert "".join(streamed) == choice.message.content

    def test_reasoning_model_bills_reasoning(self, client: openai.OpenAI) -> None:
        """Reasoning models report hidden reasoning tokens inside completion_tokens."""
        usage = _create(client, model="o3-mini").usage
        assert usage is not None
        assert usage.completion_tokens_details is not None
        reasoning = usage.completion_tokens_details.reasoning_tokens
        assert reasoning is not None
        assert reasoning > 0
        assert usage.completion_tokens > reasoning

    def test_prompt_cache(self) -> None:
        """With prompt_cache, a repeated long prefix reports cached_tokens in 128-token steps."""
        provider = FakeProvider(prompt_cache=True)
        long_system = {"role": "system", "content": "Follow the policy. " * 500}
        with make_client(provider) as client:
            first = _create(client, messages=[long_system, {"role": "user", "content": "a"}])
            second = _create(client, messages=[long_system, {"role": "user", "content": "b"}])
            short = _create(client)
        assert first.usage is not None
        assert second.usage is not None
        assert short.usage is not None
        assert first.usage.prompt_tokens_details is not None
        assert second.usage.prompt_tokens_details is not None
        assert first.usage.prompt_tokens_details.cached_tokens == 0
        cached = second.usage.prompt_tokens_details.cached_tokens
        assert cached is not None
        assert cached >= 1024
        assert (cached - 1024) % 128 == 0
        assert cached < second.usage.prompt_tokens
        assert short.usage.prompt_tokens_details is not None
        assert short.usage.prompt_tokens_details.cached_tokens == 0


def _create_stream(client: openai.OpenAI, **kwargs: Any) -> openai.Stream[ChatCompletionChunk]:
    options: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES, **kwargs}
    stream: openai.Stream[ChatCompletionChunk] = client.chat.completions.create(
        stream=True, **options
    )
    return stream


def _deltas(chunks: list[ChatCompletionChunk], index: int) -> list[str]:
    return [c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index]


class TestScript:
    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (400, openai.BadRequestError),
            (401, openai.AuthenticationError),
            (429, openai.RateLimitError),
            (500, openai.InternalServerError),
            (503, openai.InternalServerError),
        ],
        ids=["400", "401", "429", "500", "503"],
    )
    def test_scripted_error(
        self,
        client: openai.OpenAI,
        provider: FakeProvider,
        status: int,
        error: type[openai.APIStatusError],
    ) -> None:
        """A scripted Error makes the SDK raise its own exception, then defaults resume."""
        provider.script(Error(status, headers={"x-test": "1"}))
        with pytest.raises(error) as info:
            _create(client)
        assert info.value.status_code == status
        assert info.value.response.headers["x-test"] == "1"
        assert isinstance(info.value.body, dict)
        assert info.value.body["message"]
        assert provider.pending == 0
        assert _create(client).choices[0].message.content

    def test_rate_limit_body(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """A 429 carries OpenAI's error type and code."""
        provider.script(Error(429, message="slow down"))
        with pytest.raises(openai.RateLimitError) as info:
            _create(client)
        assert info.value.code == "rate_limit_exceeded"
        assert info.value.type == "requests"
        assert info.value.message.endswith("slow down")

    def test_sequence_and_reply(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """Items are served in order; a Reply overrides content, model and usage."""
        provider.script(Error(500), Reply("scripted", model="gpt-4o-mini-2024-07-18", usage=(3, 1)))
        with pytest.raises(openai.InternalServerError):
            _create(client)
        response = _create(client)
        assert response.choices[0].message.content == "scripted"
        assert response.model == "gpt-4o-mini-2024-07-18"
        assert response.usage is not None
        assert response.usage.total_tokens == 4
        assert _create(client).choices[0].message.content != "scripted"

    def test_retries_consume_script(self, provider: FakeProvider) -> None:
        """The SDK's own retries run through the script: 429, 500, then success."""
        provider.script(
            Error(429, headers={"retry-after-ms": "1"}), Error(500, headers={"retry-after-ms": "1"})
        )
        with make_client(provider) as client:
            response = _create(client.with_options(max_retries=2))
        assert response.choices[0].message.content
        assert len(provider.calls()) == 3

    def test_scoped_to_model(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """Items scripted for a model only answer requests for that model."""
        provider.script(Error(429), model="gpt-4o")
        assert _create(client, model="gpt-4o-mini").choices[0].message.content
        with pytest.raises(openai.RateLimitError):
            _create(client, model="gpt-4o")

    def test_timeout(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """A scripted Timeout surfaces as openai.APITimeoutError."""
        provider.script(Timeout())
        with pytest.raises(openai.APITimeoutError):
            _create(client)

    def test_disconnect_mid_stream(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """A Disconnect stops the stream without [DONE] and the SDK raises while iterating."""
        provider.script(Disconnect(after=3))
        received: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIConnectionError):  # noqa: PT012
            for chunk in _create_stream(client):
                received.append(chunk)
        assert len(received) == 3

    def test_disconnect_plain_call(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """A Disconnect on a non-streamed call fails it with APIConnectionError."""
        provider.script(Disconnect)
        with pytest.raises(openai.APIConnectionError):
            _create(client)

    def test_reply_not_used_by_embeddings(
        self, client: openai.OpenAI, provider: FakeProvider
    ) -> None:
        """A queued Reply waits for a chat call; errors apply to embeddings too."""
        provider.script(Reply("for chat"))
        client.embeddings.create(model="text-embedding-3-small", input="x")
        assert _create(client).choices[0].message.content == "for chat"
        provider.script(Error(429))
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="text-embedding-3-small", input="x")


class TestOtherRoutes:
    def test_embeddings(self, client: openai.OpenAI) -> None:
        """Embeddings are 64-d, unit length, deterministic, and similar for shared words."""
        texts = ["the cat sat on the mat", "the cat sat on a mat", "quarterly tax filing"]
        response = client.embeddings.create(model="text-embedding-3-small", input=texts)
        vectors = [d.embedding for d in response.data]
        assert [d.index for d in response.data] == [0, 1, 2]
        assert all(len(v) == 64 for v in vectors)
        assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
        assert response.usage.prompt_tokens > 0
        again = client.embeddings.create(model="text-embedding-3-small", input=texts[0])
        assert again.data[0].embedding == vectors[0]

        def cosine(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
        small = client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8)
        assert len(small.data[0].embedding) == 8

    def test_responses(self, client: openai.OpenAI, provider: FakeProvider) -> None:
        """/responses answers like chat, in the Responses shape: plain, streamed, helper."""
        provider.script(Reply("Paris is the capital.", usage=(30, 5), cached_tokens=8))
        plain = client.responses.create(model="gpt-4o", input="Capital?", instructions="Terse.")
        assert plain.output_text == "Paris is the capital." and plain.status == "completed"
        assert plain.usage is not None
        assert (plain.usage.input_tokens, plain.usage.output_tokens) == (30, 5)
        assert plain.usage.input_tokens_details.cached_tokens == 8
        sent = provider.calls("/responses")[0].json
        assert sent["instructions"] == "Terse." and sent["input"] == "Capital?"
        # the same question answered the same way, streamed: deltas add up to the text
        default = client.responses.create(model="gpt-4o", input="What is a PIN?")
        events = list(client.responses.create(model="gpt-4o", input="What is a PIN?", stream=True))
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert deltas == default.output_text
        with client.responses.stream(model="gpt-4o", input="What is a PIN?") as stream:
            for _ in stream:
                pass
            final = stream.get_final_response()
        assert final.output_text == default.output_text
        cut = client.responses.create(model="gpt-4o", input="What is a PIN?", max_output_tokens=3)
        assert cut.status == "incomplete" and cut.usage is not None
        assert cut.usage.output_tokens == 3
        provider.script(Error(429))
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="gpt-4o", input="hi")

    def test_embeddings_base64(self) -> None:
        """With base64_embeddings the SDK's own base64 decoding gives the same vectors."""
        provider = FakeProvider(base64_embeddings=True)
        with bare_client(provider, _strict_response_validation=False) as client:
            decoded = client.embeddings.create(model="text-embedding-3-small", input="hi")
            floats = client.embeddings.create(
                model="text-embedding-3-small", input="hi", encoding_format="float"
            )
        assert provider.calls("/embeddings")[0].json["encoding_format"] == "base64"
        assert decoded.data[0].embedding == floats.data[0].embedding

    def test_models(self, client: openai.OpenAI) -> None:
        """/models lists the known and mapped models; /models/{id} retrieves one."""
        ids = [m.id for m in client.models.list()]
        assert "gpt-4o-mini" in ids
        assert "gpt-4o-2024-08-06" in ids
        assert client.models.retrieve("my-fine-tune").id == "my-fine-tune"

    def test_unknown_path(self, provider: FakeProvider) -> None:
        """An unknown path gets a 404 in OpenAI's error shape."""
        with httpx2.Client(transport=httpx2.MockTransport(provider)) as http:
            response = http.post("http://test/v1/nope", json={})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"

    def test_missing_parameter(self) -> None:
        """A request without messages is rejected like the API does."""
        with httpx2.Client(transport=httpx2.MockTransport(FakeProvider())) as http:
            response = http.post("http://test/v1/chat/completions", json={"model": "m"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "missing_required_parameter"


class TestBuilders:
    def test_chat_completion_is_valid(self) -> None:
        """chat_completion() passes strict model validation, with or without tool calls."""
        body = chat_completion("Paris.", usage=(12, 2), cached_tokens=4, reasoning_tokens=1)
        completion = ChatCompletion.model_validate(body)
        assert completion.choices[0].message.content == "Paris."
        assert completion.usage is not None
        assert completion.usage.total_tokens == 14
        tooled = ChatCompletion.model_validate(
            chat_completion(None, tool_calls=[{"name": "f", "arguments": {"a": 1}}])
        )
        assert tooled.choices[0].finish_reason == "tool_calls"

    def test_chunks_and_sse(self) -> None:
        """chat_completion_chunks() validates chunk by chunk and sse() frames them."""
        chunks = chat_completion_chunks("Hello there, friend", usage=(5, 4))
        parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
        assert parsed[-1].choices == []
        assert "".join(c.choices[0].delta.content or "" for c in parsed[:-1]) == (
            "Hello there, friend"
        )
        body = sse(chunks)
        assert body.startswith(b"data: {")
        assert body.endswith(b"data: [DONE]\n\n")
        assert not sse(chunks, done=False).endswith(b"[DONE]\n\n")

    def test_hand_built_stream_through_sdk(self) -> None:
        """A handler serving sse(chat_completion_chunks()) streams through the SDK."""

        def handler(request: httpx2.Request) -> httpx2.Response:
            content = sse(chat_completion_chunks("One two three"))
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, content=content
            )

        with openai.OpenAI(
            api_key="test",
            base_url="http://test/v1",
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
            _strict_response_validation=True,
        ) as client:
            chunks = list(_create_stream(client))
        assert "".join(_deltas(chunks, 0)) == "One two three"


class TestAsync:
    @pytest.mark.anyio
    async def test_responses_parity(self) -> None:
        """The async SDK gets the same Responses answers, plain and through the helper."""
        provider = FakeProvider()
        with bare_client(provider) as sync_client:
            expected = sync_client.responses.create(model="gpt-4o", input="What is a PIN?")
        async with bare_async_client(provider) as client:
            got = await client.responses.create(model="gpt-4o", input="What is a PIN?")
            assert got.output_text == expected.output_text and got.usage == expected.usage
            async with client.responses.stream(model="gpt-4o", input="What is a PIN?") as stream:
                async for _ in stream:
                    pass
                final = await stream.get_final_response()
            assert final.output_text == expected.output_text

    @pytest.mark.anyio
    async def test_parity(self) -> None:
        """The async SDK gets the same answers, streams and errors as the sync one."""
        provider = FakeProvider()
        with bare_client(provider) as sync_client:
            expected = _create(sync_client)
        async with bare_async_client(provider) as client:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert response.choices[0].message.content == expected.choices[0].message.content
            assert response.usage == expected.usage
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            assert "".join(_deltas(chunks, 0)) == expected.choices[0].message.content
            assert chunks[-1].usage == expected.usage
            provider.script(Error(429), Timeout(), Disconnect(after=2))
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            with pytest.raises(openai.APIConnectionError):
                async for _ in stream:
                    pass

    @pytest.mark.anyio
    async def test_async_latency_does_not_block(self) -> None:
        """async_handler waits with anyio.sleep, so concurrent calls overlap."""
        provider = FakeProvider(latency=0.2)
        async with bare_async_client(provider) as client:

            async def call() -> None:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(call)
            elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 0.8
        assert len(provider.calls()) == 5

    @pytest.mark.anyio
    async def test_sync_handler_serves_async_client(self) -> None:
        """The plain sync handler also serves an httpx2.AsyncClient."""
        provider = FakeProvider()
        async with openai.AsyncOpenAI(
            api_key="test",
            base_url="http://test/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(provider)),
            _strict_response_validation=True,
        ) as client:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert response.choices[0].message.content


class TestServer:
    def test_sync_sdk_over_loopback(self) -> None:
        """The real SDK with its default transport talks to the loopback server."""
        provider = FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"})
        with serve(provider) as server:
            assert server.base_url.startswith("http://127.0.0.1:")
            assert server.base_url.endswith("/v1")
            with openai.OpenAI(
                api_key="test", base_url=server.base_url, _strict_response_validation=True
            ) as client:
                response = _create(client, model="gpt-4o")
                chunks = list(_create_stream(client, stream_options={"include_usage": True}))
                embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert response.model == "gpt-4o-2024-08-06"
        assert chunks[-1].usage is not None
        assert len(embedding.data[0].embedding) == 64
        assert [r.path for r in provider.requests] == [
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/embeddings",
        ]

    def test_chunks_arrive_incrementally(self) -> None:
        """Streamed events are flushed one by one, so they arrive spread over time."""
        provider = FakeProvider(reply=lambda body: "one two three four five six", chunk_delay=0.05)
        with (
            serve(provider) as server,
            openai.OpenAI(api_key="test", base_url=server.base_url) as client,
        ):
            arrivals = [time.monotonic() for _ in _create_stream(client)]
        # 9 events with 50 ms between them; buffered delivery would arrive all at once.
        assert arrivals[-1] - arrivals[0] >= 0.2

    def test_failures_over_loopback(self) -> None:
        """Scripted errors, dropped streams and timeouts behave as over a real network."""
        provider = FakeProvider()
        provider.script(Error(500), Disconnect(after=2), Disconnect(), Timeout())
        with (
            serve(provider) as server,
            openai.OpenAI(
                api_key="test", base_url=server.base_url, max_retries=0, timeout=0.5
            ) as client,
        ):
            with pytest.raises(openai.InternalServerError):
                _create(client)
            received = []
            with pytest.raises(openai.APIConnectionError):  # noqa: PT012
                for chunk in _create_stream(client):
                    received.append(chunk)
            assert len(received) == 2
            with pytest.raises(openai.APIConnectionError):
                _create(client)
            with pytest.raises(openai.APITimeoutError):
                _create(client)

    @pytest.mark.anyio
    async def test_async_sdk_over_loopback(self) -> None:
        """The async SDK streams from the loopback server too."""
        provider = FakeProvider()
        with serve(provider) as server:
            async with openai.AsyncOpenAI(api_key="test", base_url=server.base_url) as client:
                stream = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert len(chunks) > 10


def test_thread_safety() -> None:
    """8 threads x 50 calls on one provider: every call answered and recorded once."""
    provider = FakeProvider()
    ids: list[str] = []
    ids_lock = threading.Lock()
    with make_client(provider) as client:

        def worker(n: int) -> None:
            for i in range(50):
                response = _create(
                    client, messages=[{"role": "user", "content": f"thread {n} call {i}"}]
                )
                with ids_lock:
                    ids.append(response.id)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(ids) == 400
    assert len(set(ids)) == 400
    recorded = {r.json["messages"][0]["content"] for r in provider.calls()}
    assert len(recorded) == 400


def test_fake_client_is_a_costwise_client() -> None:
    """fake_client() builds a CostwiseClient whose calls reach the provider."""
    from costwise._client import CostwiseClient

    provider = FakeProvider()
    with fake_client(provider) as client:
        assert isinstance(client, CostwiseClient)
        assert client.max_retries == 0
        assert _create(client).choices[0].message.content
    assert len(provider.calls()) == 1


@pytest.mark.anyio
async def test_fake_async_client_is_a_costwise_client() -> None:
    """fake_async_client() builds an AsyncCostwiseClient; keyword arguments override defaults."""
    from costwise._client import AsyncCostwiseClient

    provider = FakeProvider()
    async with fake_async_client(provider, max_retries=1) as client:
        assert isinstance(client, AsyncCostwiseClient)
        assert client.max_retries == 1
        response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.choices[0].message.content
    assert len(provider.calls()) == 1
