"""The files and batches endpoints of the fake provider (OpenAI's Batch API, in-process).

`FakeBatches` serves ``POST /files`` (multipart upload), ``GET /files/{id}``,
``GET /files/{id}/content``, ``POST /batches``, ``GET /batches/{id}`` and
``POST /batches/{id}/cancel`` with bodies of the API's shape. A batch moves
``validating -> in_progress -> completed`` one step per ``retrieve``; when it completes,
each input line is answered by the provider's own chat-completions handler, and the results
are written to an output file (and failures to an error file), one JSON line per request, as
the API does. Failures, expiry and per-line errors can be scripted.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

__all__ = ["FakeBatches"]

_EXPIRED = "This request could not be executed before the completion window expired."
_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class _File:
    id: str
    data: bytes
    filename: str
    purpose: str
    created_at: int

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass(slots=True)
class _Batch:
    body: dict[str, Any]
    polls: int = 0
    fate: str = "completed"
    complete_lines: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class FakeBatches:
    """OpenAI's files and batches endpoints, answered in-process by a `FakeProvider`.

    Use it to test Batch API code end to end: ``FakeProvider`` delegates these paths to its
    ``batches`` attribute (an instance of this class), so the real SDK's
    ``client.files.create``, ``client.batches.create`` / ``retrieve`` and
    ``client.files.content`` work against it. Script what happens to the next batch with
    `fail_next`, `expire_next` and `fail_line`.

    Args:
        handler: the provider's handler; each batch line is sent to it as a
            ``POST /v1/chat/completions`` with the header ``x-costwise-batch: <batch id>``,
            so batch lines show up in ``provider.requests``.
        steps: how many ``retrieve`` calls a batch takes to finish (at least 1).

    Example:
        >>> provider = FakeProvider()
        >>> provider.batches.expire_next(completed=2)
    """

    def __init__(
        self, handler: Callable[[httpx2.Request], httpx2.Response], *, steps: int = 2
    ) -> None:
        self._handler = handler
        self.steps = max(1, steps)
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}
        self._ids = itertools.count(1)
        self._next: list[tuple[str, int | None, str | None]] = []
        self._line_errors: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    # -- scripting ----------------------------------------------------------------------

    def fail_next(self, message: str = "The batch input file is invalid.") -> None:
        """The next batch created fails validation (status ``failed``, with `message`)."""
        with self._lock:
            self._next.append(("failed", None, message))

    def expire_next(self, *, completed: int = 0) -> None:
        """The next batch created expires after answering its first `completed` lines."""
        with self._lock:
            self._next.append(("expired", completed, None))

    def fail_line(
        self, custom_id: str, *, status: int = 500, message: str = "Server error."
    ) -> None:
        """The request with `custom_id` gets an HTTP error result instead of an answer."""
        with self._lock:
            self._line_errors[custom_id] = (status, message)

    # -- routing --------------------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response | None:
        """Answer a files or batches request, or ``None`` when the path is not one of them."""
        method, path = request.method, request.url.path
        if "/files" in path:
            tail = path.split("/files", 1)[1].strip("/")
            if method == "POST" and not tail:
                return self._upload(request)
            if method == "GET" and tail.endswith("/content"):
                f = self.files.get(tail[: -len("/content")])
                if f is None:
                    return _not_found(tail)
                return httpx2.Response(
                    200, content=f.data, headers={"content-type": "application/octet-stream"}
                )
            if method == "GET" and tail:
                f = self.files.get(tail)
                return _not_found(tail) if f is None else httpx2.Response(200, json=f.body())
        elif "/batches" in path:
            tail = path.split("/batches", 1)[1].strip("/")
            if method == "POST" and not tail:
                return self._create(request)
            if method == "POST" and tail.endswith("/cancel"):
                return self._cancel(tail[: -len("/cancel")])
            if method == "GET" and tail:
                return self._retrieve(tail)
        return None

    # -- files ------------------------------------------------------------------------------

    def _upload(self, request: httpx2.Request) -> httpx2.Response:
        ctype = request.headers.get("content-type", "")
        raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.content
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        data, filename, purpose = b"", "upload.jsonl", ""
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            if name == "file":
                data = payload
                filename = str(part.get_filename() or filename)
            elif name == "purpose":
                purpose = payload.decode()
        if not data or not purpose:
            return _bad_request("Both 'file' and 'purpose' are required.")
        with self._lock:
            fid = f"file-{next(self._ids):06d}"
            self.files[fid] = _File(fid, data, filename, purpose, int(time.time()))
        return httpx2.Response(200, json=self.files[fid].body())

    def _new_file(self, lines: list[dict[str, Any]], name: str) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        with self._lock:
            fid = f"file-{next(self._ids):06d}"
            self.files[fid] = _File(fid, data, name, "batch_output", int(time.time()))
        return fid

    # -- batches ----------------------------------------------------------------------------

    def _create(self, request: httpx2.Request) -> httpx2.Response:
        try:
            params = json.loads(request.content)
        except ValueError:
            return _bad_request("Invalid JSON body.")
        input_id = params.get("input_file_id")
        if input_id not in self.files:
            return _not_found(str(input_id))
        now = int(time.time())
        with self._lock:
            bid = f"batch_{next(self._ids):06d}"
            fate, complete, message = self._next.pop(0) if self._next else ("completed", None, None)
        body: dict[str, Any] = {
            "id": bid,
            "object": "batch",
            "endpoint": params.get("endpoint", "/v1/chat/completions"),
            "input_file_id": input_id,
            "completion_window": params.get("completion_window", "24h"),
            "status": "validating",
            "created_at": now,
            "expires_at": now + 86400,
            "metadata": params.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        batch = _Batch(body, fate=fate, complete_lines=complete)
        if message is not None:
            batch.errors.append(
                {"code": "invalid_request", "message": message, "line": None, "param": None}
            )
        with self._lock:
            self.batches[bid] = batch
        return httpx2.Response(200, json=body)

    def _cancel(self, bid: str) -> httpx2.Response:
        batch = self.batches.get(bid)
        if batch is None:
            return _not_found(bid)
        if batch.body["status"] not in _TERMINAL:
            batch.body.update(status="cancelled", cancelled_at=int(time.time()))
        return httpx2.Response(200, json=batch.body)

    def _retrieve(self, bid: str) -> httpx2.Response:
        batch = self.batches.get(bid)
        if batch is None:
            return _not_found(bid)
        with self._lock:
            body = batch.body
            if body["status"] not in _TERMINAL:
                batch.polls += 1
                run = batch.polls >= self.steps
                if not run:
                    body.update(status="in_progress", in_progress_at=int(time.time()))
        if body["status"] not in _TERMINAL and run:
            self._finish(batch)
        return httpx2.Response(200, json=body)

    def _chat(self, line: dict[str, Any], batch_id: str) -> tuple[int, Any]:
        request = httpx2.Request(
            "POST",
            "http://batch.invalid/v1/chat/completions",
            json=line,
            headers={"x-costwise-batch": batch_id},
        )
        response = self._handler(request)
        response.read()
        return response.status_code, response.json()

    def _finish(self, batch: _Batch) -> None:
        body, now = batch.body, int(time.time())
        lines = [
            json.loads(line)
            for line in self.files[body["input_file_id"]].data.decode().splitlines()
            if line.strip()
        ]
        problem = _validate(lines)
        if batch.fate == "failed" or problem is not None:
            errors = batch.errors or [
                {"code": "invalid_request", "message": problem, "line": None, "param": None}
            ]
            body.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
            return
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for n, line in enumerate(lines):
            cid = line["custom_id"]
            rid = f"batch_req_{body['id']}_{n}"
            if batch.fate == "expired" and n >= (batch.complete_lines or 0):
                err.append(
                    {
                        "id": rid,
                        "custom_id": cid,
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": _EXPIRED,
                        },
                    }
                )
                continue
            scripted = self._line_errors.pop(cid, None)
            if scripted is not None:
                status, payload = (
                    scripted[0],
                    {
                        "error": {
                            "message": scripted[1],
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            else:
                status, payload = self._chat(line["body"], body["id"])
            record = {
                "id": rid,
                "custom_id": cid,
                "response": {"status_code": status, "request_id": f"req_{rid}", "body": payload},
                "error": None,
            }
            (out if status == 200 else err).append(record)
        body["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        if out:
            body["output_file_id"] = self._new_file(out, f"{body['id']}_output.jsonl")
        if err:
            body["error_file_id"] = self._new_file(err, f"{body['id']}_error.jsonl")
        if batch.fate == "expired":
            body.update(status="expired", expired_at=now)
        else:
            body.update(status="completed", finalizing_at=now, completed_at=now)


def _validate(lines: list[dict[str, Any]]) -> str | None:
    """What the API refuses at validation: no lines, duplicate ids, several models."""
    if not lines:
        return "The batch input file is empty."
    ids = [line.get("custom_id") for line in lines]
    if len(set(ids)) != len(ids) or None in ids:
        return "The custom_id of every request must be present and unique."
    models = {line.get("body", {}).get("model") for line in lines}
    if len(models) != 1:
        return "Every request of a batch must use the same model."
    return None


def _not_found(what: str) -> httpx2.Response:
    return httpx2.Response(
        404,
        json={
            "error": {
                "message": f"No such object: {what}",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )


def _bad_request(message: str) -> httpx2.Response:
    return httpx2.Response(
        400,
        json={
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )
