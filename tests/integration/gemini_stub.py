"""A local stand-in for the Gemini REST API (Generative Language API, ``v1beta``), for tests.

A real HTTP server (stdlib ``http.server``, one thread per connection) on 127.0.0.1 and a free
port. Point google-genai at it with ``HttpOptions(base_url=stub.base_url)`` (notibot:
``GeminiChatModel(base_url=...)`` / ``NOTIBOT_GEMINI_BASE_URL``).

Endpoints (what google-genai calls with a custom ``base_url`` and an API key):

* ``POST /v1beta/models/{model}:generateContent``: one JSON answer
  (``candidates[0].content.parts[0].text``, ``usageMetadata.promptTokenCount`` /
  ``candidatesTokenCount`` / ``totalTokenCount``, ``modelVersion`` (by default the model of
  the path), ``responseId``).
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``: the same answer as one
  server-sent event, for streaming clients.

Anything else answers 404 with Gemini's error shape
(``{"error": {"code", "message", "status"}}``).

Every request is recorded (:class:`RecordedRequest`: method, path, query, lower-cased headers
incl. ``x-goog-api-key``, decoded JSON body) *before* the answer is chosen, so failed and
timed-out requests are recorded too. The next answers can be scripted: :meth:`GeminiStub.fail`
(HTTP 429 ``RESOURCE_EXHAUSTED``, 500 ``INTERNAL``, ...), :meth:`GeminiStub.delay` (answer
late, to trigger client timeouts), :meth:`GeminiStub.reply_with` (another text, an empty
reply, another model version).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: The status names Google's APIs put in ``error.status`` for common HTTP codes.
ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stub received.

    Attributes:
        method: ``POST``, ``GET``, ...
        path: the URL path, e.g. ``/v1beta/models/gemini-2.5-flash:generateContent``.
        query: the raw query string (``alt=sse`` for streaming), ``""`` when none.
        headers: header names lower-cased -> value (last one wins).
        body: the decoded JSON body; None when empty or not JSON.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any

    @property
    def model(self) -> str | None:
        """The model named in the path (``gemini-2.5-flash``), None for other paths."""
        marker = "/models/"
        if marker not in self.path:
            return None
        return self.path.split(marker, 1)[1].split(":", 1)[0]

    @property
    def method_name(self) -> str | None:
        """The API method after the colon (``generateContent``), None when absent."""
        tail = self.path.rsplit("/", 1)[-1]
        return tail.split(":", 1)[1] if ":" in tail else None


@dataclass
class _Scripted:
    status: int = 200
    delay: float = 0.0
    message: str = ""


@dataclass
class _Reply:
    text: str = "Xin chào! Tôi có thể giúp gì cho bạn?"
    model_version: str | None = None  # None: the model of the path; "": left out
    prompt_tokens: int = 11
    reply_tokens: int = 7


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    script: deque[_Scripted] = field(default_factory=deque)
    reply: _Reply = field(default_factory=_Reply)
    stopping: threading.Event = field(default_factory=threading.Event)


class GeminiStub:
    """The stub server. Use it as a context manager (or :meth:`start` / :meth:`stop`)::

        with GeminiStub() as stub:
            model = GeminiChatModel(api_key="k", model="gemini-2.5-flash", temperature=0.3,
                                    max_tokens=256, timeout=1.0, base_url=stub.base_url)
            stub.fail(429)             # the next request answers 429 RESOURCE_EXHAUSTED
            stub.delay(2.0, count=1)   # the one after answers 2 s late
            ...
            assert stub.requests[-1].headers["x-goog-api-key"] == "k"

    Parameters:
        host: interface to listen on (default 127.0.0.1).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._state = _State()
        self._server = ThreadingHTTPServer((host, 0), _make_handler(self._state))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> GeminiStub:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="gemini-stub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Release delayed answers, stop serving and close the socket."""
        self._state.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> GeminiStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/``: the value for google-genai's ``base_url``."""
        return f"http://{self.host}:{self.port}/"

    # -- what it saw ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def clear(self) -> None:
        """Forget the recorded requests (the script and reply stay)."""
        with self._state.lock:
            self._state.requests.clear()

    # -- what it answers -------------------------------------------------------------------

    def reply_with(self, text: str | None = None, *, model_version: str | None = None,
                   prompt_tokens: int | None = None, reply_tokens: int | None = None) -> None:
        """Change the successful answer (arguments left None stay as they are).

        ``text=""`` answers a candidate whose only part has empty text. ``modelVersion`` is
        by default the model named in the request path (as Gemini does);
        ``model_version="gemini-x-001"`` reports that instead, ``model_version=""`` leaves
        the field out. Token counts are what ``usageMetadata`` reports.
        """
        with self._state.lock:
            reply = self._state.reply
            if text is not None:
                reply.text = text
            if model_version is not None:
                reply.model_version = model_version
            if prompt_tokens is not None:
                reply.prompt_tokens = prompt_tokens
            if reply_tokens is not None:
                reply.reply_tokens = reply_tokens

    def fail(self, status: int, *, count: int = 1, message: str | None = None,
             delay: float = 0.0) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and Gemini's error JSON
        (``error.status`` from :data:`ERROR_STATUS`), after ``delay`` seconds."""
        text = message or f"stubbed failure {status}"
        with self._state.lock:
            self._state.script.extend(_Scripted(status, delay, text) for _ in range(count))

    def delay(self, seconds: float, *, count: int = 1) -> None:
        """Answer the next ``count`` requests successfully, but only after ``seconds``."""
        with self._state.lock:
            self._state.script.extend(_Scripted(200, seconds) for _ in range(count))


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "GeminiStub/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            return None  # keep test output clean

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            url = urlsplit(self.path)
            recorded = RecordedRequest(
                method=self.command, path=url.path, query=url.query,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body)
            with state.lock:
                state.requests.append(recorded)
                step = state.script.popleft() if state.script else _Scripted()
                reply = _Reply(**vars(state.reply))
            if step.delay and state.stopping.wait(step.delay):
                return  # the stub is stopping: drop the connection
            method = recorded.method_name
            if self.command != "POST" or method not in ("generateContent",
                                                        "streamGenerateContent"):
                self._send_error(404, f"{self.command} {url.path} is not stubbed")
            elif step.status != 200:
                self._send_error(step.status, step.message)
            elif method == "streamGenerateContent":
                event = b"data: " + json.dumps(_answer(reply, recorded)).encode() + b"\r\n\r\n"
                self._send(200, event, "text/event-stream")
            else:
                self._send(200, json.dumps(_answer(reply, recorded)).encode(), "application/json")

        def _send_error(self, status: int, message: str) -> None:
            payload = {"error": {"code": status, "message": message,
                                 "status": ERROR_STATUS.get(status, "UNKNOWN")}}
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            try:
                self.send_response(status, HTTPStatus(status).phrase)
                self.send_header("Content-Type", f"{content_type}; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timed out) before the answer

    return Handler


def _answer(reply: _Reply, request: RecordedRequest) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": reply.text}]},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": reply.reply_tokens,
            "totalTokenCount": reply.prompt_tokens + reply.reply_tokens,
        },
        "responseId": f"stub-{id(request):x}",
    }
    model_version = request.model if reply.model_version is None else reply.model_version
    if model_version:
        answer["modelVersion"] = model_version
    return answer
