"""The flash guard: a strobe is held to three flashes a second, red ones too; fades and ordinary
accents pass untouched; the projector applies it unless display.flash_guard is off."""
from __future__ import annotations

import numpy as np

from installation.bus import Bus, LiveSnapshot
from installation.clock import ManualClock
from installation.config import load_config
from installation.projection.flash_guard import FlashGuard
from installation.projection.projector import Projector
from installation.records import Frame

FPS = 30
W, H = 320, 180


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (H, W, 3)).copy()


def linear(picture: np.ndarray) -> np.ndarray:
    """Linear-light (R, G, B) of the picture's mean colour (the test pictures are uniform)."""
    c = picture.reshape(-1, 3).mean(axis=0) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def luminance(picture: np.ndarray) -> float:
    return float(linear(picture) @ [0.2126, 0.7152, 0.0722])


def red(picture: np.ndarray) -> float:
    r, g, b = linear(picture)
    return max(0.0, r - g - b) * 320.0


def saturated_red(picture: np.ndarray) -> bool:
    r, g, b = linear(picture)
    return bool(r > 0 and r >= 0.8 * (r + g + b))


def transition_times(values: list[float], step: float, flags: list[bool], either_end: bool) -> list[float]:
    """Times of the changes of `step` or more between adjacent peaks and valleys (kept apart from the
    guard's per-cell counting). `flags`: the states that may take part: the darker one must (general
    flash) or either one must (red flash, `either_end`)."""
    times: list[float] = []
    low = high = 0
    direction = 0
    for i, v in enumerate(values):
        if direction != 1 and v - values[low] >= step and (flags[low] or either_end and flags[i]):
            direction, low, high = 1, i, i
            times.append(i / FPS)
        elif direction != -1 and values[high] - v >= step and (flags[i] or either_end and flags[high]):
            direction, low, high = -1, i, i
            times.append(i / FPS)
        else:
            low, high = (i if v < values[low] else low), (i if v > values[high] else high)
    return times


def general_flashes(pictures: list[np.ndarray]) -> int:
    values = [luminance(p) for p in pictures]
    return most_flashes_in_a_second(transition_times(values, 0.1, [v < 0.8 for v in values], either_end=False))


def red_flashes(pictures: list[np.ndarray]) -> int:
    saturated = [saturated_red(p) for p in pictures]
    return most_flashes_in_a_second(transition_times([red(p) for p in pictures], 20.0, saturated, either_end=True))


def most_flashes_in_a_second(times: list[float]) -> int:
    return max((sum(1 for u in times if t - 1.0 < u <= t) for t in times), default=0) // 2


def through(guard: FlashGuard, pictures: list[np.ndarray]) -> list[np.ndarray]:
    return [guard.limit(p, i / FPS) for i, p in enumerate(pictures)]


def strobe(hz: float, seconds: float, on: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
    return [on if (i / FPS * hz) % 1.0 < 0.5 else off for i in range(int(seconds * FPS))]


def test_a_10_hz_white_black_strobe_keeps_to_three_flashes_in_every_second():
    pictures = strobe(10, 5, solid((255, 255, 255)), solid((0, 0, 0)))
    assert general_flashes(pictures) >= 9
    guard = FlashGuard()
    shown = through(guard, pictures)
    assert general_flashes(shown) <= 3
    assert guard.limited > 0 and guard.flashes(len(shown) / FPS) <= 3


def test_a_slow_fade_and_accents_at_2_hz_pass_unchanged():
    fade = [solid((v, v, v)) for v in np.linspace(0, 255, 2 * FPS).astype(int)] * 2
    accents = strobe(2, 4, solid((240, 220, 200)), solid((40, 50, 60)))
    for pictures in (fade, accents):
        guard = FlashGuard()
        shown = through(guard, pictures)
        assert guard.limited == 0 and all(s is p for s, p in zip(shown, pictures))


def test_a_small_strobe_is_left_alone():
    """Flashing over less than a quarter of the picture is within the rules."""
    on, off = solid((0, 0, 0)), solid((0, 0, 0))
    on[: H // 4, : W // 2] = 255   # an eighth of the picture
    guard = FlashGuard()
    through(guard, strobe(10, 3, on, off))
    assert guard.limited == 0


def test_a_red_strobe_is_limited_even_at_the_same_luminance():
    saturated, grey = solid((255, 0, 0)), solid((127, 127, 127))
    assert abs(luminance(saturated) - luminance(grey)) < 0.01  # no general flash at all
    pictures = strobe(8, 4, saturated, grey)
    assert red_flashes(pictures) >= 7
    guard = FlashGuard()
    shown = through(guard, pictures)
    assert guard.limited > 0
    assert red_flashes(shown) <= 3


def test_the_room_left_counts_down_as_flashes_come():
    guard = FlashGuard()
    assert guard.room(0.0) == 6
    pictures = strobe(3, 1, solid((255, 255, 255)), solid((0, 0, 0)))   # one and a half flashes
    shown = through(guard, pictures)
    assert guard.room(len(shown) / FPS) < 6
    guard = FlashGuard()
    through(guard, strobe(10, 1, solid((255, 255, 255)), solid((0, 0, 0))))
    assert guard.room(1.0) <= 1
    assert guard.room(3.0) == 6   # a quiet second later: the whole budget again


def test_measuring_only_counts_and_changes_nothing():
    pictures = strobe(10, 3, solid((255, 255, 255)), solid((0, 0, 0)))
    guard = FlashGuard(limit=False)
    shown = through(guard, pictures)
    assert all(s is p for s, p in zip(shown, pictures)) and guard.limited > 0
    assert guard.flashes(len(pictures) / FPS) >= 9


def projector(**kw) -> tuple[ManualClock, Bus, Projector]:
    clock, bus = ManualClock(), Bus("nocturne")
    p = Projector(bus.frames, bus.live, bus.projected_frames, clock, FPS, (W, H), **kw)
    p.open()
    return clock, bus, p


def run_strobe(clock: ManualClock, bus: Bus, p: Projector, seconds: float) -> list[np.ndarray]:
    shown = []
    for picture in strobe(10, seconds, solid((255, 255, 255)), solid((0, 0, 0))):
        bus.frames.put(Frame(clock.now_s(), picture))
        shown.append(p.tick(clock.now_s()))
        clock.advance(1 / FPS)
    return shown


def test_the_projector_guards_every_picture_and_the_switch_turns_it_off(tmp_path):
    clock, bus, p = projector()
    assert general_flashes(run_strobe(clock, bus, p, 3)) <= 3
    assert p.flash_limited > 0
    bus.live.put(LiveSnapshot(scene="nocturne", blackout=True))
    assert p.tick(clock.now_s()).max() == 0   # the operator's blackout is never held back

    path = tmp_path / "config.toml"
    path.write_text("[display]\nflash_guard = false\n")
    assert load_config(path).display.flash_guard is False
    clock, bus, p = projector(flash_guard=False)
    assert general_flashes(run_strobe(clock, bus, p, 3)) >= 9
    assert p.flash_limited == 0


def dense_hits(scene, seconds: float = 3.0, hits_hz: float = 8.0) -> tuple[Projector, list[np.ndarray], list[int], int]:
    """The procedural renderer's pictures with a hit every 1/8 s, through the projector's compositor and
    flash guard: (projector, every picture shown, the indices of the frames that first drew a hit, how
    many of those the guard held back)."""
    from installation.projection.compositor import Compositor
    from installation.records import MusicState, OnsetState
    from models.procedural.renderer import ProceduralRenderer
    renderer = ProceduralRenderer(W, H, seed=0)
    renderer.prepare(scene)
    clock, bus = ManualClock(10.0), Bus(scene)
    p = Projector(bus.frames, bus.live, bus.projected_frames, clock, FPS, (W, H),
                  compositor=Compositor(bus.onsets, bus.scene, 1 / FPS))
    p.open()
    shown, hit_frames, count, held_back = [], [], 0, 0
    for i in range(int(seconds * FPS)):
        now_s = clock.now_s()
        due = int((now_s - 10.0) * hits_hz) + 1
        if due > count:
            count = due
            hit_frames.append(i)
        bus.onsets.put(OnsetState(t_s=now_s, onset_t_s=now_s, strength=0.8, count=count, silent=False))
        bus.frames.put(Frame(now_s, renderer.render(MusicState(t_s=now_s, valence=0.2, arousal=0.6, tempo_bpm=120.0, silent=False), now_s)))
        limited = p.flash_limited
        shown.append(p.tick(now_s).copy())
        held_back += bool(hit_frames and hit_frames[-1] == i and p.flash_limited > limited)
        clock.advance(1 / FPS)
    renderer.close()
    p.close()
    return p, shown, hit_frames, held_back


def grey_change(a: np.ndarray, b: np.ndarray) -> float:
    import cv2
    return float(cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)).mean())


def test_dense_hits_move_the_picture_when_the_flash_budget_is_spent():
    """8 hits a second for 3 s: flashes alone (flash_to_motion = 0) leave the guard holding back most hit
    frames, some entirely; with the shipped scene a spent budget turns a flash into as much light as
    no cell makes a transition of plus a zoom punch: every hit still changes the picture, the guard
    has (almost) nothing to hold back and no 4th flash comes in any second."""
    from scenes.scene import load_scene, parse_scene
    nocturne = load_scene("nocturne")
    flashes_only = parse_scene({"name": "flashes", "compositor": {**nocturne.table("compositor"), "flash_to_motion": 0.0}})
    before, shown, hits, held_before = dense_hits(flashes_only)
    assert held_before >= 0.5 * len(hits)
    assert min(grey_change(shown[i], shown[i - 1]) for i in hits[1:]) < 1.0   # a hit held back entirely
    assert before.compositor is not None and before.compositor.moved == 0

    after, shown, hits, held_back = dense_hits(nocturne)
    assert after.compositor is not None and after.compositor.moved >= 0.5 * len(hits)
    assert after.flash_limited <= 2 and held_back <= 1
    changes = [grey_change(shown[i], shown[i - 1]) for i in hits[1:]]
    assert min(changes) >= 2.0 and np.mean(changes) >= 10.0, changes   # grey levels, mean over the picture
    measure = FlashGuard(limit=False)
    for i, picture in enumerate(shown):
        measure.limit(picture, 10.0 + i / FPS)
        assert measure.flashes(10.0 + i / FPS) <= 3
