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
