"""The ControlNet's structure picture: edges or luminance of the init picture or the camera's."""
from __future__ import annotations

import numpy as np

from installation.errors import UserError

CONTROL_SOURCES = ("edges", "luminance", "camera")


def checked_source(source: str) -> str:
    if source not in CONTROL_SOURCES:
        raise UserError(f"render.controlnet_source = {source!r}; use one of {', '.join(CONTROL_SOURCES)}.")
    return source


def as_uint8(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8, contiguous; float pictures in [0, 1] are scaled (NaN becomes black)."""
    init = np.ascontiguousarray(rgb[..., :3])
    if init.dtype != np.uint8:
        init = (np.clip(np.nan_to_num(init), 0.0, 1.0) * 255).astype(np.uint8)
    return init


def control_image(init: np.ndarray, size: tuple[int, int], source: str, camera_rgb: np.ndarray | None) -> np.ndarray:
    """(height, width, 3) uint8 structure: Canny edges, or the luminance, of the init picture, or of
    the camera's when `source` is "camera" and a camera picture has come."""
    import cv2

    picture = init
    if source == "camera" and camera_rgb is not None:
        picture = as_uint8(camera_rgb)
        if (picture.shape[1], picture.shape[0]) != size:
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)
    structure = grey if source == "luminance" else cv2.Canny(grey, 80, 160)
    return np.repeat(structure[..., None], 3, axis=2)
