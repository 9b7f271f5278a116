"""The start's own validation, shared by `run.py check` and the start itself.

Everything the run would refuse before it shows a frame, each as the one sentence the operator
reads: the calendar (public-holiday country, closures), packages of every enabled extra (Ableton
Link, NDI or a virtual camera that is required), and every port the run would open (OSC over UDP
and TCP, OSCQuery, the dashboard), probed by binding it. `check` prints them all; the start
raises the first, so both say the same sentence and exit 2.
"""
from __future__ import annotations

import errno
import socket
from typing import Callable

from installation.config import Config
from installation.errors import UserError


def start_problems(cfg: Config) -> list[str]:
    """Every reason the configured run would refuse to start, one sentence each (none: it can)."""
    problems: list[str] = []
    for probe in (_calendar, _extras, _ports):
        problems.extend(probe(cfg))
    return problems


def refuse_start(cfg: Config) -> None:
    """The start's check: UserError with the first problem `start_problems` finds."""
    problems = start_problems(cfg)
    if problems:
        raise UserError(problems[0])


def _sentences(*checks: Callable[[], object]) -> list[str]:
    out = []
    for check in checks:
        try:
            check()
        except UserError as exc:
            out.append(str(exc))
    return out


def _calendar(cfg: Config) -> list[str]:
    from installation.show.schedule import Schedule

    return _sentences(lambda: Schedule(cfg.schedule))


def _extras(cfg: Config) -> list[str]:
    checks: list[Callable[[], object]] = []
    if cfg.tempo.source == "link":
        from hardware.link import load_link_module
        checks.append(load_link_module)
    if cfg.video_out.required:  # otherwise the show goes on without the sink (a warning)
        from hardware.video.output import NdiSink, VirtualCameraSink
        if cfg.video_out.ndi:
            checks.append(NdiSink.check_available)
        if cfg.video_out.virtual_camera:
            checks.append(VirtualCameraSink.check_available)
    return _sentences(*checks)


def _ports(cfg: Config) -> list[str]:
    """Bind each port the run listens on, as its server does, and let go at once."""
    wanted: list[tuple[str, str, int, int, str]] = []  # (what, host, port, socket type, setting)
    if cfg.osc.enabled:
        wanted.append(("OSC control", cfg.osc.host, cfg.osc.port, socket.SOCK_DGRAM, "osc.port"))
        if cfg.osc.tcp_enabled:
            wanted.append(("OSC over TCP", cfg.osc.host, cfg.osc.tcp_port, socket.SOCK_STREAM, "osc.tcp_port"))
        if cfg.osc.query_enabled:
            wanted.append(("OSCQuery", cfg.osc.host, cfg.osc.query_port, socket.SOCK_STREAM, "osc.query_port"))
    if cfg.web.enabled:
        wanted.append(("the dashboard", cfg.web.host, cfg.web.port, socket.SOCK_STREAM, "web.port"))
    problems = []
    for what, host, port, kind, setting in wanted:
        reason = bind_problem(host, port, kind)
        if reason is not None:
            problems.append(f"{what} cannot listen on {host}:{port} ({reason}); choose another port with "
                            f"--set {setting}=N or stop the program using it.")
    return problems


def bind_problem(host: str, port: int, kind: int) -> str | None:
    """Why `host:port` cannot be bound now (the OS's words), or None when it can. Port 0 (any
    free port) always can. TCP probes set SO_REUSEADDR as the servers do, so a port left in
    TIME_WAIT by a restart in place is free, while one with a live listener is not."""
    if port == 0:
        return None
    try:
        info = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)[0]
    except OSError as exc:
        return f"{exc.strerror or exc}; set it to an address of this machine"
    with socket.socket(info[0], kind) as probe:
        if kind == socket.SOCK_STREAM:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(info[4])
            if kind == socket.SOCK_STREAM:
                probe.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "Address already in use"
            return exc.strerror or str(exc)
    return None
