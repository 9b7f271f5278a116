"""Frozen records that cross threads. Every `t_s` comes from the one clock (installation.clock).

This module and installation.clock/installation.mailbox are leaves: they import only the standard
library and numpy, so models/, hardware/ and scenes/ may import them without breaking the
direction of imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

VA = tuple[float, float]
"""(valence, arousal), each in [-1, 1]."""


def clamp_va(valence: float, arousal: float) -> VA:
    """Clip to [-1, 1] and map NaN to neutral, so no NaN ever leaves a model."""
    v = 0.0 if not np.isfinite(valence) else float(min(1.0, max(-1.0, valence)))
    a = 0.0 if not np.isfinite(arousal) else float(min(1.0, max(-1.0, arousal)))
    return v, a


def _clamp_fields(record: Any) -> None:
    """A record's VA is in [-1, 1] once built (NaN -> 0), so no consumer clamps again."""
    valence, arousal = clamp_va(record.valence, record.arousal)
    object.__setattr__(record, "valence", valence)
    object.__setattr__(record, "arousal", arousal)


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """Mono float32 samples in [-1, 1]; `t_s` is the capture time of the first sample."""

    t_s: float
    samples: np.ndarray
    sample_rate_hz: int


@dataclass(frozen=True, slots=True)
class Descriptors:
    """One summary of the listener's rolling window (models.listening.features). Every value is finite."""

    loudness_dbfs: float = -120.0
    loudness_lufs: float = -120.0
    onset_strength: float = 0.0
    onset_rate_hz: float = 0.0
    tempo_bpm: float = 0.0
    beat_phase: float = 0.0
    beat_confidence: float = 0.0
    key: str = "C"
    mode: str = "major"
    key_confidence: float = 0.0
    mode_strength: float = 0.0
    """Signed major-ness in [-1, 1]: correlation with the best major key minus the best minor key."""
    consonance: float = 0.5
    """Share of chroma energy inside the best key's scale, in [0, 1]."""
    centroid_hz: float = 0.0
    brightness: float = 0.0
    band_low: float = 0.0
    band_mid: float = 0.0
    band_high: float = 0.0
    harmonic_ratio: float = 0.5
    flux: float = 0.0
    """Mean spectral flux over the recent span, log-mel units per frame."""
    major_chords: float = 0.0
    """Share of the window's ~0.5 s chord segments that match a major triad best, in [0, 1]."""
    minor_chords: float = 0.0
    """Share that match a minor triad best (the rest match neither clearly)."""
    dissonance: float = 0.5
    """Interval-class dissonance of the chroma per segment (seconds and tritones against thirds,
    fourths and fifths), in [0, 1]."""
    register_hz: float = 0.0
    """Energy-weighted geometric mean frequency of the 80-2000 Hz mel bands: how high the music sits."""
    silent: bool = True
    novelty: float = 0.0
    section_change: bool = False
    frames: int = 0

    def vector(self) -> np.ndarray:
        """The numeric descriptors a learned head sees, in FEATURE_NAMES order."""
        return np.array([getattr(self, n) for n in FEATURE_NAMES], dtype=np.float64)


FEATURE_NAMES = ("loudness_lufs", "onset_rate_hz", "onset_strength", "tempo_bpm", "beat_confidence",
                 "mode_strength", "key_confidence", "consonance", "centroid_hz", "brightness",
                 "band_low", "band_mid", "band_high", "harmonic_ratio", "flux")
DESCRIPTOR_FIELDS = frozenset(Descriptors.__dataclass_fields__)


@dataclass(frozen=True, slots=True, init=False)
class MusicState:
    """What the listener hears now: its descriptors plus valence-arousal.

    The descriptors are carried, not copied: `state.tempo_bpm` reads `state.descriptors.tempo_bpm`.
    For brevity a state can be built with descriptor fields as keywords:
    `MusicState(t_s=0, valence=0.3, tempo_bpm=120)`; `dataclasses.replace` accepts them too.
    """

    t_s: float
    valence: float
    arousal: float
    va_confidence: float
    descriptors: Descriptors
    head: str
    valence_short: float
    """The short-term valence (seconds); `valence` is the section-level one that holds through a section."""

    def __init__(self, t_s: float, valence: float = 0.0, arousal: float = 0.0, va_confidence: float = 0.0,
                 descriptors: Descriptors | None = None, head: str = "", valence_short: float | None = None,
                 **descriptor_fields: Any) -> None:
        unknown = set(descriptor_fields) - DESCRIPTOR_FIELDS
        if unknown:
            raise TypeError(f"MusicState has no field {sorted(unknown)[0]!r}")
        d = descriptors if descriptors is not None else Descriptors()
        if descriptor_fields:
            d = replace(d, **descriptor_fields)
        valence, arousal = clamp_va(valence, arousal)
        short = valence if valence_short is None else clamp_va(valence_short, 0.0)[0]
        for name, value in (("t_s", t_s), ("valence", valence), ("arousal", arousal),
                            ("va_confidence", va_confidence), ("descriptors", d), ("head", head),
                            ("valence_short", short)):
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the descriptor fields.
        if name in DESCRIPTOR_FIELDS:
            return getattr(object.__getattribute__(self, "descriptors"), name)
        raise AttributeError(f"MusicState has no attribute {name!r}")

    @property
    def va(self) -> VA:
        return (self.valence, self.arousal)


@dataclass(frozen=True, slots=True)
class OnsetState:
    """The newest hit and beat, at audio-block rate (models.listening.onsets), for the projector's accents.

    Every time is on the one clock. `count` grows by one per onset, so a reader tells a new hit from
    the one it already drew; predicted beats fall at `beat_t_s + k * 60 / tempo_bpm`.
    """

    t_s: float
    """End of the newest audio analysed."""
    onset_t_s: float = -1e9
    """Start of the hop the newest onset landed in."""
    strength: float = 0.0
    """That onset's strength in [0, 1], against the recent hits: a soft hit gives a soft accent."""
    count: int = 0
    silent: bool = True
    tempo_bpm: float = 0.0
    beat_t_s: float = -1e9
    beat_confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Caption:
    """A prompt for the renderer with the facet phrases and the reasons behind each."""

    t_s: float
    prompt: str
    negative_prompt: str = ""
    facets: Mapping[str, str] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    valence: float = 0.0
    arousal: float = 0.0
    transition_s: float = 2.0
    source: str = "agents"
    hints: Mapping[str, Any] = field(default_factory=dict)
    """Structured look for renderers, from the facet phrase banks. Keys (all optional):
    palette: tuple of 3-5 "#rrggbb"; motion_speed, turbulence: 0..1;
    layout: horizon | centre | diagonal | radial | scattered | grid;
    shapes: waves | mountains | orbs | stars | forest | city | clouds | particles | ribbons | crystals."""

    def __post_init__(self) -> None:
        _clamp_fields(self)


@dataclass(frozen=True, slots=True)
class Frame:
    """An RGB uint8 picture (H, W, 3) ready for the projector."""

    t_s: float
    rgb: np.ndarray
    index: int = 0
    source: str = "procedural"
    render_ms: float = 0.0
    display_rgb: np.ndarray | None = None
    """The same picture already scaled for the projector, by the renderer thread, so the main
    thread never scales; None when no window is open or the sizes match."""


@dataclass(frozen=True, slots=True)
class ImageState:
    """What the camera sees: features and valence-arousal of one analysed frame."""

    t_s: float
    valence: float = 0.0
    arousal: float = 0.0
    va_confidence: float = 0.0
    brightness: float = 0.5
    saturation: float = 0.0
    contrast: float = 0.0
    colourfulness: float = 0.0
    edge_density: float = 0.0
    motion: float = 0.0
    dominant_hues_deg: tuple[float, ...] = ()
    regions_motion: tuple[float, ...] = ()
    presence: bool = False
    source: str = ""
    content: Mapping[str, float] = field(default_factory=dict)
    """What the picture shows (models.seeing.content.CONTENT_KEYS: texture, edge orientation,
    horizon, openness, sky/water/vegetation/storm shares, faces, people)."""
    description: str = ""
    """The picture in words (mood, content, zero-shot labels, a visitor's comment): the composer's query."""
    comment: str = ""
    """A visitor's words while they last (also inside `description`): the composer reads their mood."""

    def __post_init__(self) -> None:
        _clamp_fields(self)

    @property
    def va(self) -> VA:
        return (self.valence, self.arousal)


@dataclass(frozen=True, slots=True)
class NoteEvent:
    """One note: the scheduler sends note_on at `start_s` and note_off at `start_s + duration_s`."""

    start_s: float
    duration_s: float
    note: int
    velocity: int
    channel: int = 0
    voice: str = "melody"


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command after parsing; validated by installation.operators.control."""

    t_s: float
    address: str
    args: tuple[Any, ...] = ()
    sender: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """The next bar(s) of music with everything needed to explain and play it."""

    events: tuple[NoteEvent, ...]
    start_s: float
    end_s: float
    tempo_bpm: float
    key: str
    mode: str
    abc: str
    reasons: tuple[str, ...]
    metre: str = "4/4"
    bars: int = 1
    phrase_start: bool = False
    chords: tuple[tuple[float, str, str, tuple[int, ...]], ...] = ()
    """(t_s, symbol like "Am", quality maj|min|dim|aug, MIDI notes) at each chord onset."""
    program_changes: tuple[tuple[int, int], ...] = ()
    """(channel, program) to send before this plan's first note: the first plan and scene changes."""
    valence: float = 0.0
    arousal: float = 0.0
    notated_s: tuple[float, ...] = ()
    """Written length of each event in `events` (same order), before articulation shortens it:
    the score the corpus metrics compare, as muspy reads a score."""

    def __post_init__(self) -> None:
        _clamp_fields(self)


@dataclass(frozen=True, slots=True)
class Cue:
    """A timed non-MIDI event (OSC): sent at `t_s` to outputs that have `accepts_cues = True`."""

    t_s: float
    address: str
    args: tuple[Any, ...] = ()
