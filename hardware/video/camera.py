"""Camera inputs: OpenCV devices and streams, looped video files, and the photo slideshow.

Every class implements hardware.base.Camera: `open()`, `read() -> RGB uint8 (H, W, 3) | None`,
`close()`, `.name` and `.stats`. `read()` is called from the one capture thread; nothing here
starts a thread of its own, and nothing is opened at import time.
"""
from __future__ import annotations

import glob
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from installation.errors import UserError

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Photographs that ship inside the scikit-image wheel (no download). Grey ones become RGB.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "moon", "coins", "clock", "brick", "grass", "gravel")


def _quiet_opencv() -> Any:
    import cv2
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # older builds without the logging module
        pass
    return cv2


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Any image array (grey, bool, RGBA, float) as contiguous RGB uint8."""
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def _parse_device(device: str) -> int | str:
    text = str(device).strip()
    return int(text) if text.isdigit() else text


# --- photo slideshow --------------------------------------------------------------------------
class PhotoSlideshow:
    """Photographs shown one after another with slow pans and zooms and cross-fades.

    `photos_dir=""` uses the photographs scikit-image ships, so the installation runs with no
    camera and no files. Each `read()` renders the picture for the clock's current time.
    """

    fade_s = 1.5
    zoom = 0.18

    def __init__(self, photos_dir: str, width: int, height: int, slide_s: float, clock) -> None:
        self.photos_dir = photos_dir
        self.width, self.height = int(width), int(height)
        self.slide_s = float(slide_s)
        self.clock = clock
        self.name = f"photos:{photos_dir or 'scikit-image'}"
        self._photos: list[np.ndarray] = []
        self._titles: list[str] = []
        self._t0_s = 0.0
        self.stats: dict[str, Any] = {"frames": 0, "photos": 0, "current": ""}

    def open(self) -> None:
        cv2 = _quiet_opencv()
        images: list[tuple[str, np.ndarray]] = []
        if self.photos_dir:
            folder = Path(self.photos_dir).expanduser()
            if not folder.is_dir():
                raise UserError(f"camera.photos_dir {folder} is not a folder; point it at a folder of photographs or leave it empty.")
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    log.warning("skipping %s: not a readable image", path)
                    continue
                images.append((path.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            if not images:
                raise UserError(f"camera.photos_dir {folder} holds no readable photographs ({', '.join(PHOTO_SUFFIXES)}); add some or leave it empty.")
        else:
            import skimage.data
            for title in SKIMAGE_PHOTOS:
                images.append((title, _as_rgb(getattr(skimage.data, title)())))
        # Scale once so each frame is a crop + small resize, not a big resize.
        cover_w, cover_h = int(self.width * (1 + self.zoom)) + 2, int(self.height * (1 + self.zoom)) + 2
        for title, rgb in images:
            h, w = rgb.shape[:2]
            scale = max(cover_w / w, cover_h / h)
            size = (max(cover_w, int(math.ceil(w * scale))), max(cover_h, int(math.ceil(h * scale))))
            self._photos.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
            self._titles.append(title)
        self._t0_s = self.clock.now_s()
        self.stats["photos"] = len(self._photos)

    def _view(self, index: int, progress: float) -> np.ndarray:
        """Photo `index` at `progress` (0..1) through its slide: a slow zoom and a diagonal pan."""
        import cv2
        photo = self._photos[index % len(self._photos)]
        ph, pw = photo.shape[:2]
        # Alternate zooming in and out, and the pan direction, so consecutive slides differ.
        z = progress if index % 2 == 0 else 1.0 - progress
        scale = 1.0 + self.zoom * z
        crop_w, crop_h = min(pw, int(pw / scale)), min(ph, int(ph / scale))
        crop_w = max(crop_w, 1)
        crop_h = max(crop_h, 1)
        direction = 1 if index % 3 else -1
        fx = 0.5 + direction * 0.5 * (progress - 0.5)
        fy = 0.5 + 0.5 * (progress - 0.5)
        x0 = int(round((pw - crop_w) * min(1.0, max(0.0, fx))))
        y0 = int(round((ph - crop_h) * min(1.0, max(0.0, fy))))
        crop = photo[y0:y0 + crop_h, x0:x0 + crop_w]
        return cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def read(self) -> np.ndarray | None:
        if not self._photos:
            return None
        t_s = max(0.0, self.clock.now_s() - self._t0_s)
        index = int(t_s // self.slide_s)
        into_s = t_s - index * self.slide_s
        frame = self._view(index, into_s / self.slide_s)
        fade_s = min(self.fade_s, self.slide_s / 3)
        if into_s > self.slide_s - fade_s:
            mix = (into_s - (self.slide_s - fade_s)) / fade_s
            following = self._view(index + 1, 0.0)
            frame = (frame * (1.0 - mix) + following * mix).astype(np.uint8)
        self.stats["frames"] += 1
        self.stats["current"] = self._titles[index % len(self._titles)]
        return frame

    def close(self) -> None:
        self._photos.clear()
        self._titles.clear()


# --- OpenCV cameras and streams -----------------------------------------------------------------
class OpenCvCamera:
    """An OpenCV camera by index ("0"), device path ("/dev/video2") or stream URL ("rtsp://...").

    A lost camera does not stop the show: `read()` keeps returning the last good frame (paced at
    the capture rate), reopens the device with exponential backoff and counts every loss and
    reconnection in `stats` and `health` (hardware.recovery.DeviceHealth, for /status). Loss is
    found by probing as well as by failed reads: a local device whose node (/dev/videoN) is gone is
    lost at once, and is tried again only once its node is back. `open_capture` and `node_exists`
    exist so a test can put a real fake device in place.
    """

    fail_reads_before_lost = 5
    backoff_min_s = 0.5
    backoff_max_s = 10.0
    probe_s = 0.5

    def __init__(self, device: str, width: int, height: int, fps: float, clock,
                 open_capture: Callable[[int | str], Any] | None = None,
                 node_exists: Callable[[str], bool] = os.path.exists) -> None:
        from hardware.recovery import DeviceHealth
        self.device = _parse_device(device)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.clock = clock
        self.name = f"opencv:{device}"
        self._open_capture = open_capture or self._open_cv_capture
        self._cap: Any = None
        self._held: np.ndarray | None = None
        self._fails = 0
        self._lost = False
        self._backoff_s = self.backoff_min_s
        self._retry_at_s = 0.0
        self._last_read_s = -1e9
        self.stats: dict[str, Any] = {"frames": 0, "failed_reads": 0, "losses": 0, "reconnects": 0,
                                      "held_reads": 0, "lost": False}
        self.health = DeviceHealth(self.name, "camera", clock.now_s)
        self._node: str | None = None  # probed only when the camera was found through it
        self._node_exists = node_exists
        self._probed_s = -1e9

    def _node_gone(self, now_s: float, every_s: float) -> bool:
        """Whether the device's node has gone (probed at most every `every_s`; a URL is never gone)."""
        if self._node is None or now_s - self._probed_s < every_s:
            return False
        self._probed_s = now_s
        return not self._node_exists(self._node)

    def _open_cv_capture(self, device: int | str) -> Any:
        cv2 = _quiet_opencv()
        cap = cv2.VideoCapture(device)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the freshest frame, not a queue of stale ones
        return cap

    def open(self) -> None:
        cap = self._open_capture(self.device)
        if cap is None or not cap.isOpened():
            raise UserError(f"camera.device {self.device!r} cannot be opened; check `python run.py devices` "
                            f"for cameras, or set camera.source = \"photos\".")
        self._cap = cap
        node = device_node(self.device)
        self._node = node if node is not None and self._node_exists(node) else None
        self.health.opened()

    def _mark_lost(self, now_s: float, reason: str = "it stopped delivering frames") -> None:
        if not self._lost:  # one warning, the state machine's; the show holds the last frame meanwhile
            self.stats["losses"] += 1
            self.health.lost(reason)
        else:
            self.health.reopen_failed(reason)
        self._lost = True
        self.stats["lost"] = True
        self._release()
        self._retry_at_s = now_s + self._backoff_s
        self._backoff_s = min(self.backoff_max_s, self._backoff_s * 2)

    def _release(self) -> None:
        if self._cap is not None:
            try:
                self._cap.release()
            except Exception:  # a broken driver must not stop the show
                log.debug("release failed", exc_info=True)
            self._cap = None

    def _hold(self) -> np.ndarray | None:
        # Pace held reads at the capture rate so the capture loop does not spin.
        self.clock.sleep_until(self._last_read_s + 1.0 / self.fps)
        self._last_read_s = self.clock.now_s()
        self.stats["held_reads"] += 1
        return None if self._held is None else self._held

    def read(self) -> np.ndarray | None:
        now_s = self.clock.now_s()
        if self._lost:
            if now_s < self._retry_at_s or self._node_gone(now_s, 0.0):
                return self._hold()  # a node still gone is not a try: none is made until it is back
            try:
                cap = self._open_capture(self.device)
            except Exception:
                log.debug("reopen raised", exc_info=True)
                cap = None
            if cap is None or not cap.isOpened():
                self._mark_lost(now_s)
                return self._hold()
            self._cap = cap
            self._lost = False
            self.stats["lost"] = False
            self.stats["reconnects"] += 1
            self._backoff_s = self.backoff_min_s
            self._fails = 0
            self.health.opened()
        if self._cap is None:
            return None
        if self._node_gone(now_s, self.probe_s):
            self._mark_lost(now_s, f"{self._node} is gone")
            return self._hold()
        try:
            ok, bgr = self._cap.read()
        except Exception:
            log.debug("read raised", exc_info=True)
            ok, bgr = False, None
        if not ok or bgr is None:
            self._fails += 1
            self.stats["failed_reads"] += 1
            if self._fails >= self.fail_reads_before_lost:
                self._mark_lost(now_s)
            return self._hold()
        self._fails = 0
        import cv2
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else _as_rgb(bgr)
        self._held = rgb
        self._last_read_s = self.clock.now_s()
        self.stats["frames"] += 1
        return rgb

    def close(self) -> None:
        self._release()
        self.health.closed()


def device_node(device: int | str) -> str | None:
    """The device node a local camera is read through (/dev/video0 for 0), None for a stream URL."""
    if isinstance(device, int):
        return f"/dev/video{device}" if device >= 0 and sys.platform.startswith("linux") else None
    return device if device.startswith("/dev/") else None


class VideoFileCamera:
    """A video file played in real time from the clock, looped by default.

    `read()` returns the frame due now (skipping frames when called late) or None when the
    next frame is not due yet; at the end of an unlooped file it returns None for ever.
    """

    def __init__(self, path: str, clock, loop: bool = True) -> None:
        self.path = str(path)
        self.clock = clock
        self.loop = loop
        self.name = f"file:{Path(path).name}"
        self._cap: Any = None
        self._fps = 25.0
        self._t0_s = 0.0
        self._index = -1
        self.stats: dict[str, Any] = {"frames": 0, "skipped": 0, "loops": 0}

    def open(self) -> None:
        if not Path(self.path).is_file():
            raise UserError(f"camera.file {self.path} does not exist; give the path of a video file.")
        cv2 = _quiet_opencv()
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise UserError(f"camera.file {self.path} cannot be decoded by OpenCV; convert it to mp4 or avi (MJPG).")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if fps and 0 < fps < 1000 else 25.0
        self._cap = cap
        self._t0_s = self.clock.now_s()
        self._index = -1

    def _rewind(self) -> bool:
        import cv2
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._t0_s = self.clock.now_s()
        self._index = -1
        self.stats["loops"] += 1
        return True

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        due = int((self.clock.now_s() - self._t0_s) * self._fps)
        if due <= self._index:
            return None
        bgr = None
        while self._index < due:
            ok, frame = self._cap.read()
            if not ok:
                if not self.loop or self._index < 0:
                    return None
                self._rewind()
                due = 0
                continue
            self._index += 1
            if self._index < due:
                self.stats["skipped"] += 1
            bgr = frame
        if bgr is None:
            return None
        import cv2
        self.stats["frames"] += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --- discovery ----------------------------------------------------------------------------------
def list_cameras(max_index: int = 4) -> list[dict]:
    """Cameras OpenCV can open: [{"device", "width", "height", "fps"}]. Opens each briefly."""
    cv2 = _quiet_opencv()
    candidates: list[int | str] = list(range(max_index + 1))
    candidates += [p for p in sorted(glob.glob("/dev/video*")) if not p[len("/dev/video"):].isdigit()
                   or int(p[len("/dev/video"):]) > max_index]
    found = []
    for device in candidates:
        if isinstance(device, int) and not os.path.exists(f"/dev/video{device}") and os.name == "posix" \
                and os.uname().sysname == "Linux":
            continue  # V4L2 index without a node: skip the slow failing open
        cap = cv2.VideoCapture(device)
        try:
            if cap.isOpened():
                found.append({"device": str(device), "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                              "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                              "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0)})
        finally:
            cap.release()
    return found


def camera_available(device: str) -> bool:
    """Whether OpenCV can open `device` (index, path or URL) and read one frame."""
    cv2 = _quiet_opencv()
    target = _parse_device(device)
    if isinstance(target, int) and os.name == "posix" and os.uname().sysname == "Linux" \
            and not os.path.exists(f"/dev/video{target}"):
        return False
    cap = cv2.VideoCapture(target)
    try:
        return bool(cap.isOpened() and cap.read()[0])
    finally:
        cap.release()
