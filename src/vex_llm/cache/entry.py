"""``CacheEntry``: what a store keeps for one key, and its JSON form for stores that persist.

Persistent stores keep JSON, never pickle: a cache file or a shared Redis must not be a way
to run code in every process that reads it. Decoding checks the shape and raises
``ValueError`` for anything else, so a corrupt entry reads as a miss, never as a wrong answer.

A recorded stream is kept encoded (``recording``, compact JSON bytes) even in memory: a stream
of many small chunks costs several times its size as Python objects, and ``max_bytes`` must
bound what the process really holds. It is decoded only when a stream hit replays it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vex_llm.chat import Choice, ToolCall, ToolCallDelta
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import Chunk, LLMResponse, Usage

__all__ = [
    "ENTRY_VERSION",
    "CacheEntry",
    "decode_chunks",
    "decode_entry",
    "encode_chunks",
    "encode_entry",
]

#: The layout written. 3: a recorded stream's response holds its typed fields only (no
#: ``raw``); the whole answer is assembled from the recording when asked for. A process of an
#: older version reads 3 as unknown (a miss), never as an answer without the upstream's
#: object; version 2 entries (``raw`` beside the recording) are still read.
ENTRY_VERSION = 3
_READ_VERSIONS = (2, ENTRY_VERSION)  # a tuple: ``in`` compares, never hashes a bad value


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored answer: the response (``cached=True``), when it was stored, its encoded size.

    ``recording`` holds the recorded stream when the answer was produced by streaming, so a
    stream hit replays the same pieces: encoded (compact, for entries kept in memory) or as
    the chunks themselves (an entry just read from a persistent store). Build entries to
    store with :meth:`of`, which encodes the recording and measures ``nbytes``.
    """

    response: LLMResponse
    stored_at: float
    nbytes: int = 0
    recording: bytes | tuple[Chunk, ...] | None = None

    @property
    def chunks(self) -> tuple[Chunk, ...] | None:
        """The recorded stream's chunks (decoded when kept encoded), or None."""
        recording = self.recording
        if recording is None or isinstance(recording, tuple):
            return recording
        return _own_chunks(recording)

    @classmethod
    def of(
        cls, response: LLMResponse, stored_at: float, chunks: Sequence[Chunk] | None = None
    ) -> CacheEntry:
        """An entry to store: ``response`` marked cached, headers dropped, size measured."""
        response = dataclasses.replace(response, cached=True, headers=())
        recording = None if chunks is None else encode_chunks(chunks)
        entry = cls(response, stored_at, 0, recording)
        return dataclasses.replace(entry, nbytes=len(encode_entry(entry)))


def _usage_json(usage: Usage | None) -> list[int] | None:
    return None if usage is None else [usage.prompt_tokens, usage.completion_tokens]


def _usage(value: Any) -> Usage | None:
    if value is None:
        return None
    prompt, completion = value
    if not isinstance(prompt, int) or not isinstance(completion, int):
        raise ValueError("usage must be two ints")
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _opt(value: Any, kind: type, what: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{what} must be a {kind.__name__} or null")
    return value


def _frozen(value: Any, what: str) -> FrozenJSON | None:
    return None if _opt(value, str, what) is None else FrozenJSON(value)


def _chunk_json(c: Chunk) -> list[Any]:
    item: list[Any] = [c.delta, c.finish_reason, _usage_json(c.usage), c.model]
    more: dict[str, Any] = {}
    if c.index:
        more["i"] = c.index
    if c.tool_calls:
        more["tc"] = [[d.index, d.id, d.name, d.arguments, d.type] for d in c.tool_calls]
    if c.refusal is not None:
        more["rf"] = c.refusal
    if c.logprobs is not None:
        more["lp"] = c.logprobs.text
    if c.raw is not None:
        more["raw"] = [c.raw, c.raw_format, c.raw_event]
    if more:
        item.append(more)
    return item


def _delta(item: Any) -> ToolCallDelta:
    index, id_, name, arguments, kind = item
    if not isinstance(index, int) or not isinstance(arguments, str):
        raise ValueError("a recorded tool call piece needs an int index and text arguments")
    for value in (id_, name, kind):
        _opt(value, str, "a recorded tool call field")
    return ToolCallDelta(index, id_, name, arguments, kind)


def _chunk(item: Any) -> Chunk:
    delta, finish, usage, model, *rest = item
    if not isinstance(delta, str) or not all(
        v is None or isinstance(v, str) for v in (finish, model)
    ):
        raise ValueError("a recorded chunk must hold text, and text or null")
    more = rest[0] if rest else {}
    if not isinstance(more, dict) or len(rest) > 1:
        raise ValueError("a recorded chunk has an unknown shape")
    raw, raw_format, raw_event = more.get("raw", (None, None, None))
    for value in (raw, raw_format, raw_event):
        _opt(value, str, "a recorded raw event")
    index = more.get("i", 0)
    if not isinstance(index, int):
        raise ValueError("a recorded chunk index must be an int")
    return Chunk(
        delta=delta,
        finish_reason=finish,
        usage=_usage(usage),
        model=model,
        index=index,
        tool_calls=tuple(_delta(d) for d in more.get("tc", ())),
        refusal=_opt(more.get("rf"), str, "a recorded refusal"),
        logprobs=_frozen(more.get("lp"), "recorded logprobs"),
        raw=raw,
        raw_format=raw_format,
        raw_event=raw_event,
    )


def encode_chunks(chunks: Sequence[Chunk]) -> bytes:
    """A recorded stream as compact JSON."""
    return _dumps([_chunk_json(c) for c in chunks])


def _own_chunks(data: bytes) -> tuple[Chunk, ...]:
    """The chunks of a recording this process encoded (``CacheEntry.of``), read back without
    the checks :func:`decode_chunks` makes.

    Kept-encoded recordings only ever come from :meth:`CacheEntry.of` (an entry read from a
    persistent store holds chunks decoded and checked by :func:`decode_entry`), so their
    shape is known; the checks were three quarters of a stream hit's decoding time.
    """
    chunks = []
    for item in json.loads(data):
        delta, finish, usage, model, *rest = item
        used = None if usage is None else Usage(usage[0], usage[1])
        if not rest:
            chunks.append(Chunk(delta, finish, used, model))
            continue
        more = rest[0]
        raw, raw_format, raw_event = more.get("raw", (None, None, None))
        logprobs = more.get("lp")
        chunks.append(
            Chunk(
                delta,
                finish,
                used,
                model,
                more.get("i", 0),
                tuple(ToolCallDelta(*d) for d in more.get("tc", ())),
                more.get("rf"),
                None if logprobs is None else FrozenJSON(logprobs),
                raw,
                raw_format,
                raw_event,
            )
        )
    return tuple(chunks)


def _chunks(items: Any) -> tuple[Chunk, ...]:
    try:
        if not isinstance(items, list):
            raise ValueError("a recording must be a list")
        chunks = tuple(_chunk(item) for item in items)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cache entry recording is malformed: {exc}") from exc
    if not chunks or not chunks[-1].is_final:
        raise ValueError("cache entry: a recorded stream must end with its terminal chunk")
    return chunks


def decode_chunks(data: bytes) -> tuple[Chunk, ...]:
    """The chunks of :func:`encode_chunks`; ``ValueError`` unless whole and well typed."""
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cache entry recording is not valid JSON: {exc}") from exc
    return _chunks(items)


def _call_json(call: ToolCall) -> list[str | None]:
    extra = None if call.extra is None else call.extra.text
    return [call.id, call.name, call.arguments, call.type, extra]


def _call(item: Any) -> ToolCall:
    id_, name, arguments, kind, extra = item
    return ToolCall(id_, name, arguments, kind, _frozen(extra, "a tool call's extra"))


def _choice_json(c: Choice) -> list[Any]:
    return [
        c.index,
        c.content,
        c.finish_reason,
        [_call_json(t) for t in c.tool_calls],
        c.refusal,
        None if c.logprobs is None else c.logprobs.text,
    ]


def _choice(item: Any) -> Choice:
    index, content, finish, calls, refusal, logprobs = item
    return Choice(
        index=index,
        content=content,
        finish_reason=_opt(finish, str, "a choice's finish reason"),
        tool_calls=tuple(_call(c) for c in calls),
        refusal=refusal,
        logprobs=_frozen(logprobs, "a choice's logprobs"),
    )


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
    if r.tool_calls:
        doc["tool_calls"] = [_call_json(c) for c in r.tool_calls]
    if r.refusal is not None:
        doc["refusal"] = r.refusal
    if r.logprobs is not None:
        doc["logprobs"] = r.logprobs.text
    if r.choices:
        doc["choices"] = [_choice_json(c) for c in r.choices]
    if r.raw is not None:
        doc["raw"] = [r.raw.text, r.raw_format]
    data = _dumps(doc)
    recording = entry.recording
    if recording is None:
        return data
    if isinstance(recording, tuple):
        recording = encode_chunks(recording)
    # The recording is JSON already: spliced in as it is, not encoded a second time.
    return data[:-1] + b',"chunks":' + recording + b"}"


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
    if not isinstance(doc, dict) or doc.get("v") not in _READ_VERSIONS:
        raise ValueError("cache entry has an unknown layout")
    try:
        recording = None
        if "chunks" in doc:
            recording = _chunks(doc["chunks"])  # checked now: a bad one is a miss, not a replay
        raw, raw_format = doc.get("raw", (None, None))
        response = LLMResponse(
            content=_str(doc, "content"),
            model=_str(doc, "model"),
            usage=_usage(doc["usage"]) or Usage(),
            latency_ms=float(doc["latency_ms"]),
            finish_reason=_str(doc, "finish_reason", optional=True),
            cached=True,
            tool_calls=tuple(_call(c) for c in doc.get("tool_calls", ())),
            refusal=_str(doc, "refusal", optional=True),
            logprobs=_frozen(doc.get("logprobs"), "logprobs"),
            choices=tuple(_choice(c) for c in doc.get("choices", ())),
            raw=_frozen(raw, "raw"),
            raw_format=_opt(raw_format, str, "raw_format"),
        )
        stored_at = float(doc["stored_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cache entry is malformed: {exc}") from exc
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    return CacheEntry(response=response, stored_at=stored_at, nbytes=size, recording=recording)
