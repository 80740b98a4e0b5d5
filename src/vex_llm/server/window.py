"""The ``last_hour`` window of the proxy's figures: a ring of counter snapshots.

Every figure in ``/v1/cache/stats`` is a function of cumulative Prometheus samples (counters,
histogram buckets). Cumulative samples subtract: the samples now minus the samples of an hour
ago are the samples of the last hour, and the same functions turn them into the same figures
(a latency quantile from subtracted buckets is PromQL's ``histogram_quantile`` over
``increase(...[1h])``). So the proxy keeps, per process, a ring of snapshots taken every
``period`` seconds for ``horizon`` seconds, and a window is now minus the oldest snapshot in
the ring; it says how many ``seconds`` it really covers (less than an hour after a start).

Under ``vex-llm serve --workers N`` the samples each worker reads are already summed over all
workers, so every worker's ring holds the whole server's counts and a stats request that lands
on any worker shows the same window, give or take one ``period`` of snapshot timing. Until the
first snapshot is an hour old, the base is the server's start (``origin``: the counters were
all zero then), not the worker's first snapshot, which may already hold what the other workers
answered while it was starting. A worker restarted more than an hour after the server started
has no older snapshot than its own first one: its window covers only its lifetime, and says so
in ``seconds``.

Only the samples the figures use are kept (tenant-labelled counters and buckets, whose number
the config bounds), so a snapshot is small and the ring is bounded: ``horizon / period + 1``
snapshots. Time comes from an injected clock.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping

__all__ = ["Sample", "SampleRing", "difference", "keep_recording"]

#: One Prometheus sample: (name, labels, value).
Sample = tuple[str, Mapping[str, str], float]
_Key = tuple[str, tuple[tuple[str, str], ...]]

_CUMULATIVE = ("_total", "_bucket", "_count", "_sum")


def _snapshot(samples: Iterable[Sample]) -> dict[_Key, float]:
    return {
        (name, tuple(sorted(labels.items()))): value
        for name, labels, value in samples
        if name.endswith(_CUMULATIVE) and "tenant" in labels
    }


def difference(now: Iterable[Sample], then: Mapping[_Key, float]) -> Iterator[Sample]:
    """The samples of ``now`` minus those of the snapshot ``then`` (cumulative ones only).

    A sample that went down was reset in between (a restarted process): as Prometheus does,
    its whole current value is taken as the increase.
    """
    for (name, labels), value in _snapshot(now).items():
        before = then.get((name, labels), 0.0)
        yield name, dict(labels), value - before if value >= before else value


class SampleRing:
    """Snapshots of cumulative samples, one per ``period`` seconds over ``horizon`` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        horizon: float = 3600.0,
        period: float = 60.0,
        origin: float | None = None,
    ) -> None:
        """``origin``: the ``clock`` time at which every counter was zero (the server's start;
        by default, now)."""
        if period <= 0 or horizon < period:
            raise ValueError("a sample ring needs 0 < period <= horizon")
        self._clock = clock
        self.horizon = horizon
        self.period = period
        self.origin = clock() if origin is None else origin
        # Snapshots older than the horizon are never read: the ring keeps one more than fits.
        self._ring: collections.deque[tuple[float, dict[_Key, float]]] = collections.deque(
            maxlen=int(horizon // period) + 1
        )

    def __len__(self) -> int:
        return len(self._ring)

    def record(self, samples: Iterable[Sample]) -> None:
        """Keep a snapshot of ``samples`` taken now."""
        self._ring.append((self._clock(), _snapshot(samples)))

    def due(self) -> bool:
        """True when the newest snapshot is ``period`` old (or there is none)."""
        return not self._ring or self._clock() - self._ring[-1][0] >= self.period

    def window(self, samples: Iterable[Sample]) -> tuple[float, list[Sample]]:
        """``(seconds covered, samples of the window)``: ``samples`` (taken now) minus the
        oldest snapshot at most ``horizon`` old, the origin (all zeros) counting as the oldest;
        with none that young, minus the newest snapshot (or, without any, the origin)."""
        now = self._clock()
        base: tuple[float, Mapping[_Key, float]] = (self.origin, {})
        for taken, snapshot in ((self.origin, {}), *self._ring):
            base = (taken, snapshot)
            if now - taken <= self.horizon:
                break
        return max(0.0, now - base[0]), list(difference(samples, base[1]))

    def uptime(self) -> float:
        """Seconds since the origin (the counters' start: the server's)."""
        return max(0.0, self._clock() - self.origin)


async def keep_recording(ring: SampleRing, samples: Callable[[], Iterable[Sample]]) -> None:
    """Record a snapshot now and then every ``ring.period`` seconds, until cancelled. The
    samples are read in a thread: the event loop keeps answering requests meanwhile."""
    import anyio

    while True:
        if ring.due():
            taken = await anyio.to_thread.run_sync(lambda: list(samples()))
            ring.record(taken)
        await anyio.sleep(ring.period)
