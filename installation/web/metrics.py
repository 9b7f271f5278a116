"""Prometheus metrics and the command audit shared by the dashboard and OSC.

Metrics are collected when a monitoring tool scrapes `/metrics`: the collector reads the same
thread-safe status the operators see, so the projector loop does no work for them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from installation.records import Command

log = logging.getLogger("chromesthesia.web")

REFUSALS_LOGGED_PER_MINUTE = 60
"""A sender looping on a bad command must not fill the show log: past this many refusals a
minute only the count grows (and a "refusals_suppressed" record says how many)."""


class CommandAudit:
    """Counts commands by source and result and writes every refused one to the show log.

    `check(command)` (Control.check) says why a command would be refused, or None. Wrap it with
    `audit.checked(source, check)` where a command is validated before it is queued (OSC, the
    dashboard): the refusal is then logged on that thread, with its sender and reason.
    """

    def __init__(self, show_log=None, clock=time.monotonic) -> None:
        self._show_log = show_log
        self._clock = clock
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self._window: deque[float] = deque()
        self._suppressed = 0

    def record(self, source: str, command: Command, reason: str | None) -> None:
        result = "refused" if reason else "accepted"
        with self._lock:
            self.counts[(source, result)] = self.counts.get((source, result), 0) + 1
            if not reason or self._show_log is None:
                return
            now_s = self._clock()
            while self._window and now_s - self._window[0] > 60.0:
                self._window.popleft()
            if len(self._window) >= REFUSALS_LOGGED_PER_MINUTE:
                self._suppressed += 1
                return
            self._window.append(now_s)
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            self._show_log.write("refusals_suppressed", count=suppressed)
        self._show_log.write("command", address=command.address, args=list(command.args)[:8],
                             sender=command.sender, source=source, ok=False, reason=reason)

    def checked(self, source: str, check: Callable[[Command], str | None]) -> Callable[[Command], str | None]:
        def audited(command: Command) -> str | None:
            reason = check(command)
            self.record(source, command, reason)
            return reason
        return audited

    def control(self, control, source: str):
        """`control` with its `check` audited, for code that takes the whole Control (the OSC
        pieces): every other attribute is the control's own."""
        return _AuditedControl(control, self.checked(source, control.check))

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.counts)


class _AuditedControl:
    def __init__(self, control, check: Callable[[Command], str | None]) -> None:
        self._control = control
        self.check = check

    def __getattr__(self, name: str):
        return getattr(self._control, name)


class InstallationCollector:
    """A prometheus_client collector over the status callable and the counters."""

    def __init__(self, status: Callable[[], dict], started_s: float, audit: CommandAudit | None = None,
                 osc_stats: Callable[[], dict] | None = None, clock=time.monotonic,
                 schedule: Callable[[], dict | None] = lambda: None, info: dict[str, str] | None = None) -> None:
        self._status = status
        self._started_s = started_s
        self._audit = audit
        self._osc_stats = osc_stats
        self._clock = clock
        self._schedule = schedule
        self._info = {"version": package_version(), **(info or {})}

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily,
                                            StateSetMetricFamily)

        status: dict[str, Any] = self._status() or {}
        yield InfoMetricFamily("chromesthesia", "The installation: version, scene and what it runs from",
                               value={**self._info, "installation": str(status.get("installation") or ""),
                                      "scene": str(status.get("scene") or ""), "render": str(status.get("render") or "")})
        try:
            schedule = self._schedule()
        except Exception:  # a calendar fault must not cost the whole scrape
            log.exception("metrics: reading the schedule failed")
            schedule = None
        state = room_state(schedule, bool(status.get("blackout")))
        yield StateSetMetricFamily("chromesthesia_state", "open; closed by the schedule; blackout in open hours",
                                   value={name: name == state for name in ROOM_STATES})
        yield GaugeMetricFamily("chromesthesia_fps", "Frames a second on the projector", value=float(status.get("fps") or 0))
        if status.get("diffusion_new_fps") is not None:
            yield GaugeMetricFamily("chromesthesia_diffusion_new_fps", "New diffusion frames a second (held frames not counted)",
                                    value=float(status["diffusion_new_fps"]))
        yield GaugeMetricFamily("chromesthesia_uptime_seconds", "Seconds since the installation started",
                                value=self._clock() - self._started_s)
        yield GaugeMetricFamily("chromesthesia_notes_per_second", "Notes played a second (5 s window)",
                                value=float(status.get("notes_per_s") or 0))
        yield GaugeMetricFamily("chromesthesia_blackout", "1 while the projector is blacked out",
                                value=1.0 if status.get("blackout") else 0.0)
        drops = CounterMetricFamily("chromesthesia_dropped", "Items overwritten before their reader took them",
                                    labels=["mailbox"])
        for name, count in sorted((status.get("drops") or {}).items()):
            drops.add_metric([str(name)], float(count))
        yield drops
        yield CounterMetricFamily("chromesthesia_restarts", "Worker restarts", value=float(status.get("restarts") or 0))
        yield CounterMetricFamily("chromesthesia_faults", "Worker failures, main-loop faults and device losses",
                                  value=float(status.get("failures") or 0) + float(status.get("main_faults") or 0)
                                  + float(status.get("device_losses") or 0))
        up = GaugeMetricFamily("chromesthesia_device_up", "1 while a device is open, 0 while lost or waiting",
                               labels=["device", "kind"])
        losses = CounterMetricFamily("chromesthesia_device_losses", "Times a device was lost", labels=["device", "kind"])
        for name, device in sorted((status.get("devices") or {}).items()):
            labels = [str(name), str(device.get("kind", ""))]
            up.add_metric(labels, 1.0 if device.get("state") == "open" else 0.0)
            losses.add_metric(labels, float(device.get("losses") or 0))
        yield up
        yield losses
        commands = CounterMetricFamily("chromesthesia_commands", "Operator commands by source and result",
                                       labels=["source", "result"])
        for (source, result), count in sorted((self._audit.snapshot() if self._audit else {}).items()):
            commands.add_metric([source, result], float(count))
        yield commands
        if self._osc_stats is not None:
            osc = CounterMetricFamily("chromesthesia_osc_messages", "OSC messages by outcome", labels=["outcome"])
            for name, count in sorted((self._osc_stats() or {}).items()):
                if name != "subscribers":
                    osc.add_metric([name], float(count))
            yield osc


ROOM_STATES = ("open", "closed", "blackout")


def room_state(schedule: dict | None, blackout: bool) -> str:
    """"closed" while the schedule says so (its blackout is the schedule's), else "blackout"
    while the projector is black, else "open". `schedule` is Calendar.describe's answer or None."""
    if schedule is not None and not schedule.get("open", True):
        return "closed"
    return "blackout" if blackout else "open"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("chromesthesia")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def metrics_registry(collector: InstallationCollector):
    """A registry of its own (never the process-global one), so a restart or a test can build another;
    with the process's CPU, memory, descriptors, Python version and garbage collector, as the
    global registry has them."""
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
