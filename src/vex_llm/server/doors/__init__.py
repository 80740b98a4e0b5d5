"""The proxy's front doors: one wire format each, one cache path behind all of them.

A door knows only its wire format: how a request body reads (:meth:`Door.parse`, into an
:class:`LLMRequest` and the model name to route by) and how an answer, an answer's stream and
an error are written back. Everything else — the tenant check, the body cap, ``Cache-Control``,
the upstream chain with its fallbacks, single-flight, metrics, the failure mapping — is the
proxy's, the same for every door (``server.app``). A new door is a new module here and a
route; it never copies the request path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vex_llm.models import CacheControl, Chunk, LLMRequest, LLMResponse
from vex_llm.server.wire import WireError

__all__ = ["Door", "DoorRequest", "Rendered", "json_bytes", "openai_error"]


@dataclass(frozen=True, slots=True)
class DoorRequest:
    """A parsed request: what to ask, the model name it routes by, whether it streams, and
    the door's own options (``include_usage`` for chat, say)."""

    request: LLMRequest
    model: str
    stream: bool
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A body to send: bytes, their media type, the HTTP status and extra headers."""

    body: bytes
    media_type: str = "application/json"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


class Door(Protocol):
    """One wire format's reading and writing; see the module docstring."""

    #: The endpoint's name in metrics and logs (``chat.completions``, ``messages``...).
    endpoint: str

    def parse(
        self,
        body: bytes,
        *,
        tenant: str,
        control: CacheControl,
        upstream_model: Mapping[str, str],
    ) -> DoorRequest:
        """The request in ``body``; a :class:`WireError` naming what is wrong."""
        ...

    def error(self, err: WireError) -> Rendered:
        """``err`` in this door's error shape, with ``err.status``."""
        ...

    def answer(self, response: LLMResponse, call: DoorRequest) -> Rendered:
        """A whole answer."""
        ...

    def stream(
        self, chunks: AsyncIterator[Chunk], call: DoorRequest
    ) -> AsyncGenerator[bytes, None]:
        """The SSE bytes of a stream, up to and including its end marker."""
        ...

    def stream_error(self, err: WireError) -> bytes:
        """An error after the first byte, in-band (the stream then ends without its end)."""
        ...


def json_bytes(obj: object) -> bytes:
    """``obj`` as compact JSON bytes, ASCII-only: a lone surrogate in an answer must not make
    encoding fail."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def openai_error(err: WireError) -> Rendered:
    """``err`` in OpenAI's ``{"error": {...}}`` shape, with its status (every OpenAI door)."""
    return Rendered(json_bytes(err.body()), status=err.status)
