"""An NDI receiver in its own process, for `run.py bench video-out`: what Resolume or OBS would get.

Finds the source named `--name` (asking 127.0.0.1 directly, as NDI's "extra IPs" setting does, since
mDNS may not run), receives for `--seconds` and prints one JSON line: frames received, resolution.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    config_dir = Path(tempfile.mkdtemp(prefix="ndi-"))
    (config_dir / "ndi-config.v1.json").write_text(json.dumps({"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""}}}))
    os.environ["NDI_CONFIG_DIR"] = str(config_dir)
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat

    finder = Finder()
    finder.open()
    deadline = time.monotonic() + 20
    source = None
    while source is None and time.monotonic() < deadline:
        finder.wait_for_sources(0.2)
        source = next((s for s in finder.iter_sources() if s.stream_name == args.name), None)
    if source is None:
        print(json.dumps({"error": f"no NDI source {args.name!r}", "sources": finder.get_source_names()}), flush=True)
        return 1
    receiver = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    frame = VideoFrameSync()
    receiver.frame_sync.set_video_frame(frame)
    receiver.set_source(source)
    print(json.dumps({"connected": args.name}), flush=True)
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        time.sleep(1 / 30)
        receiver.frame_sync.capture_video()  # what a mixer does each of its frames
    elapsed = time.monotonic() - start
    received = receiver.get_performance_data()["video"]["frames_total"]
    print(json.dumps({"received": received, "fps": round(received / elapsed, 2),
                      "resolution": list(frame.get_resolution())}), flush=True)
    receiver.disconnect()
    finder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
