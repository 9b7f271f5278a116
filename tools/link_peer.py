"""A second Ableton Link peer in its own process, for tests and `run.py bench link`.

Prints `ready` once it sees another peer, then one line every `--every-ms`:
`<link clock us> <beat at that time> <tempo bpm> <peers>`. Reads commands from stdin:
`tempo <bpm>` proposes a tempo to the session; end of input stops it.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hardware.link import AbletonLink  # noqa: E402
from installation.clock import MonotonicClock  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bpm", type=float, default=120.0)
    parser.add_argument("--quantum", type=float, default=4.0)
    parser.add_argument("--every-ms", type=float, default=10.0)
    args = parser.parse_args()
    clock = MonotonicClock()
    link = AbletonLink(clock, args.bpm, args.quantum)
    link.open()
    done = threading.Event()

    def commands() -> None:
        for line in sys.stdin:
            words = line.split()
            if len(words) == 2 and words[0] == "tempo":
                link.set_tempo(float(words[1]))
        done.set()

    threading.Thread(target=commands, daemon=True).start()
    ready = False
    while not done.wait(args.every_ms / 1000.0):
        if not ready and link.peers() > 0:
            ready = True
            print("ready", flush=True)
        if ready:
            now_s = clock.now_s()
            print(link.link_us(now_s), repr(link.beat_at(now_s)), repr(link.tempo_bpm()), link.peers(), flush=True)
    link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
