"""Operator commands (OSC, MIDI in, schedules) -> validated changes of the live state.

Threads: the OSC server thread and the MIDI-in thread only build `Command`s, ask `Control.check`
(read-only) and enqueue; the main thread drains the queue through `Control.apply`, which owns
`LiveState`. So the live state has one writer and needs no lock.

Addresses (docs/osc.md has the full table):
  /scene <name> [crossfade_s]   /crossfade <s>      /blackout <0|1>   /freeze <0|1>
  /param/<path> <value>         /prompt <text>      /tempo <bpm>      (0 releases the tempo)
  /restart, /stop               (schedules and systemd; not accepted from the network)
"""
from __future__ import annotations

import logging
import math
import re
import statistics
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from hardware.osc import OscControlServer, UdpOscOut  # noqa: F401  (re-exported for the runtime)
from installation.mailbox import DropOldest
from installation.records import Command
from installation.showlog import ShowLog

log = logging.getLogger(__name__)

CROSSFADE_RANGE_S = (0.0, 60.0)
TEMPO_RANGE_BPM = (20.0, 300.0)
PROMPT_MAX_CHARS = 300
LOCAL_SENDERS = ("schedule", "systemd", "main", "reload")
"""Senders allowed to use /restart and /stop; a network sender never is."""


@dataclass(frozen=True)
class ParamSpec:
    """A live parameter operators may set with /param/<path>."""

    low: float
    high: float
    default: float
    doc: str = ""

    def check(self, value: float) -> str | None:
        if not self.low <= value <= self.high:
            return f"value {value:g} is out of range {self.low:g}..{self.high:g}"
        return None


BUILTIN_PARAMS: dict[str, ParamSpec] = {
    "brightness": ParamSpec(0.0, 1.0, 1.0, "master brightness of the projection"),
    "speed": ParamSpec(0.0, 4.0, 1.0, "visual motion speed multiplier"),
    "volume": ParamSpec(0.0, 2.0, 1.0, "composed music level multiplier"),
    "valence_bias": ParamSpec(-1.0, 1.0, 0.0, "added to the music's valence before captions"),
    "arousal_bias": ParamSpec(-1.0, 1.0, 0.0, "added to the music's arousal before captions"),
}
"""Parameters every scene has; a scene adds its own in a [params] table."""


def param_specs_for(scene=None) -> dict[str, ParamSpec]:
    """Built-in parameters plus the scene's [params] table: name = { min, max, default, doc }.

    Raises ValueError (one sentence) on a bad table, so live reload can keep the running scene.
    """
    specs = dict(BUILTIN_PARAMS)
    table = scene.table("params") if scene is not None else {}
    where = f"{getattr(scene, 'path', None) or 'scene'} [params]"
    for name, raw in table.items():
        if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)*", name):
            raise ValueError(f"{where}: parameter name {name!r} must be lower-case words joined by dots.")
        if not isinstance(raw, Mapping) or not {"min", "max"} <= set(raw) or set(raw) - {"min", "max", "default", "doc"}:
            raise ValueError(f"{where}: {name} must be a table {{ min = .., max = .., default = .., doc = \"..\" }}.")
        low, high = raw["min"], raw["max"]
        default = raw.get("default", low)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (low, high, default)) \
                or not low < high or not low <= default <= high:
            raise ValueError(f"{where}: {name} needs numbers with min < max and min <= default <= max.")
        specs[name] = ParamSpec(float(low), float(high), float(default), str(raw.get("doc", "")))
    return specs


def param_key(address: str) -> str:
    """/param/render/strength -> render.strength"""
    return address[len("/param/"):].strip("/").replace("/", ".")


@dataclass
class LiveState:
    """What operators control. Owned by the main thread; everything else reads snapshots."""

    scene: str
    blackout: bool = False
    freeze: bool = False
    crossfade_s: float = 2.0
    params: dict[str, float] = field(default_factory=lambda: {k: s.default for k, s in BUILTIN_PARAMS.items()})
    prompt_override: str | None = None
    tempo_bpm: float | None = None
    scene_crossfade_s: float | None = None
    """Cross-fade of the latest /scene when it named one; None means use `crossfade_s`."""
    stop_requested: str | None = None
    """"restart" or "stop" when a schedule (or systemd) asks the runtime to exit cleanly."""
    version: int = 0
    """Incremented on every change, so a consumer can tell cheaply that something moved."""

    def snapshot(self) -> dict[str, Any]:
        return {"scene": self.scene, "blackout": self.blackout, "freeze": self.freeze,
                "crossfade_s": self.crossfade_s, "params": dict(self.params),
                "prompt_override": self.prompt_override, "tempo_bpm": self.tempo_bpm, "version": self.version}


def _flag(value: Any) -> bool | None:
    """0/1 from TouchOSC (floats), QLab (ints), oscsend (T/F) or text ("on"/"off")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "on", "off", "true", "false"):
        return value.lower() in ("1", "on", "true")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")


def clean_prompt(text: str, blocklist: Iterable[str] = ()) -> tuple[str, str | None]:
    """(cleaned prompt, reason it is refused or None). The same blocklist the captions use."""
    cleaned = _CONTROL_CHARS.sub(" ", text).strip()
    if len(cleaned) > PROMPT_MAX_CHARS:
        return cleaned, f"prompt is {len(cleaned)} characters; the limit is {PROMPT_MAX_CHARS}"
    words = set(re.findall(r"[\w']+", cleaned.lower()))
    lowered = cleaned.lower()
    for blocked in blocklist:
        b = blocked.strip().lower()
        if b and (b in words or (" " in b and b in lowered)):
            return cleaned, "prompt contains a blocked word (captions.blocklist)"
    return cleaned, None


class Control:
    """Validated state changes. `check` may run on any thread; `apply` only on the main thread."""

    def __init__(self, live: LiveState, scene_names: Callable[[], list[str]], log: ShowLog | None,
                 params: Mapping[str, ParamSpec] | None = None, blocklist: Iterable[str] = (),
                 clock=None, prompt_filter: Callable[[str], str | None] | None = None) -> None:
        self.live = live
        self._scene_names = scene_names
        self._log = log
        self._specs: Mapping[str, ParamSpec] = dict(params if params is not None else BUILTIN_PARAMS)
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
        address, args = command.address, command.args
        if address == "/scene":
            if not args or not isinstance(args[0], str) or not args[0]:
                return None, "/scene needs a scene name (string)"
            names = self._scene_names()
            if args[0] not in names:
                return None, f"no scene {args[0][:60]!r}; scenes: {', '.join(names)}"
            fade = None
            if len(args) > 1:
                fade = _number(args[1])
                if fade is None or not CROSSFADE_RANGE_S[0] <= fade <= CROSSFADE_RANGE_S[1]:
                    return None, f"cross-fade must be {CROSSFADE_RANGE_S[0]:g}-{CROSSFADE_RANGE_S[1]:g} seconds"
            return (args[0], fade), None
        if address == "/crossfade":
            fade = _number(args[0]) if args else None
            if fade is None or not CROSSFADE_RANGE_S[0] <= fade <= CROSSFADE_RANGE_S[1]:
                return None, f"/crossfade needs seconds {CROSSFADE_RANGE_S[0]:g}-{CROSSFADE_RANGE_S[1]:g}"
            return fade, None
        if address in ("/blackout", "/freeze"):
            flag = _flag(args[0]) if args else None
            if flag is None:
                return None, f"{address} needs 0 or 1"
            return flag, None
        if address == "/tempo":
            bpm = _number(args[0]) if args else None
            if bpm is None or not (bpm == 0 or TEMPO_RANGE_BPM[0] <= bpm <= TEMPO_RANGE_BPM[1]):
                return None, f"/tempo needs {TEMPO_RANGE_BPM[0]:g}-{TEMPO_RANGE_BPM[1]:g} bpm (0 follows the music again)"
            return (None if bpm == 0 else bpm), None
        if address == "/prompt":
            if not args or not isinstance(args[0], str):
                return None, "/prompt needs text (an empty string clears the override)"
            text, reason = clean_prompt(args[0], self._blocklist)
            if reason is None and text and self._prompt_filter is not None:
                reason = self._prompt_filter(text)
            return (text or None), reason
        if address.startswith("/param/"):
            key = param_key(address)
            spec = self._specs.get(key)
            if spec is None:
                return None, f"no parameter {key[:60]!r}; parameters: {', '.join(sorted(self._specs))}"
            value = _number(args[0]) if len(args) == 1 else None
            if value is None:
                return None, f"/param/{key.replace('.', '/')} needs one number"
            reason = spec.check(value)
            return (key, value), reason
        if address in ("/restart", "/stop"):
            if command.sender not in LOCAL_SENDERS:
                return None, f"{address} is only accepted from the schedule or the service manager"
            return address[1:], None
        return None, f"unknown address {address[:80]!r}"

    def latency_ms(self) -> list[float]:
        """Command-to-effect latencies measured so far (needs a clock)."""
        with self._latency_lock:
            return list(self._latencies_ms)

    # --- main thread ----------------------------------------------------------------------------
    def set_params(self, specs: Mapping[str, ParamSpec]) -> None:
        """New parameter table (after a scene change): new keys start at their default, values
        outside a new range are clamped, keys the scene no longer has are dropped."""
        self._specs = dict(specs)
        params = {}
        for name, spec in self._specs.items():
            value = self.live.params.get(name, spec.default)
            params[name] = min(spec.high, max(spec.low, value))
        self.live.params = params
        self.live.version += 1

    def apply(self, command: Command) -> dict:
        """Validate again (the authority) and change the live state; log it with its sender."""
        try:
            value, reason = self._parse(command)
        except Exception as exc:
            value, reason = None, f"cannot read the arguments ({type(exc).__name__})"
        if reason is None:
            live = self.live
            address = command.address
            if address == "/scene":
                live.scene, live.scene_crossfade_s = value
            elif address == "/crossfade":
                live.crossfade_s = value
            elif address == "/blackout":
                live.blackout = value
            elif address == "/freeze":
                live.freeze = value
            elif address == "/tempo":
                live.tempo_bpm = value
            elif address == "/prompt":
                live.prompt_override = value
            elif address.startswith("/param/"):
                key, number = value
                live.params[key] = number
            elif address in ("/restart", "/stop"):
                live.stop_requested = value
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
            if reason is None and command.address == "/scene":
                fade = self.live.scene_crossfade_s
                self._log.write("scene", scene=self.live.scene, crossfade_s=self.live.crossfade_s if fade is None else fade,
                                sender=command.sender)
        return {"ok": True} if reason is None else {"ok": False, "reason": reason}

    def apply_until(self, commands: DropOldest[Command], deadline_s: float, clock=None,
                    on_apply: Callable[[Command, dict], None] | None = None) -> int:
        """Main thread: wait for commands until `deadline_s`, applying each the moment it arrives.

        Use it as the wait between frames (instead of sleep), so a command takes effect within
        a millisecond or two rather than at the next frame. Returns how many were applied.
        """
        clock = clock or self._clock
        applied = 0
        while True:
            remaining_s = deadline_s - clock.now_s()
            if remaining_s <= 0:
                return applied
            command = commands.get(timeout_s=remaining_s)
            if command is None:
                return applied
            result = self.apply(command)
            applied += 1
            if on_apply is not None:
                on_apply(command, result)

    def apply_pending(self, commands: DropOldest[Command]) -> list[dict]:
        """Drain the queue and apply each command in order (main thread, once per frame)."""
        return [self.apply(command) for command in commands.drain()]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[index]


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    return {"count": len(latencies_ms),
            "latency_ms_p50": round(statistics.median(latencies_ms), 3) if latencies_ms else float("nan"),
            "latency_ms_p99": round(percentile(latencies_ms, 99), 3),
            "latency_ms_max": round(max(latencies_ms), 3) if latencies_ms else float("nan")}



# --- MIDI controllers ---------------------------------------------------------------------------
def _curve(x: float, curve: str) -> float:
    """0..1 -> 0..1: linear, exp (fine control at the low end) or log (at the high end)."""
    if curve == "exp":
        return x * x
    if curve == "log":
        return math.sqrt(x)
    return x


class MidiClockFollower:
    """Tempo from MIDI clock (24 ticks a quarter note): the median tick interval of the last beats."""

    def __init__(self, ticks_window: int = 48, min_change_bpm: float = 0.5) -> None:
        self._ticks: list[float] = []
        self._window = ticks_window
        self._min_change_bpm = min_change_bpm
        self.bpm: float | None = None

    def tick(self, t_s: float) -> float | None:
        """A clock tick at `t_s`; returns a new tempo when it moved by at least min_change_bpm."""
        if self._ticks and t_s - self._ticks[-1] > 1.0:
            self._ticks.clear()  # the clock paused: do not average across the gap
        self._ticks.append(t_s)
        del self._ticks[:-self._window - 1]
        if len(self._ticks) < 25:
            return None
        intervals = [b - a for a, b in zip(self._ticks, self._ticks[1:])]
        interval = statistics.median(intervals)
        if interval <= 0:
            return None
        bpm = round(60.0 / (24.0 * interval), 1)
        if not TEMPO_RANGE_BPM[0] <= bpm <= TEMPO_RANGE_BPM[1]:
            return None
        if self.bpm is None or abs(bpm - self.bpm) >= self._min_change_bpm:
            self.bpm = bpm
            return bpm
        return None

    def stop(self) -> None:
        self._ticks.clear()
        self.bpm = None


class MidiMapper:
    """mido messages -> Commands, from the [control] table of the config (ControlConfig)."""

    def __init__(self, control_cfg) -> None:
        self._cfg = control_cfg
        self._cc = {}
        for mapping in control_cfg.midi_cc:
            self._cc.setdefault(mapping.cc, []).append(mapping)
        self._notes = {int(k): v for k, v in control_cfg.midi_notes.items()}
        self._clock = MidiClockFollower()

    def map(self, message, sender: str) -> list[Command]:
        t_s = float(getattr(message, "time", 0.0) or 0.0)
        kind = message.type
        channel = getattr(message, "channel", None)
        if channel is not None and self._cfg.midi_channel >= 0 and channel != self._cfg.midi_channel:
            return []
        if kind == "control_change":
            out = []
            for m in self._cc.get(message.control, ()):
                if m.channel >= 0 and channel != m.channel:
                    continue
                value = m.min + (m.max - m.min) * _curve(message.value / 127.0, m.curve)
                out.append(Command(t_s, "/param/" + m.param.replace(".", "/"), (round(value, 6),), sender))
            return out
        if kind == "note_on" and message.velocity > 0:
            if message.note == self._cfg.blackout_note:
                return [Command(t_s, "/blackout", (1,), sender)]
            if message.note == self._cfg.freeze_note:
                return [Command(t_s, "/freeze", (1,), sender)]
            scene = self._notes.get(message.note)
            return [Command(t_s, "/scene", (scene,), sender)] if scene else []
        if kind == "note_off" or (kind == "note_on" and message.velocity == 0):
            if message.note == self._cfg.blackout_note:
                return [Command(t_s, "/blackout", (0,), sender)]
            if message.note == self._cfg.freeze_note:
                return [Command(t_s, "/freeze", (0,), sender)]
            return []
        if kind == "program_change":
            programs = self._cfg.midi_programs
            if message.program < len(programs) and programs[message.program]:
                return [Command(t_s, "/scene", (programs[message.program],), sender)]
            return []
        if self._cfg.midi_clock:
            if kind == "clock":
                bpm = self._clock.tick(t_s)
                return [Command(t_s, "/tempo", (bpm,), sender)] if bpm is not None else []
            if kind == "stop":
                self._clock.stop()
                return [Command(t_s, "/tempo", (0,), sender)]
        return []


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
