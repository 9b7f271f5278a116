"""The performers' and operators' rig, built from config in one place: tempo source, MIDI in with
learn, video out, the ensemble's music input. The composition root calls, in order:

    rig = build_rig(cfg, clock, commands, control, config_path, music)   # start-up: UserError on bad input
    projector sinks += rig.video_sinks(width, height, fps)   # start-up: a required sink that cannot open
    renderer gets rig.music_view(music); the composer stage gets rig.composer(composer)
    no listener stage when rig.music_in (the music state comes from another installation)
    rig.open()                                        # with the other threads
    on a config edit: rig.take_config(old, new) -> True when taken over without a restart
    rig.stop(timeout_s)                               # at shutdown (the projector closes video out)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.base import FrameSink, MidiIn
from hardware.video.settings import VideoOutSettings
from installation.tempo import Tempo, TempoLockedComposer, TempoLockedMusic, build_tempo

log = logging.getLogger(__name__)


@dataclass
class Rig:
    tempo: Tempo
    clock: Any
    video_cfg: VideoOutSettings
    midi_map: Any = None
    midi_control: Any = None
    music_in: Any = None
    video_out: list = field(default_factory=list)
    """[video_out]'s sinks, each a hardware.video.sink_thread.SinkThread."""
    opened: list = field(default_factory=list)

    @property
    def follows(self) -> bool:
        """True when the beat comes from outside (Link or MIDI clock), not from the music heard."""
        return self.tempo.source != "internal"

    def music_view(self, music):
        """What the renderer reads: with an outside beat, the music state with that beat."""
        return TempoLockedMusic(music, self.tempo, self.clock) if self.follows else music

    def composer(self, composer):
        """What the composer stage drives: with an outside beat, bars on that timeline."""
        return TempoLockedComposer(composer, self.tempo) if self.follows else composer

    def open(self) -> None:
        """Main thread at start-up; raises UserError (one sentence) for what cannot open."""
        self.tempo.open()
        self.opened.append(self.tempo)
        if self.music_in is not None:
            self.music_in.open()
            self.opened.append(self.music_in)
        if self.midi_control is not None:
            self.midi_control.start()
            self.opened.append(self.midi_control)

    @property
    def learn(self):
        """The "learn" route effect (/learn/<path> arms MIDI learn); None without a MIDI input."""
        midi_map = self.midi_map
        return None if midi_map is None else (lambda command, value: midi_map.learn(*value))

    def midi_inputs(self) -> list[MidiIn]:
        """The MIDI inputs the control thread polls (their `health` goes to /status)."""
        return list(getattr(self.midi_control, "_inputs", [])) if self.midi_control is not None else []

    def devices(self) -> list:
        """The devices this rig opens that report a `health` for /status: the MIDI inputs and the
        video-out sinks (once `video_sinks` built them)."""
        return [*self.midi_inputs(), *self.video_out]

    def video_sinks(self, width: int, height: int, fps: float) -> list[FrameSink]:
        """The projector's extra frame sinks for [video_out], each on its own thread (none when none is asked for)."""
        from hardware.video.output import build_video_out

        self.video_out = build_video_out(self.video_cfg, width, height, fps, self.clock)
        return list(self.video_out)

    def take_config(self, old_cfg, new_cfg) -> bool:
        """A config edit that only changes MIDI mappings is taken over here (no restart)."""
        from installation.operators.midi_learn import only_mappings_changed

        if self.midi_map is None or not only_mappings_changed(old_cfg, new_cfg):
            return False
        self.midi_map.set_control(new_cfg.control)
        return True

    def status(self) -> dict:
        now_s = self.clock.now_s()
        tempo: dict[str, Any] = {"source": self.tempo.source, "t_s": now_s}
        try:
            # The beat clock; its tempo is the one in force only when it is followed (status
            # "tempo_bpm" says which one is), so an internal clock nobody follows shows no bpm.
            tempo.update(beat=round(self.tempo.beat_at(now_s), 4))
            if self.follows:
                tempo["bpm"] = round(self.tempo.tempo_bpm(), 3)
            if hasattr(self.tempo, "peers"):
                tempo["peers"] = self.tempo.peers()
        except Exception as exc:  # Link closed during shutdown
            tempo["error"] = str(exc)
        out: dict[str, Any] = {"tempo": tempo}
        if self.video_out:
            out["video_out"] = [sink.stats() for sink in self.video_out]
        if self.midi_map is not None:
            out["midi_learn"] = self.midi_map.learning
        if self.music_in is not None:
            out["ensemble"] = {"states": self.music_in.states}
        return out

    def stop(self, timeout_s: float = 0.3) -> None:
        self.close()

    def close(self) -> None:
        for piece in reversed(self.opened):
            try:
                (getattr(piece, "stop", None) or piece.close)()
            except Exception:
                log.exception("closing %s failed", getattr(piece, "name", piece))
        self.opened.clear()


def build_rig(cfg, clock, commands, control, config_path: Path | None = None, music=None) -> Rig:
    """Everything [tempo], [midi] inputs, [video_out] and [ensemble] ask for (nothing opened yet).

    `control` checks the MIDI commands; `Rig.learn` is the "learn" effect (/learn/<path> arms MIDI
    learn); a learned knob is saved into `config_path` when there is one. `music` is the listener's Latest, which the ensemble's music
    input feeds when `ensemble.music_from` is set.
    """
    tempo = build_tempo(cfg.tempo, clock)
    rig = Rig(tempo=tempo, clock=clock, video_cfg=cfg.video_out.settings())
    inputs: list[MidiIn] = []
    if cfg.midi.inputs or cfg.midi.virtual_input:
        from hardware.midi.input import MidoMidiIn, VirtualMidiIn

        inputs = [MidoMidiIn(name, clock, cfg.midi.backend) for name in cfg.midi.inputs]
        if cfg.midi.virtual_input:
            inputs.append(VirtualMidiIn(cfg.midi.virtual_input, clock, cfg.midi.backend))
    if inputs:
        from installation.operators.control import MidiControlThread
        from installation.operators.midi_learn import LiveMidiMap, save_cc_mapping

        if config_path is not None:
            from installation.config_file import remove_stale_temps
            remove_stale_temps(config_path)  # a save killed in a past run left its temporary file

        def save(mapping: dict) -> None:
            if config_path is not None:
                save_cc_mapping(config_path, mapping)

        rig.midi_map = LiveMidiMap(cfg.control, tempo=tempo, on_learned=save, clock=clock)
        rig.midi_control = MidiControlThread(inputs, rig.midi_map, commands, check=control.check)
    if cfg.ensemble.music_from:
        from installation.ensemble import OscMusicIn

        if music is None:
            raise ValueError("ensemble.music_from needs the listener's music mailbox")
        rig.music_in = OscMusicIn(cfg.ensemble.music_from, clock, music.put)
    return rig
