"""``fast_init``: a frozen slots dataclass built in half the time, with the same ``__init__``.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__`` (its
own ``__setattr__`` refuses), about 90 ns a field. Through the field's slot descriptor
(``Class.field.__set__``) it is about 40 ns, which is also what ``object.__setattr__`` ends up
calling. For a request of 28 fields built on every call, that is ~1.4 µs of a ~4 µs build,
more than a third of a cache hit (``benchmarks/cache_hit.py``).

:func:`fast_init` replaces the generated ``__init__`` of such a class with one of the same
signature (names, order, defaults, default factories, ``init=False`` fields, the
``__post_init__`` call) that sets the slots through their descriptors. Nothing else of the
dataclass changes: fields, ``replace``, equality, hashing, repr, pickling.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give ``cls`` (a ``@dataclass(frozen=True, slots=True)`` whose fields are its own and
    positional) a faster, equivalent ``__init__``; ``TypeError`` for any other class."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a frozen slots dataclass, not {cls.__name__}")
    original = cls.__init__
    given = inspect.signature(original).parameters
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    # What the positional signature built below cannot say (keyword-only fields, InitVar
    # arguments, which are no fields) or set (a slot of a base class): refused, not built
    # into an __init__ that differs from the generated one.
    initialised = [f.name for f in fields if f.init]
    if (
        any(f.kw_only for f in fields)
        or list(given)[1:] != initialised
        or any(f.name not in cls.__dict__ for f in fields)
    ):
        raise TypeError(f"fast_init handles own, positional fields only; {cls.__name__} has others")
    names: dict[str, Any] = {}
    signature: list[str] = []
    body: list[str] = []
    for field in fields:
        name = field.name
        names[f"_set_{name}"] = cls.__dict__[name].__set__
        has_default = field.default is not dataclasses.MISSING
        has_factory = field.default_factory is not dataclasses.MISSING
        names[f"_default_{name}"] = field.default
        names[f"_factory_{name}"] = field.default_factory
        if not field.init:
            value = f"_factory_{name}()" if has_factory else f"_default_{name}"
            if has_default or has_factory:
                body.append(f"_set_{name}(self, {value})")
            continue
        if has_factory:
            # dataclasses' own "<factory>" marker, so that the signature reads the same.
            names[f"_marker_{name}"] = given[name].default
            signature.append(f"{name}=_marker_{name}")
            body.append(
                f"_set_{name}(self, _factory_{name}() if {name} is _marker_{name} else {name})"
            )
        else:
            signature.append(f"{name}=_default_{name}" if has_default else name)
            body.append(f"_set_{name}(self, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    lines = "\n".join(f"    {line}" for line in body or ["pass"])
    source = f"def __init__(self, {', '.join(signature)}):\n{lines}\n"
    exec(source, names)  # built from the class's own field names only
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = original.__doc__
    init.__module__ = cls.__module__
    init.__annotations__ = dict(original.__annotations__)
    if inspect.signature(init) != inspect.signature(original):  # the promise, checked once
        raise TypeError(f"fast_init could not reproduce {cls.__name__}.__init__'s signature")
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
