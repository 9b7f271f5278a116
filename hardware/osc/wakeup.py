"""A short CPU slice for the threads that answer operators (Linux 6.12+, no privilege needed).

Under the fair scheduler (EEVDF) a thread that wakes to answer a datagram waits until the busy
thread on its core has used its slice (about 3 ms), and behind several of them on a loaded machine:
tens of milliseconds. A thread that asks for a shorter slice (sched_setattr's sched_runtime; the
kernel takes 0.1-100 ms) gets an earlier deadline, so it preempts at once when it wakes; its share
of the CPU stays what its nice value gives. It needs no capability, unlike SCHED_FIFO. Where the
kernel does not know custom slices (before 6.12, or not Linux) the request changes nothing and
says so once at debug level.
"""
from __future__ import annotations

import ctypes
import logging
import os
import struct

log = logging.getLogger(__name__)

_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
"""sched_setattr, sched_getattr."""
_ATTR = struct.Struct("=IIQiIQQQII")
"""struct sched_attr (SCHED_ATTR_SIZE_VER1): size, policy, flags, nice, priority, runtime,
deadline, period, util_min, util_max."""


def request_short_slice(slice_s: float, what: str) -> bool:
    """Ask the kernel for a `slice_s` slice for the calling thread, its policy and nice kept.
    True when the kernel holds it (read back); False (nothing changed) otherwise."""
    numbers = _SYSCALLS.get(os.uname().machine) if hasattr(os, "uname") else None
    if slice_s <= 0 or numbers is None or not hasattr(os, "sched_getscheduler"):
        return False
    try:
        policy = os.sched_getscheduler(0)
        if policy not in (os.SCHED_OTHER, getattr(os, "SCHED_BATCH", 3)):
            return False  # a real-time thread already preempts every fair one
        libc = ctypes.CDLL(None, use_errno=True)
        runtime_ns = int(slice_s * 1e9)
        attr = ctypes.create_string_buffer(_ATTR.pack(_ATTR.size, policy, 0, os.getpriority(os.PRIO_PROCESS, 0),
                                                      0, runtime_ns, 0, 0, 0, 0), _ATTR.size)
        if libc.syscall(numbers[0], 0, attr, 0) != 0:
            log.debug("%s: no short CPU slice (%s)", what, os.strerror(ctypes.get_errno()))
            return False
        back = ctypes.create_string_buffer(_ATTR.size)
        if libc.syscall(numbers[1], 0, back, _ATTR.size, 0) != 0:
            return False
        held = _ATTR.unpack(back.raw)[5] > 0  # older kernels take the call and report no slice
        if not held:
            log.debug("%s: this kernel has no custom CPU slices (Linux 6.12+)", what)
        return held
    except (OSError, AttributeError, ValueError) as exc:
        log.debug("%s: no short CPU slice (%s)", what, exc)
        return False
