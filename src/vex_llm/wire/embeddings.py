"""The embeddings wire formats, pure: OpenAI's ``POST /embeddings`` and Ollama's ``POST
/api/embed``, requests out and answers in.

Vectors are always asked for as floats (every OpenAI-compatible server speaks them, and they
keep what the model computed to the last digit); a client's ``encoding_format`` is the proxy's
business. An answer must hold exactly one vector per input sent, each a non-empty array of
finite numbers, all of one length, and of ``dimensions`` length when that was asked: a
backend that ignores ``dimensions`` (llama-server does) is refused with
:class:`~vex_llm.errors.UnsupportedFeature`, not cached as if it had honoured it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vex_llm.embeddings import EmbeddingInput, EmbeddingRequest
from vex_llm.errors import InvalidResponse, UnsupportedFeature

__all__ = [
    "Vectors",
    "ollama_embed_payload",
    "openai_embeddings_payload",
    "parse_ollama_embed",
    "parse_openai_embeddings",
]

#: What an answer gives: the vectors in the order of the inputs sent, the model that made
#: them, and the prompt tokens the backend counted (None when it did not say).
Vectors = tuple[tuple[tuple[float, ...], ...], str, int | None]


def _input_json(inputs: Sequence[EmbeddingInput]) -> list[Any]:
    return [item if isinstance(item, str) else list(item) for item in inputs]


def openai_embeddings_payload(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    """The ``/embeddings`` body for ``request``, every field of it (``extra`` as it came)."""
    payload: dict[str, Any] = dict(request.extra.value) if request.extra is not None else {}
    payload["model"] = model
    payload["input"] = _input_json(request.inputs)
    payload["encoding_format"] = "float"
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    return payload


def _vector(value: object, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidResponse(f"{where} is not a non-empty array of numbers")
    if all(type(n) is float for n in value):
        # The common case, checked at C speed: a sum is finite only if every value is (a
        # vector of values near 1e308 would be refused; no embedding has them).
        if not math.isfinite(sum(value)):
            raise InvalidResponse(f"{where} holds a value that is not finite")
        return tuple(value)
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidResponse(f"{where} holds a {type(number).__name__}, not a number")
        if not math.isfinite(number):
            raise InvalidResponse(f"{where} holds {number!r}")
    return tuple(float(n) for n in value)


def _check_shape(
    vectors: Sequence[tuple[float, ...]], sent: int, dimensions: int | None, backend: str
) -> None:
    if len(vectors) != sent:
        raise InvalidResponse(f"{backend} answered {len(vectors)} vectors for {sent} inputs")
    lengths = {len(v) for v in vectors}
    if len(lengths) > 1:
        raise InvalidResponse(f"{backend} answered vectors of different lengths")
    if dimensions is not None and lengths != {dimensions}:
        raise UnsupportedFeature(
            "dimensions",
            backend,
            f"asked for {dimensions}, it answered {lengths.pop()} (the model's own size)",
        )


def _tokens(usage: object) -> int | None:
    if not isinstance(usage, dict):
        return None
    value = usage.get("prompt_tokens", usage.get("total_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_openai_embeddings(
    doc: object, sent: int, dimensions: int | None, fallback_model: str, backend: str
) -> Vectors:
    """The vectors of an OpenAI ``list`` of ``embedding`` objects, put in input order by
    their ``index`` (every index 0..sent-1 exactly once)."""
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{backend} embeddings answer is not a JSON object")
    data = doc.get("data")
    if not isinstance(data, list):
        raise InvalidResponse(f"{backend} embeddings answer has no 'data' list")
    slots: list[tuple[float, ...] | None] = [None] * len(data)
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise InvalidResponse(f"{backend} embeddings data[{position}] is not an object")
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(data):
            raise InvalidResponse(f"{backend} embeddings data[{position}] has a bad index")
        if slots[index] is not None:
            raise InvalidResponse(f"{backend} embeddings answer repeats the index {index}")
        slots[index] = _vector(item.get("embedding"), f"{backend} embedding {index}")
    vectors = tuple(v for v in slots if v is not None)
    _check_shape(vectors, sent, dimensions, backend)
    model = doc.get("model")
    return (
        vectors,
        model if isinstance(model, str) and model else fallback_model,
        _tokens(doc.get("usage")),
    )


def ollama_embed_payload(request: EmbeddingRequest, model: str, backend: str) -> dict[str, Any]:
    """The ``/api/embed`` body; Ollama takes text only (token arrays: ``UnsupportedFeature``)."""
    if request.tokenized:
        raise UnsupportedFeature("input", backend, "Ollama embeds text, not token arrays")
    payload: dict[str, Any] = dict(request.extra.value) if request.extra is not None else {}
    payload.pop("user", None)  # OpenAI's caller label; Ollama has no such field
    payload["model"] = model
    payload["input"] = list(request.inputs)
    if request.dimensions is not None:
        payload["dimensions"] = request.dimensions
    return payload


def parse_ollama_embed(
    doc: object, sent: int, dimensions: int | None, fallback_model: str, backend: str
) -> Vectors:
    """The vectors of Ollama's ``{"embeddings": [[...], ...], "prompt_eval_count": n}``."""
    if not isinstance(doc, dict):
        raise InvalidResponse(f"{backend} embed answer is not a JSON object")
    data = doc.get("embeddings")
    if not isinstance(data, list):
        raise InvalidResponse(f"{backend} embed answer has no 'embeddings' list")
    vectors = tuple(_vector(v, f"{backend} embedding {i}") for i, v in enumerate(data))
    _check_shape(vectors, sent, dimensions, backend)
    model = doc.get("model")
    count = doc.get("prompt_eval_count")
    tokens = count if isinstance(count, int) and not isinstance(count, bool) else None
    return vectors, model if isinstance(model, str) and model else fallback_model, tokens
