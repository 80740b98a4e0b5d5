"""The proxy's transport joins the writes of one loop step, keeps their order, loses none."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn

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


async def test_a_whole_response_leaves_before_the_handler_goes_on() -> None:
    # A handler that sends its whole response and then works without yielding (a stream's
    # answer being assembled and stored): the response is out before that work, not at the
    # end of the loop step. Here the work waits for the client to have read the response.
    got = threading.Event()
    arrived: list[bool] = []
    handled = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"whole", "more_body": False})
        arrived.append(got.wait(timeout=5))  # holds the loop, as CPU work would
        handled.set()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn_config(app, "127.0.0.1", port, ServerLimits(), log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"0\r\n\r\n"):  # the chunked body's end
                data += conn.recv(4096)
            got.set()

    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            await asyncio.to_thread(client)
            await handled.wait()
        assert arrived == [True]
    finally:
        server.should_exit = True
        await serving
        sock.close()
