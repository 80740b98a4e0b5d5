"""The one cache decision, over every combination of its inputs (it is pure: no I/O, no await)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import get_args

import pytest

from vex_llm import CacheControl
from vex_llm.cache.decision import ACTIONS, HIT, Action, Decision, Stored, decide, reads_store


@dataclass(frozen=True)
class Flags:
    """Any combination of the three flags, including one CacheControl refuses to build."""

    no_cache: bool
    no_store: bool
    only_if_cached: bool


FLAGS = [Flags(*bits) for bits in itertools.product((False, True), repeat=3)]
STORED: tuple[Stored, ...] = get_args(Stored)


def expected(flags: Flags, stored: Stored, in_flight: bool) -> Decision:
    """The rule written as a table, independently of the implementation's order of checks."""
    # A revalidate entry (stale-while-revalidate) is served like a fresh one.
    fresh = stored in ("fresh", "revalidate") and not flags.no_cache
    action: Action
    if fresh:
        action = "hit"
    elif flags.only_if_cached:
        action = "only_if_cached_miss"
    elif flags.no_cache:
        action = "bypass"
    elif in_flight:
        action = "join"
    else:
        action = "lead"
    goes_upstream = action in ("lead", "bypass")
    return Decision(
        action,
        store=goes_upstream and not flags.no_store,
        lease=action == "lead" and not flags.no_store,
        # A stale entry answers if the upstream fails, for shared calls only: no_cache
        # (bypass) asked for a fresh answer and never gets a stale one.
        stale_on_error=stored == "stale" and action in ("lead", "join"),
        # ...and refreshed by one background call: not when one is in flight already, never
        # for only_if_cached (it must not cause an upstream call).
        revalidate=stored == "revalidate"
        and action == "hit"
        and not in_flight
        and not flags.only_if_cached,
    )


@pytest.mark.parametrize("flags", FLAGS, ids=repr)
@pytest.mark.parametrize("stored", STORED)
@pytest.mark.parametrize("in_flight", [False, True])
def test_every_input(flags: Flags, stored: Stored, in_flight: bool) -> None:
    assert decide(flags, stored, in_flight) == expected(flags, stored, in_flight)


def test_the_table_covers_every_action() -> None:
    seen = {decide(f, s, i).action for f in FLAGS for s in STORED for i in (False, True)}
    assert seen == set(ACTIONS)


@pytest.mark.parametrize("flags", FLAGS, ids=repr)
def test_a_fresh_entry_read_is_always_a_hit(flags: Flags) -> None:
    # CachedProvider.complete relies on this to skip the call on the hit path: whenever the
    # store was read (reads_store) and held a fresh entry, whatever is in flight, it is a hit.
    if reads_store(flags):
        assert decide(flags, "fresh", True) == decide(flags, "fresh", False) == HIT


@pytest.mark.parametrize("flags", FLAGS, ids=repr)
def test_only_if_cached_never_goes_upstream(flags: Flags) -> None:
    if flags.only_if_cached:
        for stored in STORED:
            for in_flight in (False, True):
                assert decide(flags, stored, in_flight).action in ("hit", "only_if_cached_miss")


@pytest.mark.parametrize("flags", FLAGS, ids=repr)
def test_no_store_is_never_stored_nor_leased(flags: Flags) -> None:
    if flags.no_store:
        for stored in STORED:
            for in_flight in (False, True):
                decision = decide(flags, stored, in_flight)
                assert not decision.store
                assert not decision.lease


def test_no_cache_never_joins_and_skips_the_read() -> None:
    control = CacheControl(no_cache=True)
    assert not reads_store(control)
    assert reads_store(CacheControl())
    assert decide(control, "unread", True).action == "bypass"
    assert decide(control, "unread", True).store


@pytest.mark.parametrize("flags", FLAGS, ids=repr)
@pytest.mark.parametrize("in_flight", [False, True])
def test_no_cache_never_gets_a_stale_answer(flags: Flags, in_flight: bool) -> None:
    if flags.no_cache:
        for stored in STORED:
            assert not decide(flags, stored, in_flight).stale_on_error
