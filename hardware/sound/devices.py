"""The PortAudio devices: listing them and finding the input an operator named.

The installation's own process lists them through a short-lived child process with its own
PortAudio (`list_audio_devices`): PortAudio joins a running JACK server as a client when it
initialises, mapping the server's shared memory (about 100 MB) into the process, and after that
server dies the deleted segments stay mapped and resident until the process ends. The device
children (speakers, input) list in their own process (`portaudio_devices`).
"""
from __future__ import annotations

import logging
import threading
import time

from installation.errors import UserError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0
"""A child that has not listed the devices by then is stuck in a driver (a JACK server that hangs)."""
REUSE_S = 2.0
"""A listing this recent is answered again: start-up asks several times in a row."""

_last: tuple[float, list[dict]] | None = None
_lock = threading.Lock()


def portaudio_devices() -> list[dict]:
    """Every PortAudio device as this process's own PortAudio sees it: index, name, hostapi,
    channel counts, default rate, and whether it is the default input or output. [] without PortAudio."""
    try:
        import sounddevice as sd
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in, default_out = (-1 if i is None else int(i) for i in sd.default.device)
    except Exception:  # no PortAudio library at all
        return []
    out = []
    for d in devices:
        index = int(d["index"])
        out.append({"index": index, "name": str(d["name"]),
                    "hostapi": str(hostapis[d["hostapi"]]["name"]),
                    "max_input_channels": int(d["max_input_channels"]),
                    "max_output_channels": int(d["max_output_channels"]),
                    "default_samplerate": float(d["default_samplerate"]),
                    "default_input": index == default_in, "default_output": index == default_out})
    return out


def _list_main(conn) -> None:
    """The child: list the devices, send them, and leave (PortAudio's client ends with the process)."""
    conn.send(("ready", portaudio_devices()))


def _check_input_main(conn, index: int, rate_hz: int, channels: int) -> None:
    """The child: whether the input device takes these settings."""
    try:
        import sounddevice as sd
        sd.check_input_settings(device=index, channels=channels, samplerate=rate_hz, dtype="float32")
        conn.send(("ready", True))
    except Exception:  # noqa: BLE001 - refused, or no PortAudio
        conn.send(("ready", False))


def _in_child(name: str, target, args: tuple, timeout_s: float, default):
    """`target`'s answer from a child process of its own; `default` when it fails or takes longer."""
    from hardware.child_process import ChildFailed, ChildProcess
    child = ChildProcess(name, target, args)
    try:
        return child.start(timeout_s)
    except ChildFailed as exc:
        log.warning("%s: %s", name, exc)
        return default
    finally:
        child.stop(1.0, ask=None)


def list_audio_devices(timeout_s: float = PROBE_TIMEOUT_S) -> list[dict]:
    """Every PortAudio device (as `portaudio_devices`), listed in a child process so this process
    never joins a JACK server. [] without PortAudio, or when the listing hangs."""
    global _last
    with _lock:
        now_s = time.monotonic()
        if _last is not None and now_s - _last[0] < REUSE_S:
            return [dict(d) for d in _last[1]]
        devices = _in_child("audio device listing", _list_main, (), timeout_s, [])
        _last = (time.monotonic(), devices)
        return [dict(d) for d in devices]


def input_settings_supported(index: int, rate_hz: int, channels: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether input device `index` records float32 at `rate_hz` with `channels`, asked in a child process."""
    return bool(_in_child("audio input check", _check_input_main, (int(index), int(rate_hz), int(channels)),
                          timeout_s, False))


def default_output(devices: list[dict]) -> dict | None:
    """The default output device among `devices`, else the first output; None without one."""
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    flagged = [d for d in outputs if d.get("default_output")]
    return next(iter(flagged or outputs), None)


def _describe(devices: list[dict]) -> str:
    inputs = [f"{d['index']}: {d['name']}" for d in devices if d["max_input_channels"] > 0]
    return "; ".join(inputs) if inputs else "none"


def find_input_device(device: str, devices: list[dict] | None = None) -> dict:
    """The input device named by index or name substring ("" = the default input); UserError listing them."""
    devices = list_audio_devices() if devices is None else devices
    inputs = [d for d in devices if d["max_input_channels"] > 0]
    if not inputs:
        raise UserError("no audio input device was found; connect one, or set audio.source = \"file\" or \"synth\".")
    text = str(device).strip()
    if text == "":
        return next((d for d in inputs if d.get("default_input")), inputs[0])
    if text.lstrip("-").isdigit():
        for d in inputs:
            if d["index"] == int(text):
                return d
    else:
        matches = [d for d in inputs if text.lower() in d["name"].lower()]
        if matches:
            return matches[0]
    raise UserError(f"audio input device {text!r} was not found; the input devices are: {_describe(devices)} "
                    f"(set audio.device to a name substring or index).")


def has_input_device(device: str = "") -> bool:
    try:
        find_input_device(device)
        return True
    except UserError:
        return False
