"""tools/visuals/contact_sheet.py: a clip follows the run's real clock, not the recording's frame count."""
import importlib.util
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("contact_sheet", ROOT / "tools/visuals/contact_sheet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clip_holds_each_projected_frame_for_its_real_time(tmp_path):
    tool = load_tool()
    run = tmp_path / "run"
    run.mkdir()
    # 6 frames projected unevenly over 2 s: a loaded machine records fewer frames than its nominal rate
    stamps = [100.0, 100.1, 100.2, 101.0, 101.5, 102.0]
    with av.open(str(run / "visuals.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 36, "yuv420p"
        for i in range(len(stamps)):
            rgb = np.full((36, 64, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    (run / "frames.csv").write_text("t_s,audio_s,change\n" + "".join(f"{t},,0.0\n" for t in stamps))
    count = tool.write_clip(run, tmp_path / "clip.webm")
    assert count == 31  # 2 s at 15 fps, both ends included
    with av.open(str(tmp_path / "clip.webm")) as clip:
        frames = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]
    assert len(frames) == 31 and frames[0].shape == (270, 480, 3)
    # 0.5 s in, the projector still showed the third frame (100.2 s); at 1.2 s the fourth (101.0 s)
    assert abs(float(frames[7].mean()) - 80) < 12 and abs(float(frames[18].mean()) - 120) < 12
