"""Keeping secrets out of what leaves: one rule for text, bytes, cut excerpts and URLs.

The rule: a configured secret is replaced by ``[redacted]`` wherever it appears whole, in its
plain form and in its JSON-escaped form (an upstream that echoes a key inside a JSON string
may escape it). Secrets shorter than :data:`MIN_SECRET_CHARS` are not looked for: such a
"key" (``none``, ``ollama``, ``EMPTY``: what local servers accept) is no secret, and replacing
every occurrence of a short word would corrupt the answers that contain it.

Anything that is cut (an error excerpt) is redacted *before* the cut, over enough extra input
that every secret starting before the cut is seen whole: cutting first would leave a key's
first characters in the excerpt. Used by the HTTP transport (every byte from an upstream), by
the proxy's error answers and logs, and for store URLs (:func:`redact_url`, passwords only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "PieceScrubber", "Redactor", "redact", "redact_url"]

REDACTED = "[redacted]"
#: Shorter secrets are not scrubbed (see the module docstring).
MIN_SECRET_CHARS = 8


class Redactor:
    """Scrubs a fixed set of secrets from text and bytes; built once, used on every read.

    ``margin`` is how much input past a cut must be read so that a secret straddling the cut
    is still seen whole (the longest form's length minus one).
    """

    __slots__ = ("_bytes", "_text", "margin")

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                forms.add(secret)
                forms.add(json.dumps(secret)[1:-1])  # the form inside a JSON string
                forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        # Longest first: a secret that contains another is replaced whole.
        self._text = tuple(sorted(forms, key=len, reverse=True))
        self._bytes = tuple(
            (f.encode("utf-8", "surrogatepass"), REDACTED.encode()) for f in self._text
        )
        self.margin = max((len(b) for b, _ in self._bytes), default=1) - 1

    def __bool__(self) -> bool:
        return bool(self._text)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._text:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_bytes(self, data: bytes | bytearray) -> bytes | bytearray:
        """``data`` with every secret (as UTF-8) replaced."""
        for secret, replacement in self._bytes:
            if secret in data:
                data = data.replace(secret, replacement)
        return data

    def open_tail(self, text: str) -> int:
        """The length of the longest end of ``text`` that could begin a secret (0: none)."""
        best = 0
        for form in self._text:
            i = text.find(form[0], max(0, len(text) - len(form) + 1))
            while i != -1 and len(text) - i > best:
                if form.startswith(text[i:]):
                    best = len(text) - i
                    break
                i = text.find(form[0], i + 1)
        return best

    def excerpt(self, data: bytes, limit: int) -> bytes:
        """The first ``limit`` bytes of ``data`` once redacted, where ``data`` holds at least
        ``limit + margin`` bytes when more exist (so a secret across the cut is whole)."""
        return bytes(self.scrub_bytes(data)[:limit])


class PieceScrubber:
    """Scrubs text that arrives in pieces (a stream's deltas), where a secret may be cut
    across pieces: the end of a piece that could begin a secret is held back and put in
    front of the next piece, so the secret is seen whole. The text is unchanged (bar the
    secrets); only a few characters move to the next piece, and only when they match the
    start of a secret. :meth:`flush` gives back what is held once the text is over.
    """

    __slots__ = ("_held", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""

    def feed(self, piece: str) -> str:
        """What of ``held + piece`` can go out now, scrubbed."""
        text = self._redactor.scrub(self._held + piece)
        keep = self._redactor.open_tail(text)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    @property
    def holding(self) -> bool:
        """True while some text is held back."""
        return bool(self._held)

    def flush(self) -> str:
        """The text held back (the start of no complete secret)."""
        held, self._held = self._held, ""
        return held


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``[redacted]`` (the rule above)."""
    return Redactor(secrets).scrub(text)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log or show).

    redis-py also takes the password from a ``?password=`` query option: masked too.
    """
    try:
        parts = urlsplit(url)
        if "password" in parts.query.lower():
            masked = [
                (name, "***" if name.lower() == "password" else value)
                for name, value in parse_qsl(parts.query, keep_blank_values=True)
            ]
            parts = parts._replace(query=urlencode(masked, safe="*"))
        elif parts.password is None:
            return url
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        return urlunsplit(parts)
    except ValueError:
        # Unparseable: show the scheme only; the rest might hold a secret.
        return url.split(":", 1)[0] + "://***"
