"""Music VA heads and the Listener: ranges, ordering, smoothing, silence, loading."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from models.evaluation.listening import reaction_time, synthetic_music
from installation.config import ListenConfig
from installation.errors import UserError
from installation.records import FEATURE_NAMES, Descriptors
from models.listening.va import BlendHead, FeaturesHead, LearnedHead, Listener, VibenetHead, build_listener

RATE = 22050


def run(listener: Listener, x: np.ndarray, hop_s: float = 0.1):
    hop = int(hop_s * listener.sample_rate_hz)
    states = []
    for i in range(0, x.size - hop + 1, hop):
        listener.feed(x[i:i + hop])
        states.append(listener.state((i + hop) / listener.sample_rate_hz))
    return states


def test_energetic_major_music_rates_higher_than_calm_minor_music():
    calm = run(build_listener(ListenConfig().settings(), RATE), synthetic_music(10, RATE, False))[-1]
    lively = run(build_listener(ListenConfig().settings(), RATE), synthetic_music(10, RATE, True))[-1]
    assert lively.arousal > calm.arousal + 0.5
    assert lively.valence > calm.valence + 0.5
    assert lively.head == ListenConfig().va_head == "blend" and lively.va_confidence > 0.3


def test_louder_and_busier_cues_raise_feature_arousal():
    head = FeaturesHead()
    base = Descriptors(loudness_lufs=-30, tempo_bpm=80, beat_confidence=0.6, onset_rate_hz=1, brightness=0.4,
                       flux=0.03, harmonic_ratio=0.8, silent=False)
    fields = {n: getattr(base, n) for n in base.__slots__}
    a0 = head.predict(base)[1]
    for change in ({"loudness_lufs": -18}, {"onset_rate_hz": 2.5}, {"flux": 0.08}, {"harmonic_ratio": 0.5}):
        assert head.predict(Descriptors(**{**fields, **change}))[1] > a0, change


def melody(notes_per_s: float, amplitude: float, seconds: float = 14.0, rate: int = RATE) -> np.ndarray:
    """A plucked-string line over a fixed pitch sequence: the same tune at any speed and level."""
    pitches = [60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 64, 72]
    t_note = 1.0 / notes_per_s
    n = int(t_note * rate)
    t = np.arange(n) / rate
    out = np.zeros(int(seconds * rate), np.float32)
    for k, i in enumerate(range(0, out.size - n, n)):
        f = 440.0 * 2 ** ((pitches[k % len(pitches)] - 69) / 12)
        out[i:i + n] = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * np.exp(-t / 0.25)
    return amplitude * out


def mean_arousal(x: np.ndarray) -> float:
    states = run(build_listener(ListenConfig().settings(), RATE, live=False), x)
    return float(np.mean([s.arousal for s in states[60:]]))


def test_the_same_tune_faster_or_louder_rates_higher_arousal():
    plain = mean_arousal(melody(2.0, 0.05))
    assert mean_arousal(melody(3.0, 0.05)) > plain + 0.1
    assert mean_arousal(melody(2.0, 0.3)) > plain + 0.1


def test_every_field_is_finite_under_nan_inf_and_clipping():
    lst = build_listener(ListenConfig().settings(), 8000)
    x = synthetic_music(4, 8000, True) * 3.0  # heavily clipped
    x[::50] = np.nan
    x[7::50] = np.inf
    states = run(lst, x)
    assert lst.bad_samples > 0 and lst.clipped_samples > 0
    for s in states:
        numbers = [getattr(s, f) for f in s.__slots__ if isinstance(getattr(s, f), float)]
        assert all(math.isfinite(v) for v in numbers)
        assert -1 <= s.valence <= 1 and -1 <= s.arousal <= 1 and 0 <= s.va_confidence <= 1


def test_silence_drifts_to_neutral_with_the_smoothing_time_constant():
    lst = build_listener(ListenConfig(smoothing_s=1.0).settings(), RATE)
    loud = run(lst, synthetic_music(6, RATE, True))[-1]
    assert loud.arousal > 0.2
    after = run(lst, np.zeros(int(3 * RATE), np.float32))
    # Confidence starts falling as soon as the sound stops, before the gate (1.5 s of quiet) closes:
    # after 3 s it has decayed for ~2.5 time constants.
    assert not after[10].silent and after[10].va_confidence < 0.7 * loud.va_confidence
    assert after[-1].silent and after[-1].va_confidence < 0.1 * loud.va_confidence + 0.01
    # VA itself decays with tau = 1 s once the gate is closed.
    assert abs(after[-1].arousal) < 0.3 * abs(loud.arousal) + 0.01
    assert abs(after[15].arousal) > abs(after[-1].arousal)


def test_reaction_to_an_abrupt_switch_is_quick_at_default_smoothing():
    cfg = ListenConfig()
    r = reaction_time(build_listener(cfg.settings(), RATE), synthetic_music(10, RATE, False),
                      synthetic_music(10, RATE, True), RATE, cfg.hop_s)
    assert r is not None and 0.1 < r <= 1.5


def test_learned_head_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, len(FEATURE_NAMES)))
    y = np.tanh(np.stack([x[:, 5] * 0.8, x[:, 0] * 0.5 + x[:, 1] * 0.3], axis=1))
    head = LearnedHead.fit(x, y, ridge=0.1)
    path = tmp_path / "head.npz"
    head.save(path)
    loaded = LearnedHead.load(path)
    d = Descriptors(**dict(zip(FEATURE_NAMES, x[3])), silent=False)
    v, a, c = loaded.predict(d)
    assert v == pytest.approx(y[3, 0], abs=0.2) and a == pytest.approx(y[3, 1], abs=0.2) and c > 0
    lst = build_listener(ListenConfig(va_head="learned", learned_head=str(path)).settings(), RATE)
    assert lst.head.name == "learned"


def test_missing_or_broken_learned_head_is_one_user_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_listener(ListenConfig(va_head="learned", learned_head=str(tmp_path / "nope.npz")).settings(), RATE)
    with pytest.raises(UserError, match="learned_head is empty"):
        build_listener(ListenConfig(va_head="learned").settings(), RATE)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nonsense")
    with pytest.raises(UserError, match="cannot be read"):
        build_listener(ListenConfig(va_head="learned", learned_head=str(bad)).settings(), RATE)


def test_vibenet_head_runs_on_the_last_seconds_and_gates_silence():
    lst = build_listener(ListenConfig(va_head="vibenet").settings(), 16000, live=False)
    assert isinstance(lst.head, VibenetHead) and not lst.head.background
    states = run(lst, synthetic_music(4, 16000, True))
    assert states[-1].head == "vibenet" and states[-1].va_confidence > 0
    quiet = run(lst, np.zeros(16000 * 2, np.float32))[-1]
    assert quiet.silent and quiet.va_confidence < states[-1].va_confidence


def test_live_vibenet_runs_on_its_helper_thread_and_its_answer_arrives():
    lst = build_listener(ListenConfig(va_head="vibenet").settings(), 16000)
    try:
        assert lst.head.background
        x = synthetic_music(3, 16000, True)
        run(lst, x)
        deadline = time.monotonic() + 20.0
        while lst.head.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lst.head.runs >= 1 and lst.head.errors == 0
        s = run(lst, x[:1600])[-1]  # the next hop carries the helper's answer
        assert s.va_confidence > 0 and -1 <= s.arousal <= 1
    finally:
        lst.close()
    assert not lst.head._thread.is_alive()


def test_blend_takes_valence_mostly_from_features_and_arousal_from_both():
    class Fixed:
        def __init__(self, v, a):
            self.name, self.answer = "fixed", (v, a, 0.8)

        def predict(self, d, recent):
            return self.answer

    blend = BlendHead([Fixed(1.0, 1.0), Fixed(-1.0, -1.0)], valence_weights=(3.0, 1.0), arousal_weights=(1.0, 1.0))
    v, a, c = blend.predict(Descriptors(silent=False), None)
    assert v == pytest.approx(0.5) and a == pytest.approx(0.0) and c == pytest.approx(0.8)


def test_a_failing_head_is_counted_and_the_listener_goes_on():
    class BrokenHead:
        name = "broken"

        def predict(self, d, recent):
            raise RuntimeError("model fell over")

    lst = Listener(RATE, BrokenHead())
    states = run(lst, synthetic_music(2, RATE, True))
    assert lst.head_errors == len(states) and all(math.isfinite(s.arousal) for s in states)


def test_music_resuming_after_silence_starts_at_its_own_level_not_from_neutral():
    lst = build_listener(ListenConfig().settings(), RATE, live=False)
    first = run(lst, synthetic_music(8, RATE, False))[-1]
    gap = run(lst, np.zeros(4 * RATE, np.float32))
    resumed = run(lst, synthetic_music(8, RATE, False))
    assert gap[-1].silent and abs(gap[-1].arousal) < 0.1
    heard = next(s for s in resumed if not s.silent)
    assert abs(heard.arousal - first.arousal) < 0.5 * abs(first.arousal)


def test_section_valence_at_music_start_follows_the_evidence_as_it_fills_then_holds():
    from models.listening.va import SectionValence
    sv = SectionValence()
    sv.start(0.0, -0.6)  # the first hop heard a barely filled window that sounded minor
    t, value = 0.0, -0.6
    while t < 8.0:  # the music's own valence once the window has filled
        t += 0.1
        value = sv.update(t, 0.1, 0.5, 0.8, False)
    assert value > 0.3
    held = []
    for k in range(100):  # past the start: a passing minor phrase of 2 s moves it little
        t += 0.1
        held.append(sv.update(t, 0.1, -0.6 if 20 <= k < 40 else 0.5, 0.8, False))
    assert min(held) > value - 0.2


def test_section_valence_holds_through_a_steady_section_and_follows_a_change():
    import random

    from models.listening.va import SectionValence
    sv = SectionValence()
    rng = random.Random(0)
    held, t = [], 0.0
    for _ in range(300):  # 30 s of short-term valence swinging +-0.3 around +0.4 (passing chords)
        t += 0.1
        held.append(sv.update(t, 0.1, 0.4 + rng.uniform(-0.3, 0.3), 0.8, False))
    steady = [abs(b - a) / 0.1 for a, b in zip(held[100:], held[101:])]
    assert max(steady) <= 0.1 and abs(held[-1] - 0.4) < 0.2
    for k in range(80):  # a new, minor section flagged by the novelty detector
        t += 0.1
        value = sv.update(t, 0.1, -0.5 + rng.uniform(-0.1, 0.1), 0.8, k == 5)
    assert value < -0.2  # followed within 8 s
