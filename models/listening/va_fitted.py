"""The fitted music valence head: a logistic model over the listener's cues, weights in a small JSON file.

Valence (short-term) = tanh(gain * (coef . z + intercept)), z = the standardised cue vector below; the
coefficients come from a logistic regression of positive vs negative recordings (labelled by the mood
their titles name), fitted by `tools/listening/fit_valence.py` and stored in
models/data/valence_head.json with the command, the training set and its cross-validated figures.
The head itself (`models.listening.va.FittedHead`) takes arousal and confidence from the transparent
`features` head (its weights are not changed here), so arousal reacts as quickly as before. The cost
is a few dozen arithmetic operations per hop.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from installation.errors import UserError
from installation.records import Descriptors
from models.listening.features import tempo_cue
from models.listening.features import ramp as _ramp

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "valence_head.json"
VIBENET_WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "valence_head_vibenet.json"

CUE_NAMES = ("mode", "chords", "consonance", "dissonance", "tempo", "register", "brightness", "loudness",
             "onsets", "flux", "percussive", "low_band", "key_confidence")
"""Each cue is the descriptor mapped to about [-1, 1] over the same range the features head uses."""
VIBENET_CUES = ("vibenet_valence", "vibenet_energy")
"""Optional: vibenet's answer (as the vibenet head maps it to [-1, 1]) as two more cues; a weights file
fitted with them makes the head run vibenet on the last 10 s every 2 s (about 0.09 CPU s per s)."""


def valence_cues(d: Descriptors) -> np.ndarray:
    """The cue vector (CUE_NAMES order) of one descriptor snapshot; every value finite and in [-1, 1]."""
    register = math.log2(max(d.register_hz, 50.0) / 400.0) if d.register_hz > 0 else 0.0
    cues = (
        float(np.clip(d.mode_strength * 2.0, -1, 1)),
        _ramp(d.major_chords - d.minor_chords, -0.4, 0.4),
        _ramp(d.consonance, 0.7, 0.95),
        _ramp(d.dissonance, 0.4, 0.6),
        tempo_cue(d),
        float(np.clip(register, -1.0, 1.0)),
        _ramp(d.brightness, 0.25, 0.75),
        _ramp(d.loudness_lufs, -50.0, -14.0),
        _ramp(d.onset_rate_hz, 0.2, 3.0),
        _ramp(d.flux, 0.01, 0.1),
        _ramp(1.0 - d.harmonic_ratio, 0.3, 0.6),
        _ramp(d.band_low, 0.0, 0.6),
        _ramp(d.key_confidence, 0.0, 1.0),
    )
    return np.nan_to_num(np.array(cues, dtype=np.float64))


class FittedValence:
    """The logistic valence model read from its JSON file."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float, gain: float,
                 cues: tuple[str, ...] = CUE_NAMES, meta: dict | None = None) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.coef = np.asarray(coef, np.float64)
        self.intercept = float(intercept)
        self.gain = float(gain)
        self.cues = tuple(cues)
        self.meta = dict(meta or {})

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> "FittedValence":
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            model = cls(data["mean"], data["scale"], data["coef"], data["intercept"], data["gain"],
                        tuple(data["cues"]), {k: v for k, v in data.items()
                                              if k not in ("mean", "scale", "coef", "intercept", "gain", "cues")})
        except FileNotFoundError:
            raise UserError(f"fitted valence weights {p} do not exist; restore models/data/valence_head.json "
                            f"or set listen.va_head = \"features\".") from None
        except Exception as exc:
            raise UserError(f"fitted valence weights {p} cannot be read ({exc}); fit them again with "
                            f"`python tools/listening/fit_valence.py`.") from None
        n = len(model.cues)
        if model.cues not in (CUE_NAMES, CUE_NAMES + VIBENET_CUES) or any(
                a.shape != (n,) for a in (model.mean, model.scale, model.coef)):
            raise UserError(f"fitted valence weights {p} were fitted on other cues; fit them again with "
                            f"this version's `python tools/listening/fit_valence.py`.")
        if not (np.all(np.isfinite(model.coef)) and np.all(model.scale > 0) and math.isfinite(model.intercept)):
            raise UserError(f"fitted valence weights {p} hold non-finite or zero values; fit them again.")
        return model

    def save(self, path: str | Path) -> None:
        data = {"cues": list(self.cues), "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "coef": self.coef.round(6).tolist(), "intercept": round(self.intercept, 6),
                "gain": round(self.gain, 6), **self.meta}
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    def logit(self, cues: np.ndarray) -> np.ndarray:
        """The model's log-odds of a positive recording for cue vectors of shape (n,) or (k, n)."""
        z = np.clip((np.asarray(cues, np.float64) - self.mean) / self.scale, -5.0, 5.0)
        return z @ self.coef + self.intercept

    @property
    def uses_vibenet(self) -> bool:
        return self.cues[-len(VIBENET_CUES):] == VIBENET_CUES

    def valence(self, d: Descriptors, extra: tuple[float, ...] = ()) -> float:
        cues = valence_cues(d)
        if extra:
            cues = np.concatenate([cues, np.asarray(extra, np.float64)])
        return float(np.tanh(self.gain * self.logit(cues)))
