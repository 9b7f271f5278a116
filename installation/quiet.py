"""Third-party noise off the console: Python warnings go to the log at DEBUG, and the model
libraries' progress bars are switched off, so the status block is the only thing that moves.

pydub warns about a missing ffmpeg (with the venv's path) at every start, and transformers draws a
"Loading weights" bar while the sentence model loads; neither is anything an operator can act on.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

log = logging.getLogger("py.warnings")


def _warning_to_log(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning`'s documented replacement point: one DEBUG log line instead of stderr."""
    log.debug("%s", warnings.formatwarning(message, category, filename, lineno, line).strip())


def quiet_third_parties() -> None:
    """Call once, before the models load. Settings already in the environment win."""
    warnings.showwarning = _warning_to_log
    # Read by huggingface_hub (and by transformers through it) and by tqdm when they are imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if "huggingface_hub" in sys.modules:  # imported already: the environment was read before this
        from huggingface_hub.utils import disable_progress_bars
        disable_progress_bars()
    if "transformers" in sys.modules:
        route_transformers_logging()


def route_transformers_logging() -> None:
    """transformers prints through a handler of its own; send its records to ours instead, bars off."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
