"""A fake OpenAI upstream for the legacy Completions and the Responses APIs.

Answers depend on the request (a field lost on the way shows), and carry what real ones
do: ``text_completion`` objects with log-probabilities when asked, ``response`` objects with
message, reasoning and function-call items, usage details. Streams come as OpenAI sends
them: ``text_completion`` chunks then ``[DONE]`` (the usage chunk when asked); the Responses
API's typed events with ``event:`` lines (text in pieces, arguments in fragments), ending
with ``response.completed``. Ids are digests of the request (minus how it travels), so the
same question asked directly and through a proxy gets the same answer; a stream's pieces add
up exactly to the JSON answer. ``bodies`` keeps every request body received.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CREATED = 1_750_000_000
_TRAVEL = ("stream", "stream_options")


def _digest(doc: dict[str, Any]) -> str:
    question = {k: v for k, v in doc.items() if k not in _TRAVEL}
    return hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()[:24]


def _sample(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object":
        return {name: _sample(s) for name, s in schema.get("properties", {}).items()}
    if kind == "integer":
        return 7
    return "x"


def _logprobs(text: str, offset: int) -> dict[str, Any]:
    tokens = [text[i : i + 4] for i in range(0, len(text), 4)]
    return {
        "tokens": tokens,
        "token_logprobs": [-0.25] * len(tokens),
        "top_logprobs": [{t: -0.25} for t in tokens],
        "text_offset": [offset + 4 * i for i in range(len(tokens))],
    }


class TextUpstream:
    """The fake's state: the request bodies it received, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    @property
    def calls(self) -> int:
        """How many requests reached the upstream."""
        return len(self.bodies)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "text", "object": "model"}]})

    # -- legacy completions ----------------------------------------------------------------

    def _texts(self, doc: dict[str, Any]) -> list[tuple[str, str]]:
        """(text, finish reason) per choice."""
        prompts = doc["prompt"] if isinstance(doc["prompt"], list) else [doc["prompt"]]
        if prompts and isinstance(prompts[0], int):
            prompts = [prompts]
        answers = []
        for prompt in prompts:
            for i in range(doc.get("n") or 1):
                shown = prompt if isinstance(prompt, str) else f"tokens{prompt}"
                text = f"then {i} after {shown[:40]}"
                if doc.get("suffix"):
                    text += f" before {doc['suffix']}"
                if doc.get("echo"):
                    text = shown + text
                finish = "length" if doc.get("max_tokens") == 3 else "stop"
                answers.append((text, finish))
        return answers

    def _completion_head(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"cmpl-{_digest(doc)}",
            "object": "text_completion",
            "created": CREATED,
            "model": f"{doc['model']}-2025-01-01",
            "system_fingerprint": "fp_text",
        }

    @staticmethod
    def _completion_usage(doc: dict[str, Any]) -> dict[str, Any]:
        prompt = len(json.dumps(doc["prompt"])) // 4 + 1
        return {"prompt_tokens": prompt, "completion_tokens": 9, "total_tokens": prompt + 9}

    async def completions(self, request: Request) -> Response:
        doc = await request.json()
        self.bodies.append(doc)
        answers = self._texts(doc)
        logprobs = doc.get("logprobs") is not None
        if doc.get("stream"):
            return StreamingResponse(
                self._completion_events(doc, answers), media_type="text/event-stream"
            )
        choices = [
            {
                "text": text,
                "index": i,
                "logprobs": _logprobs(text, 0) if logprobs else None,
                "finish_reason": finish,
            }
            for i, (text, finish) in enumerate(answers)
        ]
        body = {
            **self._completion_head(doc),
            "choices": choices,
            "usage": self._completion_usage(doc),
        }
        return JSONResponse(body, headers={"x-request-id": "req_text"})

    async def _completion_events(
        self, doc: dict[str, Any], answers: list[tuple[str, str]]
    ) -> AsyncIterator[bytes]:
        head = self._completion_head(doc)
        logprobs = doc.get("logprobs") is not None

        def event(body: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps({**head, **body}).encode() + b"\n\n"

        for i, (text, finish) in enumerate(answers):
            for start in range(0, len(text), 8):
                piece = text[start : start + 8]
                choice = {
                    "text": piece,
                    "index": i,
                    "logprobs": _logprobs(piece, start) if logprobs else None,
                    "finish_reason": finish if start + 8 >= len(text) else None,
                }
                yield event({"choices": [choice]})
        if (doc.get("stream_options") or {}).get("include_usage"):
            yield event({"choices": [], "usage": self._completion_usage(doc)})
        yield b"data: [DONE]\n\n"

    # -- responses ---------------------------------------------------------------------------

    def _output(self, doc: dict[str, Any], digest: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if doc.get("reasoning"):
            items.append({"type": "reasoning", "id": f"rs_{digest}", "summary": [], "status": None})
        tools = [t for t in doc.get("tools") or () if t.get("type") == "function"]
        if tools and doc.get("tool_choice") != "none":
            arguments = json.dumps({"q": str(doc.get("input"))[:30]})
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_{digest}",
                    "call_id": f"call_{digest[:8]}",
                    "name": tools[0]["name"],
                    "arguments": arguments,
                    "status": "completed",
                }
            )
            return items
        fmt = (doc.get("text") or {}).get("format") or {"type": "text"}
        if fmt["type"] == "json_schema":
            text = json.dumps(_sample(fmt["schema"]))
        else:
            asked = doc["input"] if isinstance(doc["input"], str) else json.dumps(doc["input"])
            text = f"answer to {asked[:50]}"
            if doc.get("instructions"):
                text += f" as told: {doc['instructions'][:20]}"
            if doc.get("previous_response_id"):
                text += f" after {doc['previous_response_id']}"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        items.append(
            {
                "type": "message",
                "id": f"msg_{digest}",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
        return items

    def _response(self, doc: dict[str, Any]) -> dict[str, Any]:
        digest = _digest(doc)
        limited = doc.get("max_output_tokens") == 3
        prompt = len(json.dumps(doc.get("input"))) // 4 + 1
        return {
            "id": f"resp_{digest}",
            "object": "response",
            "created_at": CREATED,
            "status": "incomplete" if limited else "completed",
            "background": bool(doc.get("background")),
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if limited else None,
            "instructions": doc.get("instructions"),
            "max_output_tokens": doc.get("max_output_tokens"),
            "model": f"{doc['model']}-2025-01-01",
            "output": self._output(doc, digest),
            "parallel_tool_calls": True,
            "previous_response_id": doc.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None, **(doc.get("reasoning") or {})},
            "store": doc.get("store", True),
            "temperature": doc.get("temperature", 1.0),
            "text": doc.get("text") or {"format": {"type": "text"}},
            "tool_choice": doc.get("tool_choice", "auto"),
            "tools": doc.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 9,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + 9,
            },
            "user": None,
            "metadata": doc.get("metadata") or {},
        }

    async def responses(self, request: Request) -> Response:
        doc = await request.json()
        self.bodies.append(doc)
        response = self._response(doc)
        if doc.get("stream"):
            return StreamingResponse(
                self._response_events(response), media_type="text/event-stream"
            )
        return JSONResponse(response, headers={"x-request-id": "req_text"})

    async def _response_events(self, response: dict[str, Any]) -> AsyncIterator[bytes]:
        number = 0

        def event(kind: str, **body: Any) -> bytes:
            nonlocal number
            data = {"type": kind, "sequence_number": number, **body}
            number += 1
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        pending["incomplete_details"] = None
        yield event("response.created", response=pending)
        yield event("response.in_progress", response=pending)
        for n, item in enumerate(response["output"]):
            where = {"item_id": item["id"], "output_index": n}
            if item["type"] == "message":
                yield event(
                    "response.output_item.added",
                    output_index=n,
                    item={**item, "status": "in_progress", "content": []},
                )
                text = item["content"][0]["text"]
                at = {**where, "content_index": 0}
                empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event("response.content_part.added", **at, part=empty)
                for start in range(0, len(text), 6):
                    yield event(
                        "response.output_text.delta",
                        **at,
                        delta=text[start : start + 6],
                        logprobs=[],
                        obfuscation="zz",
                    )
                yield event("response.output_text.done", **at, text=text, logprobs=[])
                yield event("response.content_part.done", **at, part=item["content"][0])
            elif item["type"] == "function_call":
                yield event(
                    "response.output_item.added",
                    output_index=n,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                arguments = item["arguments"]
                for start in range(0, len(arguments), 5):
                    yield event(
                        "response.function_call_arguments.delta",
                        **where,
                        delta=arguments[start : start + 5],
                    )
                yield event("response.function_call_arguments.done", **where, arguments=arguments)
            else:
                yield event("response.output_item.added", output_index=n, item=item)
            yield event("response.output_item.done", output_index=n, item=item)
        final = (
            "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        )
        yield event(final, response=response)
