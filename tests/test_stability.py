"""The stability gate's rules, with a fake clock and fake stat results (no filesystem)."""

from __future__ import annotations

from algoseek_sync.watch.stability import Ready, StabilityGate


def ready_paths(gate: StabilityGate) -> list[str]:
    return [r.path for r in gate.due()]


def test_ready_only_after_unchanged_for_the_window() -> None:
    gate = StabilityGate(2.0, interval=0.5)
    gate.feed("a.csv", (10, 1), 0.0)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (10, 1), 1.9)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (10, 1), 2.0)
    assert gate.due() == [Ready("a.csv", 10, 1)]
    assert "a.csv" not in gate  # handed out once


def test_growth_restarts_the_window() -> None:
    gate = StabilityGate(2.0, interval=0.5)
    gate.feed("a.csv", (10, 1), 0.0)
    gate.feed("a.csv", (20, 2), 1.5)
    gate.feed("a.csv", (20, 2), 3.0)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (20, 2), 3.5)
    assert gate.due() == [Ready("a.csv", 20, 2)]


def test_time_alone_is_not_enough_it_must_be_observed() -> None:
    gate = StabilityGate(1.0, interval=0.5)
    gate.feed("a.csv", (10, 1), 0.0)
    assert ready_paths(gate) == []  # no second look yet, whatever the clock says
    assert gate.checks(0.5) == []
    assert gate.checks(1.0) == ["a.csv"]


def test_writer_seen_writing_must_be_seen_closing() -> None:
    """SFTP pauses 2.6 s between bursts: a quiet file that was being written is not done."""
    gate = StabilityGate(2.0, interval=0.5, close_timeout=60.0)
    gate.feed("a.csv", (255, 1), 0.0, writing=True)
    gate.feed("a.csv", (255, 1), 2.6)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (510, 2), 2.7, writing=True)
    gate.feed("a.csv", (580, 3), 5.0, closed=True)
    gate.feed("a.csv", (580, 3), 6.0)
    assert ready_paths(gate) == []  # closed, but not yet stable for 2 s
    gate.feed("a.csv", (580, 3), 7.0)
    assert gate.due() == [Ready("a.csv", 580, 3)]


def test_reopened_after_close_needs_a_new_close() -> None:
    gate = StabilityGate(0.5, interval=0.1)
    gate.feed("a.csv", (5, 1), 0.0, writing=True)
    gate.feed("a.csv", (5, 1), 0.1, closed=True)
    gate.feed("a.csv", (6, 2), 0.2, writing=True)
    gate.feed("a.csv", (6, 2), 5.0)
    assert ready_paths(gate) == []


def test_missing_close_event_is_bounded_by_close_timeout() -> None:
    gate = StabilityGate(1.0, interval=0.5, close_timeout=10.0)
    gate.feed("a.csv", (5, 1), 0.0, writing=True)
    gate.feed("a.csv", (5, 1), 9.0)
    assert ready_paths(gate) == []
    assert gate.checks(9.5) == []
    assert gate.checks(10.0) == ["a.csv"]
    gate.feed("a.csv", (5, 1), 10.0)
    assert gate.due() == [Ready("a.csv", 5, 1, forced=True)]


def test_polling_needs_two_unchanged_polls() -> None:
    gate = StabilityGate(0.0, confirmations=2, interval=1.0)
    gate.feed("a.csv", (5, 1), 0.0)
    gate.feed("a.csv", (5, 1), 1.0)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (5, 1), 2.0)
    assert ready_paths(gate) == ["a.csv"]


def test_gone_file_is_forgotten() -> None:
    gate = StabilityGate(0.0)
    gate.feed("a.csv", (5, 1), 0.0)
    gate.feed("a.csv", None, 1.0)
    assert len(gate) == 0
    gate.feed("b.csv", (5, 1), 0.0)
    gate.forget("b.csv")
    assert ready_paths(gate) == []


def test_capacity_bounds_memory() -> None:
    gate = StabilityGate(0.0, capacity=3)
    assert all(gate.feed(f"{i}.csv", (1, 1), 0.0) for i in range(3))
    assert gate.full
    assert not gate.feed("4.csv", (1, 1), 0.0)
    assert gate.feed("0.csv", (2, 2), 0.1)  # tracked paths are still updated
    assert len(gate) == 3


def test_checks_are_scheduled_not_every_tick() -> None:
    gate = StabilityGate(2.0, interval=0.5)
    gate.feed("a.csv", (1, 1), 0.0)
    assert gate.checks(1.0) == []
    assert gate.checks(2.0) == ["a.csv"]


def test_lost_events_turn_a_pending_close_into_a_longer_quiet_window() -> None:
    gate = StabilityGate(1.0, interval=0.5, close_timeout=600.0)
    assert gate.lost_window == 3.0
    gate.feed("a.csv", (5, 1), 0.0, writing=True)
    gate.feed("b.csv", (5, 1), 0.0)
    gate.events_lost()
    gate.feed("a.csv", (5, 1), 2.0)
    gate.feed("b.csv", (5, 1), 2.0)
    assert ready_paths(gate) == ["b.csv"]
    assert gate.checks(2.9) == []
    gate.feed("a.csv", (5, 1), 3.0)
    assert gate.due() == [Ready("a.csv", 5, 1, forced=True)]


def test_a_writing_hint_whose_close_may_be_lost_waits_the_quiet_window_not_a_close() -> None:
    """A queued "being written" hint applied after the loss was handled must not wait for a close."""
    gate = StabilityGate(1.0, interval=0.5, close_timeout=600.0)
    gate.events_lost()  # the loss is handled first; the stale hint is still in the queue
    gate.feed("a.csv", (5, 1), 0.0, lost=True)
    gate.feed("a.csv", (5, 1), 2.0)
    assert ready_paths(gate) == []
    gate.feed("a.csv", (5, 1), 3.0)
    assert gate.due() == [Ready("a.csv", 5, 1, forced=True)]
