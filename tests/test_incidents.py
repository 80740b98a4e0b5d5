"""Store incidents: one warning per outage, one note per recovery, flapping rate-limited."""

from __future__ import annotations

import logging

import pytest

from vex_llm.cache.incidents import StoreIncidents


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_an_outage_is_one_warning_and_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vex_llm.cache")
    now = [100.0]
    incidents = StoreIncidents("store", flap_window=10, clock=lambda: now[0])
    for _ in range(5):
        incidents.failed(OSError("down"), "read")
    incidents.succeeded("write")  # a kind that was not failing ends nothing
    assert incidents.failing == {"read"}
    incidents.succeeded("read")
    assert incidents.failing == set()
    assert len(messages(caplog)) == 2
    assert "recovered" in messages(caplog)[1]
    now[0] += 60  # a new outage long after: a new warning
    incidents.failed(OSError("down again"), "write")
    assert "down again" in messages(caplog)[2]


def test_flapping_is_one_line_per_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vex_llm.cache")
    now = [0.0]
    incidents = StoreIncidents("store", flap_window=10, clock=lambda: now[0])
    for _ in range(50):  # one flip every 0.1 s for 5 s
        incidents.failed(OSError("flaky"), "read")
        incidents.succeeded("read")
        now[0] += 0.1
    assert len(messages(caplog)) == 3  # failed, recovered, intermittently
    now[0] += 6  # past the window since the last "intermittently" line
    incidents.failed(OSError("flaky"), "read")
    assert len(messages(caplog)) == 4
    assert "intermittently" in messages(caplog)[-1]
