"""The operators' address space, in one table: address -> OSC type tags, ranges, access, the
channels that may use it, parse, validate, apply, effect. Everything else is derived from it: the
OSC server's commands, admin commands and value queries (installation.operators.osc_wiring builds
its CommandSpace), OSCQuery's tree, the dashboard's controls, and the MIDI mapping, the projector's
keys and the schedules build Commands for its addresses (the constants below).

Like python-osc's dispatcher, routing is separate from sockets: `find`, `parse` and `apply`
are plain functions over a `Command`, tested without a network.

A route's `parse(args, ctx)` returns (value, None) or (None, one sentence why not); it only
reads. `apply(live, value)` changes the LiveState (main thread). `effect` names what the main
thread does next, beyond the state change: "scene" (load and cross-fade), "prompt" (hand the
text to the captioner), "blackout" (wakes a dormant installation), "stop" (restart or stop).

Addresses (docs/osc.md has the full table):
  /scene <name> [crossfade_s]   /crossfade <s>      /blackout <0|1>   /freeze <0|1>
  /param/<path> <value>         /prompt <text>      /tempo <bpm>      (0 releases the tempo)
  /comment <text>               (a visitor's words joined to the picture the composer reads)
  /learn/<path>                 (MIDI learn: the next knob moved drives /param/<path>)
  /restart, /stop, /panic       (schedules, systemd and OSC hosts in osc.admin_allow only)
  /web/revoke                   (as /panic: sign every dashboard out)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from installation.records import Command

SCENE, CROSSFADE, BLACKOUT, FREEZE, TEMPO = "/scene", "/crossfade", "/blackout", "/freeze", "/tempo"
PROMPT, COMMENT, PARAM, LEARN = "/prompt", "/comment", "/param/", "/learn/"
RESTART, STOP, PANIC, WEB_REVOKE = "/restart", "/stop", "/panic", "/web/revoke"
OSC, WEB, MIDI, ADMIN = "osc", "web", "midi", "admin"
"""Channels: OSC from osc.allow hosts, the dashboard, MIDI controllers, OSC from osc.admin_allow hosts
(and the schedule, the service manager)."""
SCENE_NAMES = "scenes"
"""An argument's range that is the scene names (OSCQuery VALS)."""
PARAM_RANGE = "param"
"""An argument's range that is the parameter's own (its ParamSpec)."""

CROSSFADE_RANGE_S = (0.0, 60.0)
TEMPO_RANGE_BPM = (20.0, 300.0)
PROMPT_MAX_CHARS = 300
LOCAL_SENDERS = ("schedule", "systemd", "main", "reload")
"""Senders allowed to use /restart and /stop; a network sender only through ADMIN_SENDER."""
ADMIN_SENDER = "admin "
"""Prefix the OSC server puts before the sender of a command from a host in osc.admin_allow
(a network client cannot choose its sender string)."""


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
    "volume": ParamSpec(0.0, 2.0, 1.0, "composed music level multiplier (note velocities)"),
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


def flag(value: Any) -> bool | None:
    """0/1 from TouchOSC (floats), QLab (ints), oscsend (T/F) or text ("on"/"off")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "on", "off", "true", "false"):
        return value.lower() in ("1", "on", "true")
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
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


@dataclass(frozen=True)
class RouteContext:
    """What parsing may read: the scenes there are, the parameter table, the prompt checks."""

    scene_names: Callable[[], list[str]]
    params: Mapping[str, ParamSpec]
    blocklist: tuple[str, ...] = ()
    prompt_filter: Callable[[str], str | None] | None = None


Parsed = tuple[Any, "str | None"]


def _scene(command: Command, ctx: RouteContext) -> Parsed:
    args = command.args
    if not args or not isinstance(args[0], str) or not args[0]:
        return None, "/scene needs a scene name (string)"
    names = ctx.scene_names()
    if args[0] not in names:
        return None, f"no scene {args[0][:60]!r}; scenes: {', '.join(names)}"
    fade = None
    if len(args) > 1:
        fade = number(args[1])
        if fade is None or not CROSSFADE_RANGE_S[0] <= fade <= CROSSFADE_RANGE_S[1]:
            return None, f"cross-fade must be {CROSSFADE_RANGE_S[0]:g}-{CROSSFADE_RANGE_S[1]:g} seconds"
    return (args[0], fade), None


def _crossfade(command: Command, ctx: RouteContext) -> Parsed:
    fade = number(command.args[0]) if command.args else None
    if fade is None or not CROSSFADE_RANGE_S[0] <= fade <= CROSSFADE_RANGE_S[1]:
        return None, f"/crossfade needs seconds {CROSSFADE_RANGE_S[0]:g}-{CROSSFADE_RANGE_S[1]:g}"
    return fade, None


def _flag(command: Command, ctx: RouteContext) -> Parsed:
    value = flag(command.args[0]) if command.args else None
    if value is None:
        return None, f"{command.address} needs 0 or 1"
    return value, None


def _tempo(command: Command, ctx: RouteContext) -> Parsed:
    bpm = number(command.args[0]) if command.args else None
    if bpm is None or not (bpm == 0 or TEMPO_RANGE_BPM[0] <= bpm <= TEMPO_RANGE_BPM[1]):
        return None, f"/tempo needs {TEMPO_RANGE_BPM[0]:g}-{TEMPO_RANGE_BPM[1]:g} bpm (0 follows the music again)"
    return (None if bpm == 0 else bpm), None


def _text(command: Command, ctx: RouteContext, needs: str) -> Parsed:
    """A text argument, cleaned and run past the blocklist and the prompt filter."""
    args = command.args
    if not args or not isinstance(args[0], str):
        return None, needs
    text, reason = clean_prompt(args[0], ctx.blocklist)
    if reason is None and text and ctx.prompt_filter is not None:
        reason = ctx.prompt_filter(text)
    return text, reason


def _prompt(command: Command, ctx: RouteContext) -> Parsed:
    text, reason = _text(command, ctx, "/prompt needs text (an empty string clears the override)")
    return (text or None), reason


def _comment(command: Command, ctx: RouteContext) -> Parsed:
    text, reason = _text(command, ctx, "/comment needs text (a visitor's words for the music; an empty string clears it)")
    return text, reason and reason.replace("prompt", "comment", 1)


def _param(command: Command, ctx: RouteContext) -> Parsed:
    key = param_key(command.address)
    spec = ctx.params.get(key)
    if spec is None:
        return None, f"no parameter {key[:60]!r}; parameters: {', '.join(sorted(ctx.params))}"
    value = number(command.args[0]) if len(command.args) == 1 else None
    if value is None:
        return None, f"/param/{key.replace('.', '/')} needs one number"
    return (key, value), spec.check(value)


def _learn(command: Command, ctx: RouteContext) -> Parsed:
    key = command.address[len("/learn/"):].strip("/").replace("/", ".")
    spec = ctx.params.get(key)
    if spec is None:
        return None, f"no parameter {key[:60]!r} to learn; parameters: {', '.join(sorted(ctx.params))}"
    return (key, spec.low, spec.high), None


def _local(command: Command, ctx: RouteContext) -> Parsed:
    if command.sender not in LOCAL_SENDERS and not command.sender.startswith(ADMIN_SENDER):
        return None, f"{command.address} is only accepted from the schedule, the service manager or osc.admin_allow"
    return command.address[1:], None


Live = Any
"""installation.bus.LiveState to apply to, or a LiveSnapshot to read (the bus reads this table's
parameter defaults, so this module does not import it)."""


def _set(name: str) -> Callable[[Live, Any], None]:
    def apply(live: Live, value: Any) -> None:
        setattr(live, name, value)
    return apply


def _apply_scene(live: Live, value: Any) -> None:
    live.scene, live.scene_crossfade_s = value


def _apply_param(live: Live, value: Any) -> None:
    key, new = value
    live.params[key] = new


def _unchanged(live: Live, value: Any) -> None:
    """A command that changes no state: its effect is all it does."""


def _read(name: str, kind: type) -> Callable[[Live, str], list | None]:
    def read(live: Live, address: str) -> list | None:
        return [kind(getattr(live, name))]
    return read


def _read_scene(live: Live, address: str) -> list | None:
    fade = live.scene_crossfade_s
    return [live.scene, float(live.crossfade_s if fade is None else fade)]


def _read_param(live: Live, address: str) -> list | None:
    value = live.params.get(param_key(address))
    return None if value is None else [float(value)]


def _read_text(live: Live, address: str) -> list | None:
    return [live.prompt_override or ""]


def _read_tempo(live: Live, address: str) -> list | None:
    return [float(live.tempo_bpm or 0.0)]


Range = tuple[float, float] | str | None
"""One argument's range: (low, high), SCENE_NAMES, PARAM_RANGE, or None (text)."""
FLAG: tuple[Range, ...] = ((0, 1),)


@dataclass(frozen=True)
class Route:
    address: str
    """The address, or for a prefix route the prefix ending in '/' (e.g. /param/)."""
    parse: Callable[[Command, RouteContext], Parsed]
    apply: Callable[[Live, Any], None]
    effect: str | None = None
    doc: str = ""
    prefix: bool = False
    types: str = ""
    """OSC type tags of its arguments ("" when it takes none)."""
    ranges: tuple[Range, ...] = ()
    """One per type tag."""
    read: Callable[[Live, str], list | None] | None = None
    """The current value (what an argument-less OSC message, OSCQuery and LISTEN answer); None: write only."""
    channels: frozenset[str] = frozenset({OSC})

    @property
    def access(self) -> str:
        """"rw" when its value can be read as well as set, "w" when it can only be sent."""
        return "rw" if self.read is not None else "w"


def _route(address: str, parse, apply, effect: str | None, doc: str, *channels: str, **kw) -> Route:
    return Route(address, parse, apply, effect, doc, channels=frozenset(channels), **kw)


_ADMIN_DOC = " (schedule, service manager, osc.admin_allow hosts)"
_CROSSFADE_RANGE: tuple[Range, ...] = (CROSSFADE_RANGE_S,)
ROUTES: tuple[Route, ...] = (
    _route(SCENE, _scene, _apply_scene, "scene", "change scene, optionally with a cross-fade in seconds",
           OSC, WEB, MIDI, types="sf", ranges=(SCENE_NAMES, CROSSFADE_RANGE_S), read=_read_scene),
    _route(CROSSFADE, _crossfade, _set("crossfade_s"), None, "default scene cross-fade in seconds", OSC, WEB,
           types="f", ranges=_CROSSFADE_RANGE, read=_read("crossfade_s", float)),
    _route(BLACKOUT, _flag, _set("blackout"), "blackout", "projector black (1) or lit (0)", OSC, WEB, MIDI,
           types="i", ranges=FLAG, read=_read("blackout", int)),
    _route(FREEZE, _flag, _set("freeze"), None, "hold the current picture (1) or follow again (0)", OSC, WEB, MIDI,
           types="i", ranges=FLAG, read=_read("freeze", int)),
    _route(PROMPT, _prompt, _set("prompt_override"), "prompt",
           f"override the caption; empty text clears it (at most {PROMPT_MAX_CHARS} characters)", OSC, WEB,
           types="s", ranges=(None,), read=_read_text),
    _route(COMMENT, _comment, _unchanged, "comment", "a visitor's words, joined to the picture's description the "
           f"composer searches with (at most {PROMPT_MAX_CHARS} characters)", OSC, types="s", ranges=(None,)),
    _route(TEMPO, _tempo, _set("tempo_bpm"), None, f"composer tempo in bpm ({TEMPO_RANGE_BPM[0]:g}-"
           f"{TEMPO_RANGE_BPM[1]:g}); 0 follows the music again", OSC, WEB, MIDI,
           types="f", ranges=((0.0, TEMPO_RANGE_BPM[1]),), read=_read_tempo),
    _route(PANIC, _local, _unchanged, "panic", "all notes off on every output, now" + _ADMIN_DOC, ADMIN),
    _route(RESTART, _local, _set("stop_requested"), "stop", "restart cleanly" + _ADMIN_DOC, ADMIN, WEB),
    _route(STOP, _local, _set("stop_requested"), "stop", "stop cleanly" + _ADMIN_DOC, ADMIN),
    _route(PARAM, _param, _apply_param, None, "set a live parameter of the scene", OSC, WEB, MIDI, prefix=True,
           types="f", ranges=(PARAM_RANGE,), read=_read_param),
    _route(LEARN, _learn, _unchanged, "learn",
           "MIDI learn: the next knob or fader moved drives this parameter (saved into config.toml)", OSC, prefix=True),
    _route(WEB_REVOKE, _local, _unchanged, "revoke_sessions", "sign every dashboard out" + _ADMIN_DOC, ADMIN),
)
"""Order: as OSCQuery lists them."""


class RouteTable:
    """Finds the route of an address (exact, else the longest matching prefix route) and
    answers what the doors ask of the address space."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._exact = {r.address: r for r in self.routes if not r.prefix}
        self._prefixes = tuple(r for r in self.routes if r.prefix)

    def find(self, address: str) -> Route | None:
        """The route of `address`, or None."""
        route = self._exact.get(address)
        if route is not None:
            return route
        for candidate in self._prefixes:
            if address.startswith(candidate.address) and len(address) > len(candidate.address):
                return candidate
        return None

    def is_command(self, address: str) -> bool:
        """True when `address` names a command (what the OSC server enqueues)."""
        return self.find(address) is not None

    def in_channel(self, address: str, *channels: str) -> bool:
        """True when `address` has a route that any of `channels` may use."""
        route = self.find(address)
        return route is not None and not route.channels.isdisjoint(channels)

    def is_admin(self, address: str) -> bool:
        return self.in_channel(address, ADMIN)

    def has_value(self, address: str) -> bool:
        route = self.find(address)
        return route is not None and route.read is not None

    def value(self, address: str, live: Live) -> list | None:
        """The current value of a readable address from a LiveState or LiveSnapshot, or None."""
        route = self.find(address)
        return route.read(live, address) if route is not None and route.read is not None else None

    def channel(self, name: str) -> tuple[Route, ...]:
        """The routes `name` may use, in table order."""
        return tuple(r for r in self.routes if name in r.channels)

    def effects(self) -> frozenset[str]:
        return frozenset(r.effect for r in self.routes if r.effect)

    def parse(self, command: Command, ctx: RouteContext) -> tuple[Route | None, Any, str | None]:
        """(route, value, None) for a command to apply, or (route or None, None, why not)."""
        route = self.find(command.address)
        if route is None:
            return None, None, f"unknown address {command.address[:80]!r}"
        try:
            value, reason = route.parse(command, ctx)
        except Exception as exc:  # a bad argument shape must never escape to the caller's thread
            return route, None, f"cannot read the arguments ({type(exc).__name__})"
        return route, (value if reason is None else None), reason


TABLE = RouteTable(ROUTES)
find = TABLE.find
is_command = TABLE.is_command
parse = TABLE.parse
