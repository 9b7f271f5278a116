#!/usr/bin/env python3
"""Chromesthesia command line: `python run.py --help`."""
import sys

from installation.cli import main

if __name__ == "__main__":
    sys.exit(main())
