"""Pure parsers for streamed answers: lines out of text pieces, SSE events out of lines, JSON.

No I/O and no clock: the transport (``providers._http``) feeds them what arrives and they
say what is complete, so every rule here is tested without a network. A backend added on
:class:`~vex_llm.providers.base.HTTPProvider` uses them through ``decoded_sse`` or, for a
line-per-object format such as Ollama's, through the lines and :func:`parse_json`.

Bounded: a line longer than its cap raises :class:`~vex_llm.errors.AnswerTooLarge` as soon
as the cap is passed, not when the line finally ends (a 20 MB line with no line end must not
be buffered until the request times out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vex_llm.errors import AnswerTooLarge, InvalidResponse

__all__ = ["LineSplitter", "SSEDecoder", "SSEEvent", "parse_json"]


def parse_json(text: str | bytes | bytearray, what: str) -> dict[str, Any]:
    """A JSON object from ``text``; ``InvalidResponse`` for anything else."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidResponse(f"{what}: body is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event: its ``event`` name ("message" by default) and ``data``."""

    event: str
    data: str


class SSEDecoder:
    """Incremental Server-Sent Events parser: feed it lines, get whole events.

    Follows the WHATWG rules that matter for LLM APIs: ``data:`` lines accumulate (joined by
    newlines), one leading space after the colon is dropped, ``:`` lines are comments, and a
    blank line dispatches the event. An event cut off by the end of the stream is dropped, as
    the spec requires, so a truncated stream cannot pass a half event off as whole.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Consume one line (without its line ending); return an event when one is complete."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


#: What ``str.splitlines`` (and so httpx's ``aiter_lines``) treats as a line end.
_LINE_ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


class LineSplitter:
    """Incremental ``str.splitlines``: feed it text as it arrives, get the complete lines.

    A ``\r`` at the end of a piece is held back, since a ``\n`` starting the next piece makes
    the two one line end. :meth:`flush` returns what is left once the text is over. With
    ``max_chars``, a line (complete or still arriving) longer than that raises
    :class:`AnswerTooLarge`.
    """

    def __init__(self, max_chars: int | None = None) -> None:
        self._partial: list[str] = []
        self._partial_chars = 0
        self._cr = False
        self._max = max_chars

    def feed(self, text: str) -> list[str]:
        """The lines that ``text`` completes (without their line ends)."""
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            self._cr = True
            text = text[:-1]
        if not text:
            return []
        lines = text.splitlines()
        tail = None if text[-1] in _LINE_ENDS else lines.pop()
        if self._partial and lines:
            lines[0] = "".join(self._partial) + lines[0]
            self._partial, self._partial_chars = [], 0
        if tail is not None:  # kept as pieces: a long line is joined once, not per piece
            self._partial.append(tail)
            self._partial_chars += len(tail)
        if self._max is not None:
            self._check(lines)
        return lines

    def _check(self, lines: list[str]) -> None:
        assert self._max is not None
        longest = max(map(len, lines), default=0)
        if longest > self._max or self._partial_chars > self._max:
            self._partial, self._partial_chars = [], 0
            raise AnswerTooLarge(
                f"the upstream sent a line longer than the limit of {self._max} bytes"
            )

    def flush(self) -> list[str]:
        """The last line when the text did not end with a line end (or ended with ``\r``)."""
        if not self._partial and not self._cr:
            return []
        line = "".join(self._partial)
        self._partial, self._partial_chars, self._cr = [], 0, False
        return [line]
