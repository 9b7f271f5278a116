"""Video out: an NDI receiver sees the named source and its frames; slow or failing sinks never hold up
the projector; the virtual camera's absence is one sentence when required and a warning when not."""
from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from hardware.video.output import build_video_out
from hardware.video.sink_thread import SinkThread
from installation.clock import MonotonicClock
from installation.config import VideoOutConfig
from installation.errors import UserError
from tests.fakes import BlockingSink, FlakySink
from tests.waiting import wait_for


def frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 4 + i * 8) % 256, (y * 5) % 256, np.full_like(x, (i * 37) % 256)], axis=-1)
    return rgb.astype(np.uint8)


def test_a_stalled_sink_never_holds_up_the_projector_and_keeps_only_the_newest_frame():
    sink = BlockingSink()
    thread = SinkThread(sink)
    thread.open()
    try:
        for i in range(500):  # the projector goes on while the sink is stuck in its first send
            thread.show(frame(i))
        assert wait_for(lambda: thread.dropped >= 498)
        sink.release.set()
        assert wait_for(lambda: len(sink.frames) == 2)
        assert np.array_equal(sink.frames[-1], frame(499))  # the newest, not a queue of old ones
    finally:
        thread.close()


def test_a_failing_sink_is_reopened_with_backoff_and_sends_again():
    sink = FlakySink()
    thread = SinkThread(sink, backoff_s=0.01)
    thread.open()
    try:
        def shown():
            thread.show(frame(len(sink.frames)))
            return len(sink.frames) >= 6
        assert wait_for(shown, timeout_s=20.0)
        assert thread.errors == 3 and thread.reopened >= 1 and sink.opens == 4
        assert thread.stats()["last_error"] == "OSError: connection reset"
        # the device's health: two failed first opens are no loss; the reset after working is one, and it is back
        health = thread.health.snapshot()
        assert (health["state"], health["losses"]) == ("open", 1) and health["reopens"] >= 1, health
    finally:
        thread.close()
    assert thread.health.snapshot()["state"] == "closed"


def test_virtual_camera_absent_is_one_sentence_when_required_and_a_warning_when_not(caplog):
    pytest.importorskip("pyvirtualcam")
    required = VideoOutConfig(virtual_camera=True, required=True).settings()
    with pytest.raises(UserError) as err:
        build_video_out(required, 64, 48, 30.0)
    message = str(err.value)
    assert message.startswith("video_out.virtual_camera: the virtual camera cannot open (")
    assert "modprobe v4l2loopback" in message and message.count("\n") == 0

    [out] = build_video_out(VideoOutConfig(virtual_camera=True).settings(), 64, 48, 30.0)
    out.open()
    try:
        with caplog.at_level(logging.WARNING, logger="hardware.video.sink_thread"):
            out.show(frame(0))
            assert wait_for(lambda: out.errors >= 1)
        assert "modprobe v4l2loopback" in caplog.text
        out.show(frame(1))  # the show goes on
    finally:
        out.close()


def test_a_missing_package_is_one_sentence_when_required_and_skipped_when_not(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    monkeypatch.setitem(sys.modules, "cyndilib.sender", None)
    with pytest.raises(UserError, match=r"needs the pyvirtualcam package.*video-out.*virtual_camera = false"):
        build_video_out(VideoOutConfig(virtual_camera=True, required=True).settings(), 64, 48, 30.0)
    with pytest.raises(UserError, match=r"needs the cyndilib package"):
        build_video_out(VideoOutConfig(ndi=True, required=True).settings(), 64, 48, 30.0)
    with caplog.at_level(logging.WARNING, logger="hardware.video.output"):
        assert build_video_out(VideoOutConfig(ndi=True, virtual_camera=True).settings(), 64, 48, 30.0) == []
    assert "The show goes on without it." in caplog.text
    assert build_video_out(VideoOutConfig().settings(), 64, 48, 30.0) == []


@pytest.fixture
def ndi_finds_localhost(tmp_path, monkeypatch):
    """NDI finds sources by mDNS, which this machine does not run; NDI's own config names hosts to
    ask directly ("extra IPs"), so the finder asks 127.0.0.1. Read when NDI starts in this process."""
    (tmp_path / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}))
    monkeypatch.setenv("NDI_CONFIG_DIR", str(tmp_path))


@pytest.mark.slow
def test_an_ndi_receiver_finds_the_named_source_and_receives_the_projectors_frames(ndi_finds_localhost):
    pytest.importorskip("cyndilib")
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat

    width, height = 160, 90
    [out] = build_video_out(VideoOutConfig(ndi=True, ndi_name="Chromesthesia test", required=True).settings(), width, height,
                            30.0, MonotonicClock())  # frames are encoded only while a receiver is connected
    shown = frame(7, width, height)
    finder = Finder()
    receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    received = VideoFrameSync()  # NDI's frame synchroniser: the newest frame the receiver has
    receiver.frame_sync.set_video_frame(received)
    out.open()
    try:
        out.show(shown)
        finder.open()

        def found():
            finder.wait_for_sources(0.2)
            return next((s for s in finder.iter_sources() if s.stream_name == "Chromesthesia test"), None)
        source = wait_for(found, timeout_s=20.0)
        assert source is not None, finder.get_source_names()
        receiver.set_source(source)

        errors = []

        def matching():
            out.show(shown)  # the projector keeps showing its frame
            receiver.frame_sync.capture_video()
            if received.get_resolution() != (width, height):
                return False
            picture = received.get_array().reshape(height, width, 4)[..., :3].astype(int)
            # NDI's codec is lossy: close to the projector's picture, far from another one
            errors.append((np.abs(picture - shown).mean(), np.abs(picture - frame(20, width, height)).mean()))
            return sum(1 for error, other in errors if error < 6.0 and other > 5 * error) >= 3
        assert wait_for(matching, timeout_s=30.0), errors[-3:]
        assert receiver.is_connected() and out.errors == 0
        assert out.sink.skipped >= 1  # nothing was encoded before the receiver came
    finally:
        receiver.disconnect()
        finder.close()
        out.close()


def test_a_sink_thread_is_a_frame_sink_that_follows_size_changes_and_closes_twice():
    from hardware import base
    from tests.fakes import FlakySink

    sink = FlakySink(fail_opens=0, fail_after=-1)
    out = SinkThread(sink)
    assert isinstance(out, base.FrameSink)
    out.open()
    out.show(frame(0, 64, 48))
    assert wait_for(lambda: len(sink.frames) == 1)
    out.show(frame(1, 160, 90))  # the projector's size changed: the sink is reopened at the new size
    assert wait_for(lambda: len(sink.frames) == 2) and sink.opens == 2
    out.close()
    out.close()
