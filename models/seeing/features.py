"""What the camera sees, as numbers the composer can use: colour, light, texture, movement, VA.

`ImageAnalyser` is owned by the watcher thread (it keeps the previous frame for motion). All
features are computed on a small copy of the frame (160 px wide), so an analysis costs a few
milliseconds and 5+ Hz is cheap on two cores.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from installation.records import ImageState, clamp_va
from models.seeing import ImageVaHead

log = logging.getLogger(__name__)

ANALYSIS_WIDTH_PX = 160
GRID = 3  # regions_motion is a GRID x GRID grid, row-major from the top left
EDGE_FRACTION_FULL = 0.2  # this fraction of edge pixels counts as edge_density 1.0
MOTION_FULL = 0.12  # this mean absolute frame difference (0-1) counts as motion 1.0
PRESENCE_MOTION = 0.15  # a region moving at least this much counts as someone there


class ColourEmotionVA:
    """Valdez & Mehrabian's (1994) colour-emotion model, from brightness and saturation,
    with edge density adding arousal. Transparent and instant; used when no head is given."""

    def estimate(self, rgb: np.ndarray) -> tuple[float, float, float]:
        import cv2
        small = _downscale(rgb)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        b = float(hsv[:, :, 2].mean()) / 255.0
        s = float(hsv[:, :, 1].mean()) / 255.0
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        edges = min(1.0, float((cv2.Canny(grey, 100, 200) > 0).mean()) / EDGE_FRACTION_FULL)
        pleasure = 0.69 * b + 0.22 * s  # 0 .. 0.91
        arousal = -0.31 * b + 0.60 * s  # -0.31 .. 0.60
        v = 2.0 * pleasure / 0.91 - 1.0
        a = 2.0 * (arousal + 0.31) / 0.91 - 1.0 + 0.6 * (edges - 0.35)
        return v, a, 0.3  # may leave [-1, 1]: the analyser bounds every head's answer


def _downscale(rgb: np.ndarray) -> np.ndarray:
    import cv2
    h, w = rgb.shape[:2]
    if w <= ANALYSIS_WIDTH_PX:
        return np.ascontiguousarray(rgb)
    size = (ANALYSIS_WIDTH_PX, max(1, int(round(h * ANALYSIS_WIDTH_PX / w))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def dominant_hues(hsv: np.ndarray, max_hues: int = 3) -> tuple[float, ...]:
    """Centres (degrees) of the strongest peaks of a saturation-and-value-weighted hue histogram.

    Grey and dark pixels carry no hue, so they are left out; a grey picture has no dominant hue.
    """
    hue = hsv[:, :, 0].astype(np.float32) * 2.0  # OpenCV stores hue as 0-179
    sat = hsv[:, :, 1].astype(np.float32) / 255.0
    val = hsv[:, :, 2].astype(np.float32) / 255.0
    weight = sat * val
    mask = (sat > 0.2) & (val > 0.15)
    if mask.mean() < 0.02:
        return ()
    hist, _ = np.histogram(hue[mask], bins=36, range=(0.0, 360.0), weights=weight[mask])
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))  # circular, so red wraps
    total = smooth.sum()
    peaks = [i for i in range(36) if smooth[i] >= smooth[i - 1] and smooth[i] >= smooth[(i + 1) % 36]
             and smooth[i] > 0.1 * total]
    peaks.sort(key=lambda i: -smooth[i])
    return tuple(float(i * 10 + 5) for i in peaks[:max_hues])


class ImageAnalyser:
    """Frame -> ImageState. Called from the watcher thread only (it remembers the previous frame)."""

    def __init__(self, image_va_head: ImageVaHead | None = None, detect_faces: bool = True,
                 comment_ttl_s: float = 120.0) -> None:
        from models.seeing.content import FaceCounter
        self.head = image_va_head if image_va_head is not None else ColourEmotionVA()
        self.detect_faces = detect_faces
        self._previous: np.ndarray | None = None
        self._faces: Any = None
        self._face_counter = FaceCounter()
        self._comment: tuple[str, float] = ("", -1e18)
        self.comment_ttl_s = comment_ttl_s
        self.stats: dict[str, Any] = {"analysed": 0, "head_failures": 0}

    def comment(self, text: str, t_s: float) -> str:
        """A visitor's words (`/comment <text>`), joined to the picture's description for
        `comment_ttl_s`. Any thread may call it (one tuple assignment). Returns the cleaned text."""
        from models.seeing.content import clean_comment
        cleaned = clean_comment(text)
        self._comment = (cleaned, float(t_s))
        return cleaned

    def reset(self) -> None:
        """Forget the previous frame (e.g. after a camera switch), so no false motion spike."""
        self._previous = None

    def analyse(self, rgb: np.ndarray, t_s: float, source: str = "") -> ImageState:
        """Features of one frame; `source` names the camera for the show log."""
        import cv2
        small = _downscale(rgb)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        brightness = float(hsv[:, :, 2].mean()) / 255.0
        saturation = float(hsv[:, :, 1].mean()) / 255.0
        contrast = min(1.0, float(grey.std()) / 128.0)
        # Hasler & Suesstrunk (2003) colourfulness; ~150 is extremely colourful.
        r, g, b = (small[:, :, i].astype(np.float32) for i in range(3))
        rg, yb = r - g, 0.5 * (r + g) - b
        colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
        edge_density = min(1.0, float((cv2.Canny(grey, 100, 200) > 0).mean()) / EDGE_FRACTION_FULL)

        blurred = cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32) / 255.0
        motion, regions = 0.0, (0.0,) * (GRID * GRID)
        if self._previous is not None and self._previous.shape == blurred.shape:
            diff = np.abs(blurred - self._previous)
            motion = min(1.0, float(diff.mean()) / MOTION_FULL)
            h, w = diff.shape
            regions = tuple(min(1.0, float(diff[h * i // GRID:h * (i + 1) // GRID, w * j // GRID:w * (j + 1) // GRID].mean())
                                / MOTION_FULL) for i in range(GRID) for j in range(GRID))
        self._previous = blurred
        from models.seeing.content import content, describe
        faces = self._face_counter.count(rgb, t_s) if self.detect_faces else 0
        moving = sum(1 for r in regions if r >= PRESENCE_MOTION)
        presence = moving > 0 or faces > 0
        people = max(faces, 1 if moving else 0)
        features = content(small, faces=faces)
        features["people"] = float(people)

        try:
            valence, arousal, confidence = self.head.estimate(rgb)
        except Exception:  # a failing head must not stop the music: neutral, zero confidence
            log.exception("image VA head failed")
            self.stats["head_failures"] += 1
            valence, arousal, confidence = 0.0, 0.0, 0.0
        valence, arousal = clamp_va(valence, arousal)
        labels: tuple[str, ...] = ()
        if hasattr(self.head, "labels"):
            try:
                labels = tuple(self.head.labels(rgb))
            except Exception:
                log.exception("zero-shot labels failed")
        text, said_s = self._comment
        text = text if t_s - said_s <= self.comment_ttl_s else ""
        hues = dominant_hues(hsv)
        description = describe(valence, arousal, brightness, saturation, contrast, features, hues, motion, people,
                               labels, text)
        self.stats["analysed"] += 1
        return ImageState(t_s=float(t_s), valence=valence, arousal=arousal,
                          va_confidence=float(np.clip(np.nan_to_num(confidence), 0.0, 1.0)),
                          brightness=brightness, saturation=saturation, contrast=contrast,
                          colourfulness=min(1.0, colourfulness / 150.0), edge_density=edge_density,
                          motion=motion, dominant_hues_deg=hues, regions_motion=regions,
                          presence=bool(presence), source=source, content=features, description=description,
                          comment=text)
