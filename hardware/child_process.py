"""A helper process of the installation's own: started with spawn, spoken to over one duplex pipe.

The real-time MIDI sender and the speakers' PortAudio stream each run in one. The child answers
("ready", payload) or ("error", sentence) first; after that the two sides trade (kind, payload)
tuples. Stopping is bounded: a polite stop message, then SIGTERM, then SIGKILL, because a child
inside a native library whose server died (PortAudio on a dead JACK server) answers none of them.
"""
from __future__ import annotations

import logging
import subprocess
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


class ChildFailed(RuntimeError):
    """The child did not become ready: it said why, or it said nothing within the start time."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ChildProcess:
    """One spawned child and its end of the pipe. `send` and `ask` may be called from any thread."""

    def __init__(self, name: str, target: Callable[..., None], args: tuple = ()) -> None:
        self.name = name
        self._target = target
        self._args = args
        self._conn: Any = None
        self._process: Any = None
        self._lock = threading.Lock()

    def start(self, timeout_s: float) -> Any:
        """Start the child (its target gets the pipe end first, then `args`); the ready payload."""
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")  # never fork a process full of torch threads
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=self._target, name=self.name, daemon=True, args=(child, *self._args))
        self._process.start()
        child.close()  # the parent keeps only its own end: EOF reaches it when the child dies
        self._conn = parent
        ready = False
        try:
            ready = parent.poll(timeout_s)
            kind, payload = parent.recv() if ready else ("error", None)
        except (EOFError, OSError):
            self._process.join(0.5)
            kind, payload = "error", f"the {self.name} process ended at start (exit code {self._process.exitcode})"
        if kind != "ready":
            self.kill()
            raise ChildFailed(payload or f"the {self.name} process did not start within {timeout_s:.0f} s",
                              timed_out=not ready)
        return payload

    @property
    def conn(self) -> Any:
        """The parent's end of the pipe (for a reader thread of the caller's own)."""
        return self._conn

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self._process is None else self._process.exitcode

    def send(self, kind: str, payload: Any = None) -> bool:
        """False (and a warning) when the child is gone."""
        with self._lock:
            try:
                self._conn.send((kind, payload))
                return True
            except (OSError, BrokenPipeError, AttributeError) as exc:
                # str(): a log record kept by a handler must not keep this frame (and so this handle) alive
                log.warning("the %s process is gone (%s)", self.name, str(exc))
                return False

    def ask(self, kind: str, payload: Any, answer: str, timeout_s: float = 2.0) -> Any:
        """Send, then wait for the `answer` message's payload (None when none came in time)."""
        with self._lock:
            try:
                self._conn.send((kind, payload))
                while self._conn.poll(timeout_s):
                    got, value = self._conn.recv()
                    if got == answer:
                        return value
            except (OSError, BrokenPipeError, EOFError, AttributeError) as exc:
                # str(): a log record kept by a handler must not keep this frame (and so this handle) alive
                log.warning("the %s process is gone (%s)", self.name, str(exc))
        return None

    def stop(self, timeout_s: float = 1.0, ask: tuple[str, str] | None = ("stop", "stopped")) -> None:
        """Ask the child to stop and wait `timeout_s` for it; then SIGTERM, then SIGKILL."""
        if self._process is None:
            return
        if ask is not None:
            self.ask(ask[0], None, ask[1], timeout_s)
        self._process.join(0.1)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(0.5)
        self.kill()

    def kill(self) -> None:
        """SIGKILL now (a child stuck in native code answers nothing else) and reap it."""
        process, self._process = self._process, None
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(2.0)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def end_process(proc: subprocess.Popen, timeout_s: float = 5.0, terminate: bool = True) -> None:
    """End a program started with Popen: SIGTERM (unless `terminate` is False: it was asked to end
    another way), then SIGKILL when it has not ended within `timeout_s`."""
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def serve_stream(conn: Any, stream: Any, what: str, on_message: Callable[[str, Any], None] | None = None) -> None:
    """In a device child: start a PortAudio stream, hand the parent's messages to `on_message` until
    "stop" or the parent is gone, then abort and close the stream and say "stopped"."""
    try:
        stream.start()
    except Exception as exc:  # noqa: BLE001 - the device went in between
        conn.send(("error", f"{what} cannot start ({exc})"))
        return
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):  # the parent died
            break
        if kind == "stop":
            break
        if on_message is not None:
            on_message(kind, payload)
    stream.abort()
    stream.close()
    try:
        conn.send(("stopped", None))
    except OSError:
        pass
