"""Shared fixtures: real servers (JACK dummy, Xvfb) started and stopped by the tests that need them."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def jack_server():
    """A real, clocked JACK server on the dummy driver: PortAudio devices and JACK MIDI ports.

    Yields the server name. Skips when jackd is not installed (make test installs it).
    """
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    name = f"chroma{os.getpid()}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_AUDIO_RESERVATION"] = "1"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # jack_wait -c exits 0 either way; its answer is in what it prints.
            check = subprocess.run(["jack_wait", "-c", "-s", name], env=env, capture_output=True, text=True)
            if check.stdout.strip() == "running":
                break
            if proc.poll() is not None:
                pytest.fail(f"jackd exited with {proc.returncode}")
            time.sleep(0.1)
        else:
            pytest.fail("jackd did not become ready within 30 s")
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.environ.pop("JACK_DEFAULT_SERVER", None)


def detach_portaudio_from_jack() -> None:
    """Re-initialise PortAudio away from JACK while the server still runs: its JACK host aborts
    the whole process at exit when the server it joined has gone."""
    from hardware.audio_in import reinitialize_portaudio

    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = f"none{os.getpid()}"
    try:
        reinitialize_portaudio()
    finally:
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


@pytest.fixture
def portaudio_on_jack(jack_server):
    """PortAudio re-initialised to see the JACK server's devices (it lists devices only at
    initialisation), and detached again afterwards."""
    import sounddevice  # noqa: F401 - reinitialize_portaudio works on the imported module

    from hardware.audio_in import reinitialize_portaudio

    reinitialize_portaudio()
    yield jack_server
    detach_portaudio_from_jack()


@pytest.fixture
def xvfb():
    """A real X server (Xvfb) for the duration of one test; DISPLAY points at it."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb); `make test` installs it")
    from models.diffusion.load import preload_triton
    preload_triton()  # before any window's GL, as the installation does (see preload_triton)
    display = f":{90 + os.getpid() % 100}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{display[1:]}") and time.monotonic() < deadline:
        time.sleep(0.05)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(5)
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch's OpenMP pool spins against other processes on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
