"""The cache key is injective over everything that changes the answer, and stable."""

from __future__ import annotations

import ast
import enum
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vex_llm import CacheControl, LLMRequest, Message, MockProvider, cache_key
from vex_llm.cache.key import (
    KEY_VERSION,
    RICH_FIELDS,
    ROLE_CODES,
    TENANT_TAG_LENGTH,
    UNKEYED_FIELDS,
    TenantPrefixes,
    key_material,
    short_key,
    tenant_key_prefix,
    tenant_tag,
)
from vex_llm.chat import ContentPart, ToolCall

IDENTITY = ("mock:mock",)

# Texts full of what breaks naive encodings: separators, digits, quotes, escapes, "~" (our
# None), newlines, non-ASCII and a lone surrogate (which JSON input can carry).
tricky = st.text(alphabet=st.sampled_from(list("ab|~:;1\\\"',\n\x00{}é€😀\ud800")), max_size=6)
opt_tricky = st.none() | tricky
json_leaf = st.none() | st.booleans() | st.integers(-2, 2) | tricky
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(tricky, inner, max_size=2),
    max_leaves=4,
)
parts = st.lists(
    st.builds(ContentPart, st.just("text"), tricky)
    | st.builds(ContentPart.image, tricky, st.none() | st.just("low")),
    max_size=2,
).map(tuple)
plain_messages = st.builds(Message, st.sampled_from(["system", "user", "assistant"]), tricky)
rich_messages = st.builds(
    Message,
    st.sampled_from(["user", "tool"]),
    tricky | parts,
    name=st.none() | tricky,
    tool_call_id=st.none() | tricky,
    extra=st.none() | st.dictionaries(st.sampled_from(["x", "refusal"]), json_value, max_size=1),
) | st.builds(
    Message,
    st.just("assistant"),
    st.none() | tricky,
    tool_calls=st.lists(st.builds(ToolCall, tricky, tricky, tricky), min_size=1, max_size=2),
)
messages = st.lists(plain_messages | rich_messages, max_size=3)
tools = st.lists(
    st.builds(
        lambda name, params: {"type": "function", "function": {"name": name, "parameters": params}},
        tricky,
        st.dictionaries(tricky, json_value, max_size=2),
    ),
    max_size=2,
)
extra_fields = st.dictionaries(
    st.sampled_from(["top_k", "user", "metadata", "verbosity", "stream_options", "x|y"]),
    json_value,
    max_size=3,
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
    tools=tools,
    tool_choice=st.none() | st.sampled_from(["auto", "required"]) | st.just({"type": "x"}),
    parallel_tool_calls=st.none() | st.booleans(),
    response_format=st.none() | st.dictionaries(tricky, json_value, max_size=2),
    n=st.none() | st.integers(1, 3),
    logprobs=st.none() | st.booleans(),
    top_logprobs=st.none() | st.integers(0, 2),
    extra=st.none() | extra_fields,
)


def _keyed(extra: Any) -> Any:
    if extra is None:
        return None
    kept = {k: v for k, v in extra.value.items() if k not in UNKEYED_FIELDS}
    return kept or None


def _frozen(value: Any) -> Any:
    return None if value is None else value.value


def meaning(request: LLMRequest) -> tuple[Any, ...]:
    """Everything that changes the answer, built independently of the key code."""
    turns = []
    if request.system is not None:
        turns.append(("system", request.system))
    turns += [
        (m.role, m.content) if m.plain else (m.role.upper(), m.to_openai())
        for m in request.messages
    ]
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
        tuple(t.to_openai() for t in request.tools) or None,
        _frozen(request.tool_choice),
        request.parallel_tool_calls,
        _frozen(request.response_format),
        request.n,
        request.logprobs,
        request.top_logprobs,
        _keyed(request.extra),
    )


@settings(max_examples=400, deadline=None)
@given(requests, requests)
def test_keys_differ_exactly_when_meaning_differs(a: LLMRequest, b: LLMRequest) -> None:
    assert (cache_key(a, IDENTITY) == cache_key(b, IDENTITY)) == (meaning(a) == meaning(b))


class Reader:
    """A strict left-to-right parser of the key layout, written from its documentation."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def take(self, n: int) -> str:
        piece = self.text[self.at : self.at + n]
        assert len(piece) == n
        self.at += n
        return piece

    def until(self, mark: str) -> str:
        end = self.text.index(mark, self.at)
        piece = self.text[self.at : end]
        self.at = end + 1
        return piece

    def string(self) -> str | None:
        if self.text[self.at] == "~":
            self.at += 1
            return None
        return self.take(int(self.until(":")))

    def strings_until(self, mark: str) -> tuple[str, ...]:
        items = []
        while self.text[self.at] != mark:
            items.append(self.take(int(self.until(":"))))
        self.at += 1
        return tuple(items)


ROLES = {code: role for role, code in ROLE_CODES.items()}
ROLES.update({code.upper(): role.upper() for role, code in ROLE_CODES.items()})


def decode(material: bytes) -> tuple[Any, ...]:
    reader = Reader(material.decode("utf-8", "surrogatepass"))
    assert reader.until("\n") == KEY_VERSION
    assert reader.strings_until("\n") == IDENTITY
    tenant, namespace, model = reader.string(), reader.string(), reader.string()
    turns = []
    while reader.text[reader.at] != "|":
        role = ROLES[reader.take(1)]
        turns.append((role, int(reader.until(";"))))
    reader.at += 1
    numbers = [ast.literal_eval(reader.until(";")) for _ in range(6)]
    stop = reader.strings_until("\n")
    conversation = tuple(
        (role, reader.take(length) if role.islower() else json.loads(reader.take(length)))
        for role, length in turns
    )
    rich: dict[str, Any] = {}
    while reader.at < len(reader.text):
        name = reader.until("=")
        rich[name] = json.loads(reader.take(int(reader.until(":"))))
    assert list(rich) == [n for n in (*RICH_FIELDS, "extra") if n in rich]
    temperature, max_tokens, top_p, presence, frequency, seed = numbers
    return (
        tenant,
        namespace,
        model,
        conversation,
        temperature,
        max_tokens,
        top_p,
        presence,
        frequency,
        stop,
        seed,
        tuple(rich["tools"]) if "tools" in rich else None,
        *(rich.get(name) for name in RICH_FIELDS[1:]),
        rich.get("extra"),
    )


@settings(max_examples=300, deadline=None)
@given(requests)
def test_key_material_decodes_back_to_the_request(request: LLMRequest) -> None:
    """A direct proof of injectivity: the encoding parses back to the request, one way only."""
    assert decode(key_material(request, IDENTITY)) == meaning(request)


def test_identity_must_be_a_sequence_of_strings() -> None:
    with pytest.raises(TypeError, match="identity"):
        cache_key(LLMRequest(prompt="p"), "mock:mock")


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


def test_equal_numbers_render_one_way_whichever_came_first() -> None:
    # Sampling fields are rendered once per value and reused: a value seen first must not
    # decide how an equal one renders (-0.0 vs 0.0, an IntEnum vs its int).
    class Tokens(enum.IntEnum):
        MANY = 64

    one = LLMRequest(prompt="p", temperature=-0.0, max_tokens=Tokens.MANY, seed=Tokens.MANY)
    other = LLMRequest(prompt="p", temperature=0.0, max_tokens=64, seed=64)
    assert key_material(one, IDENTITY) == key_material(other, IDENTITY)
    assert b"|0.0;64;None;None;None;64;" in key_material(one, IDENTITY)
    assert type(one.max_tokens) is int
    assert type(one.seed) is int


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
    assert re.fullmatch(r"t[0-9a-f]{16}:[0-9a-f]{64}", next(iter(keys)))


def test_a_store_key_starts_with_its_tenants_tag() -> None:
    tags = {t: tenant_tag(t) for t in (None, "", "a", "0:", "~")}
    assert len(set(tags.values())) == len(tags)  # None and "" are tenants of their own
    assert all(re.fullmatch(r"t[0-9a-f]{16}", tag) for tag in tags.values())
    assert len(tags["a"]) == TENANT_TAG_LENGTH
    for tenant, tag in tags.items():
        key = cache_key(LLMRequest(prompt="p", tenant_id=tenant), IDENTITY)
        assert key.startswith(tag + ":")
        assert key.startswith(tenant_key_prefix(tenant))
        assert short_key(key) == key[TENANT_TAG_LENGTH + 1 :][:16]  # the request's, not the tag
    with pytest.raises(TypeError, match="tenant"):
        tenant_tag(1)  # type: ignore[arg-type]


def test_tenant_prefixes_remember_a_bounded_number_of_tenants() -> None:
    prefixes = TenantPrefixes(limit=2)
    assert [prefixes[t] for t in ("a", "b", None)] == [
        tenant_key_prefix(t) for t in ("a", "b", None)
    ]
    assert len(prefixes) <= 2
