"""A virtual X server (Xvfb) for windowed runs on a machine without a screen (soaks, CI)."""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
from typing import Iterator

from installation.errors import UserError

READY_TIMEOUT_S = 30.0


@contextlib.contextmanager
def xvfb(width: int = 1920, height: int = 1080, depth: int = 24) -> Iterator[str]:
    """Start Xvfb on a free display number and yield it (":N"); stopped on exit.

    `-displayfd` makes the server pick a free number and write it once it accepts clients, so
    nothing polls for sockets and two soaks never collide.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        raise UserError("Xvfb is not installed; install the Debian package xvfb (make setup does) or run with a DISPLAY.")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([binary, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}",
                             "-nolisten", "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], READY_TIMEOUT_S)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            raise UserError(f"Xvfb did not start within {READY_TIMEOUT_S:g} s (exit code {proc.poll()}).")
        yield f":{number}"
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
