"""What a picture shows beyond its colours, offline, and the words the composer searches with.

`content(rgb)` measures, on a 160 px copy of the frame (a few milliseconds):
  - texture: fine detail energy (mean absolute Laplacian), 0 smooth .. 1 busy;
  - edge orientation: shares of gradient energy in horizontal, vertical and diagonal edges;
  - horizon: the row where the smoothed brightness profile changes most (0 top .. 1 bottom), its
    strength, and openness (a smooth, wide upper part over a horizon: sky, sea, plain);
  - sky, water and vegetation shares: colour and texture rules by position (blue or pale and smooth
    above the horizon is sky; blue or cyan and smooth below is water; green and textured is plants);
    storm: dark, grey, uneven upper part;
  - faces: scikit-image's LBP frontal-face cascade (the file is OpenCV's lbpcascade_frontalface,
    shipped inside scikit-image; OpenCV 5's main build has no cascade classifier any more).
`people` and `motion` come from the analyser (faces plus moving regions).

`describe(...)` turns numbers, the picture's VA, optional zero-shot CLIP labels and a visitor's
comment into one sentence, the query the corpus index searches with (models/composing/index.py).
Called from the camera watcher thread.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)

WIDTH_PX = 160
CONTENT_KEYS = ("texture", "edges_horizontal", "edges_vertical", "edges_diagonal", "horizon_y", "horizon_strength",
                "openness", "sky", "water", "vegetation", "storm", "faces")
TEXTURE_FULL = 0.5
"""Mean absolute Laplacian (0-1 grey) that counts as texture 1.0."""
COMMENT_MAX_CHARS = 200
HUE_NAMES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"),
             (290, "violet"), (335, "magenta"), (360, "red"))

SCENE_WORDS = ("a stormy sky", "a calm sea", "a sunny beach", "a forest", "a meadow with flowers", "mountains",
               "a desert", "a city at night", "a city street", "a portrait of a person", "a crowd of people",
               "an interior room", "a night sky with stars", "a sunset", "snow and ice", "a garden",
               "abstract shapes", "food on a table", "an animal", "a machine")
MOOD_WORDS = ("joyful", "peaceful", "melancholic", "tense", "mysterious", "dramatic", "playful", "lonely",
              "majestic", "warm", "cold", "dreamy")
"""The zero-shot vocabulary: scene and mood words a CLIP model picks from (with user weights)."""


def hue_name(hue_deg: float) -> str:
    """The colour word for a hue in degrees (red at 0 and 360)."""
    return next(name for limit, name in HUE_NAMES if hue_deg % 360 < limit)

def _small(rgb: np.ndarray) -> np.ndarray:
    import cv2
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    rgb = np.ascontiguousarray(rgb[..., :3])
    if rgb.dtype != np.uint8:
        rgb = (np.clip(np.nan_to_num(rgb.astype(np.float32)), 0, 1) * 255).astype(np.uint8)
    h, w = rgb.shape[:2]
    if w > WIDTH_PX:
        rgb = cv2.resize(rgb, (WIDTH_PX, max(1, round(h * WIDTH_PX / w))), interpolation=cv2.INTER_AREA)
    return rgb


def content(rgb: np.ndarray, faces: int | None = None) -> dict[str, float]:
    """Content descriptors of one RGB picture (keys `CONTENT_KEYS`), each in [0, 1] except `faces`
    (a count). `faces` is passed in when the caller counted them already (face search is slower)."""
    import cv2
    small = _small(rgb)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    hue, sat, val = hsv[..., 0] * 2.0, hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    h, w = grey.shape
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    texture = float(min(1.0, lap.mean() / TEXTURE_FULL))
    local_texture = cv2.blur(lap, (9, 9)) / TEXTURE_FULL

    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    angle = (np.degrees(np.arctan2(gy, gx)) + 180.0) % 180.0  # gradient direction; the edge is across it
    total = float(mag.sum()) + 1e-9
    horizontal_edges = float(mag[(angle > 67.5) & (angle < 112.5)].sum()) / total  # vertical gradient
    vertical_edges = float(mag[(angle < 22.5) | (angle > 157.5)].sum()) / total
    diagonal_edges = max(0.0, 1.0 - horizontal_edges - vertical_edges)

    profile = cv2.GaussianBlur(grey.mean(axis=1).reshape(-1, 1), (1, 0), sigmaX=0, sigmaY=max(1.0, h / 40))[:, 0]
    rows_mag = np.abs(gy).mean(axis=1)
    margin = max(1, h // 10)
    score = rows_mag[margin:h - margin] + np.abs(np.gradient(profile))[margin:h - margin]
    if score.size:
        row = int(np.argmax(score)) + margin
        strength = float(min(1.0, score.max() / (3.0 * score.mean() + 1e-6)))
    else:
        row, strength = h // 2, 0.0
    horizon_y = row / max(1, h - 1)
    above = slice(0, max(1, row))
    upper_smooth = float((local_texture[above] < 0.35).mean())
    openness = float(np.clip(upper_smooth * (0.4 + 0.6 * strength) * (0.5 + horizon_y), 0.0, 1.0))

    rows = np.arange(h, dtype=np.float32)[:, None] / max(1, h - 1)
    upper = np.broadcast_to(rows < max(horizon_y, 0.25), (h, w))
    lower = ~upper
    smooth = local_texture < 0.5
    blue = (hue >= 180) & (hue <= 250) & (sat > 0.15) & (val > 0.25)
    pale = (sat < 0.15) & (val > 0.6)
    sky = float((upper & smooth & (blue | pale)).mean())
    water = float((lower & smooth & blue | lower & (hue >= 170) & (hue < 200) & (sat > 0.2) & (val > 0.2)).mean())
    vegetation = float(((hue >= 65) & (hue <= 160) & (sat > 0.2) & (val > 0.12) & ~smooth).mean()
                       + 0.5 * ((hue >= 65) & (hue <= 160) & (sat > 0.25) & (val > 0.12) & smooth).mean())
    # Storm: the upper part dark and grey (not black: that is night) with coarse light-dark structure.
    top_rows = max(1, int(h * max(horizon_y, 0.4)))
    dark_grey = (val[:top_rows] > 0.06) & (val[:top_rows] < 0.45) & (sat[:top_rows] < 0.55)
    coarse = cv2.GaussianBlur(grey, (0, 0), max(1.0, w / 30))[:top_rows]
    unevenness = float(np.clip(coarse.std() / 0.08, 0.0, 1.0))
    storm = float(dark_grey.mean()) * (0.3 + 0.7 * unevenness)
    return {"texture": texture, "edges_horizontal": horizontal_edges, "edges_vertical": vertical_edges,
            "edges_diagonal": diagonal_edges, "horizon_y": horizon_y, "horizon_strength": strength,
            "openness": openness, "sky": min(1.0, sky), "water": min(1.0, water),
            "vegetation": min(1.0, vegetation), "storm": float(storm), "faces": float(faces or 0)}


class FaceCounter:
    """Frontal faces with the LBP cascade scikit-image ships (OpenCV's lbpcascade_frontalface).

    Owned by one thread. About 0.1-0.5 s on a 160 px frame, so the analyser runs it at most every
    `every_s` and reuses the count in between."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._cascade: Any = None  # skimage.feature.Cascade once loaded; skimage is untyped
        self._last_t_s = -1e9
        self._count = 0
        self.available = True

    def count(self, rgb: np.ndarray, t_s: float | None = None) -> int:
        if not self.available:
            return 0
        if t_s is not None and t_s - self._last_t_s < self.every_s:
            return self._count
        try:
            if self._cascade is None:
                import skimage.data
                from skimage.feature import Cascade
                self._cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())
            import cv2
            grey = cv2.cvtColor(_small(rgb), cv2.COLOR_RGB2GRAY)
            side = min(grey.shape)
            found = self._cascade.detect_multi_scale(img=grey, scale_factor=1.25, step_ratio=1.5,
                                                     min_size=(16, 16), max_size=(side, side))
        except Exception:  # a missing data file or an odd frame must not stop the watcher
            log.exception("face search failed; faces are left out from now on")
            self.available = False
            return 0
        self._count = len(found)
        if t_s is not None:
            self._last_t_s = t_s
        return self._count


def clean_comment(text: str) -> str:
    """A visitor's words, made safe to put in a query: printable, one line, at most 200 characters."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(text.split())[:COMMENT_MAX_CHARS]


def _level(x: float, words: tuple[str, str, str]) -> str:
    return words[0] if x < -0.33 else (words[2] if x > 0.33 else words[1])


MOODS = {(-1, -1): "sad, gloomy, slow", (-1, 0): "melancholic, sombre", (-1, 1): "tense, dramatic, stormy",
         (0, -1): "quiet, still, gentle", (0, 0): "steady, plain", (0, 1): "busy, restless, driving",
         (1, -1): "calm, peaceful, tender", (1, 0): "warm, bright, cheerful", (1, 1): "joyful, lively, dancing"}
"""Mood words on a 3 x 3 valence-arousal grid, shared by pictures and tunes so their texts meet."""


SEEN_CONTENT = ("a stormy, clouded sky", "open sky", "water, a sea, a lake or a river", "trees and plants",
                "a wide open view of land, hills or sea", "a person", "people",
                "upright lines like buildings or trunks")
"""The phrases of `describe` that name a thing seen (not a texture, a line, a colour or movement)."""


def content_phrases(description: str) -> tuple[str, ...]:
    """What a description (`describe`) says is seen, as separate phrases for retrieval: its content
    phrases (SEEN_CONTENT), the zero-shot labels and a visitor's comment; () for a mood-only text."""
    if " picture of " not in description:
        return ()
    seen, _, comment = description.split(" picture of ", 1)[1].partition(". A visitor says: ")
    seen, _, labels = seen.partition("; it looks like ")
    found = [p for p in SEEN_CONTENT if p in seen]
    found += [label.strip(" .") for label in labels.split(", ") if label.strip(" .")]
    if comment.strip(" ."):
        found.append(comment.strip(" ."))
    return tuple(found)


def mood_words(valence: float, arousal: float) -> str:
    def third(x: float) -> int:
        return -1 if x < -0.33 else (1 if x > 0.33 else 0)
    return MOODS[(third(valence), third(arousal))]


def describe(valence: float, arousal: float, brightness: float, saturation: float, contrast: float,
             features: Mapping[str, float], hues: tuple[float, ...] = (), motion: float = 0.0, people: int = 0,
             labels: tuple[str, ...] = (), comment: str = "") -> str:
    """One sentence about the picture for text retrieval: mood words first, then what is seen."""
    words = [mood_words(valence, arousal)]
    words.append(_level(2 * brightness - 1, ("dark", "half-lit", "bright")))
    if contrast > 0.28:
        words.append("high-contrast")
    words.append(_level(3 * saturation - 1, ("grey", "muted", "vivid")))
    seen = []
    f = features
    if f.get("storm", 0) > 0.45 and f.get("vegetation", 0) < 0.2:
        seen.append("a stormy, clouded sky")
    elif f.get("sky", 0) > 0.15:
        seen.append("open sky")
    if f.get("water", 0) > 0.12:
        seen.append("water, a sea, a lake or a river")
    if f.get("vegetation", 0) > 0.15:
        seen.append("trees and plants")
    if f.get("openness", 0) > 0.5:
        low = " with a low horizon" if f.get("horizon_y", 0.5) > 0.6 else ""
        seen.append("a wide open view of land, hills or sea" + low)
    if f.get("faces", 0) >= 1 or people:
        n = max(int(f.get("faces", 0)), people)
        seen.append("a person" if n == 1 else "people")
    if f.get("edges_vertical", 0) > 0.45:
        seen.append("upright lines like buildings or trunks")
    elif f.get("edges_horizontal", 0) > 0.45:
        seen.append("level, horizontal lines")
    elif f.get("edges_diagonal", 0) > 0.45:
        seen.append("slanting, diagonal lines")
    seen.append("fine, busy texture" if f.get("texture", 0) > 0.6 else
                ("smooth surfaces" if f.get("texture", 0) < 0.2 else "some texture"))
    if motion > 0.3:
        seen.append("things moving fast")
    elif motion > 0.05:
        seen.append("gentle movement")
    if hues:
        seen.append(hue_name(hues[0]) + " colours")
    text = f"A {', '.join(words)} picture of " + ", ".join(seen)
    if labels:
        text += "; it looks like " + ", ".join(labels)
    comment = clean_comment(comment)
    if comment:
        text += f". A visitor says: {comment}"
    return text + "."
