"""The richer pieces of a chat: content parts, tools, tool calls, and one answer's choices.

Every provider has these in some form (OpenAI's and Anthropic's tools, Ollama's ``format``),
so they are typed here once; what a single backend adds beyond them travels as
:class:`~vex_llm.frozen_json.FrozenJSON`, untouched. All are frozen: safe to share and to
keep in a cache. Each can be built from OpenAI's wire shape (``from_openai``) and turned back
into it (``to_openai``) without losing a field, which is what lets the proxy forward a
request unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vex_llm.frozen_json import FrozenJSON, freeze, freeze_optional

__all__ = ["Choice", "ContentPart", "Tool", "ToolCall", "ToolCallDelta"]


def _str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _opt_str(name: str, value: object) -> str | None:
    return None if value is None else _str(name, value)


def _mapping(name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be an object, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class ContentPart:
    """One part of a message's content: ``text``, or another ``type`` with its ``data``.

    A text part is ``ContentPart("text", text="...")``; any other part (``image_url``,
    ``input_audio``, ``file``, ...) keeps its fields besides ``type`` in ``data`` exactly as
    given, e.g. ``ContentPart.image("https://...")``.
    """

    type: str
    text: str | None = None
    data: FrozenJSON | None = None

    def __post_init__(self) -> None:
        _str("content part type", self.type)
        if self.type == "text":
            _str("a text part's text", self.text)
        elif self.text is not None:
            raise ValueError(f"only text parts carry text; a {self.type!r} part keeps it in data")
        if self.data is not None and not isinstance(self.data, FrozenJSON):
            object.__setattr__(self, "data", freeze(self.data, "content part data"))
            if not isinstance(self.data.value, dict):
                raise TypeError("content part data must be an object")

    @classmethod
    def image(cls, url: str, detail: str | None = None) -> ContentPart:
        """An ``image_url`` part: an ``https://`` URL or a ``data:`` URI."""
        image: dict[str, Any] = {"url": _str("image url", url)}
        if detail is not None:
            image["detail"] = _str("image detail", detail)
        return cls("image_url", data=FrozenJSON.of({"image_url": image}))

    @classmethod
    def from_openai(cls, part: object, where: str = "content part") -> ContentPart:
        """A part from OpenAI's shape (``{"type": ..., ...}``)."""
        doc = _mapping(where, part)
        kind = doc.get("type")
        if not isinstance(kind, str):
            raise TypeError(f"{where} needs a string 'type'")
        rest = {k: v for k, v in doc.items() if k not in ("type", "text")}
        if kind == "text":
            if not isinstance(doc.get("text"), str):
                raise TypeError(f"{where}.text must be a string")
            return cls("text", doc["text"], freeze(rest, where) if rest else None)
        if "text" in doc:
            rest = {k: v for k, v in doc.items() if k != "type"}
        return cls(kind, None, freeze(rest, where) if rest else None)

    def to_openai(self) -> dict[str, Any]:
        """The part in OpenAI's shape."""
        doc: dict[str, Any] = {"type": self.type}
        if self.text is not None:
            doc["text"] = self.text
        if self.data is not None:
            doc.update(self.data.value)
        return doc


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for: ``id``, the tool's ``name`` and its ``arguments`` (JSON text,
    as the model wrote it — possibly invalid JSON, which is the caller's to handle)."""

    id: str
    name: str
    arguments: str = ""
    type: str = "function"
    #: The call object's other fields, kept as given (e.g. a provider's signature that must
    #: come back on the next turn).
    extra: FrozenJSON | None = None

    def __post_init__(self) -> None:
        _str("tool call id", self.id)
        _str("tool call name", self.name)
        _str("tool call arguments", self.arguments)
        _str("tool call type", self.type)
        if self.extra is not None and not isinstance(self.extra, FrozenJSON):
            object.__setattr__(self, "extra", freeze(self.extra, "tool call extra"))

    @classmethod
    def from_openai(cls, call: object, where: str = "tool call") -> ToolCall:
        """A call from OpenAI's ``{"id", "type", "function": {"name", "arguments"}}``."""
        doc = _mapping(where, call)
        kind = doc.get("type", "function")
        if not isinstance(kind, str):
            raise TypeError(f"{where}.type must be a string")
        body = _mapping(f"{where}.{kind}", doc.get(kind))
        arguments = body.get("arguments" if kind == "function" else "input", "")
        rest = {k: v for k, v in doc.items() if k not in ("id", "type", kind)}
        return cls(
            id=_str(f"{where}.id", doc.get("id")),
            name=_str(f"{where}.{kind}.name", body.get("name")),
            arguments=_str(f"{where}.{kind}.arguments", arguments),
            type=kind,
            extra=freeze(rest, where) if rest else None,
        )

    def to_openai(self) -> dict[str, Any]:
        """The call in OpenAI's shape, its other fields included."""
        field = "arguments" if self.type == "function" else "input"
        doc: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            self.type: {"name": self.name, field: self.arguments},
        }
        if self.extra is not None:
            doc.update(self.extra.value)
        return doc


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: the first piece of call ``index`` carries ``id`` and
    ``name``; later pieces append to ``arguments``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call, kept as the OpenAI tool object it was given (``spec``).

    Build a function tool with :meth:`function`, or any tool object with :meth:`from_openai`
    (other types, such as ``custom``, pass through to backends that know them).
    """

    spec: FrozenJSON

    def __post_init__(self) -> None:
        if not isinstance(self.spec, FrozenJSON):
            object.__setattr__(self, "spec", Tool.from_openai(self.spec).spec)

    @classmethod
    def function(
        cls,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A function tool: its ``name``, JSON-schema ``parameters``, ``description``."""
        body: dict[str, Any] = {"name": _str("tool name", name)}
        if description is not None:
            body["description"] = _str("tool description", description)
        if parameters is not None:
            body["parameters"] = dict(_mapping("tool parameters", parameters))
        if strict is not None:
            body["strict"] = strict
        return cls(freeze({"type": "function", "function": body}, "tool"))

    @classmethod
    def from_openai(cls, tool: object, where: str = "tool") -> Tool:
        """A tool from OpenAI's shape; a function tool must name its function."""
        doc = _mapping(where, tool)
        kind = doc.get("type")
        if not isinstance(kind, str):
            raise TypeError(f"{where}.type must be a string")
        if kind == "function":
            body = _mapping(f"{where}.function", doc.get("function"))
            _str(f"{where}.function.name", body.get("name"))
            if body.get("parameters") is not None:
                _mapping(f"{where}.function.parameters", body["parameters"])
        return cls(freeze(doc, where))

    @property
    def type(self) -> str:
        """The tool's type (``function`` for most)."""
        return str(self.spec.value["type"])

    @property
    def name(self) -> str:
        """The function's (or custom tool's) name."""
        doc = self.spec.value
        return str(doc.get(doc["type"], {}).get("name", doc["type"]))

    @property
    def description(self) -> str | None:
        """The function's description, if any."""
        doc = self.spec.value
        description = doc.get(doc["type"], {}).get("description")
        return description if isinstance(description, str) else None

    @property
    def parameters(self) -> dict[str, Any] | None:
        """The function's JSON-schema parameters, if any."""
        doc = self.spec.value
        parameters = doc.get(doc["type"], {}).get("parameters")
        return parameters if isinstance(parameters, dict) else None

    def to_openai(self) -> dict[str, Any]:
        """The tool object exactly as it was given."""
        value: dict[str, Any] = self.spec.value
        return value


@dataclass(frozen=True, slots=True)
class Choice:
    """One of several answers (``n`` > 1): its ``index``, text, tool calls and stop reason."""

    index: int
    content: str
    finish_reason: str | None = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    logprobs: FrozenJSON | None = None

    def __post_init__(self) -> None:
        _str("choice content", self.content)
        _opt_str("choice refusal", self.refusal)
        object.__setattr__(self, "logprobs", freeze_optional(self.logprobs, "choice logprobs"))
