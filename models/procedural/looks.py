"""The look a frame is drawn with: a glide from the old caption's look to the new one's over the
caption's transition time (palette, motion and turbulence blend; layout and shapes switch)."""
from __future__ import annotations

import numpy as np

from models.procedural.fields import Look, _smoothstep


class LookBlend:
    """`start` -> `target` from the first frame after `aim`; owned by the renderer thread."""

    def __init__(self, initial: Look) -> None:
        self.start = self.target = initial
        self._start_s: float | None = None
        self._blend_s = 0.0
        self._pending_s: float | None = None

    def aim(self, target: Look, transition_s: float, t_s: float) -> None:
        """Blend from the look at `t_s` to `target` over `transition_s`, starting on the next frame."""
        self.start = self.at(t_s)
        self.target = target
        self._pending_s = transition_s
        self._start_s = None

    def hold(self, look: Look) -> None:
        """Show `look` now, no blend (a scene's layout and shapes)."""
        self.start = self.target = look
        self._start_s = None

    def begin(self, t_s: float) -> None:
        """The first frame after `aim`: the blend starts at its render time."""
        if self._pending_s is not None:
            self._start_s, self._blend_s, self._pending_s = t_s, self._pending_s, None

    def at(self, t_s: float) -> Look:
        alpha = 1.0 if self._start_s is None or self._blend_s <= 0 else _smoothstep((t_s - self._start_s) / self._blend_s)
        if alpha >= 1.0:
            return self.target
        f, t = self.start, self.target
        return Look(palette=(f.palette * (1 - alpha) + t.palette * alpha).astype(np.float32),
                    motion_speed=f.motion_speed + (t.motion_speed - f.motion_speed) * alpha,
                    turbulence=f.turbulence + (t.turbulence - f.turbulence) * alpha,
                    layout=t.layout, shapes=t.shapes)
