"""What one client or one upstream answer may cost the proxy: ``ServerLimits``.

Every limit is configurable in ``[server]`` of the config file and by an environment variable
``VEX_LLM_<NAME>`` (e.g. ``VEX_LLM_MAX_CONNECTIONS``); the defaults suit one proxy process:

==================  ========  ===============================================================
max_header_bytes    32 KiB    request line + headers; past it 431 and the connection closes
header_timeout      10 s      from the first byte of a request (or the connection) to the end
                              of its headers; past it 408 (a silent idle socket is closed)
body_timeout        30 s      from the request's start to the end of its body; past it 408
keepalive_timeout   5 s       an idle kept-alive connection is closed after this
write_timeout       30 s      a client that reads nothing while an answer waits is dropped
max_connections     512       open connections; a request on one more is answered 503
max_answer_bytes    16 MiB    an upstream answer, after decompression; past it 502
max_line_bytes      1 MiB     one line of an upstream stream; past it 502
==================  ========  ===============================================================

All refusals are in OpenAI's error shape. Keep ``max_connections`` below the process's file
descriptor limit (``ulimit -n``) minus what the store and upstream connections need, so that
``/healthz`` still answers when every client slot is taken.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from vex_llm.providers.base import AnswerLimits
from vex_llm.validation import is_finite_number

__all__ = ["LIMIT_TYPES", "ServerLimits"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The connection and answer limits of the proxy (see the module docstring)."""

    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    write_timeout: float = 30.0
    max_connections: int = 512
    max_answer_bytes: int = 16 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024

    def problems(self) -> list[tuple[str, str]]:
        """``(setting, message)`` for every limit that is not a positive, finite number."""
        found = []
        for f in fields(self):
            value = getattr(self, f.name)
            if not is_finite_number(value) or value <= 0:
                found.append((f.name, f"must be a positive number, got {value!r}"))
            elif LIMIT_TYPES[f.name] is int and not isinstance(value, int):
                found.append((f.name, f"must be a whole number, got {value!r}"))
        return found

    def answer_limits(self) -> AnswerLimits:
        """The caps the upstream providers read answers with."""
        return AnswerLimits(self.max_answer_bytes, self.max_line_bytes)


#: Each limit's type, for the config file and the environment (ints are whole numbers).
LIMIT_TYPES: dict[str, type] = {
    "max_header_bytes": int,
    "header_timeout": float,
    "body_timeout": float,
    "keepalive_timeout": float,
    "write_timeout": float,
    "max_connections": int,
    "max_answer_bytes": int,
    "max_line_bytes": int,
}
