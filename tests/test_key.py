"""The cache key is injective over everything that changes the answer, and stable."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vex_llm import CacheControl, LLMRequest, Message, MockProvider, cache_key
from vex_llm.cache.key import KEY_VERSION, key_material

IDENTITY = ("mock:mock",)

# Texts full of the characters that break naive encodings: separators, quotes, escapes.
tricky = st.text(alphabet=st.sampled_from(list("ab|\\\"',:\n\x00{}[]é€😀")), max_size=6)
opt_tricky = st.none() | tricky
messages = st.lists(
    st.builds(Message, st.sampled_from(["system", "user", "assistant"]), tricky), max_size=3
)


def make_request(**fields: Any) -> LLMRequest:
    if not fields["prompt"] and not fields["messages"]:
        fields["prompt"] = "q"  # a request needs some turn; keep the strategy total
    return LLMRequest(**fields)


requests = st.builds(
    make_request,
    prompt=tricky,
    system=opt_tricky,
    tenant_id=opt_tricky,
    model=opt_tricky,
    temperature=st.none() | st.sampled_from([0.0, 0.7, 1.0]),
    max_tokens=st.none() | st.sampled_from([1, 16, 1024]),
    top_p=st.none() | st.sampled_from([0.5, 1.0]),
    presence_penalty=st.none() | st.just(0.5),
    frequency_penalty=st.none() | st.just(-0.5),
    stop=st.lists(tricky.filter(bool), max_size=2),
    seed=st.none() | st.integers(-3, 3),
    messages=messages,
    cache=st.builds(CacheControl, namespace=opt_tricky),
)


def meaning(request: LLMRequest) -> tuple[Any, ...]:
    """Everything that changes the answer, built independently of the key code."""
    turns = []
    if request.system is not None:
        turns.append(("system", request.system))
    turns += [(m.role, m.content) for m in request.messages]
    if request.prompt:
        turns.append(("user", request.prompt))
    return (
        request.tenant_id,
        request.cache.namespace,
        request.model,
        tuple(turns),
        request.temperature,
        request.max_tokens,
        request.top_p,
        request.presence_penalty,
        request.frequency_penalty,
        request.stop,
        request.seed,
    )


@settings(max_examples=400, deadline=None)
@given(requests, requests)
def test_keys_differ_exactly_when_meaning_differs(a: LLMRequest, b: LLMRequest) -> None:
    assert (cache_key(a, IDENTITY) == cache_key(b, IDENTITY)) == (meaning(a) == meaning(b))


@settings(max_examples=200, deadline=None)
@given(requests)
def test_key_material_decodes_back_to_the_request(request: LLMRequest) -> None:
    """A direct proof of injectivity: the encoding can be parsed back without ambiguity."""
    material = key_material(request, IDENTITY)
    header, _, body = material.partition(b"\n")
    fields = ast.literal_eval(header.decode("ascii"))
    version, tenant, namespace, identity, model, roles, lengths = fields[:7]
    texts, offset = [], 0
    for length in lengths:
        texts.append(body[offset : offset + length].decode("utf-8", "surrogatepass"))
        offset += length
    assert offset == len(body)
    assert version == KEY_VERSION
    assert identity == IDENTITY
    decoded = (tenant, namespace, model, tuple(zip(roles, texts, strict=True)), *fields[7:])
    assert decoded == meaning(request)


def test_original_crate_collision_is_gone() -> None:
    """The crate hashed tenant|system|prompt: these two collided across tenants."""
    a = LLMRequest(prompt="p", tenant_id="t", system="s")
    b = LLMRequest(prompt="p", tenant_id=None, system="t|s")
    assert cache_key(a, IDENTITY) != cache_key(b, IDENTITY)


def test_none_and_empty_tenant_differ_from_every_tenant() -> None:
    keys = {cache_key(LLMRequest(prompt="p", tenant_id=t), IDENTITY) for t in (None, "", "a")}
    assert len(keys) == 3


def test_provider_identity_and_namespace_change_the_key() -> None:
    request = LLMRequest(prompt="p")
    assert cache_key(request, ("a",)) != cache_key(request, ("b",))
    spaced = LLMRequest(prompt="p", cache=CacheControl(namespace="n"))
    assert cache_key(request, IDENTITY) != cache_key(spaced, IDENTITY)
    assert cache_key(request, MockProvider(model="x")) != cache_key(request, MockProvider())


def test_volatile_fields_do_not_change_the_key() -> None:
    base = LLMRequest(prompt="p", temperature=0.0)
    assert cache_key(base, IDENTITY) == cache_key(
        LLMRequest(prompt="p", temperature=0, timeout=5, cache=CacheControl(no_store=True)),
        IDENTITY,
    )


def test_prompt_and_messages_forms_of_one_conversation_share_a_key() -> None:
    short = LLMRequest(system="s", prompt="p")
    long = LLMRequest(messages=[Message("system", "s"), Message("user", "p")])
    assert cache_key(short, IDENTITY) == cache_key(long, IDENTITY)


def test_key_is_stable_across_processes() -> None:
    request = LLMRequest(prompt="héllo | wörld 😀", tenant_id="acme", temperature=0.2, stop=["\n"])
    code = (
        "from vex_llm import LLMRequest, cache_key;"
        "print(cache_key(LLMRequest(prompt='héllo | wörld 😀', tenant_id='acme',"
        " temperature=0.2, stop=['\\n']), ('mock:mock',)))"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONIOENCODING": "utf-8"},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert keys == {cache_key(request, IDENTITY)}
    assert len(next(iter(keys))) == 64
