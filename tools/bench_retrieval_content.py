"""Content meets content: on photographs, do retrieved tunes share what the picture shows?

For each photograph: the live analyser's description and VA (models.seeing.features.ImageAnalyser),
the composer's first phrase (its metre and mode class, and the tune it sings, twice with different
seeds), then the best TOP tunes of the index in that metre and mode class for the full description
and for the mood-only description (mood, light and colour words: no content), both with the configured
`compose.content_weight`. Prints, per picture and in total, the share of those tunes whose description
carries a theme of what the picture shows (models.evaluation.content_match), and the mean VA distance
of the tunes the composer sings (the mood fit). Offline; about a minute on 2 cores.

Usage: python tools/bench_retrieval_content.py DIR [DIR ...] [--skimage NAME ...] [--top 10] [--labels FILE.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import cv2
    import numpy as np
    import skimage.data

    from installation.config import ComposeConfig
    from models.composing.composer import Composer
    from models.composing.index import load_index
    from models.evaluation.content_match import content_share, mood_only, picture_themes
    from models.seeing.content import mood_words
    from models.seeing.features import ImageAnalyser
    from scenes.scene import load_scene

    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", nargs="*", type=Path)
    parser.add_argument("--skimage", nargs="*", default=[])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--labels", type=Path, help="JSON: picture name -> the tune themes a person sees in it; "
                        "scored against those instead of the analyser's own themes")
    args = parser.parse_args()
    labels: dict[str, set[str]] | None = None
    if args.labels:
        import json
        labels = {k: set(v) for k, v in json.loads(args.labels.read_text()).items() if not k.startswith("_")}
    pictures: list[tuple[str, np.ndarray]] = []
    for folder in args.dirs:
        for path in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
            bgr = cv2.imread(str(path))
            if bgr is not None:
                pictures.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    for name in args.skimage:
        rgb = getattr(skimage.data, name)()
        pictures.append((name, np.repeat(rgb[:, :, None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]))
    index = load_index()
    settings = ComposeConfig().settings()
    totals = {"content": [], "mood": []}
    same = 0
    va_distances = []
    rows = []
    print(f"{'picture':14s} {'V':>5s} {'A':>5s} {'metre':5s} {'seen themes':40s} content  mood-only  tune")
    for name, rgb in pictures:
        state = ImageAnalyser().analyse(rgb, 0.0)
        tunes = []
        for seed in (0, 7):
            composer = Composer(settings, load_scene("nocturne"), seed=seed)
            plan = composer.plan(state, 0.0)
            tunes.append(composer.last_retrieved.source if composer.last_retrieved else "")
        if composer.last_retrieved:
            va_distances.append(composer.last_retrieved.va_distance)
        same += tunes[0] == tunes[1] != ""
        from models.composing.theory import MODE_CLASS
        mode_class = MODE_CLASS[plan.mode]
        themes = picture_themes(state.description) if labels is None else labels.get(name, set())
        weight = settings.content_weight
        full = index.rank(state.description, state.va, mode_class, plan.metre, top=args.top, content_weight=weight)
        bare = index.rank(mood_only(state.description), state.va, mode_class, plan.metre, top=args.top,
                          content_weight=weight)
        c, m = content_share([r.description for r in full], themes), content_share([r.description for r in bare], themes)
        rows.append((name, mood_words(state.valence, state.arousal), themes, [r.description for r in full],
                     [r.description for r in bare]))
        if themes:
            totals["content"].append(c)
            totals["mood"].append(m)
        print(f"{name:14s} {state.valence:+.2f} {state.arousal:+.2f} {plan.metre:5s} {','.join(sorted(themes))[:40]:40s} "
              f"{c:6.2f}  {m:8.2f}   {tunes[0]}{'' if tunes[0] == tunes[1] else ' (other seed: ' + tunes[1] + ')'}")
    n = len(totals["content"])
    mc, mm = (float(np.mean(totals[k])) if n else 0.0 for k in ("content", "mood"))
    print(f"\n{len(pictures)} pictures; same tune with two seeds: {same} of {len(pictures)}; mean VA distance "
          f"of the tunes sung {float(np.mean(va_distances)) if va_distances else float('nan'):.3f} "
          f"(content_weight {settings.content_weight})")
    seen_by = "the analyser's themes" if labels is None else f"themes from {args.labels.name}"
    print(f"scored against {seen_by}")
    print(f"share of the top {args.top} tunes carrying a theme of what is seen ({n} pictures that show something): "
          f"full description {mc:.3f}, mood-only {mm:.3f}, ratio {mc / mm if mm else float('inf'):.2f}")
    # Pairs of the same mood (one cell of the 3 x 3 grid) that show different things: each side's
    # own themes (those the other lacks) in its tunes, full description against mood-only.
    pair_full, pair_bare = [], []
    print("\nsame-mood pairs (own themes: full / mood-only)")
    for i, (a, mood_a, themes_a, full_a, bare_a) in enumerate(rows):
        for b, mood_b, themes_b, full_b, bare_b in rows[i + 1:]:
            own_a, own_b = themes_a - themes_b, themes_b - themes_a
            if mood_a != mood_b or not own_a or not own_b:
                continue
            fa, ba = content_share(full_a, own_a), content_share(bare_a, own_a)
            fb, bb = content_share(full_b, own_b), content_share(bare_b, own_b)
            pair_full += [fa, fb]
            pair_bare += [ba, bb]
            print(f"  {a} ({','.join(sorted(own_a))}) {fa:.2f} / {ba:.2f}   {b} ({','.join(sorted(own_b))}) {fb:.2f} / {bb:.2f}")
    if pair_full:
        pf, pb = float(np.mean(pair_full)), float(np.mean(pair_bare))
        print(f"{len(pair_full) // 2} pairs: own content in the top {args.top}: full description {pf:.3f}, mood-only {pb:.3f}, "
              f"ratio {pf / pb if pb else float('inf'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
