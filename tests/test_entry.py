"""The entry codec refuses anything but a whole, well-typed entry (a shared store may hold junk)."""

from __future__ import annotations

import json

import pytest

from vex_llm import Chunk, LLMResponse, Usage
from vex_llm.cache.entry import ENTRY_VERSION, CacheEntry, decode_entry, encode_entry


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


def test_the_layout_version_is_written_and_the_last_one_still_read() -> None:
    response = LLMResponse(content="hi", model="m", usage=Usage(1, 2))
    doc = json.loads(encode_entry(CacheEntry.of(response, 5.0)))
    assert doc["v"] == ENTRY_VERSION == 3
    doc["v"] = 2  # written before recorded streams kept their typed fields only
    assert decode_entry(json.dumps(doc)).response.content == "hi"
    for bad in (1, 99, [], {}, None, "3"):
        doc["v"] = bad
        with pytest.raises(ValueError, match="unknown layout"):
            decode_entry(json.dumps(doc))
