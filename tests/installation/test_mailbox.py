import threading

from installation.clock import ManualClock, MonotonicClock
from installation.mailbox import DropOldest, Latest


def test_latest_keeps_only_the_freshest_and_counts_overwrites():
    box: Latest[int] = Latest()
    assert box.peek() is None and box.take(timeout_s=0) is None
    box.put(1)
    box.put(2)
    box.put(3)
    assert box.take(timeout_s=0) == 3
    assert box.dropped == 2
    assert box.take(timeout_s=0) is None  # nothing newer
    assert box.peek() == 3  # peek still sees it
    box.put(4)
    assert box.dropped == 2  # 3 had been taken


def test_latest_take_wakes_on_put_from_another_thread():
    box: Latest[str] = Latest()
    threading.Timer(0.05, box.put, args=("x",)).start()
    assert box.take(timeout_s=2.0) == "x"


def test_drop_oldest_bounds_and_counts():
    box: DropOldest[int] = DropOldest(3)
    for i in range(5):
        box.put(i)
    assert box.dropped == 2
    assert box.drain() == [2, 3, 4]
    assert box.get(timeout_s=0) is None


def test_manual_clock_jumps_and_monotonic_waits_can_be_cancelled():
    clock = ManualClock(10.0)
    assert clock.sleep_until(12.5)
    assert clock.now_s() == 12.5
    cancel = threading.Event()
    cancel.set()
    assert MonotonicClock().sleep_until(MonotonicClock().now_s() + 5, cancel) is False
