"""A real headless browser for tests: Debian's ``chromium`` driven over the DevTools protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: commands in on fd 3, answers and
events out on fd 4, each message JSON ended by a NUL byte), so there is no port, no websocket
library and no race with another process for a debugging port. Chromium runs in its own
process group, which is killed at the end whatever happened. Every wait is bounded.

Credentials are given the way a person gives them: the page answers 401 with a Basic
challenge, the browser asks (``Fetch.authRequired``), and the test answers with the key as
the password; the browser then keeps it for the page's own requests, as it would for a person.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--remote-debugging-pipe",
)


def chromium_binary() -> str | None:
    """The Debian chromium (``scripts/install-chromium.sh`` installs it), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Tab:
    """One page in its own browser context (its own cookies and remembered credentials)."""

    def __init__(self, browser: Browser, session: str, context: str) -> None:
        self._browser = browser
        self.session = session
        self.context = context
        self.key: str | None = None
        self.challenges = 0  # times the browser asked for credentials

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One command to this page."""
        return await self._browser.send(method, session=self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        reply = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"the page failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; its value. An AssertionError after
        ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while True:
                    value = await self.evaluate(expression)
                    if value:
                        return value
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"the page never satisfied {expression!r}") from None

    async def open(self, url: str, key: str | None) -> None:
        """Navigate to ``url``, answering the browser's credential prompt with ``key`` (the
        prompt is cancelled without one) and letting every request through."""
        self.key = key
        await self.send("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
        await self.send("Page.enable")
        await self.send("Page.navigate", url=url)

    async def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Fetch.requestPaused":
            await self.send("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self.challenges += 1
            answer: dict[str, str] = {"response": "CancelAuth"}
            if self.key is not None:
                answer = {"response": "ProvideCredentials", "username": "", "password": self.key}
            await self.send(
                "Fetch.continueWithAuth",
                requestId=params["requestId"],
                authChallengeResponse=answer,
            )

    async def screenshot(self, path: Path, width: int = 1360) -> None:
        """A PNG of the whole page, ``width`` CSS pixels wide."""
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


class Browser:
    """A running headless chromium and its DevTools pipe."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        transport: asyncio.BaseTransport,
        writer: int,
    ) -> None:
        self._process = process
        self._transport = transport
        self._reader = reader
        self._writer = writer
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tabs: dict[str, Tab] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._pump = asyncio.create_task(self._read())

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (an AssertionError on a protocol error)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = future
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        async with asyncio.timeout(20):
            reply = await future
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _read(self) -> None:
        while True:
            try:
                raw = await self._reader.readuntil(b"\0")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            message = json.loads(raw[:-1])
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            tab = self._tabs.get(message.get("sessionId", ""))
            if tab is not None:
                # Answered from a task of its own: the answer needs this loop to read replies.
                task = asyncio.create_task(tab.on_event(message["method"], message["params"]))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AssertionError("chromium closed its DevTools pipe"))

    async def new_tab(self) -> Tab:
        """A blank page in a fresh browser context (nothing remembered from other tabs)."""
        context = (await self.send("Target.createBrowserContext"))["browserContextId"]
        target = (
            await self.send("Target.createTarget", url="about:blank", browserContextId=context)
        )["targetId"]
        session = (await self.send("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        tab = Tab(self, session, context)
        self._tabs[session] = tab
        return tab

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.send("Browser.close")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._process.wait()
        # Renderers and helpers share chromium's process group: none outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._process.wait()
        self._pump.cancel()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(self._pump, *self._handlers, return_exceptions=True)
        self._transport.close()
        with contextlib.suppress(OSError):
            os.close(self._writer)


def _high(fd: int) -> int:
    """``fd`` moved above 9 (closed at exec), so that putting the pipe on fds 3 and 4 in the
    child cannot overwrite the other end."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@contextlib.asynccontextmanager
async def launched(profile: Path) -> AsyncIterator[Browser]:
    """A headless chromium with its profile in ``profile``, closed (group killed) after."""
    binary = chromium_binary()
    assert binary is not None, "chromium is not installed (scripts/install-chromium.sh)"
    to_child_r, to_child_w = (_high(fd) for fd in os.pipe())
    from_child_r, from_child_w = (_high(fd) for fd in os.pipe())

    def on_fds_3_and_4() -> None:  # runs in the child, between fork and exec
        os.dup2(to_child_r, 3)
        os.dup2(from_child_w, 4)

    process = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=on_fds_3_and_4,
        close_fds=False,  # fds 3 and 4 must survive into chromium; the rest are CLOEXEC
        start_new_session=True,
    )  # fmt: skip
    os.close(to_child_r)
    os.close(from_child_w)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)  # screenshots arrive as one message
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(from_child_r, "rb", 0)
    )
    browser = Browser(process, reader, transport, to_child_w)
    try:
        yield browser
    finally:
        await browser.close()
