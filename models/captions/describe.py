"""What the music says, in words: the structured music description the facet agents read, the
evidence a reason names, and the caption-only ablation's facets worded from it (no model, < 0.1 ms)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from installation.records import VA, MusicState
from models.captions.banks import TAG_WORDS


@dataclass(frozen=True, slots=True)
class MusicDescription:
    """Words for what the music does now. `tags` are in salience order (what a reason names first)."""

    tempo: str
    mode: str
    energy: str
    dynamics: str
    timbre: str
    texture: str
    rhythm: str
    emotion: str
    section_change: bool
    silent: bool
    valence: float
    arousal: float
    tempo_bpm: float
    tags: tuple[str, ...]

    @property
    def va(self) -> VA:
        return (self.valence, self.arousal)

    @property
    def text(self) -> str:
        """One readable line, e.g. "slow minor-key music, soft and dark, sparse, melancholy (V -0.40, A -0.60)"."""
        if self.silent:
            return f"silence (V {self.valence:+.2f}, A {self.arousal:+.2f})"
        tempo = f"{self.tempo} ({self.tempo_bpm:.0f} BPM)" if self.tempo_bpm > 0 else self.tempo
        parts = [f"{tempo} {self.mode}-key music", f"{self.dynamics} and {self.timbre}", f"{self.texture}, {self.rhythm}",
                 f"{self.energy}, {self.emotion}"]
        if self.section_change:
            parts.append("a new section begins")
        return ", ".join(parts) + f" (V {self.valence:+.2f}, A {self.arousal:+.2f})"


def describe(state: MusicState) -> MusicDescription:
    """The structured caption of one MusicState: words and tags, no model involved (< 0.1 ms)."""
    v, a = state.valence, state.arousal  # a MusicState's VA is in [-1, 1] once built
    bpm = state.tempo_bpm if math.isfinite(state.tempo_bpm) else 0.0
    if bpm <= 0:
        tempo = "slow" if a < -0.3 else "fast" if a > 0.4 else "moderate"
    else:
        tempo = "slow" if bpm < 84 else "fast" if bpm > 124 else "moderate"
    mode = "minor" if state.mode == "minor" else "major"
    db = state.loudness_dbfs if math.isfinite(state.loudness_dbfs) else -120.0
    dynamics = "hushed" if db < -40 else "soft" if db < -24 else "full" if db < -14 else "loud"
    brightness = state.brightness if math.isfinite(state.brightness) else 0.0
    timbre = "dark" if brightness < 0.35 else "bright" if brightness > 0.6 else "warm"
    harmonic = state.harmonic_ratio if math.isfinite(state.harmonic_ratio) else 0.5
    onsets = state.onset_rate_hz if math.isfinite(state.onset_rate_hz) else 0.0
    texture = "percussive" if harmonic < 0.4 else "sustained" if harmonic > 0.7 and onsets < 1.5 else "tonal"
    density = "sparse" if onsets < 1.0 else "busy" if onsets > 3.0 else "flowing"
    pulsing = bpm > 0 and state.beat_confidence >= 0.5
    rhythm = f"{density}, steady beat" if pulsing else density
    energy = "calm" if a < -0.3 else "energetic" if a > 0.4 else "moderate energy"
    if v >= 0.15:
        emotion = "joyful" if a >= 0 else "serene"
    elif v <= -0.15:
        emotion = "tense" if a >= 0 else "melancholy"
    else:
        emotion = "neutral"
    tags = [mode, tempo, dynamics, timbre, density]
    if emotion != "neutral":
        tags.append(emotion)
    if energy != "moderate energy":
        tags.append(energy)
    tags.append(texture)
    if pulsing:
        tags.append("pulsing")
    if state.section_change:
        tags.insert(0, "change")
    if state.silent:
        tags.insert(0, "silence")
    return MusicDescription(tempo=tempo, mode=mode, energy=energy, dynamics=dynamics, timbre=timbre, texture=texture,
                            rhythm=rhythm, emotion=emotion, section_change=bool(state.section_change),
                            silent=bool(state.silent), valence=v, arousal=a, tempo_bpm=max(0.0, bpm), tags=tuple(tags))


def evidence(desc: MusicDescription, state: MusicState) -> dict[str, str]:
    """Tag -> the musical evidence behind it, with the measured value (what a reason names)."""
    bpm = f"{desc.tempo_bpm:.0f} BPM" if desc.tempo_bpm > 0 else "no clear beat"
    db = state.loudness_dbfs if math.isfinite(state.loudness_dbfs) else -120.0
    out = {desc.mode: f"{state.key} {desc.mode} (held valence {desc.valence:+.2f})", desc.tempo: f"{desc.tempo} {bpm}",
           desc.dynamics: f"{desc.dynamics} {db:.0f} dBFS",
           desc.timbre: f"{desc.timbre} timbre (brightness {state.brightness:.2f})",
           desc.texture: f"{desc.texture} (harmonic {state.harmonic_ratio:.2f})",
           "sparse": f"sparse onsets {state.onset_rate_hz:.1f}/s", "flowing": f"flowing onsets {state.onset_rate_hz:.1f}/s",
           "busy": f"busy onsets {state.onset_rate_hz:.1f}/s", "pulsing": f"steady beat {bpm}",
           desc.emotion: f"{desc.emotion} (V {desc.valence:+.2f}, A {desc.arousal:+.2f})",
           "calm": f"calm (arousal {desc.arousal:+.2f})", "energetic": f"energetic (arousal {desc.arousal:+.2f})",
           "change": "a new section", "silence": "silence"}
    return {t: out.get(t, TAG_WORDS[t]) for t in desc.tags}


CAPTION_ONLY_WORDS: Mapping[str, Mapping[str, str]] = {
    "emotion": {"joyful": "radiant", "serene": "tranquil", "melancholy": "mournful", "tense": "menacing",
                "neutral": "quiet"},
    "energy": {"calm": "still", "energetic": "turbulent", "moderate energy": "drifting"},
    "timbre": {"dark": "dark colours", "warm": "warm colours", "bright": "bright colours"},
    "texture": {"percussive": "sharp painting", "sustained": "smooth painting", "tonal": "painterly"},
}


CAPTION_ONLY_FIXED = ("abstract", "landscape", "motion", "composition", "key", "mood", "pulsing")
"""The words every caption_only template holds besides CAPTION_ONLY_WORDS and the descriptors."""


def caption_only_facets(desc: MusicDescription) -> dict[str, str]:
    """The caption-only ablation: five facets worded straight from the structured music caption."""
    w = CAPTION_ONLY_WORDS
    return {"scene": f"abstract {w['emotion'][desc.emotion]} landscape",
            "motion": f"{desc.rhythm.replace(', steady beat', ' pulsing')} {w['energy'][desc.energy]} motion",
            "style": w["texture"][desc.texture], "colour": f"{w['timbre'][desc.timbre]}, {desc.mode} key mood",
            "composition": f"{desc.dynamics} {desc.tempo} composition"}

