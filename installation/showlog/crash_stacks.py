"""Native crash stacks: on SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT every thread's Python stack is
written to stderr and, when the show keeps a log folder, appended to `crash.log` there.

`faulthandler` writes to one descriptor from inside the signal handler, where nothing else can run.
With a log file that descriptor is a pipe to `tee -a crash.log`, a separate process that outlives
the crash and copies what arrives to the file and to stderr (the terminal or the journal).
"""
from __future__ import annotations

import faulthandler
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("chromesthesia")

CRASH_LOG_NAME = "crash.log"


def _stderr_fd() -> int:
    """stderr's descriptor; 2 when sys.stderr is a stream without one (captured output, an embedding host)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return 2


class CrashStacks:
    """faulthandler, on for the life of the process; `close()` before an in-place restart.
    faulthandler is process-wide: one of these per process."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._tee: subprocess.Popen | None = None
        self._write_fd: int | None = None

    def enable(self, folder: Path | None = None) -> None:
        """Stacks to stderr, and to `folder/crash.log` as well when a folder is given."""
        self.close()
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("crash stacks go to stderr only: cannot create %s (%s)", folder, exc.strerror)
                folder = None
        if folder is None:
            faulthandler.enable(file=_stderr_fd(), all_threads=True)
            return
        self.path = folder / CRASH_LOG_NAME
        tee = shutil.which("tee")
        if tee is None:  # Windows: the file alone, which outlives the process
            self._write_fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        else:
            self._write_fd = self._start_copier(tee, self.path)
        faulthandler.enable(file=self._write_fd if self._write_fd is not None else _stderr_fd(), all_threads=True)

    def _start_copier(self, tee: str, path: Path) -> int | None:
        """The write end of a pipe into `tee -a path` (which also writes to stderr); None if it cannot start."""
        read_fd, write_fd = os.pipe()
        try:
            # Its own session: a Ctrl-C at the terminal must not end the copier before the crash it copies.
            self._tee = subprocess.Popen([tee, "-a", str(path)], stdin=read_fd, stdout=_stderr_fd(),
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            os.close(write_fd)
            log.warning("crash stacks go to stderr only: cannot start tee (%s)", exc)
            self.path = None
            return None
        finally:
            os.close(read_fd)
        return write_fd

    def close(self) -> None:
        """Back to stderr alone; the copier sees the end of its pipe and exits."""
        if self._write_fd is None:
            return
        faulthandler.enable(file=_stderr_fd(), all_threads=True)
        os.close(self._write_fd)
        self._write_fd = None
        if self._tee is not None:
            try:
                self._tee.wait(5)
            except subprocess.TimeoutExpired:
                self._tee.kill()
            self._tee = None


def log_folder(record_dir: Path | None, show_log_path: str) -> Path | None:
    """Where this run keeps its logs: the recording folder, else the always-on show log's folder."""
    if record_dir is not None:
        return record_dir
    return Path(show_log_path).expanduser().parent if show_log_path else None
