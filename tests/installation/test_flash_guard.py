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
