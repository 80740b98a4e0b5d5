"""The public surface: ``__all__`` is honest and every public name is documented."""

from __future__ import annotations

import inspect

import vex_llm


def test_all_is_sorted_and_importable() -> None:
    assert vex_llm.__all__ == sorted(vex_llm.__all__, key=lambda n: (not n.isupper(), n))
    for name in vex_llm.__all__:
        assert hasattr(vex_llm, name), name


def test_every_public_class_and_function_has_a_docstring() -> None:
    missing = []
    for name in vex_llm.__all__:
        obj = getattr(vex_llm, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    public = not attr.startswith("_") and inspect.isfunction(member)
                    if public and not inspect.getdoc(member):
                        missing.append(f"{name}.{attr}")
    assert missing == []
