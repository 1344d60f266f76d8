"""A loopback HTTP server in front of a `FakeProvider`.

Only for tests where a real socket is the point: examples run as subprocesses with
``OPENAI_BASE_URL``, clients built with their default transport, or checking that stream
chunks really arrive one by one. Everything else should use ``httpx2.MockTransport``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
from typing_extensions import override

from costwise.testing._provider import FakeProvider

__all__ = ["Server", "serve"]

logger = logging.getLogger("costwise")

# How long a scripted Timeout keeps a connection unanswered, at most: long enough for any
# sensible client timeout to fire first, short enough that a forgotten one can't hang CI.
_HOLD_SECONDS = 30.0

# Framing headers are the server's business, not the provider's.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class Server:
    """A running loopback server; create it with ``serve()``.

    Attributes:
        provider: The provider answering the requests.
        host: ``127.0.0.1``.
        port: The port the OS picked.
    """

    def __init__(self, provider: FakeProvider, host: str, port: int) -> None:
        self.provider = provider
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"{self.url}/v1"

    @override
    def __repr__(self) -> str:
        return f"Server(base_url={self.base_url!r})"


class _HTTPServer(ThreadingHTTPServer):
    # One thread per connection; server_close() joins them (block_on_close), so shutdown
    # leaves nothing running.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        super().__init__(address, _Handler)
        self.provider = provider
        self.authority = f"{address[0]}:{self.server_port}"
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @override
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    @override
    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they can exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: the client already closed it.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    @override
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is normal in tests (a closed stream); never
        # write tracebacks to stderr, as the stdlib default does.
        logger.debug("fake provider server: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_PATCH(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    @override
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake provider server: " + format, *args)

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = httpx2.Request(
            self.command,
            f"http://{self.server.authority}{self.path}",
            headers=list(self.headers.items()),
            content=body,
        )
        try:
            response = self.server.provider(request)
        except httpx2.TimeoutException:
            # A scripted Timeout: say nothing and let the client's timeout fire.
            self.server.stopping.wait(_HOLD_SECONDS)
            self.close_connection = True
            return
        except httpx2.TransportError:
            # A scripted Disconnect: hang up without a response.
            self.close_connection = True
            return

        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        if isinstance(response.stream, httpx2.ByteStream):
            data = response.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return

        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in response.iter_raw():
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
        except httpx2.TransportError:
            # A dropped stream: close without the terminating chunk, so the client sees an
            # incomplete body exactly as when a real server goes away.
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def serve(provider: FakeProvider, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[Server]:
    """Serve ``provider`` over real HTTP on a loopback port, for the ``with`` block.

    Use it when the code under test must open a socket: an example script run with
    ``OPENAI_BASE_URL=server.base_url``, a client with its default transport, or a check
    that streamed chunks arrive one at a time (each SSE event is written and flushed as a
    chunk of its own; ``FakeProvider(latency=..., chunk_delay=...)`` applies). Prefer
    ``httpx2.MockTransport(provider)`` everywhere else: it is faster and opens nothing.

    Each connection gets its own thread. On exit the server stops accepting, closes open
    connections and joins its threads.

    Args:
        provider: The provider that answers every request.
        host: The interface to bind; keep the loopback default.
        port: The port; ``0`` lets the OS pick a free one.

    Yields:
        The running `Server`; its ``base_url`` ends in ``/v1``.

    Example:
        >>> import openai
        >>> with serve(FakeProvider()) as server:
        ...     client = openai.OpenAI(api_key="test", base_url=server.base_url)
        ...     _ = client.models.list()
        ...     client.close()
    """
    httpd = _HTTPServer((host, port), provider)
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="costwise-fake-provider",
        daemon=True,
    )
    thread.start()
    try:
        yield Server(provider, host, httpd.server_port)
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        thread.join()
