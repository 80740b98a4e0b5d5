"""Undoing an answer's ``Content-Encoding`` with the output bounded. Pure: no I/O.

httpx inflates each network read whole, so a 40 KB gzip body of zeros becomes 40 MB in
memory before anyone can count it. :class:`BoundedDecoder` inflates at most the bytes still
allowed (zlib's ``max_length``) and says when more were on offer, so the cap holds *after*
decompression at the cost of one read. Only ``identity``, ``gzip`` and ``deflate`` are
accepted, which is what the transport asks for (``Accept-Encoding: gzip, deflate``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from vex_llm.errors import InvalidResponse

__all__ = ["ACCEPT_ENCODING", "BoundedDecoder"]

#: The largest piece inflated at once.
STEP = 256 * 1024

#: The codings the transport asks for, whatever optional decoders httpx has installed.
ACCEPT_ENCODING = "gzip, deflate"

_GZIP = ("gzip", "x-gzip")


class BoundedDecoder:
    """Feed raw body bytes, get decoded bytes, never more than ``limit + 1`` in total.

    When the body holds more than ``limit`` decoded bytes, :attr:`overflowed` turns true and
    the output stops one byte past ``limit`` (so a consumer counting bytes sees it too).
    ``InvalidResponse`` for an unknown coding or a corrupt one.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in (*_GZIP, "deflate")):
            raise InvalidResponse(f"unsupported Content-Encoding {content_encoding!r}")
        self._coding = codings[0] if codings else None
        self._z: zlib._Decompress | None = None
        if self._coding in _GZIP:
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._coding == "deflate":
            self._z = zlib.decompressobj()
        self._first = True
        self.limit = limit
        self.total = 0
        self.overflowed = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces ``raw`` yields, up to what the limit still allows.

        Inflated in steps of at most :data:`STEP` bytes, so that a consumer appending them
        holds the answer once, not once more in zlib's output buffer.
        """
        if self.overflowed or not raw:
            return
        if self._z is None:
            room = self.limit - self.total
            yield self._count(raw if len(raw) <= room else raw[: room + 1])  # no copy if it fits
            return
        while raw and not self.overflowed:
            out = self._inflate(raw, min(self.limit - self.total + 1, STEP))
            raw = self._z.unconsumed_tail
            if out:
                yield self._count(out)

    def flush(self) -> bytes:
        """What the decoder still holds once the body is over."""
        if self._z is None or self.overflowed:
            return b""
        try:
            out = self._z.flush()  # all input was consumed: only what zlib still holds
        except zlib.error as exc:  # pragma: no cover - flush rarely fails
            raise InvalidResponse(f"corrupt {self._coding} body: {exc}") from exc
        return self._count(out[: self.limit + 1 - self.total])

    def _inflate(self, raw: bytes, max_length: int) -> bytes:
        assert self._z is not None
        try:
            out = self._z.decompress(raw, max_length)
        except zlib.error as exc:
            if not (self._first and self._coding == "deflate"):
                raise InvalidResponse(f"corrupt {self._coding} body: {exc}") from exc
            # "deflate" is often sent raw, without the zlib wrapper (httpx tolerates it too).
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            return self._inflate(raw, max_length)
        self._first = False
        return out

    def _count(self, out: bytes) -> bytes:
        # ``out`` holds at most one byte more than the room left (zlib's max_length, or the
        # slice of a raw piece), so the total never passes limit + 1 and nothing is copied.
        self.total += len(out)
        self.overflowed = self.total > self.limit
        return out
