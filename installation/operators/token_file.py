"""The dashboard's token when `web.token = ""`: made once, kept in a file of the operator's alone.

A new token on every start would log out every open dashboard at each restart (daily restarts,
config edits, the watchdog). The file lies beside the config (`.chromesthesia-web-token`), or, with
no config file, in $XDG_STATE_HOME/chromesthesia/ (~/.local/state); it is created with mode 0600 and
read again at each start. Delete it to get a new token.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from installation.errors import UserError

FILE_NAME = ".chromesthesia-web-token"


def token_path(config_path: Path | None) -> Path:
    if config_path is not None:
        return Path(config_path).resolve().parent / FILE_NAME
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "chromesthesia" / FILE_NAME.lstrip(".")


def persistent_token(config_path: Path | None) -> tuple[str, Path]:
    """The kept token and its file (made now, 0600, when there is none)."""
    path = token_path(config_path)
    try:
        token = path.read_text(encoding="ascii").strip()
        if token:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)  # someone widened it: only the operator reads a token
            return token, path
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"the dashboard's token file {path} cannot be read ({exc}); fix its permissions, "
                        f"delete it for a new token, or set web.token.") from None
    token = secrets.token_urlsafe(16)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise UserError(f"cannot keep the dashboard's token in {path} ({exc}); set web.token instead.") from None
    return token, path
