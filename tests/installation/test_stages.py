"""Each stage on its own, driven by ManualClock: step() by hand, no threads, no sleeping."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from installation.bus import Bus, LiveSnapshot
from installation.clock import ManualClock
from installation.records import AudioBlock, Caption, ImageState, MusicState, NoteEvent
from installation.stages.camera import CameraStage
from installation.stages.captioner import CaptionerStage
from installation.stages.composer import ComposerStage
from installation.stages.listener import ListenerStage
from installation.stages.renderer import RendererStage
from installation.stages.watcher import WatcherStage


def live(**params) -> LiveSnapshot:
    return LiveSnapshot(scene="nocturne", params=params)


# --- listener -------------------------------------------------------------------------------------
class BlocksOnClock:
    """An audio input that yields one block per read and advances the manual clock by its length."""

    def __init__(self, clock: ManualClock, block_s: float = 0.05) -> None:
        self.clock, self.block_s, self.opened, self.closed = clock, block_s, 0, 0

    def open(self) -> None:
        self.opened += 1

    def read(self, timeout_s: float):
        self.clock.advance(self.block_s)
        return AudioBlock(self.clock.now_s(), np.full(100, 0.1, np.float32), 2000)

    def close(self) -> None:
        self.closed += 1


class CountingListener:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self, samples) -> None:
        self.fed += len(samples)

    def state(self, now_s: float) -> MusicState:
        return MusicState(t_s=now_s, valence=min(1.0, self.fed / 10_000), arousal=0.1)


def test_listener_feeds_every_block_and_publishes_once_per_hop():
    clock, bus = ManualClock(), Bus("nocturne")
    audio, model = BlocksOnClock(clock), CountingListener()
    stage = ListenerStage(audio, model, bus.music, clock, hop_s=0.2)
    stage.open()
    for _ in range(20):  # 1 s of audio in 50 ms blocks
        stage.step()
    stage.close()
    assert model.fed == 2000 and audio.opened == audio.closed == 1
    assert stage.states in (5, 6)  # one at once, then one per 0.2 s hop (float rounding at 1.0 s)
    assert bus.music.peek().t_s == clock.now_s() and bus.music.peek().valence == 0.2


# --- captioner ------------------------------------------------------------------------------------
class RecordingDirector:
    def __init__(self) -> None:
        self.calls: list = []

    def set_scene(self, scene) -> None:
        self.calls.append(("scene", scene))

    def override_prompt(self, text: str, t_s: float) -> Caption:
        self.calls.append(("prompt", text))
        return Caption(t_s, text, source="operator")

    def critique(self, va, t_s: float) -> None:
        self.calls.append(("critique", va))

    def update(self, state: MusicState, t_s: float) -> Caption | None:
        self.calls.append(("update", (state.valence, state.arousal)))
        return Caption(t_s, f"v{state.valence:.1f}", valence=state.valence, arousal=state.arousal)


def test_captioner_applies_the_operators_bias_once_and_follows_scene_and_prompt():
    clock, bus = ManualClock(), Bus("nocturne")
    director, seen = RecordingDirector(), []
    stage = CaptionerStage(director, bus.music, bus.scene, bus.prompt, bus.projected_va, bus.live, bus.captions,
                           clock, on_caption=seen.append)
    bus.live.put(live(valence_bias=0.3, arousal_bias=-0.2))
    bus.music.put(MusicState(t_s=0.0, valence=0.5, arousal=0.5))
    stage.step()
    assert director.calls == [("update", (0.8, 0.3))]
    assert bus.captions.peek().prompt == "v0.8" and stage.made == 1 and seen[0].prompt == "v0.8"

    bus.scene.put("pulse")
    bus.prompt.put("a harbour at night")
    bus.projected_va.put((0.1, -0.1))
    bus.music.put(MusicState(t_s=1.0, valence=0.0, arousal=0.0))
    stage.step()  # the operator's prompt wins over the music this time
    assert director.calls[1:] == [("scene", "pulse"), ("prompt", "a harbour at night"), ("critique", (0.1, -0.1))]
    assert bus.captions.peek().source == "operator" and stage.made == 2


# --- renderer -------------------------------------------------------------------------------------
class SolidRenderer:
    """A source renderer: the picture's grey level is the visual time it was asked for."""

    name = "procedural"

    def __init__(self) -> None:
        self.scenes: list = []
        self.prompts: list = []
        self.times: list[float] = []

    def prepare(self, scene) -> None:
        self.scenes.append(scene)

    def update_prompt(self, caption) -> None:
        self.prompts.append(caption.prompt)

    def render(self, music, t_s, init_rgb=None):
        self.times.append(t_s)
        return np.full((8, 8, 3), int(t_s * 10) % 256, np.uint8)


class Inverting(SolidRenderer):
    name = "diffusion"

    def render(self, music, t_s, init_rgb=None):
        return 255 - init_rgb


def test_renderer_runs_at_the_display_rate_with_visual_time_at_the_operators_speed():
    clock, bus = ManualClock(), Bus("nocturne")
    source = SolidRenderer()
    stage = RendererStage([source], bus.music, bus.captions, bus.scene, bus.live, bus.frames, clock, fps=10)
    for _ in range(5):
        stage.step()
    assert clock.now_s() == 0.5 and stage.index == 5  # each step waits for its frame slot
    assert source.scenes == ["nocturne"]  # prepared once, on the first frame
    bus.live.put(live(speed=2.0))
    bus.captions.put(Caption(0.5, "stars"))
    for _ in range(5):
        stage.step()
    assert source.times[4] == pytest.approx(0.4) and source.times[-1] == pytest.approx(0.4 + 2 * 0.5)  # twice as fast
    assert source.prompts == ["stars"]
    frame = bus.frames.peek()
    assert frame.index == 10 and frame.source == "procedural" and frame.display_rgb is None


def test_renderer_chains_a_pass_fits_the_window_and_rests_while_dormant():
    clock, bus, dormant = ManualClock(), Bus("nocturne"), threading.Event()
    stage = RendererStage([SolidRenderer(), Inverting()], bus.music, bus.captions, bus.scene, bus.live, bus.frames,
                          clock, fps=10, dormant=dormant, display_size=lambda: (4, 2),
                          fit=lambda rgb, w, h: rgb[:h, :w])
    stage.step()
    frame = bus.frames.peek()
    assert frame.source == "diffusion" and frame.rgb[0, 0, 0] == 255 and frame.display_rgb.shape == (2, 4, 3)
    dormant.set()
    before = clock.now_s()
    stage.step()
    assert stage.index == 1 and clock.now_s() == before + 0.25  # no frame, only a short rest


# --- camera and watcher ---------------------------------------------------------------------------
class SlideCamera:
    def __init__(self) -> None:
        self.reads = 0

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self):
        self.reads += 1
        return None if self.reads == 2 else np.full((4, 4, 3), self.reads, np.uint8)  # one lost frame


def test_camera_reads_at_its_rate_and_a_lost_frame_keeps_the_last_one():
    clock, bus = ManualClock(), Bus("nocturne")
    stage = CameraStage(SlideCamera(), bus.camera_frames, clock, fps=5)
    stage.step()
    stage.step()
    assert bus.camera_frames.peek()[0, 0, 0] == 1 and clock.now_s() == 0.4
    stage.step()
    assert bus.camera_frames.peek()[0, 0, 0] == 3


class MeanAnalyser:
    def analyse(self, rgb, t_s: float) -> ImageState:
        return ImageState(t_s=t_s, valence=float(rgb.mean()) / 255, presence=True)


class MeanVa:
    def estimate(self, rgb):
        return float(rgb.mean()) / 255, 0.5, 1.0


def test_watcher_analyses_camera_frames_and_rates_the_projected_picture():
    clock, bus = ManualClock(), Bus("nocturne")
    stage = WatcherStage(MeanAnalyser(), MeanVa(), bus.camera_frames, bus.projected_frames, bus.images,
                         bus.projected_va, clock, rate_hz=4)
    bus.camera_frames.put(np.full((4, 4, 3), 51, np.uint8))
    bus.projected_frames.put(np.full((4, 4, 3), 255, np.uint8))
    stage.step()
    assert bus.images.peek().valence == 0.2 and bus.projected_va.peek() == (1.0, 0.5)
    assert stage.last_projected_va == (1.0, 0.5) and clock.now_s() == 0.25


# --- composer -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    start_s: float
    end_s: float
    events: tuple
    program_changes: tuple = ((0, 80),)
    tempo_bpm: float = 120.0


class PhraseComposer:
    def __init__(self) -> None:
        self.scenes: list = []
        self.tempi: list = []

    def set_scene(self, scene) -> None:
        self.scenes.append(scene)

    def plan(self, image, start_s, tempo_bpm=None) -> Plan:
        self.tempi.append(tempo_bpm)
        return Plan(start_s, start_s + 2.0, (NoteEvent(start_s, 0.5, 60, 100), NoteEvent(start_s + 1, 0.5, 64, 80)))


class RecordingScheduler:
    def __init__(self) -> None:
        self.plans: list = []
        self.messages: list = []

    def submit_messages(self, messages) -> None:
        self.messages.extend(messages)

    def submit_plan(self, plan, valence, arousal) -> None:
        self.plans.append(plan)


def test_composer_plans_a_phrase_ahead_with_volume_applied_once():
    clock, bus = ManualClock(), Bus("nocturne")
    composer, schedulers = PhraseComposer(), [RecordingScheduler(), RecordingScheduler()]
    stage = ComposerStage(composer, bus.images, bus.scene, bus.live, schedulers, clock)
    bus.live.put(LiveSnapshot(scene="nocturne", params={"volume": 0.5}, tempo_bpm=90.0))
    stage.step()
    plan = schedulers[0].plans[0]
    assert (plan.start_s, plan.end_s) == (0.1, 2.1) and [e.velocity for e in plan.events] == [50, 40]
    assert schedulers[1].plans == [plan] and composer.tempi == [90.0]
    assert [(t, m.channel, m.program) for t, m in schedulers[1].messages] == [(0.1, 0, 80)]  # at the phrase
    stage.step()  # more than LEAD_S before the next phrase: wait until a second before it
    assert clock.now_s() == 1.1 and len(schedulers[0].plans) == 1
    stage.step()
    assert schedulers[0].plans[1].start_s == 2.1 and stage.notes_planned == 4
    assert len(schedulers[0].messages) == 1  # the same programs are not sent again
    bus.scene.put("pulse")
    clock.advance(1.0)
    stage.step()
    assert composer.scenes == ["pulse"]


def test_composer_is_silent_while_dormant_and_starts_at_once_on_waking():
    clock, bus, dormant = ManualClock(), Bus("nocturne"), threading.Event()
    schedulers = [RecordingScheduler()]
    stage = ComposerStage(PhraseComposer(), bus.images, bus.scene, bus.live, schedulers, clock, dormant=dormant)
    stage.step()
    dormant.set()
    for _ in range(8):
        stage.step()
    assert len(schedulers[0].plans) == 1 and clock.now_s() == 2.0
    dormant.clear()
    stage.step()
    assert schedulers[0].plans[-1].start_s == 2.1  # at once, not at the old phrase boundary


class HangingClose(BlocksOnClock):
    """An audio input whose close never returns (PortAudio on a vanished JACK server)."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.release = threading.Event()

    def close(self) -> None:
        self.release.wait(30)


def test_a_close_that_hangs_is_abandoned_and_the_listener_goes_on():
    import time
    clock, bus = ManualClock(), Bus("nocturne")
    audio = HangingClose(clock)
    stage = ListenerStage(audio, CountingListener(), bus.music, clock, hop_s=0.2)
    stage.CLOSE_TIMEOUT_S = 0.2
    stage.open()
    started = time.monotonic()
    stage.close()  # what the worker does after a failure
    assert time.monotonic() - started < 5  # abandoned, not waited for
    stage.open()
    stage.step()
    assert bus.music.peek() is not None
    audio.release.set()


@pytest.mark.parametrize("vision", [True, False])
def test_the_llm_composer_gets_the_camera_frame_live_only_with_vision_on(vision):
    import numpy as np

    from installation.config import ComposeConfig
    from models.composing.composer import Composer
    from models.composing.llm import LlmComposer
    from scenes.scene import load_scene
    from tests.fakes import FakeLlm
    from tests.models.test_composer_llm import melody_for
    from tests.waiting import wait_for
    server = FakeLlm({"good": melody_for})
    try:
        clock, bus = ManualClock(), Bus("nocturne")
        composer = LlmComposer(Composer(ComposeConfig(retrieval=False, bars_ahead=4).settings(), load_scene("nocturne"), seed=2),
                               server.url, "tiny-vision", timeout_s=10.0, vision=vision, background=True)
        stage = ComposerStage(composer, bus.images, bus.scene, bus.live, [RecordingScheduler()], clock,
                              camera=bus.camera_frames)
        bus.camera_frames.put(np.full((120, 160, 3), 90, np.uint8))
        stage.step()
        wait_for(lambda: server.requests)
    finally:
        server.stop()
    content = server.requests[0]["messages"][1]["content"]
    if vision:
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    else:
        assert isinstance(content, str)
