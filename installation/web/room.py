"""Why the room looks the way it does, in words a technician reads on the dashboard: who made the
projector black (the schedule, an operator, a fault), and the log split into faults, warnings
and everything else."""
from __future__ import annotations

import logging
import time
from collections import deque

STARTING_S = 10.0
"""Seconds after the start in which a projector with no frames yet is starting, not failing."""


def dark_reason(status: dict, schedule: dict | None, uptime_s: float = 60.0) -> dict | None:
    """{"kind": "schedule"|"operator"|"fault", "text": ...} while the projector shows nothing, else None.

    `schedule` is Calendar.describe's answer (None: always open); `status` the installation's,
    whose `blackout_by` names who sent the last /blackout."""
    if uptime_s >= STARTING_S and status.get("fps") is not None and not status["fps"] > 0:
        return {"kind": "fault", "text": "fault: the projector draws no frames (see the faults below)"}
    if not status.get("blackout"):
        return None
    sender = str(status.get("blackout_by") or "")
    if schedule is not None and not schedule.get("open", True) and sender in ("", "schedule"):
        opens = f"; opens {schedule['next_change'].replace('T', ' ')}" if schedule.get("next_change") else ""
        return {"kind": "schedule", "text": f"closed by the schedule ({schedule.get('reason', 'closed')}){opens}"}
    if sender == "schedule":
        return {"kind": "schedule", "text": "resting: the schedule's idle mode (silence and nobody in front)"}
    return {"kind": "operator", "text": f"blacked out by an operator ({sender or 'unknown'})"}


class LogTail(logging.Handler):
    """The last INFO and louder log lines, for the dashboard's faults, warnings and log view."""

    def __init__(self, keep: int = 500) -> None:
        super().__init__(level=logging.INFO)
        self._records: deque[dict] = deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._records.append({"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)),
                                  "level": record.levelname.lower(), "where": record.threadName,
                                  "logger": record.name, "message": record.getMessage()[:300]})
        except Exception:  # noqa: BLE001 - a log handler never raises
            pass

    def lines(self, limit: int = 500) -> list[dict]:
        """Newest first."""
        return list(self._records)[::-1][:limit]

    def faults(self, limit: int = 20) -> list[dict]:
        """Errors, newest first: what faults_total counts as it happens."""
        return [r for r in self.lines() if r["level"] in ("error", "critical")][:limit]

    def warnings(self, limit: int = 20) -> list[dict]:
        """Warnings (start-up notices, fallbacks), newest first: worth reading, not faults."""
        return [r for r in self.lines() if r["level"] == "warning"][:limit]
