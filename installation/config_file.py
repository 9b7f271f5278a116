"""Rewriting the config file in place while the show runs (MIDI learn), safely.

- The new text goes to a temporary `.config-*.toml` beside the real file, is fsync'd, renamed over
  it and the folder fsync'd: a power cut leaves the old file or the new one, never a torn one.
- A symlinked config.toml stays a link: the real file it points to is the one replaced.
- An edit made meanwhile by someone else (an operator's editor) is not reverted: just before the
  rename the file is compared with what was read (size, mtime, SHA-256); when it changed, the
  change is applied again to the new text, and after a few such races the save is refused.
- Temporary files a kill -9 left during a save are removed at the next start.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from installation.errors import UserError

log = logging.getLogger(__name__)

TEMP_PREFIX = ".config-"
TEMP_SUFFIX = ".toml"
ATTEMPTS = 5


class ConfigSaveConflict(UserError):
    """The file kept changing under the save: nothing was written."""


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    sha256: str


def _seen(path: Path) -> tuple[str, _Seen]:
    data = path.read_bytes()
    stat = path.stat()
    return data.decode("utf-8"), _Seen(len(data), stat.st_mtime_ns, hashlib.sha256(data).hexdigest())


def _unchanged(path: Path, seen: _Seen) -> bool:
    try:
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (seen.size, seen.mtime_ns):
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() == seen.sha256
    except OSError:
        return False


def rewrite(path: str | Path, change: Callable[[str], str]) -> Path:
    """Replace the config file's text by `change(text)`; returns the real file written.
    ConfigSaveConflict when the file changed under every one of ATTEMPTS tries."""
    real = Path(path).resolve()  # through any symlink: the link stays, its target is replaced
    for _ in range(ATTEMPTS):
        text, seen = _seen(real)
        new_text = change(text)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=real.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(new_text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, real.stat().st_mode & 0o7777)
            if not _unchanged(real, seen):  # edited meanwhile: apply the change to that edit
                Path(tmp).unlink(missing_ok=True)
                log.info("config %s changed while a save was prepared; applying the change to the new text", real)
                continue
            os.replace(tmp, real)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_folder(real.parent)
        return real
    raise ConfigSaveConflict(f"config {real} kept changing while it was being saved ({ATTEMPTS} tries); "
                             f"the change was not written: save your edit, then do it again.")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the `.config-*.toml` left beside the (real) config by a save that was killed; returns them.
    Called at start, before any save of this run."""
    real = Path(path).resolve()
    gone = []
    for stale in real.parent.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        try:
            stale.unlink()
            gone.append(stale)
        except OSError as exc:
            log.warning("cannot remove %s left by an interrupted config save (%s)", stale, exc)
    if gone:
        log.info("removed %d temporary file(s) left by an interrupted config save beside %s", len(gone), real)
    return gone
