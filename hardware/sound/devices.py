"""The PortAudio devices this process sees: listing them and finding the input an operator named."""
from __future__ import annotations

from installation.errors import UserError


def list_audio_devices() -> list[dict]:
    """Every PortAudio device: index, name, hostapi, channel counts, default rate. [] without PortAudio."""
    try:
        import sounddevice as sd
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except Exception:  # no PortAudio library at all
        return []
    out = []
    for d in devices:
        out.append({"index": int(d["index"]), "name": str(d["name"]),
                    "hostapi": str(hostapis[d["hostapi"]]["name"]),
                    "max_input_channels": int(d["max_input_channels"]),
                    "max_output_channels": int(d["max_output_channels"]),
                    "default_samplerate": float(d["default_samplerate"])})
    return out


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
        default = _default_input_index()
        for d in inputs:
            if d["index"] == default:
                return d
        return inputs[0]
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


def _default_input_index() -> int:
    try:
        import sounddevice as sd
        return int(sd.default.device[0] if sd.default.device[0] is not None else -1)
    except Exception:
        return -1


def has_input_device(device: str = "") -> bool:
    try:
        find_input_device(device)
        return True
    except UserError:
        return False
