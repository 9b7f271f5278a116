"""The hand-offs between threads, in one place, and the operators' parameters as frozen snapshots.

`LiveState` is what operators control; only the main thread writes it (through
installation.operators.control.Control, which reads installation.operators.routes). After every change the main
thread publishes a `LiveSnapshot` on `Bus.live`; worker threads read snapshots only.

Each operator parameter is applied in one place: the valence/arousal bias in the captioner
(`LiveSnapshot.biased`), the visual speed in the renderer (`speed`), the music volume in the
composer (`LiveSnapshot.with_volume`, note velocities), the brightness in the projector.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from installation.mailbox import DropOldest, Latest
from installation.operators.routes import BUILTIN_PARAMS
from installation.records import Caption, Command, Frame, ImageState, MusicState, OnsetState, clamp_va


def builtin_defaults() -> dict[str, float]:
    """The parameters every scene has, at their defaults (the route table's ParamSpecs)."""
    return {name: spec.default for name, spec in BUILTIN_PARAMS.items()}


@dataclass
class LiveState:
    """What operators control. Owned by the main thread; everything else reads snapshots."""

    scene: str
    blackout: bool = False
    freeze: bool = False
    crossfade_s: float = 2.0
    params: dict[str, float] = field(default_factory=builtin_defaults)
    prompt_override: str | None = None
    tempo_bpm: float | None = None
    scene_crossfade_s: float | None = None
    """Cross-fade of the latest /scene when it named one; None means use `crossfade_s`."""
    stop_requested: str | None = None
    """"restart" or "stop" when a schedule (or systemd) asks the runtime to exit cleanly."""
    version: int = 0
    """Incremented on every change, so a consumer can tell cheaply that something moved."""
    tempo_sender: str | None = None
    """Who set `tempo_bpm` (an OSC address, "dashboard", "midi:<port>" for MIDI clock in)."""
    blackout_sender: str | None = None
    """Who sent the last /blackout ("schedule", "web:<host>", an OSC address, ...): why it is black."""

    def snapshot(self) -> dict[str, Any]:
        return {"scene": self.scene, "blackout": self.blackout, "freeze": self.freeze,
                "crossfade_s": self.crossfade_s, "params": dict(self.params),
                "prompt_override": self.prompt_override, "tempo_bpm": self.tempo_bpm, "version": self.version}

    def frozen(self) -> "LiveSnapshot":
        return LiveSnapshot(self.scene, self.blackout, self.freeze, self.crossfade_s,
                            types.MappingProxyType(dict(self.params)), self.prompt_override, self.tempo_bpm,
                            self.scene_crossfade_s, self.version, tempo_sender=self.tempo_sender,
                            blackout_sender=self.blackout_sender)


@dataclass(frozen=True)
class LiveSnapshot:
    """A frozen copy of LiveState: safe to read on any thread."""

    scene: str
    blackout: bool = False
    freeze: bool = False
    crossfade_s: float = 2.0
    params: Mapping[str, float] = field(default_factory=lambda: types.MappingProxyType(builtin_defaults()))
    prompt_override: str | None = None
    tempo_bpm: float | None = None
    scene_crossfade_s: float | None = None
    version: int = 0
    tempo_sender: str | None = None
    blackout_sender: str | None = None

    def param(self, name: str, default: float = 0.0) -> float:
        return float(self.params.get(name, default))

    @property
    def brightness(self) -> float:
        return self.param("brightness", BUILTIN_PARAMS["brightness"].default)

    @property
    def speed(self) -> float:
        return self.param("speed", BUILTIN_PARAMS["speed"].default)

    @property
    def volume(self) -> float:
        return self.param("volume", BUILTIN_PARAMS["volume"].default)

    def biased(self, state: MusicState) -> MusicState:
        """The operators' valence/arousal bias (/param/valence_bias, /param/arousal_bias) applied."""
        dv, da = self.param("valence_bias"), self.param("arousal_bias")
        if not dv and not da:
            return state
        v, a = clamp_va(state.valence + dv, state.arousal + da)
        return dataclasses.replace(state, valence=v, arousal=a)

    def with_volume(self, plan):
        """The plan's note velocities scaled by /param/volume; volume 0 leaves no notes."""
        volume = self.volume
        if volume == 1.0:
            return plan
        events = () if volume <= 0 else tuple(
            dataclasses.replace(e, velocity=int(min(127, max(1, round(e.velocity * volume)))))
            for e in plan.events)
        return dataclasses.replace(plan, events=events)


COMMAND_QUEUE = 256


class Bus:
    """Every mailbox between the threads. Latest slots are overwritten (readers want the freshest);
    the command queue keeps order and drops the oldest when full."""

    def __init__(self, scene, live: LiveSnapshot | None = None) -> None:
        self.music: Latest[MusicState] = Latest()
        self.onsets: Latest[OnsetState] = Latest()
        """Hits and beats at audio-block rate; the projector reads the newest at every refresh."""
        self.captions: Latest[Caption] = Latest()
        self.frames: Latest[Frame] = Latest()
        self.camera_frames: Latest[np.ndarray] = Latest()
        self.images: Latest[ImageState] = Latest()
        self.projected_va: Latest[tuple[float, float]] = Latest()
        self.projected_frames: Latest[np.ndarray] = Latest()
        self.scene: Latest = Latest()
        self.prompt: Latest[str] = Latest()
        self.live: Latest[LiveSnapshot] = Latest()
        self.commands: DropOldest[Command] = DropOldest(COMMAND_QUEUE)
        self.scene.put(scene)
        self.live.put(live if live is not None else LiveSnapshot(scene=getattr(scene, "name", str(scene))))

    def snapshot(self) -> LiveSnapshot:
        """The operators' parameters now (never None)."""
        live = self.live.peek()
        assert live is not None
        return live

    def status(self, name: str, fps: float, notes_per_s: float, counts: dict, projected_va, timeline=None) -> dict:
        """What operators see (status line, /status, show log); safe on any thread. `timeline`:
        the outside beat the composer follows (MIDI clock, Link), if any."""
        music, image, caption, frame, live = (self.music.peek(), self.images.peek(), self.captions.peek(),
                                              self.frames.peek(), self.snapshot())
        return {
            "installation": name, "scene": live.scene,
            "music_va": [round(music.valence, 3), round(music.arousal, 3)] if music else None,
            "heard_tempo_bpm": round(music.tempo_bpm, 1) if music else None,
            "key": f"{music.key} {music.mode}" if music else None,
            "image_va": [round(image.valence, 3), round(image.arousal, 3)] if image else None,
            "caption": caption.prompt if caption else None,
            "reasons": dict(caption.reasons) if caption else {},
            "render": frame.source if frame else None,
            "fps": round(fps, 1), "notes_per_s": round(notes_per_s, 2),
            # Only hand-offs whose reader takes every item; camera frames and image states are
            # sampled by design, so their overwrites are not losses.
            "drops": {"music": self.music.dropped, "captions": self.captions.dropped,
                      "frames": self.frames.dropped, "commands": self.commands.dropped},
            **counts, "projected_va": list(projected_va),
            "blackout": live.blackout, "blackout_by": live.blackout_sender, "freeze": live.freeze,
            **tempo_in_force(live, music.tempo_bpm if music else None, timeline),
        }


def tempo_in_force(live: LiveSnapshot, heard_bpm: float | None, timeline=None) -> dict[str, Any]:
    """The one tempo the composer plays at now, and where it comes from: an operator's or MIDI
    clock's /tempo, else the outside beat it follows (MIDI clock, Link), else the music heard."""
    if live.tempo_bpm is not None:
        sender = live.tempo_sender or "operator"
        source = f"MIDI clock ({sender[5:]})" if sender.startswith("midi:") else f"operator ({sender})"
        return {"tempo_bpm": round(live.tempo_bpm, 1), "tempo_source": source}
    if timeline is not None:
        try:
            return {"tempo_bpm": round(timeline.tempo_bpm(), 1),
                    "tempo_source": {"midi": "MIDI clock", "link": "Ableton Link"}.get(timeline.source, timeline.source)}
        except Exception:  # Link closed during shutdown
            pass
    return {"tempo_bpm": round(heard_bpm, 1) if heard_bpm else None, "tempo_source": "music" if heard_bpm else None}
