"""Sub-commands of this room (see installation/commands/__init__.py)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    pass
