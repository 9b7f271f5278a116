import threading
import time

from installation.workers import Supervisor, Worker
from tests.waiting import wait_for


def test_crashing_worker_is_restarted_with_backoff_and_reported():
    faults = []
    calls = {"n": 0, "opens": 0, "closes": 0}
    paced = threading.Event()

    def step():
        calls["n"] += 1
        if calls["n"] in (3, 4):
            raise RuntimeError(f"boom {calls['n']}")
        paced.wait(0.005)  # a step blocks a little, as a real one waits on its mailbox

    def opened():
        calls["opens"] += 1

    def closed():
        calls["closes"] += 1

    worker = Worker("flaky", step, open=opened, close=closed, backoff_s=0.01,
                    on_fault=lambda name, text: faults.append((name, text)))
    sup = Supervisor()
    sup.add(worker)
    sup.start()
    wait_for(lambda: calls["n"] >= 10, 5)
    assert sup.stop(budget_s=1.0) == []
    assert worker.stats.failures == 2
    assert worker.stats.restarts == 2
    assert calls["opens"] == 3 and calls["closes"] == 3
    assert [name for name, _ in faults] == ["flaky", "flaky"]
    assert "RuntimeError: boom 3" in faults[0][1]
    assert calls["n"] >= 10


def test_stop_is_bounded_even_with_a_stuck_worker():
    release = threading.Event()
    sup = Supervisor()
    stuck_worker = sup.add(Worker("stuck", lambda: release.wait(5)))
    fine = sup.add(Worker("fine", lambda: threading.Event().wait(0.01)))
    sup.start()
    assert wait_for(lambda: stuck_worker.stats.phase == "step" and fine.stats.steps > 0, 5)
    started = time.monotonic()
    stuck = sup.stop(budget_s=0.3)
    assert time.monotonic() - started < 3.0  # the 0.3 s budget, not the stuck worker's 5 s
    assert stuck == ["stuck"]
    release.set()


def test_stalled_detection_in_a_step_in_open_and_a_dead_thread():
    release = threading.Event()
    sup = Supervisor()
    in_step = sup.add(Worker("stuck-step", lambda: release.wait(5)))
    in_open = sup.add(Worker("stuck-open", lambda: None, open=lambda: release.wait(5)))
    sup.start()
    wait_for(lambda: (in_step.stats.phase, in_open.stats.phase) == ("step", "open"), 5)
    assert sup.stalled(time.monotonic(), max_silence_s=5) == []
    later = sup.stalled(time.monotonic() + 10, max_silence_s=5)  # ten seconds on, still inside those calls
    assert later == [in_step, in_open]
    release.set()
    sup.stop()

    dead = Worker("dead", lambda: None)
    dead._thread = threading.Thread(target=lambda: None)  # a thread that ended without being asked
    dead._thread.start()
    dead._thread.join()
    watch = Supervisor()
    watch.add(dead)
    assert watch.stalled(time.monotonic(), max_silence_s=5) == [dead]


def test_a_niced_worker_runs_below_the_thread_that_started_it_and_the_others_do_not_change():
    import os

    seen: dict[str, int] = {}
    done = threading.Event()

    def step_of(name: str):
        def step():
            seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            done.wait(0.01)
        return step
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    sup = Supervisor()
    sup.add(Worker("heavy", step_of("heavy"), nice=5))
    sup.add(Worker("plain", step_of("plain")))
    sup.start()
    assert wait_for(lambda: len(seen) == 2, 10)
    assert sup.stop(budget_s=1.0) == []
    assert seen == {"heavy": min(19, base + 5), "plain": base}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
