"""Operator commands (OSC, MIDI in, schedules) -> validated changes of the live state.

Threads: the OSC server thread and the MIDI-in thread only build `Command`s, ask `Control.check`
(read-only) and enqueue; the main thread drains the queue through `Control.apply`, which owns
`LiveState`. So the live state has one writer and needs no lock. After each change Control
publishes a frozen LiveSnapshot (installation.bus) for the other threads, and runs the route's
effect (installation.operators.routes has the command table).
"""
from __future__ import annotations

import logging
import math
import threading
from typing import Any, Callable, Iterable, Mapping

from installation.operators import routes
from installation.bus import LiveSnapshot, LiveState
from installation.mailbox import DropOldest, Latest
from installation.records import Command
from installation.operators.routes import BUILTIN_PARAMS, ParamSpec
from installation.showlog.writer import ShowLog
from installation.tempo import ClockFollower

log = logging.getLogger(__name__)

Effect = Callable[[Command, Any], object]  # the result, if any, is ignored

WAKE = Command(0.0, "/wake", (), "onsets")
"""Not an operator's command: on the commands queue it ends the main loop's wait between frames
(`Control.wait_frame`), so a hit is drawn at once (display.wake_on_onset). Put it with `wake`."""


def wake(commands: DropOldest[Command]) -> None:
    """Any thread: end the main loop's wait now. Wakes not yet taken share one place in the queue."""
    put_latest = getattr(commands, "put_latest", None)  # hardware.osc.inbox.CommandInbox
    if put_latest is not None:
        put_latest(WAKE.address, WAKE)
    else:
        commands.put(WAKE)


class Control:
    """Validated state changes. `check` may run on any thread; `apply` only on the main thread."""

    def __init__(self, live: LiveState, scene_names: Callable[[], list[str]], log: ShowLog | None,
                 params: Mapping[str, ParamSpec] | None = None, blocklist: Iterable[str] = (),
                 clock=None, prompt_filter: Callable[[str], str | None] | None = None,
                 snapshots: Latest[LiveSnapshot] | None = None, effects: Mapping[str, Effect] | None = None,
                 fixed_params: Mapping[str, ParamSpec] | None = None) -> None:
        self.live = live
        self.snapshots = snapshots
        """Where a frozen copy of the live state is published after every change (other threads read it)."""
        self.effects: dict[str, Effect] = dict(effects or {})
        """Route effect name -> what the main thread does after the state changed (see installation.operators.routes)."""
        self._scene_names = scene_names
        self._log = log
        self._fixed = dict(fixed_params or {})
        """Parameters of the configuration (runtime LoRAs, ControlNet strength), kept across scenes."""
        self._specs: Mapping[str, ParamSpec] = {**self._fixed, **(params if params is not None else BUILTIN_PARAMS)}
        self._blocklist = tuple(blocklist)
        self._prompt_filter = prompt_filter
        self._clock = clock
        self._latencies_ms: list[float] = []
        self._latency_lock = threading.Lock()
        self.applied = 0
        self.refused = 0
        for name, spec in self._specs.items():
            self.live.params.setdefault(name, spec.default)

    # --- any thread -----------------------------------------------------------------------------
    @property
    def param_specs(self) -> Mapping[str, ParamSpec]:
        return self._specs

    def check(self, command: Command) -> str | None:
        """None when `command` would be applied, else one sentence why not. Reads only."""
        try:
            _, reason = self._parse(command)
        except Exception as exc:  # a bad argument shape must never escape to the caller's thread
            return f"cannot read the arguments ({type(exc).__name__})"
        return reason

    def _parse(self, command: Command) -> tuple[Any, str | None]:
        _, value, reason = routes.parse(command, self._context())
        return value, reason

    def _context(self) -> routes.RouteContext:
        return routes.RouteContext(self._scene_names, self._specs, self._blocklist, self._prompt_filter)

    def publish(self) -> None:
        """Main thread: hand the other threads a frozen copy of the live state."""
        if self.snapshots is not None:
            self.snapshots.put(self.live.frozen())

    def latency_ms(self) -> list[float]:
        """Command-to-effect latencies measured so far (needs a clock)."""
        with self._latency_lock:
            return list(self._latencies_ms)

    # --- main thread ----------------------------------------------------------------------------
    def bind_effects(self, effects: Mapping[str, Effect | None]) -> None:
        """Bind what the main thread does for each route effect (the composition root does it once).
        Every name must be an effect of the route table; None leaves that effect unbound (e.g. MIDI
        learn without a MIDI input)."""
        unknown = set(effects) - routes.TABLE.effects()
        if unknown:
            raise ValueError(f"no route has the effect {sorted(unknown)[0]!r}")
        self.effects.update({name: effect for name, effect in effects.items() if effect is not None})

    def set_params(self, specs: Mapping[str, ParamSpec]) -> None:
        """New parameter table (after a scene change): new keys start at their default, values
        outside a new range are clamped, keys the scene no longer has are dropped."""
        self._specs = {**self._fixed, **specs}
        params = {}
        for name, spec in self._specs.items():
            value = self.live.params.get(name, spec.default)
            params[name] = min(spec.high, max(spec.low, value))
        self.live.params = params
        self.live.version += 1
        self.publish()

    def apply(self, command: Command) -> dict:
        """Validate again (the authority) and change the live state; log it with its sender."""
        route, value, reason = routes.parse(command, self._context())
        if reason is None and route is not None:
            live = self.live
            route.apply(live, value)
            if command.address == routes.TEMPO:
                live.tempo_sender = command.sender if value is not None else None
            elif command.address == routes.BLACKOUT:
                live.blackout_sender = command.sender
            live.version += 1
            self.applied += 1
            if self._clock is not None:
                with self._latency_lock:
                    self._latencies_ms.append((self._clock.now_s() - command.t_s) * 1000.0)
                    if len(self._latencies_ms) > 100_000:
                        del self._latencies_ms[:50_000]
        else:
            self.refused += 1
        if self._log is not None:
            self._log.write("command", address=command.address, args=list(command.args), sender=command.sender,
                            ok=reason is None, **({"reason": reason} if reason else {}))
            if reason is None and command.address == routes.SCENE:
                fade = self.live.scene_crossfade_s
                self._log.write("scene", scene=self.live.scene, crossfade_s=self.live.crossfade_s if fade is None else fade,
                                sender=command.sender)
        if reason is None and route is not None:
            self.publish()
            effect = self.effects.get(route.effect) if route.effect else None
            if effect is not None:
                effect(command, value)
        return {"ok": True} if reason is None else {"ok": False, "reason": reason}

    def apply_until(self, commands: DropOldest[Command], deadline_s: float, clock=None,
                    on_apply: Callable[[Command, dict], None] | None = None) -> int:
        """Main thread: wait for commands until `deadline_s`, applying each the moment it arrives.

        Use it as the wait between frames (instead of sleep), so a command takes effect within
        a millisecond or two rather than at the next frame. Returns how many were applied.
        A WAKE on the queue is passed over (`wait_frame` ends at one).
        """
        return self._apply_until(commands, deadline_s, clock, on_apply, stop_at_wake=False)[0]

    def wait_frame(self, commands: DropOldest[Command], deadline_s: float, clock=None) -> bool:
        """`apply_until` that also ends at a WAKE on the queue (a hit to draw now): True when it did."""
        return self._apply_until(commands, deadline_s, clock, None, stop_at_wake=True)[1]

    def _apply_until(self, commands: DropOldest[Command], deadline_s: float, clock,
                     on_apply: Callable[[Command, dict], None] | None, stop_at_wake: bool) -> tuple[int, bool]:
        clock = clock or self._clock
        applied = 0
        while True:
            remaining_s = deadline_s - clock.now_s()
            if remaining_s <= 0:
                return applied, False
            command = commands.get(timeout_s=remaining_s)
            if command is None:
                return applied, False
            if command is WAKE:
                if stop_at_wake:
                    return applied, True
                continue
            result = self.apply(command)
            applied += 1
            if on_apply is not None:
                on_apply(command, result)

    def apply_pending(self, commands: DropOldest[Command]) -> list[dict]:
        """Drain the queue and apply each command in order (main thread, once per frame)."""
        return [self.apply(command) for command in commands.drain() if command is not WAKE]


# --- MIDI controllers ---------------------------------------------------------------------------
def _curve(x: float, curve: str) -> float:
    """0..1 -> 0..1: linear, exp (fine control at the low end) or log (at the high end)."""
    if curve == "exp":
        return x * x
    if curve == "log":
        return math.sqrt(x)
    return x


class MidiMapper:
    """mido messages -> Commands, from the [control] table of the config (ControlConfig)."""

    def __init__(self, control_cfg) -> None:
        self._cfg = control_cfg
        self._cc: dict[int, list] = {}
        for mapping in control_cfg.midi_cc:
            self._cc.setdefault(mapping.cc, []).append(mapping)
        self._notes = {int(k): v for k, v in control_cfg.midi_notes.items()}
        self._clock = ClockFollower()  # the same least-squares follower the live tempo uses

    def map(self, message, sender: str) -> list[Command]:
        t_s = float(getattr(message, "time", 0.0) or 0.0)
        kind = message.type
        # Channels are numbered 1-16 in the config (as controllers show them); mido counts from 0.
        channel = getattr(message, "channel", None)
        channel = None if channel is None else channel + 1
        if channel is not None and self._cfg.midi_channel > 0 and channel != self._cfg.midi_channel:
            return []
        if kind == "control_change":
            out = []
            for m in self._cc.get(message.control, ()):
                if m.channel > 0 and channel != m.channel:
                    continue
                value = m.min + (m.max - m.min) * _curve(message.value / 127.0, m.curve)
                out.append(Command(t_s, routes.PARAM + m.param.replace(".", "/"), (round(value, 6),), sender))
            return out
        if kind == "note_on" and message.velocity > 0:
            if message.note == self._cfg.blackout_note:
                return [Command(t_s, routes.BLACKOUT, (1,), sender)]
            if message.note == self._cfg.freeze_note:
                return [Command(t_s, routes.FREEZE, (1,), sender)]
            scene = self._notes.get(message.note)
            return [Command(t_s, routes.SCENE, (scene,), sender)] if scene else []
        if kind == "note_off" or (kind == "note_on" and message.velocity == 0):
            if message.note == self._cfg.blackout_note:
                return [Command(t_s, routes.BLACKOUT, (0,), sender)]
            if message.note == self._cfg.freeze_note:
                return [Command(t_s, routes.FREEZE, (0,), sender)]
            return []
        if kind == "program_change":
            programs = self._cfg.midi_programs
            if message.program < len(programs) and programs[message.program]:
                return [Command(t_s, routes.SCENE, (programs[message.program],), sender)]
            return []
        if self._cfg.midi_clock:
            if kind == "clock":
                bpm = self._clock.tick(t_s)
                return [Command(t_s, routes.TEMPO, (bpm,), sender)] if bpm is not None else []
            if kind == "stop":
                self._clock.stop()
                return [Command(t_s, routes.TEMPO, (0,), sender)]
        return []


def key_commands(actions, t_s: float, blackout: bool, freeze: bool, scene: str, scenes) -> list[Command]:
    """Operator commands for the projector window's key actions (hardware.video.display.KEYS),
    given the live state and the scene names."""
    out = []
    for action in actions:
        if action == "blackout":
            out.append(Command(t_s, routes.BLACKOUT, (0 if blackout else 1,), "window"))
        elif action == "freeze":
            out.append(Command(t_s, routes.FREEZE, (0 if freeze else 1,), "window"))
        elif action in ("next_scene", "previous_scene") and scenes:
            names = list(scenes)
            i = names.index(scene) if scene in names else -1
            step = 1 if action == "next_scene" else -1
            out.append(Command(t_s, routes.SCENE, (names[(i + step) % len(names)],), "window"))
    return out


class MidiControlThread:
    """The MIDI-in thread: polls controllers, maps, validates with `check`, enqueues."""

    def __init__(self, inputs: list, mapper: MidiMapper, commands: DropOldest[Command],
                 check: Callable[[Command], str | None] | None = None, poll_s: float = 0.005) -> None:
        # 5 ms: below what a hand on a knob notices, and 200 wake-ups a second rather than 500 on a 2-core box.
        self._inputs = list(inputs)
        self._mapper = mapper
        self._commands = commands
        self._check = check
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"messages": 0, "commands": 0, "rejected": 0, "errors": 0}

    def start(self) -> None:
        for port in self._inputs:
            opener = getattr(port, "open", None)
            if opener is not None:
                opener()
        self._thread = threading.Thread(target=self._run, name="midi-in", daemon=True)
        self._thread.start()

    def step(self) -> int:
        """One poll of every controller; returns commands enqueued (the thread calls this)."""
        enqueued = 0
        for port in self._inputs:
            try:
                messages = port.poll()
            except Exception:
                self.stats["errors"] += 1
                log.exception("MIDI in %s: poll failed", getattr(port, "name", port))
                continue
            for message in messages:
                self.stats["messages"] += 1
                for command in self._mapper.map(message, f"midi:{port.name}"):
                    reason = self._check(command) if self._check is not None else None
                    if reason:
                        self.stats["rejected"] += 1
                        continue
                    self._commands.put(command)
                    self.stats["commands"] += 1
                    enqueued += 1
        return enqueued

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.step()
            except Exception:  # never let a mapping bug end MIDI control
                self.stats["errors"] += 1
                log.exception("MIDI control step failed")

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        for port in self._inputs:
            try:
                port.close()
            except Exception:
                pass
