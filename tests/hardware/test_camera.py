"""Camera inputs: the slideshow, video files, and a camera that is unplugged and comes back."""
from __future__ import annotations

import numpy as np
import pytest

from hardware.video.camera import OpenCvCamera, PhotoSlideshow, VideoFileCamera, camera_available, list_cameras
from installation.clock import ManualClock
from installation.errors import UserError
from models.seeing.features import ImageAnalyser
from tests.fakes import UnpluggableCapture


def solid(rgb, size=(48, 64)) -> np.ndarray:
    frame = np.zeros((*size, 3), np.uint8)
    frame[:] = rgb
    return frame


def test_slideshow_uses_the_bundled_photographs_and_cross_fades():
    clock = ManualClock()
    show = PhotoSlideshow("", 160, 120, 3.0, clock)
    show.open()
    first = show.read()
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    assert show.stats["photos"] >= 10
    clock.advance(1.0)
    assert not np.array_equal(first, show.read())  # the slow pan moves
    clock.advance(1.9)  # inside the cross-fade into the second photograph
    assert show.stats["current"] == "astronaut"
    show.read()
    clock.advance(0.5)
    show.read()
    assert show.stats["current"] == "chelsea"
    show.close()


def test_slideshow_from_a_folder_and_a_missing_folder(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "a.png"), solid((0, 0, 255)))
    show = PhotoSlideshow(str(tmp_path), 64, 48, 5.0, ManualClock())
    show.open()
    assert show.read()[..., 2].mean() < 10 and show.read()[..., 0].mean() > 240  # red stays red (RGB)
    with pytest.raises(UserError):
        PhotoSlideshow(str(tmp_path / "nope"), 64, 48, 5.0, ManualClock()).open()


def test_video_file_plays_in_real_time_and_loops(tmp_path):
    import cv2
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(10):
        writer.write(solid((i * 25, 0, 0)))
    writer.release()
    clock = ManualClock()
    cam = VideoFileCamera(str(path), clock)
    cam.open()
    assert cam.read() is not None
    assert cam.read() is None  # the next frame is not due yet
    clock.advance(2.5)  # past the end: loops
    assert cam.read() is not None
    assert cam.stats["loops"] == 1
    cam.close()
    with pytest.raises(UserError):
        VideoFileCamera(str(tmp_path / "missing.avi"), clock).open()


def test_absent_camera_is_reported_not_raised():
    assert camera_available("9") is False
    assert isinstance(list_cameras(1), list)
    with pytest.raises(UserError):
        OpenCvCamera("9", 64, 48, 15.0, ManualClock()).open()


def test_unplugged_camera_holds_the_last_frame_then_follows_new_frames():
    clock = ManualClock()
    device = {"plugged": True, "frame": solid((220, 30, 30))}
    cam = OpenCvCamera("0", 64, 48, 10.0, clock, open_capture=lambda d: UnpluggableCapture(device))
    cam.open()
    analyser = ImageAnalyser()
    red = analyser.analyse(cam.read(), clock.now_s())
    assert red.dominant_hues_deg and (red.dominant_hues_deg[0] < 20 or red.dominant_hues_deg[0] > 340)

    device["plugged"] = False  # unplugged mid-run
    held = [cam.read() for _ in range(10)]
    assert all(f is not None and f[..., 0].mean() > 200 for f in held)  # the held red frame
    assert cam.stats["lost"] and cam.stats["losses"] == 1
    during = analyser.analyse(held[-1], clock.now_s())
    assert during.dominant_hues_deg == red.dominant_hues_deg and during.motion == 0.0

    device["plugged"], device["frame"] = True, solid((30, 30, 220))  # back, now seeing blue
    for _ in range(100):
        frame = cam.read()
        if frame is not None and frame[..., 2].mean() > 200:
            break
        clock.advance(0.5)
    assert frame[..., 2].mean() > 200
    assert cam.stats["reconnects"] == 1 and not cam.stats["lost"]
    blue = analyser.analyse(frame, clock.now_s())
    assert 200 < blue.dominant_hues_deg[0] < 260


def test_a_missing_photos_folder_is_a_start_up_problem_when_auto_falls_back_to_the_slideshow(tmp_path):
    from installation.config import load_config
    from installation.sources import choose_sources
    missing = tmp_path / "no-such-folder"
    cfg = load_config(None, ['camera.source="auto"', f'camera.device="{tmp_path / "no-camera"}"',
                             f'camera.photos_dir="{missing}"', 'render.backend="procedural"'])
    sources = choose_sources(cfg, headless=True)
    assert sources.camera == "photos"
    assert any("camera.photos_dir" in p and str(missing) in p for p in sources.problems), sources.problems


def test_a_camera_whose_device_node_goes_is_lost_at_once_and_tried_again_only_when_it_is_back(caplog):
    """The probe (its /dev/videoN) finds the loss before five failed reads do; the state machine
    reports it once, and no reopen is tried while the node is absent."""
    clock = ManualClock()
    device = {"plugged": True, "node": True, "frame": solid((220, 30, 30))}
    opens: list[int] = []

    def open_capture(d):
        opens.append(1)
        return UnpluggableCapture(device)
    cam = OpenCvCamera("/dev/video7", 64, 48, 10.0, clock, open_capture=open_capture,
                       node_exists=lambda path: device["node"])
    cam.open()
    assert cam.read() is not None and cam.health.snapshot()["state"] == "open"
    device["node"] = False  # unplugged: its node goes; the driver may still hand out a stale frame
    with caplog.at_level("WARNING"):
        for _ in range(20):
            clock.advance(0.1)
            cam.read()
    snap = cam.health.snapshot()
    assert (snap["state"], snap["losses"]) == ("lost", 1) and "/dev/video7 is gone" in snap["reason"]
    assert len(opens) == 1  # nothing tried while the node is absent
    assert sum(" lost" in r.getMessage() for r in caplog.records) == 1  # logged once
    device["node"], device["frame"] = True, solid((30, 30, 220))
    for _ in range(40):
        clock.advance(0.5)
        frame = cam.read()
        if frame is not None and frame[..., 2].mean() > 200:
            break
    snap = cam.health.snapshot()
    assert (snap["state"], snap["losses"], snap["reopens"]) == ("open", 1, 1)
    cam.close()
    assert cam.health.snapshot()["state"] == "closed"
