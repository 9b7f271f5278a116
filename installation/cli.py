"""Argument parsing and dispatch. Start-up user errors end here as one line and exit code 2."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from installation.errors import UserError
from installation.startup import config_options, load

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def build_parser() -> argparse.ArgumentParser:
    common = config_options()
    parser = argparse.ArgumentParser(
        prog="run.py", parents=[common],
        description="Chromesthesia: music becomes pictures, pictures become music. "
                    "With no command, runs the installation.")
    parser.add_argument("--scene", help="scene preset to start with (scenes/presets/NAME.toml)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--headless", action="store_true", help="no window, even if a display exists")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="write DIR/visuals.mp4, DIR/frames.csv (each frame's time and change), DIR/midi.mid "
                             "and DIR/show.jsonl")
    parser.add_argument("--quiet", action="store_true", help="plain log lines instead of the status line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", parents=[common], help="validate config and say whether the installation can start")
    check.set_defaults(handler=_check)
    devices = sub.add_parser("devices", parents=[common], help="list audio, camera, MIDI and display devices")
    devices.set_defaults(handler=_devices)
    analyze = sub.add_parser("analyze", parents=[common], help="analyse audio files (VA, tempo, key) or images (VA)")
    analyze.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze.add_argument("--json", action="store_true", help="print JSON instead of a table")
    analyze.set_defaults(handler=_analyze)

    groups = {}
    for name, text in (("bench", "benchmarks that report figures"), ("eval", "evaluations against labels"),
                       ("train", "fit heads on your own annotated data")):
        group = sub.add_parser(name, help=text)
        groups[name] = group.add_subparsers(dest=f"{name}_target", metavar="TARGET", required=True)
    from installation.commands import MODULES
    for module_name in MODULES:
        importlib.import_module(f"installation.commands.{module_name}").register(sub, groups)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed arguments; --config and --set apply wherever they stand, before or after the command
    (a command's own parser would otherwise put back its empty defaults over what was parsed)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    anywhere = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    anywhere.add_argument("--config", type=Path, default=None)
    anywhere.add_argument("--set", dest="overrides", action="append", default=[])
    known, _ = anywhere.parse_known_args(argv)
    if known.config is not None:
        args.config = known.config
    if hasattr(args, "overrides"):
        args.overrides = known.overrides
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            from installation.startup import run_installation
            return run_installation(args)
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _check(args: argparse.Namespace) -> int:
    from installation.check import check
    if getattr(args, "scene", None):  # `run.py --scene NAME check`: the scene the run would start with
        args.overrides = [*args.overrides, f'installation.scene="{args.scene}"']
    return check(load(args))


def _devices(args: argparse.Namespace) -> int:
    from installation.check import list_devices
    return list_devices(load(args))


def _analyze(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file():
            raise UserError(f"{path} does not exist or is not a file; give paths to audio or image files.")
    images = [p for p in args.files if p.suffix.lower() in IMAGE_SUFFIXES]
    audio = [p for p in args.files if p.suffix.lower() not in IMAGE_SUFFIXES]
    cfg = load(args)
    code = 0
    if audio:
        from installation.commands import listen
        code = max(code, listen.analyze_audio(audio, args.json, cfg))
    if images:
        from installation.commands import visuals
        code = max(code, visuals.analyze_images(images, args.json, cfg))
    return code
