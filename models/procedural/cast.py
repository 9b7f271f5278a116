"""The motif set on stage: which families are drawn, the part each plays (focal, supporting,
texture), and the fade from the old set to a new one over MOTIF_FADE_S."""
from __future__ import annotations

from models.procedural import composition
from models.procedural.composition import cap_full
from models.procedural.fields import _smoothstep
from models.procedural.motifs import BY_NAME

MOTIF_FADE_S = 1.2
"""A new motif set grows in (and the old one shrinks away) over this long at most."""
Job = tuple[str, float, str]
"""(motif name, strength, part) for one frame."""


class MotifCast:
    """The current and the leaving motif sets with their plans; owned by the renderer thread."""

    def __init__(self, names: tuple[str, ...], plan: composition.Plan) -> None:
        self.names = names
        self.old_names: tuple[str, ...] = ()
        self.plan = self.old_plan = plan
        self._change_s: float | None = None
        self._pending = False

    def set(self, names: tuple[str, ...], plan: composition.Plan) -> None:
        """A new set; it fades in from the next frame. Nothing happens when set and plan are the same."""
        if names == self.names and plan == self.plan:
            return
        self.old_names = tuple(n for n in self.names if n not in names)
        self.old_plan = self.plan
        self.names = names
        self.plan = plan
        self._pending = True

    def begin(self, t_s: float) -> None:
        """The first frame after `set`: the fade starts at its render time."""
        if self._pending:
            self._change_s, self._pending = t_s, False

    def drop(self, name: str) -> None:
        """Leave out a motif that failed to draw."""
        self.names = tuple(n for n in self.names if n != name)

    def plan_of(self, name: str) -> composition.Plan:
        return self.plan if name in self.names else self.old_plan

    def jobs(self, t_s: float) -> list[Job]:
        """This frame's (motif, strength, part), in drawing order."""
        fade = 1.0
        if self._change_s is not None:
            fade = _smoothstep((t_s - self._change_s) / MOTIF_FADE_S)
            if fade >= 1.0:
                self._change_s, self.old_names = None, ()
        # Each family at its part's strength (focal, supporting, texture); a family in both sets glides
        # from its old part to its new one, the others fade out and in.
        old, new = self.old_plan, self.plan
        amounts = {n: (1.0 - fade) * old.strengths.get(n, 1.0) for n in self.old_names if fade < 1.0}
        for n in self.names:
            was = old.strengths.get(n)
            now = new.strengths.get(n, 1.0)
            amounts[n] = now * fade if was is None or fade >= 1.0 else was + (now - was) * fade
        amounts = cap_full(amounts)
        # Within a layer the grounds (sea, ridges) go first, then the motifs fading out, so a leaving sea
        # never covers an arriving forest; then texture, support and the focal family, so the subject
        # is never hidden behind background.
        order = {"texture": 1, "support": 2, "focal": 3}

        def depth(job: tuple[str, float]) -> tuple[int, bool, int]:
            name = job[0]
            motif = BY_NAME[name]
            return motif.layer, not motif.backdrop, order.get(new.roles.get(name, ""), 1) if name in self.names else 0

        return [(name, amount, self.plan_of(name).roles.get(name, "texture"))
                for name, amount in sorted(amounts.items(), key=depth) if amount > 0.02]
