"""Device recovery: the health state machine, and real JACK MIDI devices through a power-cycled
destination and a restarted JACK server (in a child process with its own timeout)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hardware.recovery import DeviceHealth
from installation.clock import ManualClock
from tests.hardware import child_scenario

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 90.0


def test_a_loss_is_counted_and_logged_once_and_reopens_back_off(caplog):
    clock = ManualClock()
    health = DeviceHealth("synth", "MIDI out", clock.now_s, backoff_s=(0.5, 1.0, 2.0))
    health.opened()
    with caplog.at_level("WARNING", logger="chromesthesia.devices"):
        assert health.lost("port gone") is True
        assert health.lost("port gone") is False  # the same loss seen again by the next probe
    assert len(caplog.records) == 1 and health.snapshot()["state"] == "lost"
    assert not health.reopen_due()
    clock.advance(0.5)
    assert health.reopen_due()
    health.reopen_failed("still gone")
    clock.advance(0.9)
    assert not health.reopen_due()  # the second wait is longer
    clock.advance(0.1)
    assert health.reopen_due()
    health.opened()
    snap = health.snapshot()
    assert (snap["state"], snap["losses"], snap["reopens"], snap["reopen_failures"]) == ("open", 1, 1, 1)


def test_a_device_absent_at_start_is_not_a_loss():
    health = DeviceHealth("keys", "MIDI in", ManualClock().now_s)
    health.reopen_failed("not there")
    assert health.lost("not there") is False or health.losses == 0
    health.opened()
    assert health.snapshot()["losses"] == 0


def run_child(module: str, *args: str) -> dict:
    """Run a recovery scenario in a child process; a hang or crash fails with its stacks."""
    return child_scenario.run_child(module, CHILD_TIMEOUT_S, *args)


@pytest.mark.jack
@pytest.mark.slow
def test_midi_out_and_in_come_back_after_a_power_cycle_and_a_jack_restart():
    if shutil.which("jackd") is None or shutil.which("jack_midi_dump") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    result = run_child("tests.hardware.device_recovery_child")
    assert result["first_notes_s"] is not None and result["first_controls_s"] is not None
    # Back at all within the child's 10 s watch; the 5 s target is a figure the scenario prints
    # (`python -m tests.hardware.device_recovery_child`, docs/museum.md), not an assert on a loaded machine.
    assert result["power_cycle_notes_s"] is not None, result
    assert result["restart_notes_s"] is not None, result
    assert result["restart_controls_s"] is not None, result
    out, midi_in = result["out_health"], result["in_health"]
    assert (out["state"], out["losses"], out["reopens"]) == ("open", 2, 2), out
    assert (midi_in["state"], midi_in["losses"], midi_in["reopens"]) == ("open", 1, 1), midi_in
    lost_lines = [line for line in result["warnings"] if " lost (" in line]
    assert len(lost_lines) == 3, result["warnings"]  # each loss logged once


@pytest.mark.jack
def test_the_process_leaves_promptly_after_its_jack_server_died():
    """PortAudio's JACK host waits up to 10 minutes (or aborts) at exit when its server died."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    import time
    proc = subprocess.Popen([sys.executable, "-m", "tests.hardware.portaudio_exit_child"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "killed", proc.communicate(timeout=30)[1][-3000:]
        killed_at = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        exit_s = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    assert exit_s < 8.0, exit_s  # generous for a loaded machine; the hang it guards against is minutes


def test_the_board_reports_every_device_and_makes_each_new_loss_one_fault():
    from installation.devices import DeviceBoard
    from installation.web.metrics import InstallationCollector

    clock = ManualClock()

    class Port:
        health = DeviceHealth("keys", "MIDI in", clock.now_s)

    class Sender:  # the real-time sender process's scheduler, as it answers stats
        output_specs = [("mido", "synth", "")]
        stats = {"devices": {"synth": {"kind": "MIDI out", "state": "lost", "losses": 1, "reason": "synth is gone"}}}

    faults: list[tuple[str, str]] = []
    board = DeviceBoard([Port(), object()], [Sender()], on_loss=lambda name, text: faults.append((name, text)))
    Port.health.opened()
    board.refresh()
    board.refresh()  # the same loss seen again is not a second fault
    assert faults == [("MIDI out synth", "lost: synth is gone")]
    assert board.states()["keys"]["state"] == "open" and board.losses() == 1
    status = {"devices": board.states(), "device_losses": board.losses()}
    metrics = {m.name: m for m in InstallationCollector(lambda: status, 0.0).collect()}
    up = {s.labels["device"]: s.value for s in metrics["chromesthesia_device_up"].samples}
    assert up == {"keys": 1.0, "synth": 0.0}
    assert metrics["chromesthesia_faults"].samples[0].value == 1.0


@pytest.mark.jack
@pytest.mark.slow
def test_the_speakers_come_back_after_the_jack_server_is_killed_and_started_again():
    """kill -9 of jackd, then a new one: the synth is heard again on the speakers' JACK port in the
    same process (within the child's 15 s watch; the seconds are a figure the scenario prints,
    docs/museum.md, not an assert on a loaded machine); the loss is logged once."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    result = run_child("tests.hardware.speaker_recovery_child")
    assert result["first_sound_s"] is not None, result
    assert result["while_gone"] == {"playing": False, "state": "lost"}, result
    assert result["restart_sound_s"] is not None, result
    assert abs(result["restart_peak_hz"] - 440.0) < 5, result  # the note that was sounding, not noise
    health = result["health"]
    assert (health["state"], health["losses"], health["reopens"]) == ("open", 1, 1), health
    assert result["loop_stats"]["speaker_losses"] == 1 and result["loop_stats"]["speaker_reopens"] == 1, result
    lost_lines = [line for line in result["warnings"] if " lost (" in line]
    assert len(lost_lines) == 1, result["warnings"]


@pytest.mark.jack
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sounddevice", "pyaudio"])
def test_audio_in_comes_back_after_the_jack_server_is_killed_and_started_again(backend):
    """kill -9 of jackd, then a new one: the input (either backend) delivers the played tone again in
    the same process (within the child's 15 s watch; the seconds are a figure the scenario prints,
    docs/museum.md, not an assert on a loaded machine); silence is fed meanwhile; the loss logged once."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2); `make test` installs it")
    result = run_child("tests.hardware.audio_in_recovery_child", backend)
    assert result["first_tone_s"] is not None, result
    assert result["while_gone"]["state"] == "lost" and result["while_gone"]["silent_samples"] > 0, result
    assert result["restart_blocks_s"] is not None and result["restart_tone_s"] is not None, result
    health = result["health"]
    assert (health["state"], health["losses"], health["reopens"]) == ("open", 1, 1), health
    lost_lines = [line for line in result["warnings"] if " lost (" in line]
    assert len(lost_lines) == 1, result["warnings"]


def test_the_board_reports_the_camera_and_its_loss_is_a_fault():
    from hardware.video.camera import OpenCvCamera
    from installation.devices import DeviceBoard
    from installation.mailbox import Latest
    from installation.stages.camera import CameraStage
    from tests.fakes import UnpluggableCapture

    clock = ManualClock()
    device = {"plugged": True, "node": True, "frame": np.zeros((48, 64, 3), np.uint8)}
    camera = OpenCvCamera("/dev/video7", 64, 48, 10.0, clock, open_capture=lambda d: UnpluggableCapture(device),
                          node_exists=lambda path: device["node"])
    stage = CameraStage(camera, Latest(), clock, 10.0)
    faults: list[tuple[str, str]] = []
    board = DeviceBoard([stage, object()], [], on_loss=lambda name, text: faults.append((name, text)))
    camera.open()
    board.refresh()
    assert {name: s["state"] for name, s in board.states().items()} == {"opencv:/dev/video7": "open"}
    device["node"] = False
    clock.advance(1.0)
    camera.read()
    board.refresh()
    board.refresh()
    assert faults == [("camera opencv:/dev/video7", "lost: /dev/video7 is gone")]
    assert board.losses() == 1
