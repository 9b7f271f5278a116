"""A JACK or PortAudio scenario in a child process fails its test with the child's stack when it
hangs or crashes, within the test's own timeout."""
from __future__ import annotations

import time

import pytest

from tests.hardware.child_scenario import run_child


@pytest.mark.parametrize("how, said", [("hang", "stuck_in_a_native_call"), ("crash", "Segmentation fault")])
def test_a_scenario_that_hangs_or_crashes_fails_with_its_stack(how, said):
    started_s = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        run_child("tests.hardware.stuck_child", 6.0, how)  # the child dumps its stacks 1 s in
    assert said in str(failed.value) and "stuck_child.py" in str(failed.value), str(failed.value)
    assert time.monotonic() - started_s < 6.0
