"""Projector outputs: pygame on a real X server (Xvfb), the headless sink, the video recorder."""
import os

import cv2
import numpy as np
import pytest

from hardware.video.display import HeadlessDisplay, PygameDisplay, VideoRecorder, fit
from hardware.video.display import test_card as draw_test_card


def test_fit_never_crops_and_never_distorts():
    frame = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    assert np.array_equal(fit(frame, 512, 512), frame)  # matching size: the same picture
    # a square picture on a 16:9 screen: scaled to the height, black bars left and right, all of it shown
    frame[:] = 0
    frame[:, :256] = (255, 0, 0)  # left half red
    frame[:, 0] = (0, 255, 0)     # a green first column: the edge survives
    frame[256 - 8:256 + 8, 256:] = (0, 0, 255)  # a blue bar across the right half's middle
    wide = fit(frame, 1920, 1080)
    assert wide.shape == (1080, 1920, 3)
    assert wide[540, 200].tolist() == [0, 0, 0] and wide[540, 1720].tolist() == [0, 0, 0]   # pillarbox
    assert wide[540, 700].tolist() == [255, 0, 0] and wide[540, 1300].tolist() == [0, 0, 255]
    assert wide[540, 420:426, 1].max() > 100   # the first column is on screen
    blue_rows = np.flatnonzero(wide[:, 1300, 2] > 128)
    assert 28 <= len(blue_rows) <= 38  # 16 px scaled by 1080/512: no squash
    assert abs(blue_rows.mean() - 540) < 2
    # a 16:9 picture on a 4:3 screen: letterboxed
    tall = fit(np.full((720, 1280, 3), 200, np.uint8), 1024, 768)
    assert tall[0, 512].tolist() == [0, 0, 0] and tall[384, 0].tolist() == [200, 200, 200]


def test_video_recorder_writes_a_readable_mp4(tmp_path):
    rec = VideoRecorder(tmp_path / "v.mp4", 30, 320, 240)
    rec.open()
    for i in range(45):
        rec.show(np.full((240, 320, 3), i * 5, np.uint8))
    rec.close()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 45
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(30, abs=0.1)
    ok, first = cap.read()
    assert ok and first.mean() < 5


def test_headless_display_keeps_the_last_frame():
    d = HeadlessDisplay()
    d.open()
    d.show(np.ones((4, 4, 3), np.uint8))
    assert d.stats["frames"] == 1 and d.last.sum() == 48
    assert d.poll_quit() is False


def test_pygame_window_on_a_real_x_server_shows_the_frame(xvfb):
    os.environ.pop("SDL_VIDEODRIVER", None)
    display = PygameDisplay("window", 640, 360)
    display.open()
    try:
        frame = np.zeros((512, 512, 3), np.uint8)
        frame[..., 0] = 200  # red
        display.show(frame)
        import pygame
        surface = pygame.display.get_surface()
        assert surface.get_size() == (640, 360)
        assert tuple(surface.get_at((320, 180)))[:3] == (200, 0, 0)
        assert display.poll_quit() is False
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert display.poll_quit() is True
    finally:
        display.close()


@pytest.fixture
def window(monkeypatch):
    """A pygame window under SDL's dummy driver (no X server needed); keys are posted as events."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    display = PygameDisplay("window", 320, 180)
    display.open()
    yield display
    display.close()


def press(display, name):
    import pygame
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name), mod=0))
    return display.poll_quit()


def shown(display):
    import pygame
    return pygame.surfarray.array3d(pygame.display.get_surface()).transpose(1, 0, 2)


def test_key_t_shows_the_test_card_with_bars_grid_resolution_and_fps(window):
    picture = np.full((180, 320, 3), 40, np.uint8)
    window.show(picture)
    assert press(window, "t") is False and window.showing_test_card
    window.show(picture)
    card = shown(window)
    assert not np.array_equal(card, picture)
    bars_row = card[60]                      # the colour bars: saturated yellow, cyan, green, ... in a row
    assert (bars_row[:, 0] > 150).any() and (bars_row[:, 2] > 150).any() and ((bars_row[:, 1] > 150) & (bars_row[:, 0] < 50)).any()
    assert np.array_equal(draw_test_card(320, 180, 30.0)[:40], card[:40])   # the same card, drawn at the window size
    press(window, "t")
    window.show(picture)
    assert np.array_equal(shown(window), picture)


def test_test_card_text_names_the_resolution_and_fps():
    import cv2
    a, b = draw_test_card(1280, 720, 30.0), draw_test_card(1280, 720, 60.0)
    assert a.shape == (720, 1280, 3) and not np.array_equal(a, b)          # the fps is written on it
    assert cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() > 100   # grid and text: sharp


def test_key_h_toggles_the_help_overlay(window):
    picture = np.full((180, 320, 3), 200, np.uint8)
    press(window, "h")
    window.show(picture)
    with_help = shown(window)
    assert window.showing_help and with_help.mean() < picture.mean() - 30   # a dark panel with the key list
    press(window, "f1")
    window.show(picture)
    assert not window.showing_help and np.array_equal(shown(window), picture)


@pytest.mark.parametrize("key,action", [("b", "blackout"), ("space", "freeze"), ("n", "next_scene"),
                                        ("right", "next_scene"), ("p", "previous_scene"), ("left", "previous_scene")])
def test_operator_keys_wait_for_the_projector(window, key, action):
    assert press(window, key) is False
    assert window.take_actions() == [action]
    assert window.take_actions() == []


def test_key_f_toggles_fullscreen(window):
    import pygame
    press(window, "f")
    assert window.mode == "fullscreen" and pygame.display.get_surface().get_flags() & pygame.FULLSCREEN
    window.show(np.zeros((180, 320, 3), np.uint8))      # frames fit whatever size the screen has
    press(window, "f11")
    assert window.mode == "window" and not pygame.display.get_surface().get_flags() & pygame.FULLSCREEN


def test_escape_and_q_quit(window):
    assert press(window, "q") is True
    assert press(window, "escape") is True


def test_projector_turns_window_keys_into_operator_commands(window):
    import pygame

    from installation.bus import LiveSnapshot
    from installation.clock import ManualClock
    from installation.mailbox import DropOldest, Latest
    from installation.projection.projector import Projector

    live = Latest()
    live.put(LiveSnapshot(scene="nocturne", blackout=True))
    commands = DropOldest(16)
    projector = Projector(Latest(), live, Latest(), ManualClock(), 30.0, (320, 180), display=window,
                          commands=commands, scenes=lambda: ["cosmos", "nocturne", "pulse"])
    for name in ("n", "b", "space", "left"):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(name), mod=0))
    assert projector.window_closed() is False
    got = [(c.address, c.args) for c in commands.drain()]
    assert got == [("/scene", ("pulse",)), ("/blackout", (0,)), ("/freeze", (1,)), ("/scene", ("cosmos",))]
