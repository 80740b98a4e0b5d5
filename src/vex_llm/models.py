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

from vex_llm.chat import Choice, ContentPart, Tool, ToolCall, ToolCallDelta
from vex_llm.errors import InputTooLarge
from vex_llm.frozen_init import fast_init
from vex_llm.frozen_json import FrozenJSON, freeze_optional
from vex_llm.validation import number_in, positive_int, seconds

__all__ = [
    "DEFAULT_SYSTEM",
    "OPENAI_CHAT",
    "OPENAI_COMPLETIONS",
    "OPENAI_RESPONSES",
    "TYPED_REQUEST_FIELDS",
    "CacheControl",
    "Chunk",
    "Content",
    "InputLimits",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "Usage",
    "extra_fields",
]

#: The system prompt of :meth:`LLMRequest.simple`, as in the original crate.
DEFAULT_SYSTEM = "You are a helpful assistant."

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def _opt_float(name: str, value: object, low: float, high: float) -> float | None:
    return number_in(name, value, low, high)


def _opt_int(name: str, value: object, low: int) -> int | None:
    return positive_int(name, value, optional=True, low=low)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


#: A message's content: text, a sequence of parts (text, images, audio, files), or None
#: (an assistant turn that only calls tools).
Content = str | tuple[ContentPart, ...] | None


@fast_init
@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: ``role`` (system, developer, user, assistant, tool) and ``content``.

    ``content`` is text, a tuple of :class:`~vex_llm.chat.ContentPart` (a list of parts or
    mappings is converted), or None for an assistant turn that only calls tools. ``name``
    names the speaker, ``tool_call_id`` ties a ``tool`` turn to the call it answers,
    ``tool_calls`` are an assistant turn's calls, and ``extra`` carries any other field of the
    message (as a backend defines it) through untouched.
    """

    role: str
    content: Content
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    extra: FrozenJSON | None = None
    #: True for a role-and-text message, the common case the cache key encodes fastest.
    plain: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _text("message role", self.role)
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {sorted(ROLES)}, got {self.role!r}")
        content = self.content
        if isinstance(content, str):
            plain = True
        elif content is None:
            if self.role != "assistant":
                raise ValueError("only an assistant message may have no content (None)")
            plain = False
        elif isinstance(content, bytes) or not isinstance(content, Iterable):
            raise TypeError(
                "message content must be a str, a sequence of content parts, or None, "
                f"not {type(content).__name__}"
            )
        else:
            parts = tuple(
                p if isinstance(p, ContentPart) else ContentPart.from_openai(p, f"content[{i}]")
                for i, p in enumerate(content)
            )
            object.__setattr__(self, "content", parts)
            plain = False
        set_ = object.__setattr__
        if self.name is not None:
            _text("message name", self.name)
            plain = False
        if self.tool_call_id is not None:
            _text("message tool_call_id", self.tool_call_id)
            plain = False
        if self.tool_calls != ():
            set_(self, "tool_calls", _tool_calls(self.tool_calls))
            plain = False
        if self.extra is not None:
            set_(self, "extra", _extra_object(self.extra, "message extra"))
            clash = _MESSAGE_FIELDS.intersection(self.extra.value)
            if clash:
                raise ValueError(f"message extra must not repeat the field {sorted(clash)[0]!r}")
            plain = False
        set_(self, "plain", plain)

    @property
    def text(self) -> str:
        """The message's text: its content, or its text parts joined (no separator)."""
        if isinstance(self.content, str):
            return self.content
        if self.content is None:
            return ""
        return "".join(p.text for p in self.content if p.text is not None)

    def to_openai(self) -> dict[str, Any]:
        """The message in OpenAI's chat-completions shape, every field kept."""
        content = self.content
        doc: dict[str, Any] = {
            "role": self.role,
            "content": content
            if content is None or isinstance(content, str)
            else [p.to_openai() for p in content],
        }
        if self.name is not None:
            doc["name"] = self.name
        if self.tool_call_id is not None:
            doc["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            doc["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.extra is not None:
            doc.update(self.extra.value)
        return doc

    @classmethod
    def from_openai(cls, item: Mapping[str, Any], where: str = "message") -> Message:
        """A message from OpenAI's shape; fields it does not type go to ``extra``."""
        if "role" not in item or ("content" not in item and not item.get("tool_calls")):
            raise TypeError(f"{where} needs 'role' and 'content'")
        rest = {k: v for k, v in item.items() if k not in _MESSAGE_FIELDS}
        calls = item.get("tool_calls") or ()
        if isinstance(calls, str | bytes) or not isinstance(calls, Iterable):
            raise TypeError(f"{where}.tool_calls must be an array")
        return cls(
            role=item["role"],
            content=item.get("content"),
            name=item.get("name"),
            tool_call_id=item.get("tool_call_id"),
            tool_calls=tuple(
                ToolCall.from_openai(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)
            ),
            extra=FrozenJSON.of(rest, f"{where}") if rest else None,
        )


_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls"})


def _tool_calls(calls: object) -> tuple[ToolCall, ...]:
    if isinstance(calls, str | bytes) or not isinstance(calls, Iterable):
        raise TypeError("tool_calls must be a sequence of ToolCall objects or mappings")
    return tuple(
        c if isinstance(c, ToolCall) else ToolCall.from_openai(c, f"tool_calls[{i}]")
        for i, c in enumerate(calls)
    )


def _extra_object(value: object, name: str) -> FrozenJSON:
    frozen = FrozenJSON.of(value, name)
    if not frozen.text.startswith("{"):
        raise TypeError(f"{name} must be an object")
    return frozen


def _message(item: object) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        return Message.from_openai(item)
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

    ``max_prompt_bytes`` bounds the text of the prompt plus every non-system message
    together; ``max_system_bytes`` the system prompt plus every system/developer message.
    The defaults fit long-context use (a book chapter, a long system prompt); they guard the
    process, while a proxy's body cap stays the outer bound. Non-text parts (images, audio)
    are bounded by that body cap, not here.
    """

    max_prompt_bytes: int = 4 * 1024 * 1024
    max_system_bytes: int = 1024 * 1024

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


@fast_init
@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What to ask: the conversation, the sampling parameters and the cache controls.

    Build it with keywords; ``prompt`` is the user's turn, appended after ``messages`` (either
    may be empty, not both). Unset sampling fields (None) are left to the backend's default.
    ``timeout`` (seconds) bounds the whole response and does not take part in the cache key.

    Tools and structured output: ``tools`` (:class:`~vex_llm.chat.Tool` or OpenAI tool
    objects), ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or an object naming a
    tool), ``parallel_tool_calls``, ``response_format`` (OpenAI's object, e.g. a
    ``json_schema``); ``n`` answers; ``logprobs`` / ``top_logprobs``. ``extra`` carries any
    other request field a backend understands (``{"top_k": 5}``, ``reasoning_effort``,
    ``metadata``...) to it untouched; a provider that cannot honour one raises
    :class:`~vex_llm.errors.UnsupportedFeature` naming it instead of dropping it.

    ``raw`` is the request exactly as a client sent it, in the wire format ``raw_format``
    names (the proxy's Anthropic door keeps the ``/v1/messages`` body): a provider speaking
    that format sends it as it came (with its own model name) rather than rebuilding it from
    the typed fields, which every other provider uses. It is not part of the cache key: the
    typed fields say everything in it that can change the answer.

    ``operation`` names an API other than chat whose request body ``extra`` holds whole
    (bar ``model`` and ``stream``): :data:`OPENAI_COMPLETIONS` (legacy ``/completions``:
    ``prompt``, ``suffix``, ``echo``...) or :data:`OPENAI_RESPONSES` (``/responses``:
    ``input``, ``instructions``...). Such a request has no prompt, messages or typed
    sampling fields; it is keyed like any other (the operation included), and only a
    provider that speaks that API answers it (others raise ``UnsupportedFeature``).
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
    tools: tuple[Tool, ...] = ()
    tool_choice: FrozenJSON | None = None
    parallel_tool_calls: bool | None = None
    response_format: FrozenJSON | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    extra: FrozenJSON | None = None
    raw: FrozenJSON | None = None
    raw_format: str | None = None
    operation: str | None = None
    #: False when any field beyond the classic text-chat ones is set (tools, parts, extra...):
    #: the cache key encodes the common case without looking at them.
    plain: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every caller builds a request per call, so unset fields (None, the shared defaults)
        # are skipped cheaply, and set ones that are plainly right (a str, a float inside its
        # range, a positive int) pass without a call; anything else gets the full check.
        if type(self.prompt) is not str:
            _text("prompt", self.prompt)
        for name in ("system", "tenant_id", "model"):
            value = getattr(self, name)
            if value is not None and type(value) is not str:
                _text(name, value)
        set_ = object.__setattr__
        value = self.temperature
        if value is not None and not (type(value) is float and 0.0 < value <= 2.0):
            set_(self, "temperature", _opt_float("temperature", value, 0.0, 2.0))
        value = self.top_p
        if value is not None and not (type(value) is float and 0.0 < value <= 1.0):
            set_(self, "top_p", _opt_float("top_p", value, 0.0, 1.0))
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            # 0.0 takes the full check, which turns -0.0 into 0.0 (one value, one key).
            if value is not None and not (
                type(value) is float and -2.0 <= value <= 2.0 and value != 0.0
            ):
                set_(self, name, _opt_float(name, value, -2.0, 2.0))
        # Ints are kept as plain ints (an IntEnum's repr differs): the cache key renders them.
        value = self.max_tokens
        if value is not None and not (type(value) is int and value >= 1):
            number = _opt_int("max_tokens", value, 1)
            if number is not value:
                set_(self, "max_tokens", number)
        value = self.seed
        if value is not None and not (type(value) is int and value >= -(2**63)):
            number = _opt_int("seed", value, -(2**63))
            if number is not value:
                set_(self, "seed", number)
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
        if not self.prompt and not self.messages and self.operation is None:
            raise ValueError("a request needs a prompt or at least one message")
        if self.raw is not None:
            if not isinstance(self.raw, FrozenJSON) or not self.raw.text.startswith("{"):
                raise TypeError("raw must be a FrozenJSON object (the request as it came)")
            _text("raw_format", self.raw_format)
        if (
            self.tools != ()
            or self.tool_choice is not None
            or self.parallel_tool_calls is not None
            or self.response_format is not None
            or self.n is not None
            or self.logprobs is not None
            or self.top_logprobs is not None
            or self.extra is not None
            or self.operation is not None
            or (self.messages != () and not all(m.plain for m in self.messages))
        ):
            self._check_rich()
            set_(self, "plain", False)

    def _check_rich(self) -> None:
        set_ = object.__setattr__
        if self.tools != ():
            tools = self.tools
            if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
                raise TypeError("tools must be a sequence of Tool objects or tool mappings")
            set_(
                self,
                "tools",
                tuple(
                    t if isinstance(t, Tool) else Tool.from_openai(t, f"tools[{i}]")
                    for i, t in enumerate(tools)
                ),
            )
        set_(self, "tool_choice", freeze_optional(self.tool_choice, "tool_choice"))
        if self.tool_choice is not None and self.tool_choice.text[0] not in '"{':
            raise TypeError("tool_choice must be a string or an object")
        set_(self, "response_format", freeze_optional(self.response_format, "response_format"))
        if self.response_format is not None and not self.response_format.text.startswith("{"):
            raise TypeError("response_format must be an object")
        for flag in ("parallel_tool_calls", "logprobs"):
            if getattr(self, flag) is not None and not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool or None")
        _opt_int("n", self.n, 1)
        _opt_int("top_logprobs", self.top_logprobs, 0)
        if self.extra is not None:
            extra = self.extra
            if not isinstance(extra, FrozenJSON):
                extra = extra_fields(extra)
            elif not extra.text.startswith("{"):
                raise TypeError("extra must be a JSON object")
            typed = (
                TYPED_REQUEST_FIELDS if self.operation is None else _OPERATION_TYPED
            ).intersection(extra.value)
            if typed:
                raise ValueError(
                    f"extra must not repeat typed fields; use the {sorted(typed)[0]!r} field"
                )
            set_(self, "extra", extra)
        if self.operation is not None:
            self._check_operation()

    def _check_operation(self) -> None:
        _text("operation", self.operation)
        if not self.operation:
            raise ValueError("operation must not be empty (None is chat)")
        if self.prompt or self.messages or self.system is not None:
            raise ValueError(
                f"an {self.operation} request carries its input in extra, "
                "not in prompt, system or messages"
            )
        for name in _CHAT_ONLY:
            if getattr(self, name) not in (None, ()):
                raise ValueError(
                    f"an {self.operation} request carries {name!r} in extra, as its API names it"
                )

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
            if self.operation is not None and self.extra is not None:
                # The whole body is the input: bounded by the prompt limit (JSON included).
                size = _utf8_size_over((self.extra.text,), limits.max_prompt_bytes)
                if size is not None:
                    raise InputTooLarge("input", size, limits.max_prompt_bytes)
            return
        system_texts = [m.text for m in self.messages if m.role in ("system", "developer")]
        if self.system is not None:
            system_texts.append(self.system)
        size = _utf8_size_over(system_texts, limits.max_system_bytes)
        if size is not None:
            raise InputTooLarge("system prompt", size, limits.max_system_bytes)
        prompt_texts = [m.text for m in self.messages if m.role not in ("system", "developer")]
        prompt_texts.append(self.prompt)
        size = _utf8_size_over(prompt_texts, limits.max_prompt_bytes)
        if size is not None:
            raise InputTooLarge("prompt", size, limits.max_prompt_bytes)


_DEFAULT_LIMITS = InputLimits()


def extra_fields(fields: object) -> FrozenJSON:
    """Request fields for ``LLMRequest.extra``, frozen with their names sorted.

    Top-level fields are independent of each other, so the same fields in another order are
    the same request (and the same cache key).
    """
    if not isinstance(fields, Mapping):
        raise TypeError("extra must be a mapping of request fields")
    return FrozenJSON.of(dict(sorted(fields.items())), "extra")


#: The request fields typed on :class:`LLMRequest` (under their OpenAI names): ``extra`` may
#: not repeat them, so no field has two values.
TYPED_REQUEST_FIELDS = frozenset(
    {
        "messages",
        "model",
        "temperature",
        "max_tokens",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "n",
        "logprobs",
        "top_logprobs",
        "stream",
    }
)

#: What ``extra`` of an ``operation`` request may not hold: the model is typed, and whether
#: the answer streams is how it travels (``complete()`` or ``stream()``).
_OPERATION_TYPED = frozenset({"model", "stream"})

#: The typed fields of a chat request that an ``operation`` request leaves unset (its input
#: and parameters travel in ``extra``, under its own API's names).
_CHAT_ONLY = tuple(sorted(TYPED_REQUEST_FIELDS - {"messages", "model", "stream"}))


@fast_init
@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the backend for one answer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


#: ``raw_format`` of an OpenAI chat-completions answer (a ``chat.completion`` object, or one
#: ``chat.completion.chunk`` per stream chunk).
OPENAI_CHAT = "openai.chat"

#: OpenAI's legacy completions API: the ``operation`` of a ``/completions`` request, and the
#: ``raw_format`` of its answers (a ``text_completion`` object, or one per stream chunk).
OPENAI_COMPLETIONS = "openai.completions"

#: OpenAI's Responses API: the ``operation`` of a ``/responses`` request, and the
#: ``raw_format`` of its answers (a ``response`` object, or its typed stream events, each
#: chunk's ``raw_event`` naming the event).
OPENAI_RESPONSES = "openai.responses"


@fast_init
@dataclass(frozen=True, slots=True)
class LLMResponse:
    """One answer. ``cached`` is True when it was served from the cache.

    ``latency_ms`` is how long the backend took to produce this answer; on a cache hit it is
    the original call's latency, i.e. the time the hit saved. ``content`` is the text ("" when
    the model only called tools), ``tool_calls`` the calls it asked for, ``refusal`` a
    refusal's text, ``logprobs`` the token log-probabilities when asked; with ``n`` > 1,
    ``choices`` holds every answer (the first is also the top-level fields). ``raw`` is the
    backend's answer exactly as it came (in the wire format ``raw_format`` names), so nothing
    it said is lost between here and a client of the proxy; ``headers`` are the backend's
    response headers worth passing on (request id, rate limits) and are never cached.
    """

    content: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    finish_reason: str | None = "stop"
    cached: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    logprobs: FrozenJSON | None = None
    choices: tuple[Choice, ...] = ()
    raw: FrozenJSON | None = None
    raw_format: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)


@fast_init
@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``.

    ``delta`` is new text of choice ``index``; ``tool_calls`` are pieces of tool calls (see
    :class:`~vex_llm.chat.ToolCallDelta`); ``logprobs`` those of this piece. ``raw`` is the
    backend's event exactly as it came (JSON text in the format ``raw_format`` names, with
    ``raw_event`` its SSE event name where the format has them): relaying it keeps every field
    and the backend's own chunk boundaries. A chunk may carry only ``raw`` (an event with no
    text, such as the role-only first chunk); the terminal chunk carries none.
    """

    delta: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    index: int = 0
    tool_calls: tuple[ToolCallDelta, ...] = ()
    refusal: str | None = None
    logprobs: FrozenJSON | None = None
    raw: str | None = None
    raw_format: str | None = None
    raw_event: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def is_final(self) -> bool:
        """True for the terminal chunk of a stream."""
        return self.finish_reason is not None
