"""models/stats.py RecentValues: the last N values, oldest first, in memory that does not grow."""
import tracemalloc

import numpy as np

from models.stats import RecentValues


def test_keeps_the_last_n_oldest_first():
    recent = RecentValues(4)
    assert len(recent) == 0 and recent.values().size == 0
    for v in range(3):
        recent.append(float(v))
    assert recent.values().tolist() == [0.0, 1.0, 2.0]
    for v in range(3, 10):
        recent.append(float(v))
    assert len(recent) == 4 and recent.values().tolist() == [6.0, 7.0, 8.0, 9.0]


def test_filling_it_allocates_nothing():
    recent = RecentValues(20_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for v in np.linspace(0.0, 1.0, 50_000):
            recent.append(float(v))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096  # a deque of 20,000 floats grows by about 640 KB while it fills


def test_the_scheduler_s_lateness_history_is_allocated_once():
    from installation.clock import MonotonicClock
    from installation.scheduler import ThreadScheduler

    scheduler = ThreadScheduler(MonotonicClock(), [], history=1000)
    for i in range(2500):
        scheduler._late_ms.append(float(i))
    late = scheduler.late_ms()
    assert late.size == 1000 and late[0] == 1500.0 and late[-1] == 2499.0
    assert scheduler.stats["late_ms_p99"] > 0
