"""Image valence-arousal heads: a transparent colour model and a CLIP head.

Both take an RGB uint8 array (H, W, 3) and return (valence, arousal, confidence), VA in [-1, 1].
Called from the camera watcher thread and from the caption critic on projected frames; each
instance belongs to one thread.

The colour head follows Valdez & Mehrabian (1994), "Effects of color on emotions": on standardised
brightness B and saturation S, pleasure = 0.69 B + 0.22 S and arousal = -0.31 B + 0.60 S. Colourfulness
(Hasler & Suesstrunk 2003) and luminance contrast add to both, as busier, more contrasted pictures
read as more aroused. Brightness is CIE L*, saturation CIE chroma C*, both / 100.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from installation.errors import UserError
from installation.records import clamp_va
from models.seeing.settings import WatchSettings

# Means and standard deviations of the per-image statistics over the photographs scikit-image ships
# (astronaut, chelsea, coffee, rocket, hubble, ...): they turn raw values into the standardised
# units the Valdez-Mehrabian coefficients expect.
BRIGHTNESS_MEAN, BRIGHTNESS_SD = 0.45, 0.20
CHROMA_MEAN, CHROMA_SD = 0.25, 0.15
COLOURFULNESS_MEAN, COLOURFULNESS_SD = 0.25, 0.14
CONTRAST_MEAN, CONTRAST_SD = 0.19, 0.07

PLEASURE_FROM = {"brightness": 0.69, "saturation": 0.22, "colourfulness": 0.10, "contrast": 0.0}
AROUSAL_FROM = {"brightness": -0.31, "saturation": 0.60, "colourfulness": 0.15, "contrast": 0.15}
VA_GAIN = 0.8
"""Standardised pleasure/arousal -> [-1, 1] through tanh(VA_GAIN * x): a 2-sd picture reads ~0.9."""

ANALYSIS_SIDE_PX = 128
"""Pictures are reduced to this long side first: VA of colour statistics does not need more."""


@dataclass(frozen=True, slots=True)
class ColourFeatures:
    """Colour statistics of one picture, each roughly in [0, 1]."""

    brightness: float
    saturation: float
    colourfulness: float
    contrast: float
    clipped_fraction: float
    """Share of pixels that are near black or near white, where colour says little."""
    light_range: float = 0.0
    """Lightness between the 2nd and 98th percentile: dark pictures with bright breaks score high."""


def _as_rgb_float(rgb: np.ndarray, side_px: int = ANALYSIS_SIDE_PX) -> np.ndarray:
    import cv2

    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.size == 0:
        raise ValueError(f"expected an RGB array (H, W, 3), got {getattr(rgb, 'shape', type(rgb))}")
    rgb = rgb[..., :3]
    h, w = rgb.shape[:2]
    scale = side_px / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(np.ascontiguousarray(rgb), (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * (1.0 / 255.0)
    return np.clip(np.nan_to_num(rgb.astype(np.float32)), 0.0, 1.0)


def colour_features(rgb: np.ndarray) -> ColourFeatures:
    """Brightness (L*), saturation (chroma), colourfulness and contrast of an RGB picture."""
    import cv2

    f = _as_rgb_float(rgb)
    lab = cv2.cvtColor(f, cv2.COLOR_RGB2Lab)
    lightness = lab[..., 0] * 0.01
    chroma = np.hypot(lab[..., 1], lab[..., 2]) * 0.01
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    clipped = float(np.mean((lightness < 0.03) | (lightness > 0.97)))
    low, high = np.percentile(lightness, (2, 98))
    return ColourFeatures(brightness=float(lightness.mean()), saturation=float(chroma.mean()),
                          colourfulness=colourfulness, contrast=float(lightness.std()), clipped_fraction=clipped,
                          light_range=float(high - low))


def standardised(features: ColourFeatures) -> dict[str, float]:
    return {"brightness": (features.brightness - BRIGHTNESS_MEAN) / BRIGHTNESS_SD,
            "saturation": (features.saturation - CHROMA_MEAN) / CHROMA_SD,
            "colourfulness": (features.colourfulness - COLOURFULNESS_MEAN) / COLOURFULNESS_SD,
            "contrast": (features.contrast - CONTRAST_MEAN) / CONTRAST_SD}


TENSION_AROUSAL, TENSION_PLEASURE = 0.9, 0.25
"""A dark picture with strong light-dark contrast (a storm, lightning, a lit face in the dark) is
tense: arousal rises and pleasure falls with contrast above the mean times darkness below it. The
colour-emotion equations alone read a grey storm as calm, because it is dark and unsaturated."""


LIGHT_RANGE_TENSE = 0.55
"""A lightness range (2nd to 98th percentile) above this in a dark picture starts to read as tense."""


def tension(features: ColourFeatures) -> float:
    """Light-dark range beyond `LIGHT_RANGE_TENSE` times darkness below the mean (standard units), 0
    when either is absent. Near-black pixels damp it (a night sky of stars is dark but not stormy)."""
    z = standardised(features)
    spread = max(0.0, features.light_range - LIGHT_RANGE_TENSE) / 0.15
    return spread * max(0.0, -z["brightness"]) * (1.0 - min(1.0, 2.0 * features.clipped_fraction))


def colour_va(features: ColourFeatures) -> tuple[float, float]:
    z = standardised(features)
    t = tension(features)
    pleasure = sum(PLEASURE_FROM[k] * z[k] for k in z) - TENSION_PLEASURE * t
    arousal = sum(AROUSAL_FROM[k] * z[k] for k in z) + TENSION_AROUSAL * t
    return math.tanh(VA_GAIN * pleasure), math.tanh(VA_GAIN * arousal)  # tanh keeps both in [-1, 1]


def brightness_saturation_for(valence: float, arousal: float) -> tuple[float, float]:
    """The (brightness, saturation) a picture needs for the colour head to read (valence, arousal).

    Inverts the two Valdez-Mehrabian equations with colourfulness and contrast at their mean; the
    procedural renderer aims its colour grading here and corrects the rest by measuring its frames.
    """
    v, a = clamp_va(valence, arousal)
    pleasure = math.atanh(max(-0.97, min(0.97, v))) / VA_GAIN
    arousal_z = math.atanh(max(-0.97, min(0.97, a))) / VA_GAIN
    pb, ps = PLEASURE_FROM["brightness"], PLEASURE_FROM["saturation"]
    ab, as_ = AROUSAL_FROM["brightness"], AROUSAL_FROM["saturation"]
    det = pb * as_ - ps * ab
    zb = (pleasure * as_ - ps * arousal_z) / det
    zs = (pb * arousal_z - pleasure * ab) / det
    brightness = BRIGHTNESS_MEAN + BRIGHTNESS_SD * zb
    saturation = CHROMA_MEAN + CHROMA_SD * zs
    return float(np.clip(brightness, 0.04, 0.96)), float(np.clip(saturation, 0.0, 0.9))


class ColourVA:
    """Valence-arousal from colour statistics alone: fast (~1 ms), no weights, explainable."""

    name = "colour"

    def features(self, rgb: np.ndarray) -> ColourFeatures:
        return colour_features(rgb)

    def estimate(self, rgb: np.ndarray) -> tuple[float, float, float]:
        features = colour_features(rgb)
        valence, arousal = colour_va(features)
        # A black or blown-out picture carries little colour, so the head says so.
        confidence = 0.6 * (1.0 - features.clipped_fraction)
        return valence, arousal, float(confidence)


# --- CLIP -------------------------------------------------------------------------------------
ANCHORS: tuple[tuple[str, float, float], ...] = (
    ("a joyful, exciting, exhilarating picture", 0.7, 0.7),
    ("a happy, cheerful, bright picture", 0.9, 0.2),
    ("a calm, peaceful, serene picture", 0.6, -0.7),
    ("a sleepy, quiet, still picture", 0.0, -0.9),
    ("a sad, gloomy, melancholic picture", -0.7, -0.5),
    ("a depressing, bleak, miserable picture", -0.9, -0.1),
    ("a tense, angry, frightening picture", -0.6, 0.8),
    ("an intense, chaotic, energetic picture", 0.0, 0.95),
)
"""Zero-shot prompts placed around the valence-arousal circumplex (Russell 1980)."""


class ClipVA:
    """Valence-arousal from an open_clip model loaded from a local checkpoint.

    Zero-shot: softmax over similarities to `ANCHORS`, VA = probability-weighted anchor position,
    confidence = 1 - normalised entropy. With `head` (an .npz from `run.py train image-va`: weight
    (D, 2), bias (2,)), VA is a linear read-out of the normalised image embedding instead.
    """

    name = "clip"

    def __init__(self, checkpoint: str, model_name: str = "ViT-B-32", head: str = "", device: str = "cpu",
                 temperature: float = 100.0) -> None:
        import open_clip
        import torch

        path = Path(checkpoint).expanduser()
        if not checkpoint or not path.is_file():
            raise UserError(f"CLIP checkpoint '{checkpoint}' (watch.clip_checkpoint) does not exist; fetch it as "
                            f"docs/weights.md describes or set watch.image_va_head = \"colour\".")
        if model_name not in open_clip.list_models():
            raise UserError(f"watch.clip_model = '{model_name}' is not an open_clip architecture; use one of "
                            f"open_clip.list_models(), e.g. ViT-B-32.")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device=device)
        except Exception as exc:  # torch/safetensors raise many kinds for a bad file
            raise UserError(f"CLIP checkpoint {path} does not load as {model_name} ({type(exc).__name__}: "
                            f"{str(exc)[:120]}); download it again or set watch.clip_model to its architecture.") from None
        model.eval()
        self._torch = torch
        self._model = model
        self._preprocess = preprocess
        self._device = device
        self._model_name = model_name
        self._word_embeddings: np.ndarray | None = None
        self._temperature = temperature
        self._anchor_va = np.array([(v, a) for _, v, a in ANCHORS], dtype=np.float32)
        tokenizer = open_clip.get_tokenizer(model_name)
        with torch.inference_mode():
            text = model.encode_text(tokenizer([p for p, _, _ in ANCHORS]).to(device)).float()
            self._anchor_embeddings = torch.nn.functional.normalize(text, dim=-1)
        self._head: tuple[np.ndarray, np.ndarray] | None = load_linear_head(head) if head else None

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """The normalised image embedding (D,) as float32."""
        from PIL import Image

        if rgb.dtype != np.uint8:
            rgb = (np.clip(np.nan_to_num(rgb), 0, 1) * 255).astype(np.uint8)
        image = self._preprocess(Image.fromarray(np.ascontiguousarray(rgb[..., :3]))).unsqueeze(0).to(self._device)
        with self._torch.inference_mode():
            emb = self._model.encode_image(image).float()
            emb = self._torch.nn.functional.normalize(emb, dim=-1)
        return emb[0].cpu().numpy()

    def labels(self, rgb: np.ndarray, top_k: int = 3) -> tuple[str, ...]:
        """Zero-shot scene and mood words (models.seeing.content SCENE_WORDS, MOOD_WORDS) closest to the
        picture: the best `top_k - 1` scene words and the best mood word."""
        from models.seeing.content import MOOD_WORDS, SCENE_WORDS
        if getattr(self, "_word_embeddings", None) is None:
            import open_clip
            tokenizer = open_clip.get_tokenizer(self._model_name)
            prompts = [f"a photo of {w}" for w in SCENE_WORDS] + [f"a {w} picture" for w in MOOD_WORDS]
            with self._torch.inference_mode():
                text = self._model.encode_text(tokenizer(prompts).to(self._device)).float()
                self._word_embeddings = self._torch.nn.functional.normalize(text, dim=-1).cpu().numpy()
        sims = self._word_embeddings @ self.embed(rgb)
        scenes = np.argsort(-sims[:len(SCENE_WORDS)])[:max(0, top_k - 1)]
        mood = int(np.argmax(sims[len(SCENE_WORDS):]))
        return tuple(SCENE_WORDS[i] for i in scenes) + (MOOD_WORDS[mood],)

    def estimate(self, rgb: np.ndarray) -> tuple[float, float, float]:
        emb = self.embed(rgb)
        if not np.all(np.isfinite(emb)):
            return 0.0, 0.0, 0.0
        if self._head is not None:
            weight, bias = self._head
            v, a = np.tanh(emb @ weight + bias)
            return float(v), float(a), 0.7  # tanh keeps both in [-1, 1]
        sims = self._anchor_embeddings.cpu().numpy() @ emb
        logits = self._temperature * (sims - sims.max())
        probs = np.exp(logits)
        probs /= probs.sum()
        v, a = probs @ self._anchor_va
        entropy = -float(np.sum(probs * np.log(probs + 1e-12)))
        confidence = 1.0 - entropy / math.log(len(ANCHORS))
        # a weighted mean of the anchors' VA, so in [-1, 1]
        return float(v), float(a), float(max(0.0, min(1.0, confidence)))


def load_linear_head(path: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path).expanduser()
    try:
        with np.load(p) as data:
            weight, bias = data["weight"].astype(np.float32), data["bias"].astype(np.float32)
    except FileNotFoundError:
        raise UserError(f"image VA head {p} (watch.clip_head) does not exist; fit one with "
                        f"`python run.py train image-va` or leave watch.clip_head empty.") from None
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"image VA head {p} (watch.clip_head) is not a head file ({exc}); fit it again with "
                        f"`python run.py train image-va`.") from None
    if weight.ndim != 2 or weight.shape[1] != 2 or bias.shape != (2,):
        raise UserError(f"image VA head {p} has shapes {weight.shape}/{bias.shape}, not (D, 2)/(2,); fit it again "
                        f"with `python run.py train image-va`.")
    return weight, bias


def fit_linear_head(embeddings: np.ndarray, va: np.ndarray, ridge: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression from embeddings (N, D) to atanh of VA targets (N, 2); returns (weight, bias)."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.arctanh(np.clip(np.asarray(va, dtype=np.float64), -0.95, 0.95))
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    weight = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
    bias = y_mean - x_mean @ weight
    return weight.astype(np.float32), bias.astype(np.float32)


def build_image_va(settings: WatchSettings) -> ColourVA | ClipVA:
    """The head settings.image_va_head names; UserError when the CLIP checkpoint is missing."""
    if settings.image_va_head == "clip":
        return ClipVA(settings.clip_checkpoint, settings.clip_model, head=settings.clip_head)
    return ColourVA()


def describe(values: tuple[float, float, float]) -> dict[str, float]:
    v, a, c = values
    return {"valence": round(v, 3), "arousal": round(a, 3), "confidence": round(c, 3)}
