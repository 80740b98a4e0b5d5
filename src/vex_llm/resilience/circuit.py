"""``Circuit``: the circuit breaker's state machine, with an injected clock and no I/O.

::

    closed --(failure rate >= threshold over >= min_calls in the window)--> open
    open   --(open_for elapsed; the next call is the probe)---------------> half_open
    half_open --(probe succeeded)--> closed      (window cleared, open_for reset)
    half_open --(probe failed)-----> open        (open_for doubled, up to max_open_for)
    half_open --(probe inconclusive: cancelled, 429)--> half_open, next call probes

Callers ask :meth:`Circuit.acquire` before a call and report the call's :data:`Outcome`
with the ticket they got; while open (or while the one probe is out) ``acquire`` returns
None and :meth:`retry_in` says when the next probe will be let through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vex_llm.resilience.classify import failure_kind
from vex_llm.resilience.policy import BreakerPolicy
from vex_llm.resilience.window import RollingCounts

__all__ = ["Circuit", "CircuitState", "Outcome", "Ticket", "outcome_of"]

CircuitState = Literal["closed", "open", "half_open"]
#: What a call says about the backend's health: it answered, it failed, or it tells nothing.
Outcome = Literal["success", "failure", "ignored"]

_CALLS, _FAILURES = 0, 1
# While the probe is out, callers are told to come back after this long (the probe's own
# answer is what decides; a second caller cannot know when that will be).
_PROBE_PENDING_RETRY = 1.0


def outcome_of(exc: BaseException | None, policy: BreakerPolicy) -> Outcome:
    """The outcome of a call that raised ``exc`` (None: it answered)."""
    if exc is None:
        return "success"
    kind = failure_kind(exc)
    if kind in ("server", "timeout", "connection", "invalid"):
        return "failure"
    if kind == "rate_limited":
        return "failure" if policy.count_rate_limited else "ignored"
    if kind == "client":
        return "success"  # the backend answered (a 4xx): it is up
    return "ignored"  # cancelled, an open breaker further down, a bug


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission for one call; ``probe`` is True for the half-open probe."""

    probe: bool
    generation: int


class Circuit:
    """One backend's breaker state (see the module docstring)."""

    def __init__(
        self, policy: BreakerPolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._counts = RollingCounts(self.policy.window, 2, clock)
        self._state: CircuitState = "closed"
        self._opened_at = 0.0
        self._open_for = self.policy.open_for
        self._probing = False
        # Bumped on every transition: a ticket from an earlier state does not count.
        self._generation = 0
        #: How many times the circuit opened (for metrics).
        self.opened = 0

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose wait is over reads as half-open."""
        if self._state == "open" and self._clock() >= self._opened_at + self._open_for:
            return "half_open"
        return self._state

    def retry_in(self) -> float:
        """Seconds until a call may be let through again (0 when one may go now)."""
        state = self.state
        if state == "open":
            return max(0.0, self._opened_at + self._open_for - self._clock())
        if state == "half_open" and self._probing:
            return _PROBE_PENDING_RETRY
        return 0.0

    def acquire(self) -> Ticket | None:
        """A ticket for one call, or None when the circuit refuses it."""
        state = self.state
        if state == "closed":
            return Ticket(False, self._generation)
        if state == "open" or self._probing:
            return None
        if self._state == "open":
            self._transition("half_open")
        self._probing = True
        return Ticket(True, self._generation)

    def record(self, ticket: Ticket, outcome: Outcome) -> None:
        """Report how the call made with ``ticket`` went."""
        if ticket.generation != self._generation:
            return  # a call from before the last transition says nothing about now
        if ticket.probe:
            self._probing = False
            if outcome == "success":
                self._open_for = self.policy.open_for
                self._transition("closed")
            elif outcome == "failure":
                self._open_for = min(self._open_for * 2, self.policy.max_open_for)
                self._open()
            return
        if outcome == "ignored" or self._state != "closed":
            return
        self._counts.add(_CALLS)
        if outcome == "failure":
            self._counts.add(_FAILURES)
        calls, failures = self._counts.totals()
        if calls >= self.policy.min_calls and failures >= self.policy.failure_rate * calls:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self.opened += 1
        self._transition("open")

    def _transition(self, state: CircuitState) -> None:
        self._state = state
        self._generation += 1
        self._probing = False
        self._counts.reset()
