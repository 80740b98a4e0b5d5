"""``POST /v1/embeddings``: OpenAI's embeddings door.

Reading: ``input`` as a string, a list of strings, a token array or a list of token arrays
(at most 2048 inputs, none empty), ``encoding_format`` ``float`` or ``base64``,
``dimensions`` (a positive int), ``user`` (a string); every other field travels to the
upstream as it came (``EmbeddingRequest.extra``). Anything else is a 400 in OpenAI's error
shape naming the param. Writing: OpenAI's ``list`` of ``embedding`` objects in the caller's
order, with the model the upstream named and ``usage`` counting the tokens sent upstream for
this request. Base64 vectors are little-endian float32, as OpenAI writes them, made from the
same floats a float answer shows, so both come from one cache entry.

Embeddings are not a :class:`~vex_llm.server.doors.Door` (whose requests are chat requests):
the proxy serves them on a sibling path that shares the door's tenant check, body cap,
``Cache-Control``, upstream chain, metrics and failure mapping (``server.app``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from vex_llm.cache.embeddings import EmbeddingResult
from vex_llm.embeddings import EmbeddingRequest, vector_base64
from vex_llm.models import CacheControl
from vex_llm.server.doors import Rendered, json_bytes, openai_error
from vex_llm.server.wire import WireError, decode_body

__all__ = ["EmbeddingCall", "EmbeddingsDoor"]

_TYPED = frozenset({"model", "input", "encoding_format", "dimensions"})


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """A parsed embeddings call: the request, the model name it routes by, and whether the
    vectors go back as base64."""

    request: EmbeddingRequest
    model: str
    base64: bool


def _input(value: object) -> object:
    """``input`` checked for shape (the rest is ``EmbeddingRequest``'s)."""
    if value is None:
        raise WireError("'input' is required", param="input")
    if isinstance(value, str | list):
        return value
    raise WireError(
        "'input' must be a string, an array of strings, an array of token ids or an array "
        f"of token arrays, not {type(value).__name__}",
        param="input",
    )


class EmbeddingsDoor:
    """OpenAI's embeddings wire format (see the module docstring)."""

    endpoint = "embeddings"

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> EmbeddingCall:
        """An embeddings body as an :class:`EmbeddingCall`; a :class:`WireError` otherwise."""
        doc = decode_body(body)
        if not isinstance(doc, dict):
            raise WireError("request body must be a JSON object")
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("'model' is required and must be a non-empty string", param="model")
        inputs = _input(doc.get("input"))
        encoding = doc.get("encoding_format")
        if encoding not in (None, "float", "base64"):
            raise WireError(
                "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
            )
        dimensions = doc.get("dimensions")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise WireError("'dimensions' must be a positive integer", param="dimensions")
        user = doc.get("user")
        if user is not None and not isinstance(user, str):
            raise WireError("'user' must be a string", param="user")
        extra = {name: value for name, value in doc.items() if name not in _TYPED}
        try:
            request = EmbeddingRequest(
                inputs,  # type: ignore[arg-type]
                model=upstream_model.get(model, model),
                dimensions=dimensions,
                tenant_id=tenant,
                cache=control,
                extra=extra or None,  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            message = str(exc).replace("inputs", "input")
            raise WireError(message, param="input") from None
        return EmbeddingCall(request, model, encoding == "base64")

    def error(self, err: WireError) -> Rendered:
        """OpenAI's ``{"error": {...}}``."""
        return openai_error(err)

    def answer(self, result: EmbeddingResult, call: EmbeddingCall) -> Rendered:
        """OpenAI's ``list`` of embeddings, floats or base64 as the client asked."""
        response = result.response
        tokens = response.usage.prompt_tokens
        tail = json_bytes(
            {
                "model": response.model or call.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
        if call.base64:
            items = [
                b'{"object":"embedding","index":%d,"embedding":"%s"}'
                % (item.index, vector_base64(item.vector).encode("ascii"))
                for item in response.data
            ]
        else:
            items = [
                b'{"object":"embedding","index":%d,"embedding":%s}'
                % (item.index, json.dumps(item.vector, separators=(",", ":")).encode("ascii"))
                for item in response.data
            ]
        body = b'{"object":"list","data":[' + b",".join(items) + b"]," + tail[1:]
        return Rendered(body)
