"""A loopback server that speaks the OpenAI chat-completions API the way llama-server and vLLM do.

POST /v1/chat/completions streams `data: {chat.completion.chunk}` server-sent events ending in
`data: [DONE]` (or returns one `chat.completion` when "stream" is false); GET /v1/models lists the
model. With `api_key` set it rejects other bearer tokens with llama-server's 401 error body.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ollama_server import JSONHandler, LoopbackServer, Message, Received, Responder, pieces

DEFAULT_MODEL = "gemma-3-270m"
DEFAULT_REPLY = "This answer comes from the loopback OpenAI-compatible server [1]."


class OpenAIServer(LoopbackServer):
    def __init__(
        self, responder: Responder | None = None, model: str = DEFAULT_MODEL, api_key: str | None = None
    ) -> None:
        super().__init__()
        self.responder: Responder = responder or (lambda messages: DEFAULT_REPLY)
        self.model = model
        self.api_key = api_key

    def handle(self, handler: JSONHandler, request: Received) -> None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            handler.send_json(
                401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
            )
        elif (request.method, request.path) == ("GET", "/v1/models"):
            handler.send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "llamacpp"}],
                },
            )
        elif (request.method, request.path) == ("POST", "/v1/chat/completions"):
            self._complete(handler, request.body)
        else:
            handler.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def _complete(self, handler: JSONHandler, body: dict[str, Any]) -> None:
        messages: list[Message] = body.get("messages") or []
        reply = self.responder(messages)
        parts = pieces(reply) if isinstance(reply, str) else list(reply)
        created = int(time.time())
        if not body.get("stream"):
            handler.send_json(
                200,
                {
                    "id": "chatcmpl-loopback",
                    "object": "chat.completion",
                    "created": created,
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(parts)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 0, "completion_tokens": len(parts), "total_tokens": len(parts)},
                },
            )
            return
        handler.start_stream("text/event-stream")
        deltas = [{"role": "assistant", "content": None}] + [{"content": p} for p in parts] + [{}]
        for i, delta in enumerate(deltas):
            chunk = {
                "id": "chatcmpl-loopback",
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == len(deltas) - 1 else None}],
            }
            handler.send_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        handler.send_chunk(b"data: [DONE]\n\n")
        handler.end_stream()
