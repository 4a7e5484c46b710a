"""The fake provider over real HTTP, on loopback, for code that cannot be handed a transport.

.. code-block:: python

    with FakeProviderServer() as server:
        client = openai.OpenAI(api_key="test", base_url=server.base_url_openai)

or, for the collector example, ``python -m opentelemetry_instrumentation_tokenbudget.testing.fake_server
--port 8765 [--chunk-delay 0.05]``.

Plain answers carry a ``content-length`` and keep the connection open; streams are sent as they are
produced and end by closing the connection, so a stream cut short (model ``cut-stream``) ends the same
way it does with the in-process transport: cleanly, just early.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx2

from .fake_http import NDJSON_CONTENT_TYPE, SSE_CONTENT_TYPE
from .fake_provider import FakeProvider

# Hop-by-hop headers belong to the connection between the client and this server, not to the request.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class FakeProviderServer:
    """A threaded HTTP server on ``host`` that answers like :class:`FakeProvider` (port 0: a free one)."""

    def __init__(
        self, provider: FakeProvider | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.provider = provider if provider is not None else FakeProvider()
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._running().server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url_openai(self) -> str:
        return self.base_url + "/v1"

    @property
    def base_url_anthropic(self) -> str:
        return self.base_url

    def start(self) -> FakeProviderServer:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(self._address, _handler_for(self.provider))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-provider-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> ThreadingHTTPServer:
        if self._server is None:
            raise RuntimeError("the fake provider server is not started")
        return self._server


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: object) -> None:
            # Tests and the demo would drown in one line per request.
            return

        def _answer(self) -> None:
            response = provider.handle(self._request())
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if response.headers.get("content-type") in (SSE_CONTENT_TYPE, NDJSON_CONTENT_TYPE):
                    self._send_stream(response)
                else:
                    self._send_whole(response)

        def _request(self) -> httpx2.Request:
            length = int(self.headers.get("content-length") or 0)
            content = self.rfile.read(length) if length else b""
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED]
            url = f"http://{self.headers.get('host') or 'localhost'}{self.path}"
            return httpx2.Request(self.command, url, headers=headers, content=content)

        def _send_whole(self, response: httpx2.Response) -> None:
            body = response.read()
            self._send_head(response)
            self.end_headers()
            self.wfile.write(body)

        def _send_stream(self, response: httpx2.Response) -> None:
            self._send_head(response)
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            for piece in response.iter_raw():
                self.wfile.write(piece)
                self.wfile.flush()

        def _send_head(self, response: httpx2.Response) -> None:
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                self.send_header(name, value)

    return _Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI and Anthropic APIs on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds before each streamed chunk")
    args = parser.parse_args(argv)
    server = FakeProviderServer(FakeProvider(delay_s=args.chunk_delay), host=args.host, port=args.port)
    with server:
        print(f"OpenAI base URL:    {server.base_url_openai}", flush=True)
        print(f"Anthropic base URL: {server.base_url_anthropic}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
