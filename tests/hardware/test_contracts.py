"""One contract per interface, run over every implementation (the real ones and the fakes).

What the installation relies on, whatever is behind the interface: open and close may be called
twice; reads have the promised shapes and types; nothing raises after close; a panic leaves
nothing sounding. Device implementations run against real servers (JACK dummy, Xvfb) started by
the fixtures in conftest.py.
"""
from __future__ import annotations

import math
import threading
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from hardware import base
from installation.clock import ManualClock, MonotonicClock
from installation.records import AudioBlock, Cue, NoteEvent
from tests import fakes

NATIVE = {**dict.fromkeys(["SoundDeviceInput", "PyAudioInput", "MidoOut", "VirtualMidiOut", "MidoMidiIn", "VirtualMidiIn"],
                          pytest.mark.jack), "PygameDisplay": pytest.mark.own_process}
"""Implementations that join a JACK server or open a window on Xvfb: each case runs in a pytest
process of its own (tests/own_process.py)."""


def cases(table: dict) -> list:
    return [pytest.param(make, id=name, marks=[NATIVE[name]] if name in NATIVE else [])
            for name, make in table.items()]

RATE_HZ = 22050


# --- AudioInput ----------------------------------------------------------------------------------
def _tone_file(folder: Path) -> Path:
    path = folder / "tone.wav"
    t = np.arange(RATE_HZ) / RATE_HZ
    pcm = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE_HZ)
        f.writeframes(pcm.tobytes())
    return path


def _file_input(request, tmp_path):
    from hardware.sound.audio_in import FileInput
    return FileInput(str(_tone_file(tmp_path)), RATE_HZ, MonotonicClock())


def _synth_loop(request, tmp_path):
    from hardware.sound.synth import Synth, SynthLoopInput
    clock = ManualClock()
    synth = Synth(RATE_HZ)
    synth.send(mido.Message("note_on", note=60, velocity=100))
    return SynthLoopInput(synth, clock, 512)


def _array_input(request, tmp_path):
    t = np.arange(RATE_HZ) / RATE_HZ
    return fakes.ArrayAudioInput(0.3 * np.sin(2 * np.pi * 220 * t), RATE_HZ, ManualClock(), 1024)


def _audio_queue(request, tmp_path):
    from installation.stages.onsets import AudioQueue
    queue = AudioQueue("queue")
    for i in range(8):
        queue.blocks.put(AudioBlock(i * 0.05, np.zeros(1024, np.float32), RATE_HZ))
    return queue


def _device_input(cls_name):
    def make(request, tmp_path):
        request.getfixturevalue("portaudio_on_jack")
        from hardware.sound import audio_in
        return getattr(audio_in, cls_name)("", 48000, 1, 1024, MonotonicClock())
    return make


AUDIO_INPUTS = {
    "FileInput": _file_input,
    "SynthLoopInput": _synth_loop,
    "ArrayAudioInput": _array_input,
    "AudioQueue": _audio_queue,
    "SoundDeviceInput": _device_input("SoundDeviceInput"),
    "PyAudioInput": _device_input("PyAudioInput"),
}


@pytest.mark.parametrize("make", cases(AUDIO_INPUTS))
def test_audio_input_contract(make, request, tmp_path):
    audio = make(request, tmp_path)
    assert isinstance(audio, base.AudioInput) and isinstance(audio.name, str)
    audio.open()
    audio.close()
    audio.open()  # reopened after a close, as the listener worker does after a fault
    blocks = [b for b in (audio.read(timeout_s=0.2) for _ in range(8)) if b is not None]
    assert blocks, "an open input delivers audio"
    for block in blocks:
        assert isinstance(block, AudioBlock) and block.sample_rate_hz > 0 and math.isfinite(block.t_s)
        assert block.samples.dtype == np.float32 and block.samples.ndim == 1
        assert np.all(np.isfinite(block.samples)) and np.abs(block.samples).max() <= 1.0
    audio.close()
    audio.close()
    assert audio.read(timeout_s=0.01) is None or isinstance(audio.read(timeout_s=0.01), AudioBlock)


# --- Camera --------------------------------------------------------------------------------------
def _slideshow(tmp_path):
    from hardware.video.camera import PhotoSlideshow
    return PhotoSlideshow("", 64, 48, 1.0, ManualClock())


def _opencv_camera(tmp_path):
    from hardware.video.camera import OpenCvCamera
    device = {"plugged": True, "frame": np.full((48, 64, 3), 90, np.uint8)}
    return OpenCvCamera("0", 64, 48, 10.0, ManualClock(), open_capture=lambda _d: fakes.UnpluggableCapture(device))


def _video_file_camera(tmp_path):
    import cv2
    from hardware.video.camera import VideoFileCamera
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return VideoFileCamera(str(path), MonotonicClock())


def _list_camera(tmp_path):
    return fakes.ListCamera([np.full((48, 64, 3), v, np.uint8) for v in (10, 200)])


CAMERAS = {"PhotoSlideshow": _slideshow, "OpenCvCamera": _opencv_camera,
           "VideoFileCamera": _video_file_camera, "ListCamera": _list_camera}


@pytest.mark.parametrize("make", CAMERAS.values(), ids=CAMERAS.keys())
def test_camera_contract(make, tmp_path):
    camera = make(tmp_path)
    assert isinstance(camera, base.Camera) and isinstance(camera.name, str)
    camera.open()
    camera.close()
    camera.open()
    frames = [f for f in (camera.read() for _ in range(5)) if f is not None]
    assert frames, "an open camera delivers pictures"
    for rgb in frames:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    camera.close()
    camera.close()
    after = camera.read()
    assert after is None or (after.dtype == np.uint8 and after.ndim == 3)


# --- MidiOut -------------------------------------------------------------------------------------
def _sounding_after(messages: list) -> set[tuple[int, int]]:
    """(channel, note) still on at the end of a message list, as a receiving synth would hear it."""
    on: set[tuple[int, int]] = set()
    for message in messages:
        if message.type == "note_on" and message.velocity > 0:
            on.add((message.channel, message.note))
        elif message.type in ("note_on", "note_off"):
            on.discard((message.channel, message.note))
        elif message.type == "control_change" and message.control in (base.CC_ALL_NOTES_OFF, base.CC_ALL_SOUND_OFF):
            on = {k for k in on if k[0] != message.channel}
    return on


def _recording(request, tmp_path):
    from hardware.midi.output import RecordingMidiOut
    out = RecordingMidiOut(ManualClock())
    return out, lambda: _sounding_after([m for _, m in out.messages])


def _midi_file(request, tmp_path):
    from hardware.midi.output import MidiFileRecorder
    path = tmp_path / "take.mid"
    out = MidiFileRecorder(path, MonotonicClock())

    def sounding():
        return _sounding_after([m for m in mido.MidiFile(path) if not m.is_meta])
    return out, sounding


def _synth(request, tmp_path):
    from hardware.sound.synth import Synth
    out = Synth(RATE_HZ)
    return out, lambda: set(out.sounding())


def _osc_events(request, tmp_path):
    from hardware.midi.output import OscEventOut
    received: list[tuple] = []

    class ListClient:
        name = "list"

        def send(self, address, *args):
            received.append((address, *args))

        def close(self):
            pass

    out = OscEventOut(ListClient())

    def sounding():
        on: set[tuple[int, int]] = set()
        for address, *args in received:
            if address.endswith("/note"):
                (on.add if args[2] > 0 else on.discard)((args[0], args[1]))
            elif address.endswith("/panic"):
                on.clear()
        return on
    return out, sounding


def _jack_port(kind):
    def make(request, tmp_path):
        server = request.getfixturevalue("jack_server")
        from hardware.midi import output as midi
        backend = "mido.backends.rtmidi/UNIX_JACK"
        listener = fakes.JackMidiMonitor(f"contract-in-{kind}")
        request.addfinalizer(listener.close)
        if kind == "virtual":
            out = midi.VirtualMidiOut(f"contract-out-{server}", backend)
            import jack
            client = jack.Client("contract-connect", no_start_server=True)
            request.addfinalizer(client.close)
            sources = [p for p in client.get_ports(is_midi=True, is_output=True) if "contract-out" in p.name]
            client.connect(sources[0], listener.port)
        else:
            out = midi.MidoOut(f"contract-in-{kind}", backend, required=True)

        def sounding():
            from tests.waiting import wait_for
            wait_for(lambda: len(listener.received) >= 34, timeout_s=5)
            return _sounding_after([message for _, message in listener.received])
        return out, sounding
    return make


MIDI_OUTS = {"RecordingMidiOut": _recording, "MidiFileRecorder": _midi_file, "Synth": _synth,
             "OscEventOut": _osc_events, "MidoOut": _jack_port("port"), "VirtualMidiOut": _jack_port("virtual")}


@pytest.mark.parametrize("make", cases(MIDI_OUTS))
def test_midi_out_contract(make, request, tmp_path):
    out, sounding = make(request, tmp_path)
    assert isinstance(out, base.MidiOut) and isinstance(out, base.BaseMidiOut)
    out.send(mido.Message("note_on", channel=0, note=60, velocity=100))
    out.send(mido.Message("note_on", channel=5, note=67, velocity=90))
    out.send("not a message")  # refused and counted, never raised
    out.panic()
    assert sounding() == set(), "a panic leaves nothing sounding"
    assert out.stats["invalid"] == 1
    out.close()
    out.close()
    out.send(mido.Message("note_on", note=61, velocity=100))  # after close: counted as lost
    out.panic()
    assert out.stats["lost"] >= 1


def test_osc_in_port_taken_is_one_sentence():
    from hardware.osc.inbox import CommandInbox
    from hardware.osc.server import OscControlServer
    from installation.config import OscConfig
    from installation.errors import UserError

    def server(port: int) -> OscControlServer:
        return OscControlServer(OscConfig(host="127.0.0.1", port=port), CommandInbox(16), MonotonicClock(), dict)

    first = server(0)
    assert isinstance(first, base.OscIn)
    first.start()
    try:
        second = server(first.address[1])
        with pytest.raises(UserError, match="is using it"):  # a port taken is one sentence
            second.start()
        second.stop()  # never started: nothing to stop
    finally:
        first.stop()
        first.stop()


# --- Display and frame sinks ---------------------------------------------------------------------
def _headless(request, tmp_path):
    from hardware.video.display import HeadlessDisplay
    return HeadlessDisplay(64, 48)


def _pygame_window(request, tmp_path):
    request.getfixturevalue("xvfb")
    from hardware.video.display import PygameDisplay
    return PygameDisplay("window", 64, 48)


def _recording_display(request, tmp_path):
    return fakes.RecordingDisplay(64, 48)


DISPLAYS = {"HeadlessDisplay": _headless, "PygameDisplay": _pygame_window, "RecordingDisplay": _recording_display}


@pytest.mark.parametrize("make", cases(DISPLAYS))
def test_display_contract(make, request, tmp_path):
    display = make(request, tmp_path)
    assert isinstance(display, base.Display) and isinstance(display, base.FrameSink)
    display.open()
    for shape in ((48, 64, 3), (90, 160, 3)):  # its own size, and another one it must fit
        display.show(np.full(shape, 128, np.uint8))
    assert display.poll_quit() in (False, True)
    display.close()
    display.close()


def test_video_recorder_is_a_frame_sink(tmp_path):
    import cv2
    from hardware.video.display import VideoRecorder
    sink = VideoRecorder(tmp_path / "v.mp4", 10.0, 64, 48)
    assert isinstance(sink, base.FrameSink)
    sink.open()
    for value in (0, 120, 240):
        sink.show(np.full((48, 64, 3), value, np.uint8))
        sink.show(np.full((90, 160, 3), value, np.uint8))
    sink.close()
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


# --- Scheduler -----------------------------------------------------------------------------------
def _thread_scheduler(request):
    from hardware.midi.output import RecordingMidiOut
    from installation.scheduler import ThreadScheduler
    clock = MonotonicClock()
    return ThreadScheduler(clock, [RecordingMidiOut(clock)]), clock


def _process_scheduler(request):
    from installation.scheduler import ProcessScheduler
    clock = MonotonicClock()
    return ProcessScheduler([("recording",)], realtime_priority=None, clock=clock), clock


SCHEDULERS = {"ThreadScheduler": _thread_scheduler, "ProcessScheduler": _process_scheduler}


@pytest.mark.parametrize("make", SCHEDULERS.values(), ids=SCHEDULERS.keys())
def test_scheduler_contract(make, request):
    from tests.waiting import wait_for
    scheduler, clock = make(request)
    assert isinstance(scheduler, base.Scheduler)
    scheduler.start()
    now_s = clock.now_s()
    scheduler.submit([NoteEvent(now_s, 30.0, 60, 100), NoteEvent(now_s, 30.0, 64, 100, channel=1),
                      Cue(now_s, "/tempo", (120.0,))])
    scheduler.submit_messages([(now_s, mido.Message("program_change", program=5))])
    scheduler.set_tempo(100.0)
    scheduler.send_now(mido.Message("control_change", control=7, value=100))
    assert wait_for(lambda: scheduler.stats["sounding"] == 2, timeout_s=10)
    assert scheduler.horizon_s() >= now_s + 29.0
    scheduler.panic(clear_queue=True, timeout_s=2.0)
    stats = scheduler.stats
    assert stats["sounding"] == 0 and stats["lost"] == 0
    assert isinstance(scheduler.late_ms(), np.ndarray)
    scheduler.stop(timeout_s=2.0)
    scheduler.stop(timeout_s=2.0)


# --- Renderer ------------------------------------------------------------------------------------
def _procedural(tmp_path):
    from models.procedural.renderer import ProceduralRenderer
    return ProceduralRenderer(64, 36, seed=1)


def _diffusion(tmp_path):
    from installation.config import RenderConfig
    from models.diffusion.load import load_diffusion_renderer
    from tests.tiny_pipeline import write_tiny_family
    folder, _ = write_tiny_family(tmp_path / "sd15-lcm", "sd15-lcm")
    return load_diffusion_renderer(RenderConfig(model=str(folder), width=128, height=64).settings())


def _failing(tmp_path):
    return fakes.FailingRenderer(_procedural(tmp_path), fail_every=1000)


RENDERERS = {"ProceduralRenderer": _procedural, "DiffusionRenderer": _diffusion, "FailingRenderer": _failing}


@pytest.mark.parametrize("make", RENDERERS.values(), ids=RENDERERS.keys())
def test_renderer_contract(make, tmp_path, one_torch_thread):
    from installation.records import Caption, MusicState
    from models.procedural.renderer import ProceduralRenderer
    from models.renderer import Renderer
    from scenes.scene import load_scene
    renderer = make(tmp_path)
    assert isinstance(renderer, Renderer) and isinstance(renderer.name, str)
    renderer.prepare(load_scene("nocturne"))
    renderer.update_prompt(Caption(t_s=0.0, prompt="a lighthouse over a calm bay at night"))
    init_source = ProceduralRenderer(renderer_size(renderer)[0], renderer_size(renderer)[1], seed=2)
    for i, music in enumerate((MusicState(t_s=0.0, valence=0.4, arousal=0.2),
                               MusicState(t_s=0.5, valence=math.nan, arousal=math.inf, beat_phase=math.nan))):
        init = init_source.render(MusicState(t_s=0.0), float(i))
        rgb = renderer.render(music, float(i) * 0.5, init)
        assert rgb.dtype == np.uint8 and rgb.shape == init.shape  # at the render size, whatever the input
    renderer.close()
    renderer.close()


def renderer_size(renderer) -> tuple[int, int]:
    """(width, height) a renderer draws at."""
    inner = getattr(renderer, "inner", renderer)
    return int(inner.width), int(inner.height)


# --- MidiIn --------------------------------------------------------------------------------------
JACK_MIDI = "mido.backends.rtmidi/UNIX_JACK"


def _queue_midi_in(request):
    port = fakes.QueueMidiIn("queue", MonotonicClock())
    return port, lambda messages: [port.push(m) for m in messages]


def _jack_midi_in(kind):
    def make(request):
        request.getfixturevalue("jack_server")
        from hardware.midi.input import MidoMidiIn, VirtualMidiIn
        from tests.waiting import wait_for
        backend = mido.Backend(JACK_MIDI)
        if kind == "virtual":
            port = VirtualMidiIn("contract-midi-in", MonotonicClock(), JACK_MIDI)
            port.open()
            name = wait_for(lambda: next((n for n in backend.get_output_names() if "contract-midi-in" in n), None))
            controller = backend.open_output(name)
        else:
            controller = backend.open_output("contract-knobs", virtual=True)
            port = MidoMidiIn("contract-knobs", MonotonicClock(), JACK_MIDI, retry_s=0.05)
            port.open()
        request.addfinalizer(controller.close)
        probe = mido.Message("control_change", channel=15, control=119, value=0)
        # JACK connects a port a moment after it opens: what is sent before is lost, so wait until a probe lands
        assert wait_for(lambda: (controller.send(probe), port.poll())[1], timeout_s=10)
        threading.Event().wait(0.1)
        port.poll()
        return port, lambda messages: [controller.send(m) for m in messages]
    return make


MIDI_INS = {"QueueMidiIn": _queue_midi_in, "MidoMidiIn": _jack_midi_in("port"), "VirtualMidiIn": _jack_midi_in("virtual")}


@pytest.mark.parametrize("make", cases(MIDI_INS))
def test_midi_in_contract(make, request):
    from tests.waiting import wait_for
    port, play = make(request)
    assert isinstance(port, base.MidiIn) and isinstance(port.name, str)
    sent = [mido.Message("control_change", channel=2, control=7, value=1), mido.Message("note_on", note=60, velocity=90),
            mido.Message("control_change", channel=2, control=7, value=2)]
    play(sent)
    got: list = []
    assert wait_for(lambda: len(got.__iadd__(port.poll())) >= len(sent), timeout_s=5)
    assert [m.bytes() for m in got] == [m.bytes() for m in sent], "every message, once, in order"
    times = [m.time for m in got]
    assert all(isinstance(t, float) and math.isfinite(t) for t in times) and times == sorted(times)
    assert port.poll() == [], "a message is handed out once"
    port.close()
    port.close()  # twice: nothing raises


# --- OscIn ---------------------------------------------------------------------------------------
def _udp_sender(address):
    from pythonosc.udp_client import SimpleUDPClient
    client = SimpleUDPClient(*address)
    return lambda path, *args: client.send_message(path, list(args))


def _control_server(request, commands, clock):
    from hardware.osc.server import OscControlServer
    from installation.config import OscConfig
    from installation.operators.osc_wiring import command_space
    return OscControlServer(OscConfig(port=0).settings(), commands, clock, lambda: {}, command_space())


def _osc_udp(request, commands, clock):
    server = _control_server(request, commands, clock)
    return server, lambda: _udp_sender(server.address)


def _osc_tcp(request, commands, clock):
    from pythonosc import slip

    from hardware.osc.server import build_message
    from hardware.osc.tcp import OscTcpServer
    server = _control_server(request, commands, clock)
    server.start()
    request.addfinalizer(server.stop)
    tcp = OscTcpServer("127.0.0.1", 0, server, clock)

    def sender():
        import socket
        conn = socket.create_connection(tcp.address, timeout=5)
        request.addfinalizer(conn.close)
        return lambda path, *args: conn.sendall(slip.encode(build_message(path, *args)))
    return tcp, sender


def _osc_loopback(request, commands, clock):
    port = fakes.LoopbackOscIn(commands, clock)
    return port, lambda: port.receive


OSC_INS = {"OscControlServer": _osc_udp, "OscTcpServer": _osc_tcp, "LoopbackOscIn": _osc_loopback}


@pytest.mark.parametrize("make", OSC_INS.values(), ids=OSC_INS.keys())
def test_osc_in_contract(make, request):
    from hardware.osc.inbox import CommandInbox
    from installation.operators import routes
    from tests.waiting import wait_for
    commands: CommandInbox = CommandInbox(16)
    port, connect = make(request, commands, MonotonicClock())
    assert isinstance(port, base.OscIn)
    port.start()
    try:
        send = connect()
        send(routes.FREEZE, 1)
        send(routes.PARAM + "volume", 0.5)
        assert wait_for(lambda: len(commands) >= 2, timeout_s=5), "a message from an allowed host becomes a Command"
        got = commands.drain()
        assert [(c.address, c.args) for c in got] == [(routes.FREEZE, (1,)), (routes.PARAM + "volume", (0.5,))]
        assert all(isinstance(c.sender, str) and c.sender and math.isfinite(c.t_s) for c in got)
    finally:
        port.stop()
    port.stop()  # twice: nothing raises
