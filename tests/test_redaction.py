"""One redaction rule: whole secrets (plain or JSON-escaped), scrubbed before any cut."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from vex_llm.redaction import MIN_SECRET_CHARS, REDACTED, PieceScrubber, Redactor, redact

KEY = "sk-live-0123456789abcdef"


def test_every_occurrence_of_every_secret_is_replaced() -> None:
    assert redact(f"a {KEY} b {KEY}", (KEY, "", None)) == f"a {REDACTED} b {REDACTED}"
    assert Redactor([KEY]).scrub_bytes(f"x{KEY}y".encode()) == f"x{REDACTED}y".encode()


def test_short_keys_are_not_secrets() -> None:
    short = "x" * (MIN_SECRET_CHARS - 1)
    assert redact(f"the word {short}", [short]) == f"the word {short}"
    assert not Redactor([short])


def test_a_json_escaped_key_is_caught_too() -> None:
    key = 'sk-"quoted"/back\\slash'
    escaped = '"sk-\\"quoted\\"/back\\\\slash"'
    assert key not in redact(escaped, [key]).replace("\\", "")
    assert REDACTED in redact(escaped, [key])


def test_the_longest_secret_wins() -> None:
    assert redact("sk-abcdefgh-ijkl", ["sk-abcdefgh", "sk-abcdefgh-ijkl"]) == REDACTED


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=120))
def test_an_excerpt_never_keeps_part_of_a_key_across_the_cut(before: int, limit: int) -> None:
    redactor = Redactor([KEY])
    data = (" " * before + KEY + " after").encode()
    # The caller reads limit + margin bytes (or everything, when there is less).
    excerpt = redactor.excerpt(data[: limit + redactor.margin], limit).decode()
    assert len(excerpt) <= limit
    for i in range(len(KEY) - 3):
        assert KEY[i : i + 4] not in excerpt


@given(st.text(alphabet="sk-xyz ", max_size=40), st.lists(st.integers(0, 80), max_size=8))
def test_a_key_cut_across_pieces_is_caught_and_the_rest_is_unchanged(
    around: str, cuts: list[int]
) -> None:
    key = "sk-xyz-0123456789"
    text = around + key + around
    scrubber = PieceScrubber(Redactor([key]))
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    out = [scrubber.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    joined = "".join(out) + scrubber.flush()
    assert joined == redact(text, [key])
    assert not any("0123" in piece for piece in out)


def test_pieces_without_a_key_start_pass_at_once() -> None:
    scrubber = PieceScrubber(Redactor([KEY]))
    assert scrubber.feed("hello ") == "hello "
    assert scrubber.feed("it is sk-li") == "it is "  # could be the key: held
    assert scrubber.feed("ke this") == "sk-like thi"  # "s" could begin the key
    assert scrubber.flush() == "s"
