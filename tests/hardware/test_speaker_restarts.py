"""Many losses of the speakers' device leave nothing behind: each replaced child process is reaped
and its pipe closed, so threads, open files and child processes stay flat over months of restarts."""
import gc
import multiprocessing
import os
import threading

from hardware.child_process import ChildProcess
from hardware.sound.speakers import SynthSpeakers
from hardware.sound.synth import Synth
from installation.clock import MonotonicClock
from tests.fakes import dying_speaker_main
from tests.waiting import wait_for

RESTARTS = 6


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _child_handles() -> int:
    # type(), not isinstance(): gc also lists weak proxies, and isinstance() on a dead one raises.
    return sum(issubclass(type(o), ChildProcess) for o in gc.get_objects())


def test_restarts_of_the_speaker_process_keep_threads_files_and_children_flat():
    gc.collect()
    children_before = set(multiprocessing.active_children())  # other tests' processes, if any
    handles_before = _child_handles()
    speakers = SynthSpeakers(Synth(22050), MonotonicClock(), block_frames=512)
    speakers.child_main = dying_speaker_main
    try:
        speakers.open()
        assert wait_for(lambda: speakers.health.reopens >= 1, 30), speakers.health.snapshot()
        threads, fds = threading.active_count(), _open_fds()
        assert wait_for(lambda: speakers.health.reopens >= 1 + RESTARTS, 120), speakers.health.snapshot()
        assert wait_for(lambda: threading.active_count() <= threads and _open_fds() <= fds + 2, 10), \
            (threading.enumerate(), _open_fds(), fds)
        ours = set(multiprocessing.active_children()) - children_before
        assert len(ours) <= 1  # the one playing now; the others reaped
        # A restart in flight holds the old and the new handle for a moment; a leak holds one per restart.
        assert wait_for(lambda: gc.collect() >= 0 and _child_handles() <= handles_before + 1, 10), _child_handles()
    finally:
        speakers.close()
    assert wait_for(lambda: not set(multiprocessing.active_children()) - children_before, 5)
