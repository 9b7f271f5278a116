"""The heap trimmer: at most once a period, on the manual clock."""
from __future__ import annotations

from installation.show.heap import HeapTrimmer


def test_trims_once_a_period_after_the_first_call():
    trimmer = HeapTrimmer(period_s=60.0)
    assert trimmer.available  # glibc on every machine the project supports on Linux
    assert not trimmer.maybe_trim(0.0)  # the first call starts the period
    assert not trimmer.maybe_trim(59.0)
    assert trimmer.maybe_trim(60.0) and trimmer.trims == 1
    assert not trimmer.maybe_trim(100.0)
    assert trimmer.maybe_trim(121.0) and trimmer.trims == 2


def test_the_arena_cap_is_taken_by_glibc_in_a_fresh_process():
    import subprocess
    import sys
    code = "from installation.show.heap import limit_arenas; print(limit_arenas(2))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and done.stdout.strip() == "True"


FIRST_FREE = r"""
import ctypes, ctypes.util, sys
from installation.show.heap import fix_mmap_threshold

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Mallinfo2
fixed = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
libc.free(libc.malloc(6 << 20))  # the first free of a large block (minutes into a show)
before = libc.mallinfo2().hblkhd
block = libc.malloc(5 << 20)
print(fixed, libc.mallinfo2().hblkhd - before >= 5 << 20)  # still a mapping of its own
"""


def test_a_large_free_does_not_move_large_blocks_into_the_heap():
    """glibc's moving threshold puts the next 5 MB block in the heap after a 6 MB block was freed;
    with the threshold fixed at start-up it still gets a mapping of its own, given back at free."""
    import subprocess
    import sys
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    said = {mode: subprocess.run([sys.executable, "-c", FIRST_FREE, mode], capture_output=True, text=True,
                                 timeout=120, cwd=root).stdout.split() for mode in ("moving", "fixed")}
    assert said["moving"] == ["None", "False"]  # glibc's default: the step this prevents
    assert said["fixed"] == ["True", "True"]
