"""Embeddings: ``EmbeddingRequest`` and ``EmbeddingResponse``, the values ``LLMProvider.embed``
takes and returns.

Both are frozen. A request holds one or more inputs, each a non-empty string or a non-empty
token array (a tuple of ints), all of one kind, as OpenAI's ``input`` does; bad input is
refused where the request is built (``TypeError`` for a wrong type, ``ValueError`` for a wrong
value, naming the field), and :meth:`EmbeddingRequest.validate` bounds its size (count and
bytes) before any I/O, like ``LLMRequest.validate``. ``encoding_format`` is a wire detail:
vectors are held as floats, and the proxy writes them as floats or as base64 (little-endian
float32, as OpenAI does) from the same values (:func:`vector_base64`).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vex_llm.errors import InputTooLarge
from vex_llm.frozen_json import FrozenJSON
from vex_llm.models import CacheControl, InputLimits, Usage
from vex_llm.validation import positive_int, seconds

__all__ = [
    "EMBEDDING_FIELDS",
    "MAX_INPUTS",
    "MAX_TOKEN_ID",
    "Embedding",
    "EmbeddingInput",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "vector_base64",
    "vector_from_base64",
]

#: The most inputs one request may hold (OpenAI's own limit).
MAX_INPUTS = 2048

#: Token ids are non-negative and fit in 32 bits (every tokenizer in use has fewer).
MAX_TOKEN_ID = 2**31 - 1

#: One input: a string, or a token array.
EmbeddingInput = str | tuple[int, ...]

#: The request fields typed on :class:`EmbeddingRequest` (under OpenAI's names): ``extra``
#: may not repeat them.
EMBEDDING_FIELDS = frozenset({"input", "model", "dimensions", "encoding_format"})

_NO_CONTROL = CacheControl()


def _token_array(value: object, where: str) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{where} must be a string or an array of token ids")
    tokens = tuple(value)
    if not tokens:
        raise ValueError(f"{where} must not be an empty token array")
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"{where} must hold only integer token ids, not {type(token).__name__}")
        if not 0 <= token <= MAX_TOKEN_ID:
            raise ValueError(f"{where} holds the token id {token}, outside 0..{MAX_TOKEN_ID}")
    return tokens


def _inputs(value: object) -> tuple[EmbeddingInput, ...]:
    if isinstance(value, str):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, bytes) or not isinstance(value, Iterable):
        raise TypeError(
            "inputs must be a string, a sequence of strings or a sequence of token arrays, "
            f"not {type(value).__name__}"
        )
    else:
        items = tuple(value)
    if not items:
        raise ValueError("inputs must hold at least one input")
    if len(items) > MAX_INPUTS:
        raise ValueError(f"inputs holds {len(items)} inputs; at most {MAX_INPUTS} are allowed")
    if isinstance(items[0], int) and not isinstance(items[0], bool):
        # One token array given flat, as OpenAI's ``input: [1, 2, 3]``.
        return (_token_array(items, "inputs"),)
    text = isinstance(items[0], str)
    out: list[EmbeddingInput] = []
    for i, item in enumerate(items):
        where = f"inputs[{i}]"
        if isinstance(item, str):
            if not text:
                raise TypeError(f"{where} is a string among token arrays; use one kind")
            if not item:
                raise ValueError(f"{where} must not be an empty string")
            out.append(item)
        else:
            if text:
                raise TypeError(
                    f"{where} must be a string like the inputs before it, not {type(item).__name__}"
                )
            out.append(_token_array(item, where))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """What to embed: ``inputs`` (one string, or a sequence of strings or of token arrays),
    for ``tenant_id``, with the backend's ``model`` (None: the provider's default) and, where
    the model supports shortening, ``dimensions``.

    ``timeout`` (seconds) bounds the whole call; ``cache`` holds the per-request cache
    controls; ``extra`` carries any other request field a backend understands (``user``,
    ``input_type``...) to it untouched. Only ``timeout`` and the cache controls other than
    ``namespace`` stay out of the cache key (and ``user``, which labels the caller).
    """

    inputs: tuple[EmbeddingInput, ...]
    model: str | None = None
    dimensions: int | None = None
    tenant_id: str | None = None
    timeout: float | None = None
    cache: CacheControl = field(default=_NO_CONTROL)
    extra: FrozenJSON | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "inputs", _inputs(self.inputs))
        for name in ("model", "tenant_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
        positive_int("dimensions", self.dimensions, optional=True)
        if self.timeout is not None:
            set_(self, "timeout", seconds("timeout", self.timeout))
        if self.cache is not _NO_CONTROL and not isinstance(self.cache, CacheControl):
            if isinstance(self.cache, Mapping):
                set_(self, "cache", CacheControl.from_mapping(self.cache))
            else:
                raise TypeError("cache must be a CacheControl (or a mapping of its fields)")
        if self.extra is not None:
            extra = self.extra
            if not isinstance(extra, FrozenJSON):
                if not isinstance(extra, Mapping):
                    raise TypeError("extra must be a mapping of request fields")
                extra = FrozenJSON.of(dict(sorted(extra.items())), "extra")
            elif not extra.text.startswith("{"):
                raise TypeError("extra must be a JSON object")
            typed = EMBEDDING_FIELDS.intersection(extra.value)
            if typed:
                raise ValueError(
                    f"extra must not repeat typed fields; use the {sorted(typed)[0]!r} field"
                )
            set_(self, "extra", extra)

    @property
    def tokenized(self) -> bool:
        """True when the inputs are token arrays."""
        return not isinstance(self.inputs[0], str)

    def validate(self, limits: InputLimits | None = None) -> None:
        """Raise :class:`InputTooLarge` if the inputs together are over
        ``limits.max_prompt_bytes`` (UTF-8 bytes; 4 bytes per token id)."""
        limit = (limits or InputLimits()).max_prompt_bytes
        chars = sum(len(item) for item in self.inputs)
        if self.tokenized:
            size = 4 * chars
        else:
            if chars * 4 <= limit:
                return
            size = sum(
                len(item.encode("utf-8", "surrogatepass"))
                for item in self.inputs
                if isinstance(item, str)
            )
        if size > limit:
            raise InputTooLarge("input", size, limit)


@dataclass(frozen=True, slots=True)
class Embedding:
    """One input's vector; ``index`` is the input's position in the request."""

    index: int
    vector: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingResponse:
    """The vectors of a request's inputs, in the request's order (``data[i].index == i``).

    ``usage.prompt_tokens`` counts the tokens sent upstream for this request (0 when every
    input came from the cache); ``cached`` counts the inputs served from the cache and
    ``tokens_saved`` the tokens they would have cost. ``latency_ms`` is how long this call
    took. ``headers`` are the backend's response headers worth passing on (never cached).
    """

    data: tuple[Embedding, ...]
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    cached: int = 0
    tokens_saved: int = 0
    headers: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(
        cls,
        vectors: Iterable[tuple[float, ...]],
        model: str,
        prompt_tokens: int = 0,
        *,
        latency_ms: float = 0.0,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> EmbeddingResponse:
        """A response from ``vectors`` in input order (as a backend answers: nothing cached)."""
        return cls(
            data=tuple(Embedding(i, v) for i, v in enumerate(vectors)),
            model=model,
            usage=Usage(prompt_tokens=prompt_tokens),
            latency_ms=latency_ms,
            headers=headers,
        )

    @property
    def vectors(self) -> list[tuple[float, ...]]:
        """The vectors alone, in the request's order."""
        return [item.vector for item in self.data]


def vector_base64(vector: Iterable[float]) -> str:
    """``vector`` as OpenAI's ``encoding_format: base64`` writes it: little-endian float32."""
    values = tuple(vector)
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def vector_from_base64(text: str) -> tuple[float, ...]:
    """The floats of a base64 vector (:func:`vector_base64`); ``ValueError`` if malformed."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a base64 vector: {exc}") from exc
    if len(raw) % 4:
        raise ValueError("a base64 vector must be a whole number of float32 values")
    values = struct.unpack(f"<{len(raw) // 4}f", raw)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a vector must hold finite numbers")
    return values
