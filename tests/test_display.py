"""Projector outputs: pygame on a real X server (Xvfb), the headless sink, the video recorder."""
import os

import cv2
import numpy as np
import pytest

from hardware.display import HeadlessDisplay, PygameDisplay, VideoRecorder, fit


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
