"""``POST /v1/messages``: Anthropic's Messages API door.

Reading is :mod:`vex_llm.wire.anthropic_request`: the body becomes typed fields (what the
cache key and an OpenAI-compatible upstream see) and is kept whole as ``LLMRequest.raw``, so
an Anthropic upstream is sent exactly what the client sent (``cache_control``, ``thinking``
and all). Writing relays an Anthropic upstream's own ``message`` and events (miss or hit),
and writes Anthropic's shapes from the typed fields for any other upstream
(:mod:`vex_llm.wire.anthropic_answer`). Errors take Anthropic's shape,
``{"type": "error", "error": {"type", "message"}}``, and travel as an ``error`` event once a
stream has begun.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import CacheControl, Chunk, LLMRequest, LLMResponse
from vex_llm.server.doors import DoorRequest, Rendered, json_bytes
from vex_llm.server.wire import WireError, decode_body
from vex_llm.wire.anthropic_answer import MessageStreamEncoder, message_json
from vex_llm.wire.anthropic_messages import ANTHROPIC_MESSAGES
from vex_llm.wire.anthropic_request import BadRequest, typed_fields

__all__ = ["MessagesDoor", "error_type"]

#: Anthropic's error type for each HTTP status it uses.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP ``status``."""
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def _error_body(err: WireError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(err.status), "message": err.message}}


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate the upstream escaped: escape it again
        return json.dumps(json.loads(text), separators=(",", ":")).encode("ascii")


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode("ascii") + b"\ndata: " + data + b"\n\n"


def _message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


class MessagesDoor:
    """The Messages API wire format (see the module docstring)."""

    endpoint = "messages"

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> DoorRequest:
        """A ``/v1/messages`` body as a :class:`DoorRequest`."""
        doc = decode_body(body)
        if not isinstance(doc, dict):
            raise WireError("request body must be a JSON object")
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("model: Field required (a non-empty string)", param="model")
        try:
            fields = typed_fields(doc)
            request = LLMRequest(
                tenant_id=tenant,
                model=upstream_model.get(model, model),
                cache=control,
                raw=FrozenJSON.of(doc, "body"),
                raw_format=ANTHROPIC_MESSAGES,
                **fields,
            )
        except BadRequest as exc:
            raise WireError(str(exc), param=exc.param) from None
        except (TypeError, ValueError) as exc:
            raise WireError(str(exc)) from None
        return DoorRequest(request, model, bool(doc.get("stream")))

    def error(self, err: WireError) -> Rendered:
        """Anthropic's ``{"type": "error", "error": {...}}``."""
        return Rendered(json_bytes(_error_body(err)), status=err.status)

    def answer(self, response: LLMResponse, call: DoorRequest) -> Rendered:
        """The upstream's own ``message`` (miss or hit), or one written from the typed fields."""
        if response.raw is not None and response.raw_format == ANTHROPIC_MESSAGES:
            return Rendered(_utf8(response.raw.text))
        body = message_json(response, message_id=_message_id(), model=response.model or call.model)
        return Rendered(json_bytes(body))

    async def stream(
        self, chunks: AsyncIterator[Chunk], call: DoorRequest
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's own events as they came, or events written from typed chunks."""
        encoder = MessageStreamEncoder(_message_id(), call.model)
        relayed = False
        async for chunk in chunks:
            if chunk.raw is not None and chunk.raw_format == ANTHROPIC_MESSAGES:
                relayed = True
                yield _event(chunk.raw_event or "message", _utf8(chunk.raw))
                continue
            if relayed:
                continue  # the terminal chunk of a relayed stream: message_stop said it all
            for name, data in encoder.feed(chunk):
                yield _event(name, json_bytes(data))

    def stream_error(self, err: WireError) -> bytes:
        """An ``error`` event carrying Anthropic's error object."""
        return _event("error", json_bytes(_error_body(err)))
