"""Whether the JACK server a device joined is still the one running, without joining it again.

A client of a JACK server that died never hears of it (its process thread waits for a cycle that
never comes), and a new client per check is a graph change each time. jackd listens on a UNIX
socket, `/dev/shm/jack_<server>_<uid>_0`: connecting to it costs microseconds, fails when the
server is gone, and the socket's inode changes when a new server starts under the same name.
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

SOCKET_DIR = Path("/dev/shm")


def server_name(environ=os.environ) -> str:
    """The server JACK clients of this process join: JACK_DEFAULT_SERVER, else "default"."""
    return environ.get("JACK_DEFAULT_SERVER") or "default"


def server_identity(name: str | None = None) -> int | None:
    """An id of the running server called `name` (its socket's inode), or None when none answers."""
    path = SOCKET_DIR / f"jack_{name or server_name()}_{os.getuid()}_0"
    try:
        inode = path.stat().st_ino
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            probe.connect(str(path))
        return inode
    except OSError:
        return None


def uses_jack(backend: str) -> bool:
    """Whether a mido backend string names rtmidi's JACK API."""
    return "jack" in backend.lower()


@contextlib.contextmanager
def default_server(name: str) -> Iterator[str]:
    """JACK clients of this process (PortAudio's included) join server `name` while the block runs,
    without asking for the audio device; the environment is as it was afterwards."""
    keys = ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION")
    before = {key: os.environ.get(key) for key in keys}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    try:
        yield name
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
