#!/usr/bin/env python3
"""Fetch the drum-heavy recordings `bench reactivity` is measured on into DIR (default eval-data/reactivity).

  fretsonfire-songs-muldjord  Muldjord (El Senator), metal songs for Frets on Fire; CC BY-SA 3.0.
                              The backing tracks (song.ogg: drums, bass, rhythm guitar, no lead guitar).
  singularity-music           Max McCracken, soundtrack of Endgame: Singularity; CC BY-SA 3.0.

Both are Debian packages (main), fetched with `apt-get download` and unpacked with `dpkg-deb`; the
audio is not part of this repository. Each package's copyright file is copied beside its tracks.
Then, for each file:  python run.py bench reactivity --audio DIR/FILE --json FILE.json
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TRACKS = {
    "fretsonfire-songs-muldjord": {
        "muldjord/armygeddon/song.ogg": "muldjord-armygeddon.ogg",
        "muldjord/chaos_god/song.ogg": "muldjord-chaos-god.ogg",
        "muldjord/internal_degeneration/song.ogg": "muldjord-internal-degeneration.ogg",
        "muldjord/mutilated_mime/song.ogg": "muldjord-mutilated-mime.ogg",
    },
    "singularity-music": {
        "music/Media Threat.ogg": "singularity-media-threat.ogg",
        "music/Enemy Unknown.ogg": "singularity-enemy-unknown.ogg",
    },
}


def fetch(package: str, files: dict[str, str], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        root = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        for suffix, name in files.items():
            source = next(p for p in root.rglob("*.ogg") if p.as_posix().endswith(suffix))
            shutil.copy(source, out / name)
        copyright_file = next(root.rglob("copyright"), None)
        if copyright_file is not None:
            shutil.copy(copyright_file, out / f"COPYRIGHT-{package}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=Path("eval-data/reactivity"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for package, files in TRACKS.items():
        try:
            fetch(package, files, args.dir)
        except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
            print(f"could not fetch {package} ({exc}); is this a Debian system with apt sources?", file=sys.stderr)
            return 2
    print(f"recordings in {args.dir}: {', '.join(sorted(n for f in TRACKS.values() for n in f.values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
