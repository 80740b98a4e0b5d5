"""Value objects that cross the provider contract: requests, responses, stream chunks.

All are frozen (immutable, safe to share between coroutines and to keep in a cache). Bad input
is rejected where the object is built, with a ``TypeError`` or ``ValueError`` naming the field,
so nothing malformed ever reaches a cache key or a backend. Size limits are configurable per
provider, so they are checked by :meth:`LLMRequest.validate`, which every provider calls
before I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from vex_llm.errors import InputTooLarge

__all__ = [
    "DEFAULT_SYSTEM",
    "CacheControl",
    "Chunk",
    "InputLimits",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "Usage",
]

#: The system prompt of :meth:`LLMRequest.simple`, as in the original crate.
DEFAULT_SYSTEM = "You are a helpful assistant."

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def _is_number(value: object) -> bool:
    # bool is an int subclass; True as a temperature is a caller's bug, not 1.0.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _opt_float(name: str, value: object, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")
    return number


def _opt_int(name: str, value: object, low: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def seconds(name: str, value: object) -> float | None:
    """Normalise a duration given as seconds (int/float) or ``timedelta``; None stays None.

    Raises ``TypeError`` for other types and ``ValueError`` unless the duration is positive
    and finite: a zero or negative time-to-live is always a caller's mistake.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif _is_number(value):
        number = float(value)  # type: ignore[arg-type]
    else:
        raise TypeError(
            f"{name} must be seconds (int or float) or a timedelta, not {type(value).__name__}"
        )
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive, finite duration, got {value!r}")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: ``role`` (system, developer, user, assistant, tool) and its text."""

    role: str
    content: str

    def __post_init__(self) -> None:
        _text("message role", self.role)
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {sorted(ROLES)}, got {self.role!r}")
        _text("message content", self.content)


def _message(item: object) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"role", "content"}
        if unknown:
            raise TypeError(f"message has unsupported fields: {sorted(unknown)}")
        if "role" not in item or "content" not in item:
            raise TypeError("a message needs both 'role' and 'content'")
        return Message(role=item["role"], content=item["content"])
    raise TypeError(f"messages must hold Message objects or mappings, not {type(item).__name__}")


@dataclass(frozen=True, slots=True)
class CacheControl:
    """Per-request cache controls; the proxy maps ``Cache-Control`` headers onto these.

    - ``no_cache``: skip the read and fetch a fresh answer, then refresh the entry.
    - ``no_store``: never store this answer.
    - ``ttl`` / ``tti``: seconds (or ``timedelta``); they can only shorten the configured ones.
    - ``only_if_cached``: answer from the cache or raise :class:`~vex_llm.errors.CacheMiss`.
    - ``namespace``: a label that partitions the cache within a tenant.
    - ``stale_if_error``: seconds past its ttl an entry may be to answer this request when
      the upstream fails (RFC 5861); 0 refuses stale answers. Only the configured grace
      keeps entries that long; this can shorten it, not extend it.
    """

    no_cache: bool = False
    no_store: bool = False
    ttl: float | timedelta | None = None
    tti: float | timedelta | None = None
    only_if_cached: bool = False
    namespace: str | None = None
    stale_if_error: float | None = None

    def __post_init__(self) -> None:
        for flag in ("no_cache", "no_store", "only_if_cached"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"CacheControl.{flag} must be a bool")
        object.__setattr__(self, "ttl", seconds("CacheControl.ttl", self.ttl))
        object.__setattr__(self, "tti", seconds("CacheControl.tti", self.tti))
        if self.namespace is not None:
            _text("CacheControl.namespace", self.namespace)
        if self.only_if_cached and self.no_cache:
            raise ValueError("CacheControl: only_if_cached and no_cache contradict each other")
        if self.stale_if_error is not None:
            grace = _opt_float("CacheControl.stale_if_error", self.stale_if_error, 0.0, math.inf)
            object.__setattr__(self, "stale_if_error", grace)

    @property
    def ttl_seconds(self) -> float | None:
        """``ttl`` in seconds (normalised at construction)."""
        return self.ttl  # type: ignore[return-value]

    @property
    def tti_seconds(self) -> float | None:
        """``tti`` in seconds (normalised at construction)."""
        return self.tti  # type: ignore[return-value]

    @classmethod
    def from_mapping(cls, fields: Mapping[str, Any]) -> CacheControl:
        """Build from a mapping (e.g. parsed JSON); an unknown field is a ``TypeError``."""
        known = set(cls.__dataclass_fields__)
        unknown = set(fields) - known
        if unknown:
            raise TypeError(
                f"unknown CacheControl field(s): {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**fields)


_NO_CONTROL = CacheControl()


@dataclass(frozen=True, slots=True)
class InputLimits:
    """Size limits checked before any I/O, in UTF-8 bytes.

    ``max_prompt_bytes`` bounds the prompt plus every non-system message together;
    ``max_system_bytes`` bounds the system prompt plus every system/developer message.
    """

    max_prompt_bytes: int = 100 * 1024
    max_system_bytes: int = 10 * 1024

    def __post_init__(self) -> None:
        _opt_int("max_prompt_bytes", self.max_prompt_bytes, 1)
        _opt_int("max_system_bytes", self.max_system_bytes, 1)


def _utf8_size_over(texts: Iterable[str], limit: int) -> int | None:
    """Return the UTF-8 size of ``texts`` if it exceeds ``limit``, else None.

    A character is at most 4 bytes, so short texts are accepted without encoding them: this
    runs on every cache hit and must stay cheap.
    """
    texts = tuple(texts)
    if sum(len(t) for t in texts) * 4 <= limit:
        return None
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return size if size > limit else None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What to ask: the conversation, the sampling parameters and the cache controls.

    Build it with keywords; ``prompt`` is the user's turn, appended after ``messages`` (either
    may be empty, not both). Unset sampling fields (None) are left to the backend's default.
    ``timeout`` (seconds) bounds the whole response and does not take part in the cache key.
    """

    prompt: str = ""
    system: str | None = None
    tenant_id: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    model: str | None = None
    messages: tuple[Message, ...] = ()
    timeout: float | None = None
    cache: CacheControl = field(default=_NO_CONTROL)

    def __post_init__(self) -> None:
        # Every caller builds a request per call, so unset fields (None, the shared defaults)
        # are skipped cheaply; anything else gets the full check.
        _text("prompt", self.prompt)
        if self.system is not None:
            _text("system", self.system)
        if self.tenant_id is not None:
            _text("tenant_id", self.tenant_id)
        if self.model is not None:
            _text("model", self.model)
        set_ = object.__setattr__
        if self.temperature is not None:
            set_(self, "temperature", _opt_float("temperature", self.temperature, 0.0, 2.0))
        if self.top_p is not None:
            set_(self, "top_p", _opt_float("top_p", self.top_p, 0.0, 1.0))
        if self.presence_penalty is not None:
            set_(
                self,
                "presence_penalty",
                _opt_float("presence_penalty", self.presence_penalty, -2.0, 2.0),
            )
        if self.frequency_penalty is not None:
            set_(
                self,
                "frequency_penalty",
                _opt_float("frequency_penalty", self.frequency_penalty, -2.0, 2.0),
            )
        if self.max_tokens is not None:
            _opt_int("max_tokens", self.max_tokens, 1)
        if self.seed is not None:
            _opt_int("seed", self.seed, -(2**63))
        if self.stop != ():
            set_(self, "stop", self._normalise_stop(self.stop))
        if self.messages != ():
            set_(self, "messages", self._normalise_messages(self.messages))
        if self.timeout is not None:
            set_(self, "timeout", seconds("timeout", self.timeout))
        if self.cache is not _NO_CONTROL and not isinstance(self.cache, CacheControl):
            if isinstance(self.cache, Mapping):
                set_(self, "cache", CacheControl.from_mapping(self.cache))
            else:
                raise TypeError("cache must be a CacheControl (or a mapping of its fields)")
        if not self.prompt and not self.messages:
            raise ValueError("a request needs a prompt or at least one message")

    @staticmethod
    def _normalise_messages(messages: object) -> tuple[Message, ...]:
        if isinstance(messages, str | bytes) or not isinstance(messages, Iterable):
            raise TypeError("messages must be a sequence of Message objects or mappings")
        return tuple(_message(m) for m in messages)

    @staticmethod
    def _normalise_stop(stop: object) -> tuple[str, ...]:
        if stop is None:
            return ()
        if isinstance(stop, str):
            return (stop,)
        if isinstance(stop, bytes) or not isinstance(stop, Iterable):
            raise TypeError("stop must be a str or a sequence of str")
        items = tuple(stop)
        for item in items:
            if not isinstance(item, str) or not item:
                raise TypeError("every stop sequence must be a non-empty str")
        return items

    @classmethod
    def simple(cls, prompt: str) -> LLMRequest:
        """A one-turn request with the original crate's defaults (helpful assistant, 0.7, 1024)."""
        return cls(prompt=prompt, system=DEFAULT_SYSTEM, temperature=0.7, max_tokens=1024)

    @classmethod
    def with_role(cls, system: str, prompt: str) -> LLMRequest:
        """A one-turn request with a custom system prompt (temperature 0.7, max_tokens 1024)."""
        return cls(prompt=prompt, system=system, temperature=0.7, max_tokens=1024)

    def conversation(self) -> tuple[Message, ...]:
        """The messages as a backend sees them: system first, then ``messages``, then prompt."""
        head = (Message("system", self.system),) if self.system is not None else ()
        tail = (Message("user", self.prompt),) if self.prompt else ()
        return head + self.messages + tail

    def validate(self, limits: InputLimits | None = None) -> None:
        """Raise :class:`InputTooLarge` if the request is over ``limits`` (default limits)."""
        limits = limits or _DEFAULT_LIMITS
        # Fast path for the common one-turn request: this runs on every cache hit.
        if (
            not self.messages
            and len(self.prompt) * 4 <= limits.max_prompt_bytes
            and (self.system is None or len(self.system) * 4 <= limits.max_system_bytes)
        ):
            return
        system_texts = [m.content for m in self.messages if m.role in ("system", "developer")]
        if self.system is not None:
            system_texts.append(self.system)
        size = _utf8_size_over(system_texts, limits.max_system_bytes)
        if size is not None:
            raise InputTooLarge("system prompt", size, limits.max_system_bytes)
        prompt_texts = [m.content for m in self.messages if m.role not in ("system", "developer")]
        prompt_texts.append(self.prompt)
        size = _utf8_size_over(prompt_texts, limits.max_prompt_bytes)
        if size is not None:
            raise InputTooLarge("prompt", size, limits.max_prompt_bytes)


_DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the backend for one answer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """One answer. ``cached`` is True when it was served from the cache.

    ``latency_ms`` is how long the backend took to produce this answer; on a cache hit it is
    the original call's latency, i.e. the time the hit saved.
    """

    content: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    finish_reason: str | None = "stop"
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``."""

    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None

    @property
    def is_final(self) -> bool:
        """True for the terminal chunk of a stream."""
        return self.finish_reason is not None
