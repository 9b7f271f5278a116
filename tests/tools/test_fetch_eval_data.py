"""The held-out listening tables and the shared Debian-package fetcher of tools/listening/fetch_eval_data.py."""
from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("fetch_eval_data", ROOT / "tools/listening/fetch_eval_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fed = _load()


def test_fresh_set_uses_only_packages_no_other_set_uses():
    used = {row[1] for row in fed.OTHERS} | {fed.WESNOTH_PACKAGE, fed.ZEROAD_PACKAGE}
    assert not {row[1] for row in fed.FRESH} & used


def test_fresh_set_has_enough_labels_on_each_side_and_no_package_dominates():
    ids = [row[0] for row in fed.FRESH]
    assert len(ids) == len(set(ids))
    valence = Counter(row[3] for row in fed.FRESH if row[3] is not None)
    arousal = Counter(row[4] for row in fed.FRESH if row[4] is not None)
    assert valence[1] >= 12 and valence[-1] >= 12
    assert arousal[1] >= 10 and arousal[-1] >= 10
    per_package = Counter(row[1] for row in fed.FRESH)
    assert max(per_package.values()) <= len(fed.FRESH) / 3
    assert all(row[5] for row in fed.FRESH)  # every label names the words it rests on


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_debian_set_copies_members_licence_and_writes_labels(tmp_path, monkeypatch):
    # A real tiny package, served by a stand-in apt-get that copies it into the working directory.
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text("Package: tiny-music\nVersion: 1\nArchitecture: all\n"
                                         "Maintainer: nobody <nobody@example.org>\nDescription: test\n")
    music = root / "usr/share/games/tiny/music"
    music.mkdir(parents=True)
    (music / "victory.ogg").write_bytes(b"win")
    (music / "calm ambient.ogg").write_bytes(b"calm")
    (music / "unused.ogg").write_bytes(b"x")
    (root / "usr/share/doc/tiny-music").mkdir(parents=True)
    (root / "usr/share/doc/tiny-music/copyright").write_text("License: GPL-2+\n")
    deb = tmp_path / "tiny-music_1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True,
                   stdout=subprocess.DEVNULL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\ncp {deb} .\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    table = (("tiny_victory", "tiny-music", "usr/share/games/tiny/music/victory.ogg", 1, None, "title 'victory'"),
             ("tiny_calm", "tiny-music", "usr/share/games/tiny/music/calm ambient.ogg", None, -1, "title 'ambient'"))

    fed.fetch_debian_set(tmp_path / "out", table)

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["COPYRIGHT.tiny-music", "labels.csv", "tiny_calm.ogg",
                                                     "tiny_victory.ogg"]
    assert (out / "tiny_victory.ogg").read_bytes() == b"win"
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert rows == [
        {"song_id": "tiny_victory", "valence": "1", "arousal": "", "package": "tiny-music",
         "evidence": "title 'victory'"},
        {"song_id": "tiny_calm", "valence": "", "arousal": "-1", "package": "tiny-music",
         "evidence": "title 'ambient'"},
    ]


def test_only_fresh_builds_the_fresh_set_alone_and_the_default_run_builds_every_set(tmp_path, monkeypatch):
    built: list[str] = []
    for name in ("wesnoth", "chorales", "pairs", "moods", "0ad", "others", "fresh"):
        monkeypatch.setattr(fed, f"fetch_{name}", lambda *a, _n=name: built.append(_n))
    soundfont = tmp_path / "sf2"
    soundfont.write_bytes(b"")
    monkeypatch.setattr(fed, "SOUNDFONT", soundfont)
    monkeypatch.setattr(fed.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(sys, "argv", ["fetch_eval_data.py", str(tmp_path), "--only", "fresh"])
    assert fed.main() == 0
    assert built == ["fresh"]
    built.clear()
    monkeypatch.setattr(sys, "argv", ["fetch_eval_data.py", str(tmp_path)])
    assert fed.main() == 0
    assert built == ["wesnoth", "chorales", "pairs", "moods", "0ad", "others", "fresh"]
