"""Music valence-arousal: heads that map what the listener hears to (valence, arousal) in [-1, 1].

Heads (chosen by `listen.va_head`):
- `features`: a transparent mapping from the rolling descriptors, after the cue summaries of
  Gabrielsson & Lindström (2010) and Eerola, Friberg & Bresin (2013): arousal rises with tempo,
  loudness, brightness and onset density; valence rises with major mode, consonance and (a little)
  tempo. Every weight is a named constant below.
- `vibenet`: the pretrained EfficientNet that ships in the vibenet package (valence, energy) on
  the last ~10 s, re-run once a second in the listener thread.
- `learned`: a ridge regressor on the descriptor vector, fitted with `run.py train music-va`
  and loaded from its .npz.
- `blend`: the confidence-weighted mean of `features` and `vibenet`.
- `fitted`: valence from a logistic model over the listener's cues whose weights ship in
  models/data/valence_head.json (models/listening/va_fitted.py); arousal from `features`.

`Listener` owns one head, a FeatureTracker and the smoothing; it lives in the listener thread.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from installation.errors import UserError
from installation.records import FEATURE_NAMES, Descriptors, MusicState, clamp_va
from models.listening.features import FeatureTracker, ramp, sanitize, tempo_cue
from models.listening.settings import ListenSettings

if TYPE_CHECKING:
    from models.listening.va_fitted import FittedValence

log = logging.getLogger("chromesthesia.listen")
HEADS = ("features", "vibenet", "learned", "blend", "fitted")


_ramp = ramp


class VAHead(Protocol):
    name: str

    def predict(self, d: Descriptors, recent: "RecentAudio") -> tuple[float, float, float]:
        """(valence, arousal, confidence) for the current window; may reuse an earlier answer."""
        ...


class RecentAudio:
    """The last `seconds` of mono input at `sample_rate_hz`, for heads that need raw audio."""

    def __init__(self, sample_rate_hz: int, seconds: float) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._buf = np.zeros(int(sample_rate_hz * seconds), np.float32)
        self._filled = 0
        self.total = 0

    def push(self, x: np.ndarray) -> None:
        k = x.size
        cap = self._buf.size
        if k >= cap:
            self._buf[:] = x[-cap:]
        else:
            self._buf[:-k] = self._buf[k:]
            self._buf[-k:] = x
        self._filled = min(cap, self._filled + k)
        self.total += k

    def last(self) -> np.ndarray:
        return self._buf[-self._filled:] if self._filled else self._buf[:0]


# --- features head ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureWeights:
    """Weights of the transparent head; each cue is first mapped to [-1, 1] by a documented range.

    Arousal rests on how much happens (onset density, spectral flux, percussive share) as much as
    on how loud it is: recordings are mastered to similar loudness whatever their mood, so level
    alone separates calm from energetic tracks poorly (quadrant AUC 0.75 on the evaluation set,
    against 0.84 for flux and 0.78 for percussive share), while it still decides between two
    performances of one piece. The four cues weigh the same. The tempo estimate gets no arousal
    weight by default: on orchestral and rubato music it is often an octave off (its AUC on the
    evaluation set is 0.21, i.e. inverted); onset density carries the "faster" cue without octave
    errors.
    """

    # Arousal cues: loudness (-50..-14 LUFS), onset density (0.2..3 per s), spectral flux
    # (0.01..0.1 log-mel units per frame), percussive share 1 - H/(H+P) (0.3..0.6),
    # tempo (60..160 BPM, trusted by beat confidence).
    a_loudness: float = 0.25
    a_onsets: float = 0.25
    a_flux: float = 0.25
    a_percussive: float = 0.25
    a_tempo: float = 0.0
    # Valence cues: mode (major +), consonance (in-scale chroma share), tempo (fast is happier),
    # brightness (slightly positive).
    # Set on the chorale set (major vs minor, music21 renders) and from the cue literature for the
    # cues that set cannot vary (tempo, register, timbre); never on the mood-titled evaluation set.
    # Harmony: key-profile mode margin, share of major vs minor triads over ~0.5 s segments (how
    # much of the time the chords are major, not only the key), in-scale share, interval
    # dissonance. Then tempo (faster is happier), register (higher is happier), brightness.
    v_mode: float = 0.35
    v_chords: float = 0.25
    v_consonance: float = 0.08
    v_dissonance: float = 0.1
    v_tempo: float = 0.1
    v_register: float = 0.07
    v_brightness: float = 0.05


class FeaturesHead:
    name = "features"

    def __init__(self, weights: FeatureWeights = FeatureWeights()) -> None:
        self.w = weights

    def arousal(self, d: Descriptors) -> float:
        w = self.w
        a = (w.a_loudness * _ramp(d.loudness_lufs, -50.0, -14.0)
             + w.a_onsets * _ramp(d.onset_rate_hz, 0.2, 3.0)
             + w.a_flux * _ramp(d.flux, 0.01, 0.1)
             + w.a_percussive * _ramp(1.0 - d.harmonic_ratio, 0.3, 0.6)
             + w.a_tempo * self._tempo_cue(d))
        return math.tanh(1.5 * a)  # the weighted sums rarely reach the ends; tanh keeps them inside

    def valence(self, d: Descriptors) -> float:
        w = self.w
        register = math.log2(max(d.register_hz, 50.0) / 400.0) if d.register_hz > 0 else 0.0
        v = (w.v_mode * float(np.clip(d.mode_strength * 2.0, -1, 1))
             + w.v_chords * _ramp(d.major_chords - d.minor_chords, -0.4, 0.4)
             + w.v_consonance * _ramp(d.consonance, 0.7, 0.95)
             - w.v_dissonance * _ramp(d.dissonance, 0.4, 0.6)
             + w.v_tempo * self._tempo_cue(d)
             + w.v_register * float(np.clip(register, -1.0, 1.0))
             + w.v_brightness * _ramp(d.brightness, 0.25, 0.75))
        return math.tanh(1.5 * v)

    @staticmethod
    def _tempo_cue(d: Descriptors) -> float:
        return tempo_cue(d)

    @staticmethod
    def confidence(d: Descriptors) -> float:
        return 0.0 if d.silent else float(np.clip(0.4 + 0.3 * d.key_confidence + 0.3 * d.beat_confidence, 0, 1))

    def predict(self, d: Descriptors, recent: RecentAudio | None = None) -> tuple[float, float, float]:
        return self.valence(d), self.arousal(d), self.confidence(d)


# --- vibenet head ----------------------------------------------------------------------------
VIBENET_RATE_HZ = 16000
VIBENET_VALENCE_CENTRE = 0.3
"""vibenet's valence sits low on instrumental music (0-0.4); this maps 0.3 to neutral."""


_VIBENET_LOCK = threading.Lock()
_VIBENET_MODEL: list = []


def _shared_vibenet():
    """vibenet's model, loaded once per process: every head (and each offline rating, such as the
    composer's) would otherwise read and optimise the 18 MB network again. ONNX Runtime sessions may
    be run from several threads at once."""
    with _VIBENET_LOCK:
        if not _VIBENET_MODEL:
            import vibenet
            model = vibenet.load_model()
            _one_thread_session(model)
            _VIBENET_MODEL.append(model)
        return _VIBENET_MODEL[0]


def _one_thread_session(model) -> None:
    """Run vibenet's ONNX model on one thread, as its loader sets up but does not pass on.

    The package builds one-thread session options and then opens the session without them, so
    ONNX Runtime starts a thread per core whose spinning between runs roughly doubled the CPU
    each inference costs here, taken from the render and control threads.
    """
    path = getattr(getattr(model, "ort_sess", None), "_model_path", None)
    if not path:
        return  # another vibenet version: keep its own session
    try:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model.ort_sess = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the package's own session still works, only dearer
        log.warning("vibenet: keeping its own ONNX session (%s)", exc)


class VibenetHead:
    """vibenet's pretrained model on the last `seconds`, re-run every `every_s` of new audio.

    With `background=True` (the live loop) the model runs on a helper thread that this head owns:
    `predict` hands it a copy of the window and returns the latest finished answer at once, so a
    ~0.1 s inference never delays a MusicState. Offline analysis uses `background=False`, where the
    answer is computed in `predict` and the result does not depend on thread timing.
    """

    name = "vibenet"

    def __init__(self, seconds: float = 10.0, every_s: float = 2.0, background: bool = False) -> None:
        try:
            self._model = _shared_vibenet()
        except Exception as exc:  # a broken install is the user's to fix, in one sentence
            raise UserError(f"the vibenet music model could not be loaded ({exc}); reinstall the "
                            f"'vibenet' package or set listen.va_head = \"features\".") from None
        self.seconds = seconds
        self.every_s = every_s
        self.background = background
        self.errors = 0
        self.runs = 0
        self._last_total = -10**12
        self._answer = (0.0, 0.0, 0.0)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._job: tuple[np.ndarray, int] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def predict(self, d: Descriptors, recent: RecentAudio) -> tuple[float, float, float]:
        if d.silent:
            return 0.0, 0.0, 0.0
        due = recent.total - self._last_total >= self.every_s * recent.sample_rate_hz
        if due and recent.last().size >= recent.sample_rate_hz:  # under a second: nothing to say yet
            self._last_total = recent.total
            if self.background:
                self._submit(recent.last().copy(), recent.sample_rate_hz)
            else:
                self._run(recent.last(), recent.sample_rate_hz)
        with self._lock:
            return self._answer

    def _run(self, x: np.ndarray, rate_hz: int) -> None:
        import soxr
        if rate_hz != VIBENET_RATE_HZ:
            x = soxr.resample(x, rate_hz, VIBENET_RATE_HZ, quality="LQ")
        result = self._model.predict(np.ascontiguousarray(x, dtype=np.float32), sr=VIBENET_RATE_HZ)[0]
        valence = float(np.clip((result.valence - VIBENET_VALENCE_CENTRE) / 0.3, -1, 1))
        arousal = float(np.clip(2.0 * result.energy - 1.0, -1, 1))
        confidence = float(np.clip(x.size / (self.seconds * VIBENET_RATE_HZ), 0, 1)) * 0.8
        answer = (float(np.nan_to_num(valence)), float(np.nan_to_num(arousal)), float(np.nan_to_num(confidence)))
        with self._lock:
            self._answer = answer
            self.runs += 1

    def _submit(self, x: np.ndarray, rate_hz: int) -> None:
        with self._lock:
            self._job = (x, rate_hz)  # a job not yet started is replaced by the fresher window
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="vibenet", daemon=True)
            self._thread.start()
        self._wake.set()

    def _serve(self) -> None:
        """Helper thread: run the freshest window; a failure is counted and the last answer kept."""
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                job, self._job = self._job, None
            if job is None:
                continue
            try:
                self._run(*job)
            except Exception:
                self.errors += 1
                log.exception("vibenet failed on a window; keeping the last answer")

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


# --- learned head ----------------------------------------------------------------------------
class LearnedHead:
    """Ridge regression from the descriptor vector (FEATURE_NAMES) to valence and arousal."""

    name = "learned"

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 feature_names: tuple[str, ...] = FEATURE_NAMES) -> None:
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept
        self.feature_names = feature_names

    @classmethod
    def load(cls, path: str | Path) -> "LearnedHead":
        p = Path(path)
        if not str(path):
            raise UserError("listen.va_head = \"learned\" but listen.learned_head is empty; train one with "
                            "`python run.py train music-va` and set listen.learned_head to its .npz path.")
        if not p.is_file():
            raise UserError(f"learned music VA head {p} does not exist; train one with `python run.py train "
                            f"music-va --out {p}` or fix listen.learned_head.")
        try:
            with np.load(p, allow_pickle=False) as data:
                names = tuple(str(n) for n in data["feature_names"])
                head = cls(data["mean"], data["scale"], data["coef"], data["intercept"], names)
        except Exception as exc:
            raise UserError(f"learned music VA head {p} cannot be read ({exc}); train it again with "
                            f"`python run.py train music-va`.") from None
        if names != FEATURE_NAMES or head.coef.shape != (2, len(FEATURE_NAMES)):
            raise UserError(f"learned music VA head {p} was trained on other descriptors; train it again "
                            f"with this version's `python run.py train music-va`.")
        return head

    def save(self, path: str | Path) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept,
                 feature_names=np.array(self.feature_names))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> "LearnedHead":
        """x: (n, features) descriptor vectors; y: (n, 2) valence, arousal in [-1, 1]."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        z = (x - mean) / scale
        intercept = y.mean(axis=0)
        a = z.T @ z + ridge * np.eye(z.shape[1])
        coef = np.linalg.solve(a, z.T @ (y - intercept)).T
        return cls(mean, scale, coef, intercept)

    def predict(self, d: Descriptors, recent: RecentAudio | None = None) -> tuple[float, float, float]:
        z = (d.vector() - self.mean) / self.scale
        z = np.clip(z, -5.0, 5.0)  # a descriptor far outside the training range must not run away
        v, a = self.coef @ z + self.intercept
        return float(np.clip(v, -1, 1)), float(np.clip(a, -1, 1)), 0.0 if d.silent else 0.7


BLEND_VALENCE_WEIGHTS = (1.0, 1.0)
"""features : vibenet valence. Harmony (features) orders major against minor, which vibenet does
not; vibenet's valence, learnt from listeners' ratings of recorded music, orders mood-titled game
music where harmony alone does not. Of the two mixes tried (4:3 and 1:1), 1:1 gave the better mean
and worst-set AUC over the four tuning sets (docs/listening.md, "Choosing the blend")."""
BLEND_AROUSAL_WEIGHTS = (1.0, 0.0)
"""Arousal from the transparent head alone: it reacts within ~1 s and hears the same tune played
faster or louder as livelier, which vibenet's energy does not; adding vibenet's energy did not raise
the arousal AUC on the mood-titled tuning tracks (docs/listening.md)."""
BLEND_VIBENET_EVERY_S = 4.0
"""vibenet re-run every 4 s of new audio: the held valence it feeds moves over tens of seconds, and
this halves its CPU cost against every 2 s."""


class BlendHead:
    """Per-axis, confidence-weighted mean of several heads (weights above for the `blend` head)."""

    name = "blend"

    def __init__(self, heads: list[VAHead], valence_weights: tuple[float, ...] | None = None,
                 arousal_weights: tuple[float, ...] | None = None) -> None:
        self.heads = heads
        even = tuple(1.0 for _ in heads)
        self.valence_weights = np.array(valence_weights or even, np.float64)
        self.arousal_weights = np.array(arousal_weights or even, np.float64)

    def predict(self, d: Descriptors, recent: RecentAudio) -> tuple[float, float, float]:
        answers = [h.predict(d, recent) for h in self.heads]
        conf = np.array([max(c, 1e-3) for _, _, c in answers])
        wv = self.valence_weights * conf
        wa = self.arousal_weights * conf
        v = float(np.dot(wv, [x[0] for x in answers]) / max(wv.sum(), 1e-9))
        a = float(np.dot(wa, [x[1] for x in answers]) / max(wa.sum(), 1e-9))
        return v, a, float(max(c for _, _, c in answers))

    def close(self) -> None:
        for h in self.heads:
            getattr(h, "close", lambda: None)()


class FittedHead:
    """Valence from the fitted logistic model (models.listening.va_fitted), arousal and confidence from the
    transparent head.

    A weights file fitted with vibenet's cues makes this head run vibenet (on its helper thread when
    `background`), so the head then needs the recent audio and costs what vibenet costs.
    """

    name = "fitted"

    def __init__(self, model: FittedValence | None = None, background: bool = False) -> None:
        from models.listening.va_fitted import FittedValence
        self.model = model or FittedValence.load()
        self.features = FeaturesHead()
        self.vibenet: VibenetHead | None = VibenetHead(background=background) if self.model.uses_vibenet else None
        self.needs_audio = self.vibenet is not None

    def predict(self, d: Descriptors, recent: RecentAudio | None = None) -> tuple[float, float, float]:
        extra: tuple[float, ...] = ()
        if self.vibenet is not None:
            vv, ve, _ = self.vibenet.predict(d, recent) if recent is not None else (0.0, 0.0, 0.0)
            extra = (vv, ve)
        return self.model.valence(d, extra), self.features.arousal(d), self.features.confidence(d)

    def close(self) -> None:
        if self.vibenet is not None:
            self.vibenet.close()


def build_head(name: str, learned_head: str = "", background: bool = False, fitted_weights: str = "") -> VAHead:
    """The head called `name`; `background` runs vibenet on its own helper thread (live loop)."""
    if name == "features":
        return FeaturesHead()
    if name == "vibenet":
        return VibenetHead(background=background)
    if name == "learned":
        return LearnedHead.load(learned_head)
    if name == "fitted":
        from models.listening.va_fitted import FittedValence
        return FittedHead(FittedValence.load(fitted_weights) if fitted_weights else None, background=background)
    if name == "blend":
        return BlendHead([FeaturesHead(), VibenetHead(every_s=BLEND_VIBENET_EVERY_S, background=background)],
                         valence_weights=BLEND_VALENCE_WEIGHTS, arousal_weights=BLEND_AROUSAL_WEIGHTS)
    raise UserError(f"listen.va_head = {name!r} is not a music VA head; choose one of {', '.join(HEADS)}.")


class SectionValence:
    """A valence that holds through a section: moved by sustained evidence or a detected section change.

    The head's short-term valence feeds a slow estimate (time constant `slow_s`, confidence-weighted).
    The held value follows that estimate only when it leaves a dead band of `band` around it
    (hysteresis), and then at most `rate_per_s`: a steady section's passing minor chord or fill
    cannot swing it. A section change (novelty peak) opens a short re-estimation (`fast_s` time
    constant for `reset_s` seconds) during which the held value may move at `change_rate_per_s`,
    so a new section's mood is followed within a few seconds. Music starting (or resuming after
    silence) opens the same re-estimation for `start_s`: the first hop's valence rests on a
    descriptor window barely filled and a model that has heard a second, so it must not decide the
    next half minute.
    """

    def __init__(self, slow_s: float = 8.0, fast_s: float = 1.5, reset_s: float = 5.0, band: float = 0.12,
                 rate_per_s: float = 0.09, change_rate_per_s: float = 0.6, start_s: float = 10.0) -> None:
        self.slow_s, self.fast_s, self.reset_s, self.start_s = slow_s, fast_s, reset_s, start_s
        self.band, self.rate_per_s, self.change_rate_per_s = band, rate_per_s, change_rate_per_s
        self.estimate: float | None = None
        self.held = 0.0
        self._fast_until_s = -math.inf
        self.changes = 0

    def reset(self, valence: float) -> None:
        self.estimate = self.held = float(valence)

    def start(self, t_s: float, valence: float) -> None:
        """Music starts: begin at its first valence and re-estimate quickly while the evidence fills."""
        self.reset(valence)
        self._fast_until_s = t_s + self.start_s

    def update(self, t_s: float, dt: float, valence: float, confidence: float, section_change: bool) -> float:
        if self.estimate is None:
            self.reset(valence)
            return self.held
        if section_change:
            self._fast_until_s = t_s + self.reset_s
            self.changes += 1
        fast = t_s < self._fast_until_s
        tau = self.fast_s if fast else self.slow_s
        k = (1.0 - math.exp(-dt / tau)) * (1.0 if fast else max(0.2, confidence))
        self.estimate += k * (valence - self.estimate)
        gap = self.estimate - self.held
        if abs(gap) > self.band:  # hysteresis, also after a section change: a false alarm moves nothing
            rate = self.change_rate_per_s if fast else self.rate_per_s
            step = gap - math.copysign(self.band * 0.5, gap)  # stop inside the band
            self.held += float(np.clip(step, -rate * dt, rate * dt))
        return self.held


AUDIBLE_RANGE_DB = 12.0
"""Momentary level above `silence_dbfs` at which a head's confidence counts in full."""


# --- the listener ----------------------------------------------------------------------------
class Listener:
    """Descriptors + one VA head + smoothing. Owned by the listener thread.

    `feed` any number of samples; `state(t_s)` every hop. VA is an exponential moving average with
    time constant `smoothing_s`; in silence the target is neutral (0, 0) with zero confidence.
    """

    def __init__(self, sample_rate_hz: int, head: VAHead, window_s: float = 6.0, smoothing_s: float = 1.0,
                 silence_dbfs: float = -55.0, head_audio_s: float = 10.0) -> None:
        self.sample_rate_hz = int(sample_rate_hz)
        self.head = head
        self.tracker = FeatureTracker(self.sample_rate_hz, window_s, silence_dbfs)
        self.silence_dbfs = float(silence_dbfs)
        descriptors_only = isinstance(head, (FeaturesHead, LearnedHead)) or not getattr(head, "needs_audio", True)
        self.recent = RecentAudio(self.sample_rate_hz, 0.1 if descriptors_only else head_audio_s)
        self.smoothing_s = float(smoothing_s)
        self._va = np.zeros(2)
        self._confidence = 0.0
        self._last_t_s: float | None = None
        self.head_errors = 0
        self._last_descriptors = Descriptors()
        self._was_silent = False
        self.section_valence = SectionValence()

    def close(self) -> None:
        """Stop the head's helper thread, if it has one."""
        getattr(self.head, "close", lambda: None)()

    @property
    def bad_samples(self) -> int:
        return self.tracker.bad_samples

    @property
    def clipped_samples(self) -> int:
        return self.tracker.clipped_samples

    def feed(self, samples: np.ndarray) -> None:
        """Mono float32 at `sample_rate_hz`; NaN/inf are counted and zeroed, clipping is counted."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        self.tracker.push(x)
        self.recent.push(sanitize(x)[0])

    def state(self, t_s: float) -> MusicState:
        try:
            d = self.tracker.snapshot()
            self._last_descriptors = d
        except Exception:  # a descriptor bug on odd input must not stop the listener either
            self.head_errors += 1
            log.exception("music descriptors failed; keeping the last ones")
            d = self._last_descriptors
        try:
            v, a, conf = self.head.predict(d, self.recent)
        except Exception:  # a model hiccup must not stop the listener: keep the last answer
            self.head_errors += 1
            log.exception("music VA head %s failed; keeping the last answer", self.head.name)
            v, a, conf = float(self._va[0]), float(self._va[1]), 0.0
        if d.silent:
            v, a, conf = 0.0, 0.0, 0.0
        # The silence gate waits until the whole recent span is quiet (sparse music has rests), but
        # confidence must not: a room that just fell silent is no evidence for the last VA, so the
        # momentary level scales it from the moment the sound stops.
        conf *= float(np.clip((d.loudness_dbfs - self.silence_dbfs) / AUDIBLE_RANGE_DB, 0.0, 1.0))
        target = np.array(clamp_va(v, a))  # a head's NaN must not stay in the smoother
        dt = 0.0 if self._last_t_s is None else max(0.0, t_s - self._last_t_s)
        if (self._last_t_s is None or self._was_silent) and not d.silent:
            # Music starting (or resuming after the gate was closed) needs no ramp from neutral:
            # a ramp would show the room's first seconds as calmer or livelier than they are.
            self._va = target
        elif self.smoothing_s <= 0:
            self._va = target
        else:
            self._va = self._va + (1.0 - math.exp(-dt / self.smoothing_s)) * (target - self._va)
        if self._last_t_s is None or self.smoothing_s <= 0:
            self._confidence = conf
        else:
            self._confidence += (1.0 - math.exp(-dt / self.smoothing_s)) * (conf - self._confidence)
        short, arousal = float(self._va[0]), float(self._va[1])  # a blend of clamped targets: in bounds
        if d.silent:
            self.section_valence.reset(0.0)
        elif self._last_t_s is None or self._was_silent:
            self.section_valence.start(t_s, short)
        held = self.section_valence.update(t_s, dt, short, self._confidence, d.section_change)
        self._last_t_s = t_s
        self._was_silent = d.silent
        return MusicState(t_s=float(t_s), valence=held, arousal=arousal,
                          va_confidence=float(np.clip(np.nan_to_num(self._confidence), 0, 1)),
                          descriptors=d, head=self.head.name, valence_short=short)


def build_listener(settings: ListenSettings, sample_rate_hz: int, head: str | None = None,
                   live: bool = True) -> Listener:
    """A Listener for `settings`; `head` overrides settings.va_head.

    `live`: model heads run on their own helper thread so a hop never waits for them; offline
    analysis passes False so results do not depend on timing. Call `close()` when done.

    Raises UserError (one sentence) when the head cannot be loaded, e.g. a missing learned head file.
    """
    if sample_rate_hz < 4000:
        raise UserError(f"audio sample rate {sample_rate_hz} Hz is too low to listen to music; use at "
                        f"least 8000 Hz (audio.sample_rate_hz).")
    name = head or settings.va_head
    head_ = build_head(name, settings.learned_head, background=live,
                       fitted_weights=settings.fitted_weights)
    return Listener(sample_rate_hz, head_, window_s=settings.window_s,
                    smoothing_s=settings.smoothing_s, silence_dbfs=settings.silence_dbfs)


# --- offline analysis ------------------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    """One file (or signal) run through the live code path."""

    path: str
    duration_s: float
    valence: float
    arousal: float
    tempo_bpm: float
    key: str
    mode: str
    loudness_lufs: float
    curve: list[tuple[float, float, float]]
    """(t_s, valence, arousal) about once a second."""
    descriptors: np.ndarray
    """Mean descriptor vector over audible hops (FEATURE_NAMES order), for training heads."""
    bad_samples: int = 0
    clipped_samples: int = 0

    def to_json(self) -> dict:
        return {"path": self.path, "duration_s": round(self.duration_s, 2), "valence": round(self.valence, 3),
                "arousal": round(self.arousal, 3), "tempo_bpm": round(self.tempo_bpm, 1), "key": self.key,
                "mode": self.mode, "loudness_lufs": round(self.loudness_lufs, 1),
                "curve": [[round(t, 1), round(v, 3), round(a, 3)] for t, v, a in self.curve],
                "bad_samples": self.bad_samples, "clipped_samples": self.clipped_samples}


def load_audio(path: str | Path, offset_s: float = 0.0, duration_s: float | None = None,
               fit_excerpt: bool = False) -> tuple[np.ndarray, int]:
    """Mono float32 and its rate; UserError naming the file when it is missing or unreadable.

    `fit_excerpt`: a file shorter than offset + duration gives its last `duration_s` instead, so an
    evaluation compares excerpts of equal length rather than a short file's tail.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"audio file {p} does not exist; check the path.")
    import soundfile as sf
    try:
        with sf.SoundFile(str(p)) as f:
            rate = f.samplerate
            if fit_excerpt and duration_s is not None:
                offset_s = max(0.0, min(offset_s, f.frames / rate - duration_s))
            f.seek(min(int(offset_s * rate), max(0, f.frames - 1)))
            frames = -1 if duration_s is None else int(duration_s * rate)
            x = f.read(frames, dtype="float32", always_2d=True)
    except Exception as exc:
        try:  # formats libsndfile lacks (e.g. some mp3/m4a) through librosa/audioread
            import warnings

            import librosa
            with warnings.catch_warnings():  # its fallback warnings would bury the one-sentence error
                warnings.simplefilter("ignore")
                x, rate = librosa.load(str(p), sr=None, mono=False, offset=offset_s, duration=duration_s)
            x = np.atleast_2d(x).T
        except Exception:
            raise UserError(f"audio file {p} cannot be read ({exc}); convert it to WAV, FLAC or Ogg.") from None
    if x.size == 0:
        raise UserError(f"audio file {p} holds no audio; give a file with sound in it.")
    return x.mean(axis=1).astype(np.float32), int(rate)


def analyze_signal(samples: np.ndarray, sample_rate_hz: int, settings: ListenSettings, head: str | None = None,
                   path: str = "", listener: Listener | None = None) -> Analysis:
    """Feed a whole signal hop by hop through a Listener, as the live loop would."""
    lst = listener or build_listener(settings, sample_rate_hz, head, live=False)
    hop = max(1, int(round(settings.hop_s * sample_rate_hz)))
    states: list[MusicState] = []
    vectors: list[np.ndarray] = []
    for i in range(0, samples.size - hop + 1, hop):
        lst.feed(samples[i:i + hop])
        t_s = (i + hop) / sample_rate_hz
        s = lst.state(t_s)
        states.append(s)
        if not s.silent:
            vectors.append(lst.tracker.snapshot().vector())
    audible = [s for s in states if not s.silent] or states or [MusicState(t_s=0.0)]
    # Skip the first window while the descriptors fill, unless that is all there is.
    settled = [s for s in audible if s.t_s >= min(settings.window_s, 0.5 * samples.size / sample_rate_hz)] or audible
    valence = float(np.mean([s.valence for s in settled]))
    arousal = float(np.mean([s.arousal for s in settled]))
    tempos = [s.tempo_bpm for s in settled if s.tempo_bpm > 0]
    modes = [s.mode for s in settled]
    keys = [f"{s.key} {s.mode}" for s in settled]
    top_key = max(set(keys), key=keys.count)
    step = max(1, int(round(1.0 / settings.hop_s)))
    curve = [(s.t_s, s.valence, s.arousal) for s in states[step - 1::step]]
    lufs = [s.loudness_lufs for s in audible]
    desc = np.mean(vectors, axis=0) if vectors else np.zeros(len(FEATURE_NAMES))
    return Analysis(path=path, duration_s=samples.size / sample_rate_hz, valence=valence, arousal=arousal,
                    tempo_bpm=float(np.median(tempos)) if tempos else 0.0, key=top_key.split()[0],
                    mode=max(set(modes), key=modes.count), loudness_lufs=float(np.median(lufs)),
                    curve=curve, descriptors=desc, bad_samples=lst.bad_samples,
                    clipped_samples=lst.clipped_samples)


def analyze_file(path: str | Path, settings: ListenSettings, head: str | None = None, offset_s: float = 0.0,
                 duration_s: float | None = None) -> Analysis:
    samples, rate = load_audio(path, offset_s, duration_s)
    return analyze_signal(samples, rate, settings, head, path=str(path))
