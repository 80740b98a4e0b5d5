"""The proxy's transport joins the writes of one loop step, keeps their order, loses none."""

from __future__ import annotations

import asyncio

from vex_llm.server.coalescing import CoalescingTransport
from vex_llm.server.limits import ServerLimits
from vex_llm.server.run import uvicorn_config


class Recorder(asyncio.Transport):
    """A transport that records what is done to it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_in_one_step_leave_as_one_at_its_end() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(b"body")
    assert inner.calls == []
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
    await asyncio.sleep(0)
    assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.calls[1:] == [("write", b"next")]


async def test_a_mutable_buffer_is_copied_when_held() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    data = bytearray(b"abc")
    transport.write(data)
    data[:] = b"xyz"
    await asyncio.sleep(0)
    assert inner.calls == [("write", b"abc")]


async def test_close_and_eof_send_what_is_held_first() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"refusal")
    transport.write_eof()
    transport.write(b"last")
    transport.close()
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert inner.calls == [("write", b"refusal"), ("eof", b""), ("write", b"last"), ("close", b"")]


async def test_abort_drops_what_is_held_and_a_closed_connection_gets_nothing() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"dropped")
    transport.abort()
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert inner.calls == [("abort", b"")]


def test_the_access_log_is_off_unless_asked() -> None:
    limits = ServerLimits()
    assert uvicorn_config(object(), "127.0.0.1", 0, limits).access_log is False
    assert uvicorn_config(object(), "127.0.0.1", 0, limits, access_log=True).access_log is True
