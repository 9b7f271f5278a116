"""PortAudio devices are listed in a child process: the installation's own process never joins a
JACK server, so a server that dies leaves none of its shared memory mapped there."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.sound.devices import find_input_device

LISTING = r"""
import json, sys
from hardware.sound.devices import default_output, input_settings_supported, list_audio_devices
from hardware.sound.synth import output_rate_hz

devices = list_audio_devices()
jack = [d for d in devices if "JACK" in d["hostapi"]]
inputs = [d for d in jack if d["max_input_channels"] > 0]
print(json.dumps({
    "jack_devices": len(jack),
    "output_rate_hz": output_rate_hz(fallback_hz=1),
    "default_output": (default_output(devices) or {}).get("name"),
    "input_ok": bool(inputs) and input_settings_supported(inputs[0]["index"], 48000, 1),
    "portaudio_here": "sounddevice" in sys.modules or "_sounddevice" in sys.modules,
    "jack_maps": [line.split()[-1] for line in open("/proc/self/maps") if "/dev/shm/jack" in line],
}))
"""


@pytest.mark.jack
def test_listing_devices_on_jack_maps_none_of_its_shared_memory(jack_server):
    """The listing sees the server's devices and rate, and the process that asked has no
    /dev/shm/jack* mapping. In a process of its own with a deadline: a hang in native code fails
    this test instead of stalling the run."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", LISTING], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["jack_devices"] >= 1
    assert seen["output_rate_hz"] == 48000
    assert seen["default_output"] is not None
    assert seen["input_ok"] is True
    assert seen["portaudio_here"] is False
    assert seen["jack_maps"] == []


def test_the_default_input_is_the_one_portaudio_names():
    devices = [{"index": 0, "name": "a", "hostapi": "ALSA", "max_input_channels": 2, "max_output_channels": 0,
                "default_samplerate": 48000.0, "default_input": False},
               {"index": 1, "name": "b", "hostapi": "ALSA", "max_input_channels": 2, "max_output_channels": 0,
                "default_samplerate": 48000.0, "default_input": True}]
    assert find_input_device("", devices)["name"] == "b"
    assert find_input_device("", devices[:1])["name"] == "a"
