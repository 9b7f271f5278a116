"""The show log: an append-only JSON Lines record of everything that happened during a show.

Each `write` appends one complete line on an O_APPEND descriptor (a short write is finished by
further writes), so the kernel holds it the moment `write` returns: a `kill -9` loses nothing that
was written. A small flusher thread calls `fsync` at most `fsync_interval_s` after the first
unsynced line, so a power cut loses at most that much. A torn line (power cut mid-write, a disk
that filled mid-record) is skipped by `read_show_log`, and the next record starts on a fresh line,
so a torn record never glues to the next and the file never needs repair.

Chatty records are folded before they are written (installation.showlog.fold: one record per
fader gesture, /tempo at most once a second, repeated critic records counted). The always-on log
rotates daily and by size (`max_file_mb`), and keeps `keep_days` days within `max_total_mb`.

Thumbnails of projected frames live beside the log in `<log stem>.thumbs/` as small JPEG files,
each announced by a "thumbnail" record holding its path relative to the log's folder.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from installation.errors import UserError
from installation.showlog.fold import FoldSettings, Record, RecordFolder

log = logging.getLogger(__name__)

KINDS = ("status", "caption", "plan", "scene", "command", "gesture", "critic", "fault", "schedule", "reload",
         "thumbnail", "start", "stop")
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
                 keep_days: int | None = None, fold: FoldSettings | None = FoldSettings(),
                 max_file_mb: float | None = None, max_total_mb: float | None = None) -> None:
        """`keep_days` turns on daily rotation for a log that runs for months: at local midnight
        the day's file becomes `<stem>-YYYY-MM-DD.jsonl` (and past `max_file_mb` a part
        `<stem>-YYYY-MM-DD.N.jsonl` is closed), and days (and thumbnails) older than `keep_days`
        are deleted, the oldest first while the dated files add up to more than `max_total_mb`,
        so the disk never fills. `fold=None` writes every record as it comes."""
        self.path = Path(path)
        self._keep_days = keep_days
        self._folder = RecordFolder(fold) if fold is not None else None
        self._max_file_bytes = None if max_file_mb is None or keep_days is None else int(max_file_mb * 1e6)
        self._max_total_bytes = None if max_total_mb is None else int(max_total_mb * 1e6)
        self._size = 0
        self.torn = 0
        """Records cut short by a failed or short write (each skipped by readers, none glued)."""
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
        size = self._size = os.fstat(self._fd).st_size
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
        """Append one record: {"t_s", "time", "kind", **fields} (or fold it, see showlog_fold).
        Never raises while running: a field named like the record's own keys (kind, t_s, time) is
        kept as kind_, t_s_, time_."""
        now_s = self._clock.now_s()
        if self._keep_days is not None and _dt.date.today() != self._day:
            self._rotate()  # checks the date again under the lock: two writers at midnight rotate once
        with self._lock:
            if self._fd < 0:
                return
            if self._folder is None:
                records: list[Record] = [(now_s, kind, fields)]
            else:
                records = self._folder.due(now_s)
                folded = self._folder.offer(now_s, kind, fields)
                records += [(now_s, kind, fields)] if folded is None else folded
            for record in records:
                self._append(now_s, *record)
            if self._max_file_bytes is not None and self._size >= self._max_file_bytes:
                self._next_part()
        if records:
            self._dirty.set()

    def _encode(self, now_s: float, t_s: float, kind: str, fields: dict[str, Any]) -> bytes:
        when = _dt.datetime.now().astimezone() - _dt.timedelta(seconds=max(0.0, now_s - t_s))
        record = {"t_s": round(t_s, 4), "time": when.isoformat(timespec="milliseconds"), "kind": kind}
        for key, value in fields.items():
            record[f"{key}_" if key in ("t_s", "time", "kind") else key] = value
        try:
            return json.dumps(_jsonable(record), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        except (TypeError, ValueError) as exc:  # a field json cannot take even after _jsonable
            return json.dumps({"t_s": record["t_s"], "time": record["time"], "kind": "fault",
                               "worker": "showlog", "error": f"unloggable {kind} record: {exc}"}).encode() + b"\n"

    def _append(self, now_s: float, t_s: float, kind: str, fields: dict[str, Any]) -> None:
        """Under the lock: write one whole line, finishing a short write; a line cut short by an
        error makes the next one start on a fresh line."""
        data = memoryview(self._prefix + self._encode(now_s, t_s, kind, fields))
        written = 0
        try:
            while written < len(data):
                n = os.write(self._fd, data[written:])
                if n <= 0:
                    raise OSError(errno.EIO, "nothing written")
                written += n
        except OSError as exc:
            self.errors += 1
            self._size += written
            if written:
                self.torn += 1
                self._prefix = b"\n"  # the torn line ends here, unparsed; the next record stands alone
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.error("show log %s: write failed (%s); %d records lost so far", self.path, exc, self.errors)
            return
        self._size += written
        self._prefix = b""
        self.lines += 1

    def flush_folded(self) -> None:
        """Write every folded record still held (a gesture in progress): at stop and on rotation."""
        with self._lock:
            if self._fd < 0 or self._folder is None:
                return
            now_s = self._clock.now_s()
            for record in self._folder.flush():
                self._append(now_s, *record)
        self._dirty.set()

    def _write_due(self) -> None:
        """Flusher thread: folds that ended by silence (a fader at rest) are written."""
        with self._lock:
            if self._fd < 0 or self._folder is None or not self._folder.pending:
                return
            now_s = self._clock.now_s()
            for record in self._folder.due(now_s):
                self._append(now_s, *record)

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

    def _next_part(self) -> None:
        """Under the lock: the day's file passed max_file_mb; close it as the day's next part."""
        day = _dt.date.today()
        taken = {int(m.group(2) or 0) for old in self.path.parent.glob(f"{self.path.stem}-{day.isoformat()}*{self.path.suffix}")
                 if (m := self._dated(old.name)) is not None}
        part = max(taken, default=0) + 1
        self._close_as(self.path.with_name(f"{self.path.stem}-{day.isoformat()}.{part}{self.path.suffix}"), day)

    def _dated(self, name: str) -> re.Match | None:
        return re.fullmatch(rf"{re.escape(self.path.stem)}-(\d{{4}}-\d{{2}}-\d{{2}})(?:\.(\d+))?"
                            rf"{re.escape(self.path.suffix)}", name)

    def _close_as(self, dated: Path, day: _dt.date) -> None:
        """Under the lock: close the current file, rename it `dated`, open a fresh one."""
        fd, self._fd = self._fd, -1  # no write may land in a closed or reused descriptor
        try:
            os.fsync(fd)
            os.close(fd)
            os.replace(self.path, dated)
        except OSError as exc:
            self.errors += 1
            log.error("show log %s: rotation failed (%s); carrying on in the same file", self.path, exc)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:  # a full or read-only disk: lines are counted as lost until it clears
            self.errors += 1
            self._day = day  # try again on the next write
            log.error("show log %s: cannot reopen after rotation (%s)", self.path, exc)
        self._prefix = b""
        self._prune_due = True

    def _rotate(self) -> None:
        """Close the day's file under its date and start a fresh one; the fsync thread prunes."""
        self.flush_folded()  # a gesture across midnight is written into the day it was made in
        with self._lock:
            today = _dt.date.today()
            if today == self._day or self._fd < 0:
                return
            day, self._day = self._day, today
            self._close_as(self.path.with_name(f"{self.path.stem}-{day.isoformat()}{self.path.suffix}"), day)
        self._dirty.set()

    def _prune(self, oldest_kept: _dt.date) -> None:
        """Delete dated logs older than `oldest_kept`, then the oldest while over max_total_mb."""
        cutoff_s = _dt.datetime.combine(oldest_kept, _dt.time()).timestamp()
        kept = []
        for old in self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"):
            match = self._dated(old.name)
            if match is None:
                continue
            try:
                if _dt.date.fromisoformat(match.group(1)) < oldest_kept:
                    old.unlink()
                else:
                    kept.append((match.group(1), int(match.group(2) or 1 << 30), old.stat().st_size, old))
            except (ValueError, OSError) as exc:
                log.warning("show log: cannot delete %s (%s)", old, exc)
        if self._max_total_bytes is not None:
            total = sum(size for _, _, size, _ in kept)
            for _, _, size, old in sorted(kept):  # oldest day first, its parts in order
                if total <= self._max_total_bytes:
                    break
                try:
                    old.unlink()
                    total -= size
                except OSError as exc:
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
            # While a fold is held, wake up to write it when it ends (a fader came to rest).
            self._dirty.wait(self._fsync_interval_s if self._folder is not None and self._folder.pending else None)
            if self._closing.wait(self._fsync_interval_s):
                break
            self._dirty.clear()
            self._write_due()
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
        """Write what is folded, fsync and close; later writes are ignored."""
        self.flush_folded()
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
    """Records in order; lines that do not parse (a torn line) are skipped. Parsed with orjson
    where it is installed: a day's log reads several times faster."""
    loads: Callable[[bytes], Any]
    try:
        from orjson import loads
    except ImportError:  # the standard library reads the same records, slower
        loads = json.loads
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                record = loads(raw)
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
