"""Store incidents: when a failing cache store is logged (an outage is one line, not many).

The cache answers from upstream whenever its store fails (fail-open); what remains is telling the
operator. ``StoreIncidents`` logs the first failure of an incident (a warning) and its end (the
first success of an operation kind that failed: with a full disk, reads keep working while
writes fail, and must not end the write outage). A store that flips between failing and working
(a flaky network, every other read timing out) would log a failed/recovered pair per flip: a
failure within ``flap_window`` seconds of a recovery is the same trouble, logged at most once per
window as intermittent, with the recoveries in between kept quiet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["StoreIncidents"]

log = logging.getLogger("vex_llm.cache")


class StoreIncidents:
    """The incident state of one cache's store, and its log lines (``vex_llm.cache``)."""

    def __init__(
        self,
        store: object,
        *,
        flap_window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.flap_window = flap_window
        self._clock = clock
        #: The kinds of operation ("read", "write") failing in the current incident.
        self.failing: set[str] = set()
        self._recovered_at = -float("inf")
        self._flap_logged_at = -float("inf")
        self._quiet = False

    def failed(self, exc: BaseException, kind: str) -> None:
        """A store operation of ``kind`` failed (and was survived by going upstream)."""
        if not self.failing:
            now = self._clock()
            if now - self._recovered_at >= self.flap_window:
                self._quiet = False
                log.warning(
                    "cache store %r failed, answering from upstream until it recovers: %s",
                    self.store,
                    exc,
                )
            else:
                self._quiet = True
                if now - self._flap_logged_at >= self.flap_window:
                    self._flap_logged_at = now
                    log.warning(
                        "cache store %r is failing intermittently (again %.1f s after it "
                        "recovered); requests it fails go upstream: %s",
                        self.store,
                        now - self._recovered_at,
                        exc,
                    )
        self.failing.add(kind)

    def succeeded(self, kind: str) -> None:
        """A store operation of ``kind`` worked: the end of an incident it was part of."""
        if kind in self.failing:
            self.failing.clear()
            self._recovered_at = self._clock()
            if not self._quiet:
                log.info("cache store %r recovered; caching resumes", self.store)
