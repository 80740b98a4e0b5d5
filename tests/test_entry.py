"""The entry codec refuses anything but a whole, well-typed entry (a shared store may hold junk)."""

from __future__ import annotations

import json

import pytest

from vex_llm import Chunk, LLMResponse, Usage
from vex_llm.cache.entry import CacheEntry, decode_entry, encode_entry


def _entry_doc() -> dict[str, object]:
    chunks = (Chunk(delta="hi", model="m"), Chunk(finish_reason="stop", usage=Usage(1, 2)))
    entry = CacheEntry(LLMResponse(content="hi", model="m"), 1.0, 0, chunks)
    doc: dict[str, object] = json.loads(encode_entry(entry))
    return doc


def test_a_recorded_stream_round_trips() -> None:
    entry = decode_entry(json.dumps(_entry_doc()))
    assert entry.chunks is not None
    assert "".join(c.delta for c in entry.chunks) == "hi"
    assert entry.chunks[-1].is_final


@pytest.mark.parametrize(
    "chunks",
    [
        [[1, None, None, None], ["", "stop", None, None]],  # a delta that is not text
        [["hi", None, None, 7], ["", "stop", None, None]],  # a model that is not text
        [["hi", None, None, None], ["", 5, None, None]],  # a finish reason that is not text
        [["hi", None, None, None]],  # no terminal chunk: a replay would never end properly
    ],
)
def test_malformed_recorded_chunks_are_refused(chunks: list[object]) -> None:
    doc = _entry_doc()
    doc["chunks"] = chunks
    with pytest.raises(ValueError, match="cache entry"):
        decode_entry(json.dumps(doc))
