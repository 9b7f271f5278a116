"""Audio rendered offline, as fast as it renders: plans played by the built-in synth (the composer's
self-refinement listens to its phrases this way) or by fluidsynth from their MIDI file (the compose
commands), and what a second of the built-in synth's audio costs (`bench synth`)."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from installation.errors import UserError


def render_internal(plans, sample_rate_hz: int = 16000, offset_s: float = 0.0):
    """Mono float32 audio of the plans played by the built-in synth (hardware.sound.synth.Synth), offline;
    `offset_s` is the time that becomes the first sample."""
    import mido

    from hardware.sound.synth import Synth
    synth = Synth(sample_rate_hz=sample_rate_hz, gain=0.5)
    timed: list[tuple[float, int, Any]] = []
    for plan in plans:
        for channel, program in plan.program_changes:
            timed.append((plan.start_s, 0, mido.Message("program_change", channel=channel, program=program)))
        for e in plan.events:
            timed.append((e.start_s, 2, mido.Message("note_on", channel=e.channel, note=e.note, velocity=e.velocity)))
            timed.append((e.start_s + e.duration_s, 1, mido.Message("note_off", channel=e.channel, note=e.note)))
    timed.sort(key=lambda x: (x[0], x[1]))
    blocks, frame = [], 0
    for t_s, _, message in timed:
        target = int(round((t_s - offset_s) * sample_rate_hz))
        if target > frame:
            blocks.append(synth.render(target - frame))
            frame = target
        synth.send(message)
    blocks.append(synth.render(sample_rate_hz))  # one second of release tails
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def render_audio(midi_path: Path, wav_path: Path, sample_rate_hz: int = 16000) -> None:
    """Render with fluidsynth and the General MIDI soundfont Debian ships."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        raise UserError("fluidsynth or /usr/share/sounds/sf2/TimGM6mb.sf2 is missing; install the Debian packages "
                        "fluidsynth and timgm6mb-soundfont.")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(sample_rate_hz), "-F", str(wav_path),
                    str(SOUNDFONT), str(midi_path)], check=True, capture_output=True, timeout=120)


def write_wav(plans, midi_path: Path, wav_path: Path, renderer: str, sample_rate_hz: int = 44100) -> None:
    """Audio of the plans: the built-in synth, or fluidsynth playing the MIDI file already written."""
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    if renderer == "fluidsynth":
        render_audio(midi_path, wav_path, sample_rate_hz)
        return
    import soundfile

    audio = render_internal(plans, sample_rate_hz)
    soundfile.write(str(wav_path), np.clip(audio, -1.0, 1.0), sample_rate_hz, subtype="PCM_16")


BLOCK_FRAMES = 1024
NOTES = [(0, 72), (0, 76), (0, 79), (1, 60), (1, 64), (1, 67), (1, 71), (1, 55), (1, 59), (2, 36), (2, 43), (0, 84)]


def render_cost_ms_per_s(rate_hz: int, seconds: float) -> dict:
    """12 tonal voices (lead, strings, bass) and 4 drums struck every 8 blocks, in callback-sized blocks."""
    import mido

    from hardware.sound.synth import Synth
    synth = Synth(rate_hz)
    for channel, program in ((0, 0), (1, 48), (2, 32)):
        synth.send(mido.Message("program_change", channel=channel, program=program))
    for channel, note in NOTES:
        synth.send(mido.Message("note_on", channel=channel, note=note, velocity=100))
    blocks = int(seconds * rate_hz / BLOCK_FRAMES)
    block_ms = np.empty(blocks)
    for i in range(blocks):
        if i % 8 == 0:
            for note in (36, 38, 42, 46):
                synth.send(mido.Message("note_on", channel=9, note=note, velocity=100))
        t0 = time.perf_counter()
        synth.render(BLOCK_FRAMES)
        block_ms[i] = (time.perf_counter() - t0) * 1e3
    per_s = 1000.0 * BLOCK_FRAMES / rate_hz  # ms of audio in one block
    return {"rate_hz": rate_hz, "ms_per_s_median": round(float(np.median(block_ms)) * 1000.0 / per_s, 2),
            "block_ms_p95": round(float(np.percentile(block_ms, 95)), 3),
            "block_budget_ms": round(per_s, 2), "voices": len(NOTES) + 4}
