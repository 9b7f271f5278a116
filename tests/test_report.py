"""`run.py report` turns a real show log (written by ShowLog) into one self-contained HTML page."""
from __future__ import annotations

import base64
import re

import pytest
from skimage import data

from installation.cli import main
from installation.clock import ManualClock
from installation.errors import UserError
from installation.report import build_report, find_log
from installation.showlog import ShowLog


@pytest.fixture
def show(tmp_path):
    clock = ManualClock(100.0)
    log = ShowLog(tmp_path / "show.jsonl", clock, thumbnail_interval_s=30.0)
    log.write("start", name="Gallery 3")
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    for i in range(120):
        t = i / 119
        log.write("status", music_va=[-0.8 + 1.6 * t, 0.5], image_va=[0.2, -0.3 + 0.5 * t], caption="x",
                  scene="nocturne" if i < 60 else "pulse", fps=29.5, drops=i // 40, restarts=0)
        if i % 40 == 0:
            log.write("caption", prompt=f"a harbour at dusk, take {i}", reasons={"colour": "valence low <rising>"})
            log.write("plan", abc="X:1\nK:C\nCDEF|", reasons=["image is bright"])
        if i == 60:
            log.write("command", address="/scene", args=["pulse"], sender="10.0.0.5:9000", ok=True)
            log.write("scene", scene="pulse", crossfade_s=2.0, sender="10.0.0.5:9000")
            log.write("command", address="/param/brightness", args=[3], sender="10.0.0.5:9000", ok=False,
                      reason="value 3 is out of range 0..1")
        if i == 90:
            log.write("fault", worker="renderer", error="CUDA out of memory; stepped down to 384 px")
        log.thumbnail(photos[i % 3])
        clock.advance(1.0)
    log.close()
    with open(log.path, "ab") as f:
        f.write(b'{"t_s": 999, "kind": "sta')  # torn by a power cut
    return tmp_path


def test_report_page_holds_plots_captions_commands_faults_and_thumbnails(show):
    page = build_report(find_log(show))
    assert page.count("<svg") == 1 and "valence" in page and "arousal" in page
    assert "a harbour at dusk, take 40" in page and "valence low &lt;rising&gt;" in page  # escaped
    assert "X:1" in page and "image is bright" in page
    assert "10.0.0.5:9000" in page and "refused: value 3 is out of range 0..1" in page
    assert "CUDA out of memory" in page
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(images) == 4  # one every 30 s over 120 s
    assert all(base64.b64decode(img)[:2] == b"\xff\xd8" for img in images)
    assert ">0:01:59<" in page  # duration
    assert "src=\"http" not in page and "<link" not in page  # one file, nothing fetched


def test_report_command_writes_beside_the_log(show, capsys):
    assert main(["report", str(show)]) == 0
    out = show / "show.html"
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(show / "show.jsonl"), "-o", str(show / "x.html")]) == 0
    assert (show / "x.html").read_text().startswith("<!doctype html>")


def test_report_on_nothing_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError):
        find_log(tmp_path)
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
