"""Start-up: load the config (with the last-good fallback), set up logging, run, restart in place.

cli.py parses and dispatches; commands read their config through `load`. This module imports
installation.app only inside `run_installation`, and nothing here is imported by app.py, so
there is no circle.

Across an in-place restart (`os.execv`, same pid) three things travel in the environment:
the config text a reload validated (LAST_GOOD_ENV), the original --duration deadline on the
wall clock (DEADLINE_ENV) and the number of in-place restarts so far (RESTARTS_ENV).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from installation.errors import UserError

log = logging.getLogger("chromesthesia")

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
LAST_GOOD_ENV = "CHROMESTHESIA_LAST_GOOD_CONFIG"
"""Set across an in-place restart: the path of the config text the reload validated."""
DEADLINE_ENV = "CHROMESTHESIA_DEADLINE_EPOCH_S"
"""Set across an in-place restart: when --duration ends, in seconds since the epoch."""
COUNTS_ENV = "CHROMESTHESIA_CARRIED_COUNTS"
"""Set across an in-place restart: JSON of the counts so far (restarts_in_place, failures, restarts)."""


def config_options() -> argparse.ArgumentParser:
    """--config and --set: the options of every command that reads the config."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE",
                        help="installation config (default: config.toml beside run.py)")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help='override one config key, e.g. --set audio.device="USB" (repeatable)')
    return common


def load(args: argparse.Namespace):
    """The validated config for these arguments; the one place commands read it.

    After an in-place restart for a config edit, a file saved again badly in the meantime must
    not end the show: the text validated before the restart is used, and the error is logged.
    """
    from installation.config import ConfigError, load_config
    path = args.config
    if path == DEFAULT_CONFIG and not path.exists():
        path = None
    last_good = os.environ.pop(LAST_GOOD_ENV, None)
    try:
        cfg = load_config(path, args.overrides)
    except ConfigError as exc:
        if last_good is None or not Path(last_good).is_file():
            raise
        log.error("%s; running the version validated before the restart until the file is fixed", exc)
        cfg = load_config(Path(last_good), args.overrides)
    finally:
        if last_good is not None:
            Path(last_good).unlink(missing_ok=True)
    from installation.showlog.redact import remember
    remember(cfg)  # its secrets are masked in every log line from now on
    return cfg


def setup_logging(level: str = "info", quiet: bool = False) -> None:
    """Rich log lines on a terminal, plain timestamped lines otherwise (systemd, CI, --quiet)."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if not quiet and sys.stderr.isatty():
        from rich.logging import RichHandler

        from installation.status import terminal_console
        handler = RichHandler(console=terminal_console(), show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(threadName)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    # Libraries that announce each model file they load (and torch its compile caches' statistics
    # at exit): nothing an operator acts on.
    for noisy in ("numba", "PIL", "matplotlib", "urllib3", "httpx", "sentence_transformers", "transformers",
                  "huggingface_hub", "diffusers", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def inherited_duration_s(duration_s: float | None, environ=os.environ) -> float | None:
    """--duration left to run: the whole of it on a first start, what remains of the original
    deadline after an in-place restart (never less than a moment, so the show stops cleanly)."""
    deadline = environ.get(DEADLINE_ENV)
    if duration_s is None or deadline is None:
        return duration_s
    try:
        return max(0.1, float(deadline) - time.time())
    except ValueError:
        return duration_s


def inherited_counts(environ=os.environ) -> dict[str, int]:
    """Counts of the parts of this show before an in-place restart (all 0 on a first start)."""
    import json
    counts = {"restarts_in_place": 0, "failures": 0, "restarts": 0}
    try:
        carried = json.loads(environ.get(COUNTS_ENV, "{}"))
    except ValueError:
        return counts
    if isinstance(carried, dict):
        for key in counts:
            value = carried.get(key)
            if isinstance(value, int) and value >= 0:
                counts[key] = value
    return counts


def run_installation(args: argparse.Namespace) -> int:
    from installation.quiet import quiet_third_parties
    quiet_third_parties()  # before anything imports pydub or a model library
    from installation.showlog.crash_stacks import CrashStacks, log_folder
    crash_stacks = CrashStacks()
    crash_stacks.enable()  # from the first moment: a crash while the config loads still leaves its stack
    overrides = list(args.overrides)
    if args.scene:
        overrides.append(f'installation.scene="{args.scene}"')
    args.overrides = overrides
    from installation.status import StatusLine
    cfg = load(args)
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration {args.duration} must be a positive number of seconds.")
    from installation.preflight import refuse_start
    refuse_start(cfg)  # what `check` says, in the same words, before anything opens
    # After the config is read (fast), so a bad config is answered by its one sentence alone.
    StatusLine(quiet=args.quiet).starting("starting Chromesthesia: loading models, opening devices")
    duration_s = inherited_duration_s(args.duration)
    if args.duration is not None and DEADLINE_ENV not in os.environ:
        os.environ[DEADLINE_ENV] = repr(time.time() + args.duration)
    record_dir = args.record or (Path(cfg.record.dir) if cfg.record.dir else None)
    if record_dir is not None:
        try:
            record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the record folder {record_dir} ({exc.strerror}); choose another --record DIR.") from None
    setup_logging(cfg.installation.log_level, quiet=args.quiet)
    crash_stacks.enable(log_folder(record_dir, cfg.showlog.path))
    from installation.show.heap import fix_mmap_threshold, limit_arenas
    limit_arenas(2)  # before the stages' threads start: months of load spikes must not add arenas
    fix_mmap_threshold()  # before the show allocates: the heap does not step up minutes into it
    from installation.app import Installation, RunOptions
    config_path = args.config if args.config.exists() else None
    options = RunOptions(duration_s, record_dir, args.headless, args.quiet, config_path, overrides,
                         carried=inherited_counts())
    installation = Installation(cfg, options)

    def on_signal(signum, _frame) -> None:
        installation.lifecycle.exit_action = ""  # a stop asked for during a restart wins over the restart
        installation.request_stop(signal.Signals(signum).name)

    # SIGHUP (the ssh session that started the show closed) stops like SIGTERM: notes off, files closed.
    for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, on_signal)
    code = installation.run()
    life = installation.lifecycle
    if life.exit_action == "restart":
        if life.validated_config_text is not None:
            import tempfile
            fd, last_good = tempfile.mkstemp(prefix="chromesthesia-last-good-", suffix=".toml")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(life.validated_config_text)
            os.environ[LAST_GOOD_ENV] = last_good
        import json
        counts = installation.counts()
        counts["restarts_in_place"] += 1
        os.environ[COUNTS_ENV] = json.dumps(counts)
        crash_stacks.close()  # its copier would outlive the exec
        restart_in_place(life.stop_reason)
    if any(worker.alive() for worker in installation.supervisor.workers):
        leave_now(code)
    return leave(code)


def leave(code: int) -> int:
    """The exit code for a normal exit, after PortAudio is released within a second; when it
    cannot be (its JACK server died under it), the process leaves now instead of hanging in it."""
    import gc

    from hardware.sound.audio_in import release_portaudio
    if not release_portaudio():
        leave_now(code)
    # The interpreter's exit ends with a garbage collection over every object still alive (the
    # corpus, the models, numba's caches): 2-3 s of the stop on two loaded cores, after the show
    # has closed everything. Frozen objects are left out of it; atexit handlers still run.
    gc.freeze()
    return code


def leave_now(code: int) -> None:
    """End the process without the interpreter's exit: a stage abandoned inside a library call
    (a first frame, a device open) would see that library's C++ destructors run under it, which
    aborts the process (std::terminate). Everything else has stopped and its files are closed."""
    log.info("a stage or a device is still inside a library call; leaving without waiting for it")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def restart_in_place(reason: str) -> None:
    """A clean restart: the same process id (what systemd tracks) runs the same command again,
    on the configuration as it is now. Called after everything has stopped."""
    log.info("restarting: %s", reason)
    logging.shutdown()
    if hasattr(os, "sched_setscheduler"):  # a real-time policy would survive exec into every new thread
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
    # Descriptors a C library opened without close-on-exec (a camera, a sound card) would keep
    # the device busy in the new process.
    os.closerange(3, 65536)
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    os.execv(sys.executable, [sys.executable, *argv[1:]])
