"""The show log: an append-only JSON Lines record of everything that happened during a show.

Each `write` appends one complete line with a single `os.write` on an O_APPEND descriptor, so the
kernel holds it the moment `write` returns: a `kill -9` loses nothing that was written. A small
flusher thread calls `fsync` at most `fsync_interval_s` after the first unsynced line, so a power
cut loses at most that much. A torn last line (power cut mid-write) is skipped by `read_show_log`,
and the next writer starts on a fresh line, so the file never needs repair.

Thumbnails of projected frames live beside the log in `<log stem>.thumbs/` as small JPEG files,
each announced by a "thumbnail" record holding its path relative to the log's folder.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from installation.errors import UserError

log = logging.getLogger(__name__)

KINDS = ("status", "caption", "plan", "scene", "command", "fault", "schedule", "reload", "thumbnail",
         "start", "stop")
"""Kinds the report understands; any other kind is kept and listed as an event."""


def _jsonable(value: Any) -> Any:
    """Records hold numpy scalars, tuples and NaN now and then; the log holds plain JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


class ShowLog:
    """Thread-safe, append-only JSONL show log that survives kill -9 and power loss.

    Any thread may call `write`; each call costs one `os.write` (tens of microseconds).
    """

    def __init__(self, path: Path, clock, fsync_interval_s: float = 0.5,
                 thumbnail_interval_s: float = 10.0, thumbnail_width: int = 240,
                 keep_days: int | None = None) -> None:
        """`keep_days` turns on daily rotation for a log that runs for months: at local midnight
        the day's file becomes `<stem>-YYYY-MM-DD.jsonl`, and days (and thumbnails) older than
        `keep_days` are deleted, so the disk never fills."""
        self.path = Path(path)
        self._keep_days = keep_days
        self._day = _dt.date.today()
        self._prune_due = keep_days is not None
        self._clock = clock
        self._fsync_interval_s = fsync_interval_s
        self._thumbnail_interval_s = thumbnail_interval_s
        self._thumbnail_width = thumbnail_width
        self._last_thumbnail_s = -math.inf
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self.lines = 0
        self.errors = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"show log {self.path} cannot be opened ({exc.strerror}); "
                            f"choose a writable folder with --record DIR or record.dir.") from None
        self._prefix = b""
        size = os.fstat(self._fd).st_size
        if size:
            # A torn last line from a previous crash: start our first line on a fresh one.
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._prefix = b"\n"
        self._flusher = threading.Thread(target=self._flush_loop, name="showlog-fsync", daemon=True)
        self._flusher.start()

    @property
    def thumbs_dir(self) -> Path:
        return self.path.parent / f"{self.path.stem}.thumbs"

    def write(self, kind: str, /, **fields: Any) -> None:
        """Append one record: {"t_s", "time", "kind", **fields}. Never raises while running: a
        field named like the record's own keys (kind, t_s, time) is kept as kind_, t_s_, time_."""
        record = {"t_s": round(self._clock.now_s(), 4),
                  "time": _dt.datetime.now().astimezone().isoformat(timespec="milliseconds"),
                  "kind": kind}
        for key, value in fields.items():
            record[f"{key}_" if key in ("t_s", "time", "kind") else key] = value
        try:
            line = json.dumps(_jsonable(record), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        except (TypeError, ValueError) as exc:  # a field json cannot take even after _jsonable
            line = json.dumps({"t_s": record["t_s"], "time": record["time"], "kind": "fault",
                               "worker": "showlog", "error": f"unloggable {kind} record: {exc}"}).encode() + b"\n"
        if self._keep_days is not None and _dt.date.today() != self._day:
            self._rotate()  # checks the date again under the lock: two writers at midnight rotate once
        with self._lock:
            if self._fd < 0:
                return
            try:
                os.write(self._fd, self._prefix + line)
                self._prefix = b""
                self.lines += 1
            except OSError as exc:
                self.errors += 1
                if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                    log.error("show log %s: write failed (%s); %d lines lost so far", self.path, exc, self.errors)
                return
        self._dirty.set()

    def thumbnail(self, rgb: np.ndarray, force: bool = False) -> Path | None:
        """Save a small JPEG of a projected frame (at most one per `thumbnail_interval_s`).

        Called from the main thread; returns the file written, or None when skipped.
        """
        now_s = self._clock.now_s()
        if not force and now_s - self._last_thumbnail_s < self._thumbnail_interval_s:
            return None
        self._last_thumbnail_s = now_s
        try:
            import cv2
            h, w = rgb.shape[:2]
            width = min(self._thumbnail_width, w)
            small = cv2.resize(np.ascontiguousarray(rgb), (width, max(1, round(h * width / w))),
                               interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
            if not ok:
                raise ValueError("JPEG encoding failed")
            self.thumbs_dir.mkdir(parents=True, exist_ok=True)
            # Wall-clock names: the monotonic clock restarts with the machine, and names must not
            # collide with an earlier day's thumbnails.
            path = self.thumbs_dir / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.jpg"
            path.write_bytes(data.tobytes())
        except Exception as exc:  # a thumbnail is never worth stopping the show
            self.errors += 1
            log.warning("show log thumbnail failed: %s", exc)
            return None
        self.write("thumbnail", path=str(path.relative_to(self.path.parent)))
        return path

    def _rotate(self) -> None:
        """Close the day's file under its date and start a fresh one; the fsync thread prunes."""
        with self._lock:
            today = _dt.date.today()
            if today == self._day or self._fd < 0:
                return
            day, self._day = self._day, today
            fd, self._fd = self._fd, -1  # no write may land in a closed or reused descriptor
            try:
                os.fsync(fd)
                os.close(fd)
                dated = self.path.with_name(f"{self.path.stem}-{day.isoformat()}{self.path.suffix}")
                os.replace(self.path, dated)
            except OSError as exc:
                self.errors += 1
                log.error("show log %s: rotation failed (%s); carrying on in the same file", self.path, exc)
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:  # a full or read-only disk: lines are counted as lost until it clears
                self.errors += 1
                self._day = day  # try again on the next write
                log.error("show log %s: cannot reopen after rotation (%s)", self.path, exc)
            self._prefix = b""
            self._prune_due = True
        self._dirty.set()

    def _prune(self, oldest_kept: _dt.date) -> None:
        cutoff_s = _dt.datetime.combine(oldest_kept, _dt.time()).timestamp()
        for old in self.path.parent.glob(f"{self.path.stem}-????-??-??{self.path.suffix}"):
            try:
                if _dt.date.fromisoformat(old.stem[-10:]) < oldest_kept:
                    old.unlink()
            except (ValueError, OSError) as exc:
                log.warning("show log: cannot delete %s (%s)", old, exc)
        if self.thumbs_dir.is_dir():
            for thumb in self.thumbs_dir.glob("*.jpg"):
                try:
                    if thumb.stat().st_mtime < cutoff_s:
                        thumb.unlink()
                except OSError:
                    pass

    def _flush_loop(self) -> None:
        while not self._closing.is_set():
            self._dirty.wait()
            if self._closing.wait(self._fsync_interval_s):
                break
            self._dirty.clear()
            self._sync()
            if self._prune_due and self._keep_days is not None:
                # Here, not on the writer's thread: stat-ing a month of thumbnails takes a while.
                self._prune_due = False
                self._prune(_dt.date.today() - _dt.timedelta(days=self._keep_days))

    def _sync(self) -> None:
        with self._lock:
            fd = self._fd
            if fd < 0:
                return
            try:
                os.fsync(fd)
            except OSError as exc:
                self.errors += 1
                log.error("show log %s: fsync failed (%s)", self.path, exc)

    def close(self) -> None:
        """fsync and close; later writes are ignored."""
        self._closing.set()
        self._dirty.set()
        self._flusher.join(timeout=2.0)
        self._sync()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "ShowLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_show_log(path: Path) -> Iterator[dict]:
    """Records in order; lines that do not parse (a torn last line) are skipped."""
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                yield record


def read_show_log(path: Path) -> list[dict]:
    """Every complete record of a show log, tolerant of a torn last line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"show log {path} does not exist; give the show.jsonl a run wrote (or its folder).")
    return list(iter_show_log(path))
