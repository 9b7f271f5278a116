"""The heap trimmer: at most once a period, on the manual clock."""
from __future__ import annotations

from installation.heap import HeapTrimmer


def test_trims_once_a_period_after_the_first_call():
    trimmer = HeapTrimmer(period_s=60.0)
    assert trimmer.available  # glibc on every machine the project supports on Linux
    assert not trimmer.maybe_trim(0.0)  # the first call starts the period
    assert not trimmer.maybe_trim(59.0)
    assert trimmer.maybe_trim(60.0) and trimmer.trims == 1
    assert not trimmer.maybe_trim(100.0)
    assert trimmer.maybe_trim(121.0) and trimmer.trims == 2
