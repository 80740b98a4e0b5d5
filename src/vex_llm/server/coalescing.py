"""``CoalescingTransport``: the writes of one event-loop step leave as one.

uvicorn writes a response's status line and headers, then its body, in two calls; each call
is a ``send`` system call and, on loopback or a fast LAN, a wake-up of the client for a
response it cannot use yet. A cache hit is a few hundred microseconds, so the second write
and wake-up are a visible share of it (``benchmarks/proxy.py``). This transport holds what is
written and sends it at the end of the current loop step (``call_soon``), joined: a JSON
answer leaves in one write, a stream's head with its first event. Nothing waits longer than
the step that wrote it, and a lone complete response not even that (the protocol sends it
at once, ``BoundedProtocol.on_response_complete``); a stream's relay lets it go before it
stores the answer (``cache.calls``). Closing, ``write_eof`` and handing the connection to another
protocol send what is held first, so the bytes keep their order. Everything else is the
wrapped transport's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescingTransport"]


class CoalescingTransport(asyncio.Transport):
    """Wraps ``transport``: writes made in one loop step are sent together at its end."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` (copied if mutable) until the end of this loop step."""
        if not data:
            return
        held = self._held
        if not held:
            self._loop.call_soon(self.flush)
        held.append(data if isinstance(data, bytes) else bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        """Hold every piece, like :meth:`write`."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now (a no-op when nothing is, or the connection is closing)."""
        held = self._held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is held and abort at once."""
        self._held.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        """Send what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """Whether the wrapped transport can half-close."""
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        """Whether the wrapped transport is closing or closed."""
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        """The wrapped transport's buffer plus what is held here."""
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The wrapped transport's limits."""
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the wrapped transport's limits."""
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        """Pause the wrapped transport's reading."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume the wrapped transport's reading."""
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        """Whether the wrapped transport is reading."""
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Send what is held, then hand the wrapped transport to ``protocol``."""
        self.flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The wrapped transport's protocol."""
        return self._transport.get_protocol()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The wrapped transport's extra info (socket, peer name, SSL context...)."""
        return self._transport.get_extra_info(name, default)
