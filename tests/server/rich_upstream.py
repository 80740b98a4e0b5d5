"""A fake OpenAI upstream that uses the whole Chat Completions surface, for fidelity tests.

Its answers depend on the request, so a field lost or changed on the way shows in the answer:
tools are called (by name, in parallel when allowed), ``response_format`` is honoured,
``n`` choices come back, log-probabilities are sent when asked, text echoes what was asked
(content parts included). Answers carry what real ones do beyond the text:
``system_fingerprint``, ``service_tier``, ``refusal``, ``annotations``, usage details.
Streams come in OpenAI's chunks (role first, text in pieces, tool calls in argument
fragments, the usage chunk when asked, ``obfuscation`` when asked). ``bodies`` keeps every
request body received; the ``id`` is a digest of the request (minus how it travels), so the
same question asked directly and through a proxy gets the same id.
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


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "|".join(
            part.get("text", f"<{part.get('type')}>") if isinstance(part, dict) else "?"
            for part in content
        )
    return ""


def _sample(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object":
        return {name: _sample(s) for name, s in schema.get("properties", {}).items()}
    if kind == "array":
        return [_sample(schema.get("items", {}))]
    if kind == "integer":
        return 7
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return "x"


def _logprobs(text: str) -> dict[str, Any]:
    tokens = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
    return {
        "content": [
            {
                "token": t,
                "logprob": -0.25,
                "bytes": list(t.encode()),
                "top_logprobs": [{"token": t, "logprob": -0.25, "bytes": list(t.encode())}],
            }
            for t in tokens
        ],
        "refusal": None,
    }


class RichUpstream:
    """The fake's state: the request bodies it received, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    @property
    def calls(self) -> int:
        """How many chat requests reached the upstream."""
        return len(self.bodies)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "rich", "object": "model"}]})

    def _answer(self, doc: dict[str, Any], index: int) -> dict[str, Any]:
        """One choice's message and finish reason for ``doc``."""
        messages = doc["messages"]
        last = messages[-1]
        tools = doc.get("tools") or []
        choice = doc.get("tool_choice", "auto")
        if tools and choice != "none" and last.get("role") != "tool":
            if isinstance(choice, dict):
                names = [choice["function"]["name"]]
            elif doc.get("parallel_tool_calls", True) is not False and len(tools) > 1:
                names = [t["function"]["name"] for t in tools[:2]]
            else:
                names = [tools[0]["function"]["name"]]
            calls = [
                {
                    "id": f"call_{index}_{i}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": json.dumps({"q": _text_of(last.get("content")), "i": i}),
                    },
                }
                for i, name in enumerate(names)
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            return {"message": message, "finish_reason": "tool_calls"}
        fmt = doc.get("response_format") or {"type": "text"}
        if fmt["type"] == "json_schema":
            text = json.dumps(_sample(fmt["json_schema"]["schema"]))
        elif fmt["type"] == "json_object":
            text = json.dumps({"ok": True, "choice": index})
        elif last.get("role") == "tool":
            text = f"tool said {last['content']} for {last.get('tool_call_id')}"
        else:
            text = f"echo {index}: {_text_of(last.get('content'))[:60]}"
            extras = sorted(k for k in doc if k not in ("model", "messages", "n", *_TRAVEL))
            if extras:
                text += " +" + ",".join(extras)
        message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        limit = doc.get("max_completion_tokens") or doc.get("max_tokens")
        return {"message": message, "finish_reason": "length" if limit == 3 else "stop"}

    def _head(self, doc: dict[str, Any]) -> dict[str, Any]:
        question = {k: v for k, v in doc.items() if k not in _TRAVEL}
        digest = hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()
        return {
            "id": f"chatcmpl-{digest[:24]}",
            "created": CREATED,
            "model": f"{doc['model']}-2025-01-01",
            "system_fingerprint": "fp_rich",
            "service_tier": "default",
        }

    @staticmethod
    def _usage(doc: dict[str, Any]) -> dict[str, Any]:
        prompt = sum(len(_text_of(m.get("content"))) for m in doc["messages"]) // 4 + 1
        return {
            "prompt_tokens": prompt,
            "completion_tokens": 9,
            "total_tokens": prompt + 9,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def chat(self, request: Request) -> Response:
        doc = await request.json()
        self.bodies.append(doc)
        answers = [self._answer(doc, i) for i in range(doc.get("n") or 1)]
        if doc.get("stream"):
            return StreamingResponse(self._events(doc, answers), media_type="text/event-stream")
        choices = []
        for i, answer in enumerate(answers):
            text = answer["message"].get("content") or ""
            choices.append(
                {
                    "index": i,
                    **answer,
                    "logprobs": _logprobs(text) if doc.get("logprobs") else None,
                }
            )
        return JSONResponse(
            {
                **self._head(doc),
                "object": "chat.completion",
                "choices": choices,
                "usage": self._usage(doc),
            },
            headers={"x-request-id": "req_rich"},
        )

    async def _events(
        self, doc: dict[str, Any], answers: list[dict[str, Any]]
    ) -> AsyncIterator[bytes]:
        options = doc.get("stream_options") or {}
        head = {**self._head(doc), "object": "chat.completion.chunk"}
        usage = {"usage": None} if options.get("include_usage") else {}

        def event(choice: dict[str, Any] | None, **more: Any) -> bytes:
            body = {**head, "choices": [choice] if choice else [], **usage, **more}
            if options.get("include_obfuscation"):
                body["obfuscation"] = "zz"
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        for i, answer in enumerate(answers):
            message = answer["message"]
            text = message.get("content")
            logprobs = doc.get("logprobs")
            first = {"role": "assistant", "content": "" if text is not None else None}
            if "refusal" in message:
                first["refusal"] = None
            yield event({"index": i, "delta": first, "logprobs": None, "finish_reason": None})
            for start in range(0, len(text or ""), 5):
                piece = text[start : start + 5]
                yield event(
                    {
                        "index": i,
                        "delta": {"content": piece},
                        "logprobs": _logprobs(piece) if logprobs else None,
                        "finish_reason": None,
                    }
                )
            for k, call in enumerate(message.get("tool_calls") or []):
                opening = {
                    "index": k,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                yield event(
                    {
                        "index": i,
                        "delta": {"tool_calls": [opening]},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                )
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 7):
                    fragment = {"index": k, "function": {"arguments": arguments[start : start + 7]}}
                    yield event(
                        {
                            "index": i,
                            "delta": {"tool_calls": [fragment]},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    )
            yield event(
                {
                    "index": i,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": answer["finish_reason"],
                }
            )
        if options.get("include_usage"):
            body = {**head, "choices": [], "usage": self._usage(doc)}
            yield b"data: " + json.dumps(body).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
