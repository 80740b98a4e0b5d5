"""``CacheEntry``: what a store keeps for one key, and its JSON form for stores that persist.

Persistent stores keep JSON, never pickle: a cache file or a shared Redis must not be a way
to run code in every process that reads it. Decoding checks the shape and raises
``ValueError`` for anything else, so a corrupt entry reads as a miss, never as a wrong answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vex_llm.models import Chunk, LLMResponse, Usage

__all__ = ["ENTRY_VERSION", "CacheEntry", "decode_entry", "encode_entry"]

ENTRY_VERSION = 1


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored answer: the response (``cached=True``), when it was stored, its encoded size.

    ``chunks`` holds the recorded stream when the answer was produced by streaming, so a
    stream hit replays the same pieces.
    """

    response: LLMResponse
    stored_at: float
    nbytes: int = 0
    chunks: tuple[Chunk, ...] | None = None


def _usage_json(usage: Usage | None) -> list[int] | None:
    return None if usage is None else [usage.prompt_tokens, usage.completion_tokens]


def _usage(value: Any) -> Usage | None:
    if value is None:
        return None
    prompt, completion = value
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise ValueError("usage must be two ints")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _chunk(item: Any) -> Chunk:
    delta, finish, usage, model = item
    if not isinstance(delta, str) or not all(
        v is None or isinstance(v, str) for v in (finish, model)
    ):
        raise ValueError("a recorded chunk must hold text, and text or null")
    return Chunk(delta=delta, finish_reason=finish, usage=_usage(usage), model=model)


def encode_entry(entry: CacheEntry) -> bytes:
    """The entry as compact UTF-8 JSON."""
    r = entry.response
    doc: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "content": r.content,
        "model": r.model,
        "usage": _usage_json(r.usage),
        "latency_ms": r.latency_ms,
        "finish_reason": r.finish_reason,
        "stored_at": entry.stored_at,
    }
    if entry.chunks is not None:
        doc["chunks"] = [
            [c.delta, c.finish_reason, _usage_json(c.usage), c.model] for c in entry.chunks
        ]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def _str(doc: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"cache entry field {name!r} must be a string")
    return value


def decode_entry(data: bytes | str) -> CacheEntry:
    """Parse :func:`encode_entry` output; ``ValueError`` if it is not a whole, valid entry."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cache entry is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != ENTRY_VERSION:
        raise ValueError("cache entry has an unknown layout")
    try:
        chunks = None
        if "chunks" in doc:
            chunks = tuple(_chunk(item) for item in doc["chunks"])
            if chunks and not chunks[-1].is_final:
                raise ValueError("a recorded stream must end with its terminal chunk")
        response = LLMResponse(
            content=_str(doc, "content"),
            model=_str(doc, "model"),
            usage=_usage(doc["usage"]) or Usage(),
            latency_ms=float(doc["latency_ms"]),
            finish_reason=_str(doc, "finish_reason", optional=True),
            cached=True,
        )
        stored_at = float(doc["stored_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cache entry is malformed: {exc}") from exc
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    return CacheEntry(response=response, stored_at=stored_at, nbytes=size, chunks=chunks)
