"""A loopback server that speaks Ollama's HTTP API, for tests on machines where Ollama cannot run.

It follows the wire format of ollama/ollama docs/api.md closely enough that the official `ollama`
client (and llama-index's Ollama LLM) talk to it unchanged: NDJSON streaming over chunked HTTP/1.1,
a final object with the timing fields, and errors as `{"error": "..."}` with Ollama's status codes.
Only this process boundary is replaced; everything on ragkb's side of it runs for real.

Replies come from a `responder` (messages -> text, or an iterable of text pieces). A plain string
is streamed in several pieces, one per word, so tests can see that streaming really streams.
`OllamaServer.llamacpp(path)` answers with the embedded llama.cpp model instead, for slow
end-to-end tests of the production client path.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

Message = dict[str, str]
Responder = Callable[[list[Message]], str | Iterable[str]]

DEFAULT_MODEL = "llama3.2:3b"
DEFAULT_REPLY = "This answer comes from the loopback Ollama server [1]."


def pieces(text: str) -> list[str]:
    """Word-sized pieces that concatenate back to the exact text."""
    return re.findall(r"\s*\S+\s*", text) or [text]


@dataclass
class Received:
    """One request as the server saw it, so tests can assert what ragkb actually sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class JSONHandler(BaseHTTPRequestHandler):
    """JSON in, JSON or a chunked stream out; shared by the Ollama and OpenAI test servers."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep pytest output clean; the requests are recorded instead."""

    def _record(self) -> Received:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.owner.record(received)
        return received

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.owner.handle(self, self._record())

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.server.owner.handle(self, self._record())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer) -> None:
        super().__init__(("127.0.0.1", 0), JSONHandler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) is expected, not a server fault worth a traceback."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, served from a daemon thread."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, handler: JSONHandler, request: Received) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaServer(LoopbackServer):
    """GET /api/version, /api/tags; POST /api/show, /api/chat, /api/generate."""

    def __init__(
        self,
        responder: Responder | None = None,
        models: Sequence[str] = (DEFAULT_MODEL,),
        version: str = "0.6.5",
    ) -> None:
        super().__init__()
        self.responder: Responder = responder or (lambda messages: DEFAULT_REPLY)
        self.models = [_tag(m) for m in models]
        self.version = version

    @classmethod
    def llamacpp(cls, model_path: Path, model: str = "gemma3:270m", max_tokens: int = 48) -> OllamaServer:
        """An Ollama that really generates, with llama-cpp-python and a local GGUF."""
        from llama_cpp import Llama

        llm = Llama(model_path=str(model_path), n_ctx=2048, n_threads=2, verbose=False)
        lock = threading.Lock()

        def respond(messages: list[Message]) -> Iterator[str]:
            # The base model has no chat template: the conversation becomes one plain document.
            prompt = "\n\n".join(m.get("content", "") for m in messages) + "\n"
            with lock:
                for chunk in llm.create_completion(
                    prompt, stream=True, temperature=0, max_tokens=max_tokens, stop=["\n\n"], repeat_penalty=1.3
                ):
                    yield chunk["choices"][0]["text"]

        return cls(respond, models=[model])

    def handle(self, handler: JSONHandler, request: Received) -> None:
        route = (request.method, request.path)
        if route == ("GET", "/api/version"):
            handler.send_json(200, {"version": self.version})
        elif route == ("GET", "/api/tags"):
            handler.send_json(200, {"models": [self._model_entry(m) for m in self.models]})
        elif route == ("POST", "/api/show"):
            self._show(handler, request.body)
        elif route == ("POST", "/api/chat"):
            self._generate(handler, request.body, chat=True)
        elif route == ("POST", "/api/generate"):
            self._generate(handler, request.body, chat=False)
        else:
            handler.send_text(404, "404 page not found")  # Go's default mux answer

    @staticmethod
    def _details() -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        }

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": _now(),
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": self._details(),
        }

    def _show(self, handler: JSONHandler, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        if _tag(name) not in self.models:
            handler.send_json(404, {"error": f"model '{name}' not found"})
            return
        handler.send_json(
            200,
            {
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{ .System }}\n{{ .Prompt }}",
                "details": self._details(),
                "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
                "capabilities": ["completion"],
                "modified_at": _now(),
            },
        )

    def _generate(self, handler: JSONHandler, body: dict[str, Any], chat: bool) -> None:
        name = body.get("model")
        if not name:
            handler.send_json(400, {"error": "model is required"})
            return
        if _tag(name) not in self.models:
            handler.send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        if chat:
            messages: list[Message] = list(body.get("messages") or [])
        else:
            messages = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            if body.get("prompt"):
                messages.append({"role": "user", "content": body["prompt"]})
        if not messages:  # Ollama's documented way to load a model without generating
            handler.send_json(200, self._frame(name, "", chat, done=True) | {"done_reason": "load"})
            return
        started = time.perf_counter_ns()
        streaming = False
        try:
            reply = self.responder(messages)
            parts = pieces(reply) if isinstance(reply, str) else reply
            if not body.get("stream", True):
                parts = list(parts)
                final = self._frame(name, "".join(parts), chat, done=True) | self._stats(messages, len(parts), started)
                handler.send_json(200, final)
                return
            handler.start_stream("application/x-ndjson")
            streaming = True
            count = 0
            for part in parts:
                count += 1
                handler.send_chunk(json.dumps(self._frame(name, part, chat, done=False)).encode() + b"\n")
            final = self._frame(name, "", chat, done=True) | self._stats(messages, count, started)
            handler.send_chunk(json.dumps(final).encode() + b"\n")
            handler.end_stream()
        except Exception as exc:  # noqa: BLE001 - a failing model is reported the way Ollama does
            if not streaming:
                handler.send_json(500, {"error": str(exc)})
                return
            handler.send_chunk(json.dumps({"error": str(exc)}).encode() + b"\n")
            handler.end_stream()

    @staticmethod
    def _frame(model: str, text: str, chat: bool, done: bool) -> dict[str, Any]:
        frame: dict[str, Any] = {"model": model, "created_at": _now()}
        if chat:
            frame["message"] = {"role": "assistant", "content": text}
        else:
            frame["response"] = text
        frame["done"] = done
        return frame

    @staticmethod
    def _stats(messages: list[Message], eval_count: int, started_ns: int) -> dict[str, Any]:
        total = time.perf_counter_ns() - started_ns
        return {
            "done_reason": "stop",
            "total_duration": total,
            "load_duration": 0,
            "prompt_eval_count": sum(len(m.get("content", "").split()) for m in messages),
            "prompt_eval_duration": total // 4,
            "eval_count": eval_count,
            "eval_duration": total - total // 4,
        }


@pytest.fixture(name="ollama_server")
def ollama_server_fixture() -> Iterator[OllamaServer]:
    """A running loopback Ollama serving DEFAULT_MODEL; set `.responder` to script its replies."""
    with OllamaServer() as server:
        yield server
