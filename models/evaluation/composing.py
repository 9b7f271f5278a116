"""The compose commands' and the composer eval's library: plans composed offline, written as a MIDI
file a musician can open, and measured by muspy as the image-to-music paper does."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def compose_offline(composer, states, seconds: float, frames=None) -> list:
    """Plans from t = 0 until `seconds`; `states(t_s)` gives the ImageState at a time, `frames(t_s)`
    the picture itself, for a composer that looks at it (`wants_frame`)."""
    plans = []
    t_s = 0.0
    look = frames is not None and getattr(composer, "wants_frame", False)
    while t_s < seconds:
        plan = composer.plan(states(t_s), t_s, frame=frames(t_s)) if look else composer.plan(states(t_s), t_s)
        plans.append(plan)
        t_s = plan.end_s
    return plans


VOICE_ORDER = ("melody", "chords", "bass", "drums")


def plans_to_midi(plans, path: Path) -> None:
    """A type-1 MIDI file a musician can open: a conductor track with the tempo map, time signatures
    and key signatures as the plans change, then one named track per voice (melody first), on the
    beat grid of each plan's own tempo."""
    import bisect

    import mido
    tpb = 480
    starts = [p.start_s for p in plans]
    tick0 = [0.0]
    for p in plans[:-1]:
        tick0.append(tick0[-1] + (p.end_s - p.start_s) * p.tempo_bpm / 60.0 * tpb)

    def tick(t_s: float) -> int:
        i = max(0, bisect.bisect_right(starts, t_s) - 1)
        return int(round(tick0[i] + (t_s - plans[i].start_s) * plans[i].tempo_bpm / 60.0 * tpb))

    conductor: list[tuple[int, int, Any]] = []
    last: tuple[float | None, str | None, str | None] = (None, None, None)
    for p in plans:
        num, den = (int(x) for x in p.metre.split("/"))
        key = _midi_key(p.key, p.mode)
        now = (round(p.tempo_bpm, 3), p.metre, key)
        at = tick(p.start_s)
        if now[0] != last[0]:
            conductor.append((at, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(p.tempo_bpm))))
        if now[1] != last[1]:
            conductor.append((at, 1, mido.MetaMessage("time_signature", numerator=num, denominator=den,
                                                      clocks_per_click=36 if den == 8 else 24)))
        if key is not None and now[2] != last[2]:
            conductor.append((at, 2, mido.MetaMessage("key_signature", key=key)))
        last = now
    voices: dict[str, list[tuple[int, int, Any]]] = {}
    channels: dict[str, int] = {}
    for p in plans:
        for e in p.events:
            channels.setdefault(e.voice, e.channel)
            timed = voices.setdefault(e.voice, [])
            timed.append((tick(e.start_s), 2, mido.Message("note_on", channel=e.channel, note=e.note, velocity=e.velocity)))
            timed.append((max(tick(e.start_s) + 1, tick(e.start_s + e.duration_s)), 1,
                          mido.Message("note_off", channel=e.channel, note=e.note, velocity=0)))
    programs = {ch: prog for p in plans for ch, prog in reversed(p.program_changes)}
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)

    def track(name: str, timed: list[tuple[int, int, Any]]) -> None:
        t = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        last_tick = 0
        for at, _, message in sorted(timed, key=lambda x: (x[0], x[1])):
            t.append(message.copy(time=at - last_tick))
            last_tick = at
        t.append(mido.MetaMessage("end_of_track", time=tpb))
        mid.tracks.append(t)

    track("Chromesthesia", conductor)
    for voice in sorted(voices, key=lambda v: (VOICE_ORDER.index(v) if v in VOICE_ORDER else 9, v)):
        ch = channels[voice]
        start = [(0, 0, mido.Message("program_change", channel=ch, program=programs[ch]))] if ch in programs else []
        track(voice, start + voices[voice])
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))


def _midi_key(key: str, mode: str) -> str | None:
    """A MIDI key signature for the plan's key: the parent major or minor of church modes."""
    names = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
    sharps = {"C#": 1, "D#": 3, "F#": 6, "G#": 8, "A#": 10}
    pc = sharps.get(key, names.index(key) if key in names else None)
    if pc is None:
        return None
    if mode == "minor":
        return ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")[pc] + "m"  # as mido spells them
    from models.composing.theory import MODE_OFFSET
    return names[(pc - MODE_OFFSET.get(mode, 0)) % 12]  # a church mode: its parent major's signature


PITCHED_VOICES = ("melody", "chords", "bass")


METRIC_GROUPS = {"melody": (("melody",), "folk"), "accompaniment": (("chords", "bass"), "chorales"),
                 "texture": (PITCHED_VOICES, "chorales")}
"""Which voices are measured against which corpus: the melody is a folk tune, chords and bass a
four-part chorale-style accompaniment; the whole pitched texture is shown beside the chorales too."""


TARGETS = (("melody", "pitch_entropy"), ("melody", "scale_consistency"), ("accompaniment", "polyphony"))
"""The acceptance comparisons: generated median inside the interquartile range of the group's corpus."""


def plans_to_notes(plans, voices=PITCHED_VOICES):
    """The plans' written notes (before articulation shortens them) in `voices` as corpus.Note lists,
    in beats at each plan's tempo, for metrics. Drums are never pitched material."""
    from models.composing.corpus import Note
    notes = []
    beat0 = 0.0
    for plan in plans:
        spb = 60.0 / plan.tempo_bpm
        written = plan.notated_s or tuple(e.duration_s for e in plan.events)
        for e, length_s in zip(plan.events, written):
            if e.voice in voices:
                notes.append(Note(beat0 + (e.start_s - plan.start_s) / spb, length_s / spb, e.note))
        beat0 += (plan.end_s - plan.start_s) / spb
    return notes


PAPER_DEFINITIONS = {
    "pitch_entropy": "Shannon entropy (bits) of the histogram of MIDI pitches of all notes",
    "polyphony_rate": "share of time steps (sixteenths, to the end) with more than two pitches sounding",
    "groove_consistency": "1 - mean Hamming distance between consecutive bars' onset patterns (sixteenth grid)",
}
"""muspy 0.5's definitions (muspy.pitch_entropy, polyphony_rate with its default threshold of 2,
groove_consistency), computed by muspy itself on the pitched voices."""


def muspy_metrics(plans, voices=PITCHED_VOICES) -> dict[str, float]:
    """The paper's three metrics, computed by muspy on the plans' written notes (sixteenth grid)."""
    import muspy
    notes = plans_to_notes(plans, voices)
    track = muspy.Track(program=0, is_drum=False, notes=[
        muspy.Note(time=int(round(n.onset_beats * 4)), pitch=int(n.pitch),
                   duration=max(1, int(round(n.duration_beats * 4))), velocity=64) for n in notes])
    music = muspy.Music(resolution=4, tracks=[track])
    bar_steps = 12 if plans[0].metre in ("3/4", "6/8") else 16
    return {"pitch_entropy": float(muspy.pitch_entropy(music)), "polyphony_rate": float(muspy.polyphony_rate(music)),
            "groove_consistency": float(muspy.groove_consistency(music, bar_steps))}
