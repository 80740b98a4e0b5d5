"""Connection limits, proved on a loopback socket: header size, header and body timeouts,
keep-alive idle timeout, connection cap; refusals in OpenAI's shape; a client leaving
mid-body is one log line. Every wait is bounded and short."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from tests.server.conftest import QuietServer, make_settings
from vex_llm import MemoryStore, MockProvider
from vex_llm.server.app import create_app
from vex_llm.server.config_file import settings_from_document
from vex_llm.server.limits import ServerLimits
from vex_llm.server.run import uvicorn_config

FAST = ServerLimits(
    max_header_bytes=16 * 1024,
    header_timeout=0.5,
    body_timeout=0.5,
    keepalive_timeout=0.5,
    max_connections=3,
)


@contextlib.asynccontextmanager
async def bounded(limits: ServerLimits = FAST) -> AsyncIterator[tuple[str, int]]:
    settings = make_settings(limits=limits)
    app = create_app(
        settings, providers={"test-model": MockProvider.constant("x")}, store=MemoryStore(10)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn_config(app, "127.0.0.1", 0, limits, log_level="warning")
    config.timeout_graceful_shutdown = 1
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def read_all(reader: asyncio.StreamReader, limit: float = 3.0) -> bytes:
    """Everything until the server closes the connection (bounded by ``limit`` seconds)."""
    async with asyncio.timeout(limit):
        return await reader.read()


def status_and_error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


async def test_an_endless_header_line_is_431_after_the_cap() -> None:
    async with bounded() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        reading = asyncio.create_task(read_all(reader))
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 4 * 1024 * 1024 and not reading.done():
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
        status, error = status_and_error(await reading)
        writer.close()
    assert status == 431
    assert error["code"] == "headers_too_large"
    assert sent < 4 * 1024 * 1024  # refused long before the client gave up


async def test_slow_headers_are_408_and_a_silent_socket_is_closed() -> None:
    async with bounded() as (host, port):
        silent_r, silent_w = await asyncio.open_connection(host, port)
        slow_r, slow_w = await asyncio.open_connection(host, port)
        slow_w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await read_all(silent_r) == b""
        status, error = status_and_error(await read_all(slow_r))
        elapsed = loop.time() - started
        silent_w.close()
        slow_w.close()
    assert status == 408
    assert error["code"] == "request_timeout"
    assert elapsed < 2.0


async def test_a_slow_body_is_408() -> None:
    async with bounded() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            b"sk-tenant-a-0123456789\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"model":'
        )
        status, error = status_and_error(await read_all(reader))
        writer.close()
    assert status == 408
    assert "body" in str(error["message"])


async def test_an_idle_kept_alive_connection_is_closed() -> None:
    async with bounded() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_all(reader)  # the answer, then the close after the idle timeout
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"status":"ok"}')


async def test_past_max_connections_a_request_is_503_and_the_server_stays_healthy() -> None:
    async with bounded(ServerLimits(max_connections=3, header_timeout=5)) as (host, port):
        idle = [await asyncio.open_connection(host, port) for _ in range(3)]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, error = status_and_error(await read_all(reader))
        writer.close()
        for _, w in idle:
            w.close()
            await w.wait_closed()
        # The slots are free again.
        for _ in range(50):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            healthy = await read_all(reader)
            writer.close()
            if healthy.startswith(b"HTTP/1.1 200"):
                break
            await asyncio.sleep(0.02)
    assert status == 503
    assert error["code"] == "overloaded"
    assert healthy.startswith(b"HTTP/1.1 200")


async def test_a_malformed_request_is_400_in_openai_shape() -> None:
    async with bounded() as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n")
        status, error = status_and_error(await read_all(reader))
        writer.close()
    assert status == 400
    assert set(error) == {"message", "type", "param", "code"}


class Flag(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_a_client_leaving_mid_body_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    flag = Flag("request body incomplete")
    logging.getLogger("vex_llm.server").addHandler(flag)
    async with bounded(ServerLimits()) as (host, port):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            b'sk-tenant-a-0123456789\r\nContent-Length: 1000\r\n\r\n{"model":'
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        try:
            async with asyncio.timeout(5):
                await flag.event.wait()
        finally:
            logging.getLogger("vex_llm.server").removeHandler(flag)
    assert caplog.text.count("request body incomplete") == 1
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def test_limits_come_from_the_config_file_and_the_environment() -> None:
    doc = {
        "server": {"max_connections": 100, "header_timeout": 2.5, "open_tenant": "t"},
        "upstreams": {"m": {"base_url": "http://127.0.0.1:9/v1"}},
    }
    settings, problems = settings_from_document(doc, {"VEX_LLM_MAX_ANSWER_BYTES": "4096"})
    assert problems == []
    assert settings is not None
    assert settings.limits.max_connections == 100
    assert settings.limits.header_timeout == 2.5
    assert settings.limits.answer_limits().max_answer_bytes == 4096
    doc["server"] = {"max_connections": 0, "body_timeout": "x", "open_tenant": "t"}
    settings, problems = settings_from_document(doc, {})
    assert settings is None
    where = {p.location.split(": ")[-1] for p in problems}
    assert {"server.max_connections", "server.body_timeout"} <= where


async def test_a_client_that_stops_reading_is_dropped() -> None:
    limits = ServerLimits(write_timeout=0.3)
    settings = make_settings(limits=limits, max_body_bytes=1024)
    big = "x" * 20_000_000
    app = create_app(settings, providers={"test-model": MockProvider.constant(big)}, store=None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = QuietServer(uvicorn_config(app, "127.0.0.1", 0, limits, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(client, sock.getsockname())
        body = b'{"model":"test-model","messages":[{"role":"user","content":"hi"}]}'
        await loop.sock_sendall(
            client,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            b"sk-tenant-a-0123456789\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        # uvicorn's own state has no event to wait on: polled, bounded by the timeout.
        state = server.server_state
        async with asyncio.timeout(10):
            while not state.total_requests and not state.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # until accepted...
            while state.connections:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # ...then dropped: it read nothing
        received = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await loop.sock_recv(client, 1 << 20):
                received += len(chunk)
        client.close()
    finally:
        server.should_exit = True
        await task
        sock.close()
    assert received < len(big)
