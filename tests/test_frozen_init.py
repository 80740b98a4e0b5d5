"""fast_init: the same __init__ as a frozen slots dataclass's own, only faster."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from vex_llm import Chunk, LLMRequest, LLMResponse, Message, Usage
from vex_llm.frozen_init import fast_init


def _shape() -> type:
    """A fresh frozen slots dataclass with every kind of field fast_init must handle."""

    @dataclass(frozen=True, slots=True)
    class Shape:
        name: str
        size: int = 3
        tags: tuple[str, ...] = ()
        extra: list[int] = field(default_factory=list)
        doubled: int = field(default=0, init=False)
        seen: list[str] = field(default_factory=list, init=False, compare=False)

        def __post_init__(self) -> None:
            if self.size < 0:
                raise ValueError("size must not be negative")
            object.__setattr__(self, "doubled", self.size * 2)
            self.seen.append("post_init")

    return Shape


def test_it_builds_what_the_generated_init_builds() -> None:
    plain, fast = _shape(), fast_init(_shape())
    assert inspect.signature(fast) == inspect.signature(plain)
    for args, kwargs in [
        (("a",), {}),
        (("a", 5), {"tags": ("x",)}),
        ((), {"name": "b", "extra": [1]}),
    ]:
        ours, theirs = fast(*args, **kwargs), plain(*args, **kwargs)
        assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
        assert ours.seen == ["post_init"]  # the post-init ran, the init=False factory made a list
    first, second = fast("a"), fast("a")
    assert first.extra is not second.extra  # a fresh default per instance
    with pytest.raises(ValueError, match="negative"):
        fast("a", -1)
    with pytest.raises(TypeError):
        fast()  # the required field
    with pytest.raises(TypeError):
        fast("a", nope=1)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.size = 4  # type: ignore[misc]
    assert dataclasses.replace(first, size=7).doubled == 14


@pytest.mark.parametrize("kind", [LLMRequest, Usage, LLMResponse, Chunk, Message])
def test_the_models_keep_their_signature(kind: type) -> None:
    expected = [
        (f.name, f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty)
        for f in dataclasses.fields(kind)
        if f.init and f.default_factory is dataclasses.MISSING
    ]
    got = [
        (p.name, p.default)
        for p in inspect.signature(kind).parameters.values()
        if p.name in dict(expected)
    ]
    assert got == expected


def test_only_frozen_slots_dataclasses() -> None:
    @dataclass(slots=True)
    class Loose:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    for kind in (Loose, NoSlots, int):
        with pytest.raises(TypeError, match="frozen slots dataclass"):
            fast_init(kind)


def test_fields_it_cannot_reproduce_are_refused() -> None:
    # Keyword-only fields, InitVar arguments and a base class's fields would otherwise give
    # an __init__ with another signature (a keyword-only field taken by position, the
    # post-init's argument missing) or no __init__ at all.
    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int
        b: int = field(default=0, kw_only=True)

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        scale: dataclasses.InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "a", self.a * scale)

    @dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclass(frozen=True, slots=True)
    class Derived(Base):
        b: int = 0

    for kind in (KeywordOnly, WithInitVar, Derived):
        with pytest.raises(TypeError, match="fast_init"):
            fast_init(kind)
