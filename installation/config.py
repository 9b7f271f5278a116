"""config.toml -> validated, frozen config objects.

Every section is a pydantic model with `extra="forbid"`, so a typo is an error and not a silently
ignored key. Errors become one `ConfigError` sentence naming the key path, the bad value and what is
allowed; run.py turns it into exit code 2 with no traceback.
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installation.errors import UserError
from installation.showlog.redact import MASK, is_secret, redact_data

if TYPE_CHECKING:
    from hardware.osc.settings import OscSettings
    from hardware.video.settings import VideoOutSettings
    from models.captions.settings import CaptionSettings
    from models.composing.settings import ComposeSettings
    from models.diffusion.settings import RenderSettings
    from models.listening.settings import ListenSettings
    from models.seeing.settings import WatchSettings


class ConfigError(UserError):
    """A user error in configuration: one sentence, shown without traceback."""


SettingsT = TypeVar("SettingsT")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def typed(self, settings_type: type[SettingsT], **changed: Any) -> SettingsT:
        """A wing's frozen settings (a dataclass with no defaults of its own) from this section: each
        field read from the key of the same name, or taken from `changed`."""
        names = [f.name for f in dataclasses.fields(settings_type)]  # type: ignore[arg-type]
        return settings_type(**{name: getattr(self, name) for name in names if name not in changed}, **changed)


# --- installation -----------------------------------------------------------------------------
class InstallationConfig(Section):
    name: str = "Chromesthesia"
    scene: str = "nocturne"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    status_hz: float = Field(2.0, gt=0, le=30)


# --- audio in and listening --------------------------------------------------
class AudioConfig(Section):
    source: Literal["auto", "device", "file", "synth"] = "auto"
    backend: Literal["sounddevice", "pyaudio"] = "sounddevice"
    device: str = ""
    file: str = ""
    sample_rate_hz: int = Field(0, ge=0, le=384000)
    channels: int = Field(0, ge=0, le=64)
    block_frames: int = Field(512, ge=32, le=16384)


class ListenConfig(Section):
    hop_s: float = Field(0.1, gt=0, le=1.0)
    window_s: float = Field(6.0, ge=1.0, le=30.0)
    va_head: Literal["features", "vibenet", "learned", "blend", "fitted"] = "blend"
    learned_head: str = ""
    fitted_weights: str = ""
    smoothing_s: float = Field(1.0, ge=0.0, le=30.0)
    silence_dbfs: float = Field(-55.0, ge=-120.0, le=0.0)
    onset_hop: int = Field(256, ge=64, le=2048)
    onset_threshold: float = Field(0.35, gt=0, le=2.0)
    beat_range_bpm: tuple[float, float] = (70.0, 210.0)

    @field_validator("beat_range_bpm")
    @classmethod
    def _one_octave_or_more(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (20.0 <= low and high <= 400.0 and high >= 2.0 * low):
            raise ValueError("give [low, high] in 20-400 BPM with high at least twice low (one octave)")
        return value

    def settings(self) -> ListenSettings:
        """What the listener, the onset detector and the offline analysis (models.listening) take."""
        from models.listening.settings import ListenSettings
        return self.typed(ListenSettings)


# --- captions ---------------------------------------------------------------
class CaptionsConfig(Section):
    backend: Literal["agents", "llm"] = "agents"
    mode: Literal["caption_only", "single_agent", "agents"] = "agents"
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    """Sent as `Authorization: Bearer ...` to an OpenAI-compatible server that asks for one; empty:
    the CHROMESTHESIA_LLM_API_KEY environment variable, or none. Never printed."""
    llm_timeout_s: float = Field(2.0, gt=0, le=30)
    va_threshold: float = Field(0.25, gt=0, le=2.0)
    min_hold_s: float = Field(4.0, ge=0, le=600)
    max_hold_s: float = Field(30.0, gt=0, le=3600)
    transition_s: float = Field(3.0, ge=0, le=60)
    blocklist: tuple[str, ...] = ()
    negative_prompt: str = "text, watermark, logo, nsfw, nudity, gore, violence, blurry, lowres"
    default_blocklist: bool = True
    phrases_dir: str = ""
    diversity_window: int = Field(5, ge=0, le=20)
    beats_per_bar: int = Field(4, ge=1, le=16)
    critic_threshold: float = Field(0.2, gt=0, le=2.0)
    critic_gain: float = Field(1.0, ge=0, le=10.0)
    critic_tau_s: float = Field(8.0, gt=0, le=120)
    override_hold_s: float = Field(60.0, ge=0, le=3600)

    def settings(self) -> CaptionSettings:
        """What the Director (models.captions.director) takes: every key of the section."""
        from models.captions.settings import CaptionSettings
        return self.typed(CaptionSettings)


# --- rendering ---------------------------------------------------------------
class RenderConfig(Section):
    backend: Literal["auto", "procedural", "diffusion"] = "auto"
    width: int = Field(1280, ge=64, le=4096)
    height: int = Field(720, ge=64, le=4096)
    model: str = ""
    vae: str = ""
    lora: str = ""
    steps: int = Field(2, ge=1, le=8)
    guidance: float = Field(1.0, ge=0, le=20)
    device: Literal["auto", "cuda", "cpu"] = "auto"
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "reduce-overhead"
    similarity_skip: float = Field(0.98, ge=0, le=1.0)
    seed: int = 0
    family: Literal["auto", "sd15-lcm", "sd15-lcm-lora", "sd15", "sd-turbo", "sdxs-512", "sdxl-turbo",
                    "sdxl-lcm-lora", "sdxl-lcm"] = "auto"
    stream_batch: bool = False
    cuda_graphs: bool = False
    tensorrt: bool = False
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    controlnet: str = ""
    controlnet_source: Literal["edges", "luminance", "camera"] = "edges"
    controlnet_strength: float = Field(1.0, ge=0, le=2.0)
    loras: tuple[str, ...] = ()
    thread_nice: int = Field(10, ge=0, le=19)

    def settings(self) -> RenderSettings:
        """The diffusion wing's typed settings (models.diffusion.settings); paths stripped."""
        from models.diffusion.settings import RenderSettings
        return self.typed(RenderSettings, model=self.model.strip(), vae=self.vae.strip(), lora=self.lora.strip(),
                          controlnet=self.controlnet.strip())


class DisplayConfig(Section):
    mode: Literal["auto", "window", "fullscreen", "headless"] = "auto"
    screen: int = Field(0, ge=0, le=16)
    width: int = Field(1280, ge=64, le=8192)
    height: int = Field(720, ge=64, le=8192)
    fps: int = Field(30, gt=0, le=240)
    wake_on_onset: bool = True
    flash_guard: bool = True


# --- camera, composer, MIDI --------------------------------------------
class CameraConfig(Section):
    source: Literal["auto", "opencv", "file", "photos"] = "auto"
    device: str = "0"
    file: str = ""
    photos_dir: str = ""
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)
    fps: float = Field(15.0, gt=0, le=240)
    slide_s: float = Field(12.0, gt=0, le=3600)


class WatchConfig(Section):
    rate_hz: float = Field(5.0, gt=0, le=60)
    image_va_head: Literal["colour", "clip"] = "colour"
    clip_model: str = "ViT-B-32"
    clip_checkpoint: str = ""
    clip_head: str = ""

    def settings(self) -> WatchSettings:
        """What the image VA head (models.seeing.va.build_image_va) takes."""
        from models.seeing.settings import WatchSettings
        return self.typed(WatchSettings)


class ComposeConfig(Section):
    enabled: bool = True
    bars_ahead: int = Field(1, ge=1, le=8)
    seed: int = 0
    key_map: Literal["fifths", "chromatic"] = "fifths"
    variation: float = Field(0.3, ge=0.0, le=0.9)
    comment_weight: float = Field(0.5, ge=0.0, le=1.0)
    """How far a visitor's comment (/comment) pulls the picture's valence-arousal toward the mood it
    reads as (models.composing.comment_mood), moving tempo, mode and density; 0 = the comment picks the tune only."""
    percussion: bool = True
    percussion_channel: int = Field(9, ge=0, le=15)
    retrieval: bool = True
    head: Literal["corpus", "learned"] = "corpus"
    learned_weights: str = ""
    backend: Literal["corpus", "llm"] = "corpus"
    llm_url: str = "http://127.0.0.1:11434/v1"
    llm_model: str = "llava"
    llm_api_key: str = ""
    """As captions.llm_api_key."""
    llm_vision: bool = True
    llm_timeout_s: float = Field(20.0, gt=0, le=600)
    llm_retries: int = Field(1, ge=0, le=5)
    refine_rounds: int = Field(0, ge=0, le=8)
    content_weight: float = Field(1.0, ge=0.0, le=3.0)
    """Weight of the content match (what the picture shows against what a tune is about) beside the
    text and VA scores of retrieval (models.composing.index); 0 = the description's words alone."""

    def settings(self) -> ComposeSettings:
        """What the corpus composer (models.composing.composer.Composer) takes."""
        from models.composing.settings import ComposeSettings
        return self.typed(ComposeSettings)


class MidiConfig(Section):
    outputs: tuple[str, ...] = ()
    virtual_port: str = ""
    backend: str = ""
    clock_out: bool = False
    inputs: tuple[str, ...] = ()
    virtual_input: str = ""


class SynthConfig(Section):
    enabled: bool = True
    speakers: Literal["auto", "on", "off"] = "auto"
    gain: float = Field(0.5, ge=0, le=2.0)
    sample_rate_hz: int = Field(22050, ge=8000, le=96000)


# --- operators ---------------------------------------------------------------
class OscConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(7400, ge=0, le=65535)
    allow: tuple[str, ...] = ("127.0.0.0/8",)
    targets: tuple[str, ...] = ()
    rate_limit_hz: float = Field(500.0, gt=0, le=100000)
    burst: int = Field(1000, ge=1, le=100000)
    feedback_hz: float = Field(5.0, ge=2, le=10)
    feedback_max_per_s: float = Field(1000.0, ge=1, le=100000)
    admin_allow: tuple[str, ...] = ("127.0.0.1/32",)
    receive_buffer_bytes: int = Field(8 << 20, ge=65536, le=1 << 30)
    out_targets: tuple[str, ...] = ()
    query_enabled: bool = False
    query_port: int = Field(7401, ge=0, le=65535)
    query_mdns: bool = True
    query_listen_hz: float = Field(60.0, ge=1, le=240)
    """OSCQuery LISTEN: how often listened values are looked at for changes."""
    query_max_listeners: int = Field(16, ge=1, le=4096)
    """OSCQuery LISTEN: websockets at once (each also counts against max_connections)."""
    tcp_enabled: bool = False
    tcp_port: int = Field(7400, ge=0, le=65535)
    subscribe_ttl_s: float = Field(60.0, ge=1, le=86400)
    max_subscribers: int = Field(16, ge=1, le=256)
    realtime_priority: int = Field(0, ge=0, le=49)
    """Below the MIDI sender process (50): equal SCHED_FIFO priorities would not preempt it."""
    admin_token: str = ""
    """/panic, /restart, /stop over UDP from a host that is not this machine carry it as their argument."""
    max_connections: int = Field(64, ge=1, le=4096)
    """Per TCP server (OSC over TCP, OSCQuery)."""
    max_connections_per_host: int = Field(8, ge=1, le=4096)
    header_timeout_s: float = Field(5.0, gt=0, le=120)
    tcp_idle_timeout_s: float = Field(600.0, gt=0, le=86400)
    wakeup_slice_ms: float = Field(0.1, ge=0, le=100)
    """The CPU slice the OSC threads ask of the kernel (hardware.osc.wakeup); 0 = the kernel's default."""

    def settings(self) -> OscSettings:
        """What the OSC control server takes at its door (hardware.osc.settings)."""
        from hardware.osc.settings import OscSettings
        return self.typed(OscSettings)


class MidiCcMap(Section):
    cc: int = Field(ge=0, le=127)
    param: str
    min: float = 0.0
    max: float = 1.0
    curve: Literal["linear", "exp", "log"] = "linear"
    channel: int = Field(0, ge=-1, le=16)
    """MIDI channel 1-16 as a controller shows it; 0 (or -1) = any."""


class ControlConfig(Section):
    midi_cc: tuple[MidiCcMap, ...] = ()
    midi_notes: dict[str, str] = {}
    midi_programs: tuple[str, ...] = ()
    midi_clock: bool = True
    midi_channel: int = Field(0, ge=-1, le=16)
    """Listen to this MIDI channel only (1-16); 0 (or -1) = all."""
    blackout_note: int = Field(-1, ge=-1, le=127)
    freeze_note: int = Field(-1, ge=-1, le=127)
    reload: bool = True
    reload_check_s: float = Field(1.0, gt=0, le=60)


# --- tempo, video out ------------------------------------------------------------
class TempoConfig(Section):
    source: Literal["internal", "midi", "link"] = "internal"
    bpm: float = Field(120.0, ge=20.0, le=300.0)
    quantum: int = Field(4, ge=1, le=16)


class VideoOutConfig(Section):
    ndi: bool = False
    ndi_name: str = "Chromesthesia"
    virtual_camera: bool = False
    virtual_camera_device: str = ""
    required: bool = False
    fps: float = Field(0.0, ge=0.0, le=240.0)

    def settings(self) -> VideoOutSettings:
        """What hardware.video.output.build_video_out takes at its door."""
        from hardware.video.settings import VideoOutSettings
        return self.typed(VideoOutSettings)


class EnsembleConfig(Section):
    music_from: str = ""


class ScheduleConfig(Section):
    open_hours: tuple[str, ...] = ()
    closed_action: Literal["blackout", "stop"] = "blackout"
    idle_after_s: float = Field(0.0, ge=0, le=86400)
    idle_scene: str = ""
    daily_restart: str = ""
    closed_days: tuple[str, ...] = ()
    holidays_country: str = ""
    holidays_subdiv: str = ""
    closures: tuple[str, ...] = ()


class ShowLogConfig(Section):
    path: str = ""
    status_interval_s: float = Field(5.0, gt=0, le=3600)
    keep_days: int = Field(30, ge=1, le=3650)
    fsync_interval_s: float = Field(0.5, gt=0, le=1.0)
    thumbnail_interval_s: float = Field(60.0, ge=1, le=3600)
    thumbnail_width: int = Field(240, ge=32, le=1920)
    max_file_mb: float = Field(50.0, gt=0, le=10_000)
    max_total_mb: float = Field(2000.0, gt=0, le=1_000_000)
    gesture_gap_s: float = Field(0.5, gt=0, le=10)
    gesture_max_s: float = Field(10.0, gt=0, le=600)
    tempo_min_change_bpm: float = Field(1.0, ge=0, le=50)
    tempo_min_interval_s: float = Field(1.0, ge=0, le=60)


class WebConfig(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: str = ""
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    status_hz: float = Field(2.0, gt=0, le=10)
    preview_hz: float = Field(4.0, gt=0, le=15)
    preview_width: int = Field(480, ge=64, le=1920)
    metrics: bool = True
    max_connections: int = Field(64, ge=1, le=4096)
    max_connections_per_host: int = Field(16, ge=1, le=4096)
    header_timeout_s: float = Field(5.0, gt=0, le=120)
    max_body_bytes: int = Field(16384, ge=1024, le=1 << 20)
    host_names: tuple[str, ...] = ()
    """Names a browser may use for the dashboard besides IP addresses, localhost and this machine's name."""
    session_max_age_s: float = Field(7 * 86400.0, gt=0, le=366 * 86400.0)
    """How long a dashboard sign-in lasts (a restart or the Revoke button ends every one sooner)."""


class RecordConfig(Section):
    dir: str = ""


class Config(Section):
    installation: InstallationConfig = InstallationConfig()
    audio: AudioConfig = AudioConfig()
    listen: ListenConfig = ListenConfig()
    captions: CaptionsConfig = CaptionsConfig()
    render: RenderConfig = RenderConfig()
    display: DisplayConfig = DisplayConfig()
    camera: CameraConfig = CameraConfig()
    watch: WatchConfig = WatchConfig()
    compose: ComposeConfig = ComposeConfig()
    midi: MidiConfig = MidiConfig()
    synth: SynthConfig = SynthConfig()
    osc: OscConfig = OscConfig()
    control: ControlConfig = ControlConfig()
    tempo: TempoConfig = TempoConfig()
    video_out: VideoOutConfig = VideoOutConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    showlog: ShowLogConfig = ShowLogConfig()
    record: RecordConfig = RecordConfig()
    web: WebConfig = WebConfig()


def _describe_error(err: dict[str, Any], source: str) -> str:
    path = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        known = ", ".join(sorted(parent.model_fields)) if parent else ""
        where = ".".join(str(p) for p in err["loc"][:-1]) or "the top level"
        return (f"{source}: unknown key '{path}'; the keys allowed at {where} are: {known}; "
                f"fix the spelling or remove it.")
    value = redact_data(err.get("input"), path)
    allowed = err["msg"][0].lower() + err["msg"][1:]
    shown = value if value == MASK else repr(value)
    return f"{source}: {path} = {shown} is not allowed ({allowed}); fix it and start again."


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return None
        model = field.annotation
    return model


_TOML_OPENERS = ('"', "'", "[", "{")
"""A value starting with one of these is TOML text; anything else that TOML cannot read is a bare word."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`audio.device="USB"` -> (["audio", "device"], "USB"). A bare word is taken as a string."""
    shown = _shown_override(text)
    if "=" not in text:
        raise ConfigError(f"--set {text!r} has no '='; write it as section.key=value, e.g. --set osc.port=9100.")
    key, raw = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".") if p.strip()]
    if not parts:
        raise ConfigError(f"--set {shown} has no key before '='; write it as section.key=value.")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw[:1] in _TOML_OPENERS:
            # It was meant as TOML (a quote, list or table opens it) and is broken: keeping the
            # text as a literal would run with a device name like '["USB"'.
            detail = str(exc).split(" (at ")[0].rstrip(".").lower()
            raise ConfigError(
                f"--set {'.'.join(parts)}: the value {MASK if is_secret('.'.join(parts)) else repr(raw)} is not valid TOML ({detail}); close the quote or "
                f"bracket, or write a plain word without quotes.") from None
        value = raw  # a bare word (--set installation.scene=nocturne) is text
    return parts, value


def _shown_override(text: str) -> str:
    """`--set key=value` as an error quotes it: the value masked when the key is a secret."""
    key, sep, _ = text.partition("=")
    return repr(f"{key}={MASK}") if sep and is_secret(key.strip()) else repr(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {_shown_override(text)}: '{part}' is a value, not a section.")
            node = child
        node[parts[-1]] = value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass --config with a path to a TOML file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix that line and start again.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc}); check its permissions and encoding.") from None


def validate(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        message = _describe_error(errors[0], source)
        if len(errors) > 1:
            message = message[:-1] + f" ({len(errors) - 1} more problem(s) after this one)."
        raise ConfigError(message) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read TOML (or defaults when `path` is None), apply `--set` overrides, validate."""
    data: dict[str, Any] = read_toml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    apply_overrides(data, overrides or [])
    return validate(data, source)
