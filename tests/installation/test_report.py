"""`run.py report` turns a real show log (written by ShowLog) into one self-contained HTML page."""
from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from skimage import data

from installation.cli import main
from installation.clock import ManualClock
from installation.errors import UserError
from installation.showlog.report import build_report, find_log
from installation.showlog.writer import ShowLog


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


def test_report_command_writes_beside_the_log_named_by_date_and_period(show, capsys):
    assert main(["report", str(show)]) == 0
    out = show / f"report-{dt.date.today().isoformat()}-show.html"  # the fixture's records are from today
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(show / "show.jsonl"), "-o", str(show / "x.html")]) == 0
    assert (show / "x.html").read_text().startswith("<!doctype html>")


def test_report_on_nothing_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError):
        find_log(tmp_path)
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- a day ---------------------------------------------------------------------------------------
DAY = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def day_log(tmp_path_factory):
    from installation.showlog.synthetic_day import write_synthetic_day
    folder = tmp_path_factory.mktemp("day")
    write_synthetic_day(folder, DAY, hours=24, status_s=10.0, thumbnail_width=32)
    return folder


@pytest.fixture(scope="module")
def day_page(day_log):
    return build_report([day_log / "show.jsonl"], period="day", date=DAY)


def test_a_day_with_a_power_cut_reports_uptime_the_gap_band_and_faults_first(day_log, day_page):
    from installation.showlog.report import downtime, load_timeline
    timeline = load_timeline([day_log / "show.jsonl"])
    up, gaps, gap_s = downtime(timeline)
    assert len(gaps) == 1 and gap_s == 60.0
    (down_from, until), = gaps
    assert (down_from.hour, down_from.minute) == (12, 59) and (until.hour, until.minute, until.second) == (13, 20, 0)
    span_s = (timeline.when[-1] - timeline.when[0]).total_seconds()
    assert up == pytest.approx(1 - (until - down_from).total_seconds() / span_s)
    assert 0.985 < up < 0.987  # 20 minutes of 24 hours

    page = day_page
    assert f"Uptime {up * 100:.2f} %" in page
    assert "<td>2026-11-30 12:59:50</td><td>2026-11-30 13:20:00</td><td>0:20:10</td>" in page  # the gap band's row
    assert page.count('hatch') or page.count("down")  # the band is drawn in the plot
    # Faults and refused commands come first, grouped: not on the last page.
    faults_at, refused_at, plot_at = page.index("<h2 id=faults>"), page.index("<h2 id=refused>"), page.index("<svg")
    assert faults_at < refused_at < plot_at
    assert page.index("CUDA out of memory") < plot_at
    faults = sum(1 for r in timeline.records if r["kind"] == "fault")
    assert faults > 0 and f"<h2 id=faults>Faults: {faults}</h2><table class='alert'><tr><th>count</th>" in page
    assert "value 3 is out of range 0..1 (from 192.168.1.20:9000)" in page[:plot_at]
    # Time-of-day axis, per-minute bands for music, camera and projected picture.
    assert "local time (bands: min, median, max per minute)" in page
    for label in ("music", "camera's picture", "projected picture", "12:00"):
        assert label in page, label


def test_thumbnails_are_lit_frames(day_page):
    page = day_page
    import cv2
    import numpy as np
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert 100 <= len(images) <= 120
    levels = [cv2.imdecode(np.frombuffer(base64.b64decode(i), np.uint8), cv2.IMREAD_GRAYSCALE).mean() for i in images]
    assert min(levels) > 16  # the black fade-in frames at the start are passed over
    assert ">00:03:00<" in page or ">00:02:00<" in page  # first figure: the first lit minute


def test_week_report_reads_daily_files_and_the_command_takes_a_period(tmp_path):
    from installation.showlog.synthetic_day import write_synthetic_day
    folder = tmp_path / "week"
    folder.mkdir()
    for back in (1, 0):
        write_synthetic_day(tmp_path / f"d{back}", DAY - dt.timedelta(days=back), hours=2, status_s=30.0,
                            gap=None, thumbnail_width=32)
        name = "show.jsonl" if back == 0 else f"show-{DAY - dt.timedelta(days=back)}.jsonl"
        (tmp_path / f"d{back}" / "show.jsonl").rename(folder / name)
    out = tmp_path / "week.html"
    assert main(["report", str(folder), "--period", "week", "--date", str(DAY), "-o", str(out)]) == 0
    page = out.read_text()
    assert "24 Nov - 30 Nov 2026" in page and "Uptime" in page
    # Two days apart: the night between them is downtime.
    assert "2026-11-29 01:59:30" in page and "2026-11-30 00:00:00" in page
    assert main(["report", str(folder), "--period", "week", "--date", str(DAY)]) == 0
    assert (folder / "report-2026-11-30-week.html").is_file()  # the week's last day, not the newest log's name
    assert main(["report", str(folder), "--period", "day"]) == 0
    assert (folder / "report-2026-11-30-day.html").is_file()  # the last day logged


def test_a_field_named_like_a_record_key_never_breaks_the_show_log(tmp_path):
    from installation.showlog.writer import read_show_log
    log = ShowLog(tmp_path / "show.jsonl", ManualClock(5.0))
    log.write("critic", event="correction", kind="colour", time=3)
    log.close()
    record, = read_show_log(tmp_path / "show.jsonl")
    assert (record["kind"], record["kind_"], record["time_"], record["t_s"]) == ("critic", "colour", 3, 5.0)


# --- a short show with a blackout and closed hours ----------------------------------------------
@pytest.fixture
def short_show(tmp_path):
    """Three minutes as ShowLog writes them: lit, an operator's blackout at 60-80 s, closed hours
    (the schedule's state and its /blackout) at 120-150 s, lit again; a status record a second."""
    clock = ManualClock(50.0)
    log = ShowLog(tmp_path / "show.jsonl", clock)
    log.write("schedule", state="open")
    log.write("start", name="Gallery 3", scene="nocturne")
    log.write("caption", prompt="a harbour at dusk", reasons={"colour": "valence low", "motion": "arousal high",
                                                              "scene": "nocturne"})
    for second in range(180):
        if second == 60:
            log.write("command", address="/blackout", args=[1], sender="dashboard 10.0.0.5", ok=True)
        if second == 80:
            log.write("command", address="/blackout", args=[0], sender="dashboard 10.0.0.5", ok=True)
        if second == 120:
            log.write("schedule", state="closed")
            log.write("command", address="/blackout", args=[1], sender="schedule", ok=True)
        if second == 150:
            log.write("schedule", state="open")
            log.write("command", address="/blackout", args=[0], sender="schedule", ok=True)
        black = 60 <= second < 80 or 120 <= second < 150
        log.write("status", music_va=[0.2, 0.4], image_va=[0.1, 0.1],
                  projected_va=[-0.93, -0.9] if black else [0.5 + second / 1000, 0.3], blackout=black, fps=30.0,
                  drops={"frames": second // 10, "music": 0}, restarts=0, scene="nocturne")
        clock.advance(1.0)
    log.close()
    return tmp_path / "show.jsonl"


def test_closed_hours_and_blackouts_are_spans_and_their_black_frames_are_not_mood(short_show):
    from installation.showlog.report import dark_spans, darkness, downtime, load_timeline, va_points
    timeline = load_timeline([short_show])
    _, gaps, gap_s = downtime(timeline)
    dark = darkness(timeline)
    spans = dark_spans(timeline, dark, gap_s)
    assert not gaps
    start = timeline.when[0]
    assert [(s.why, round((s.start - start).total_seconds()), round((s.end - start).total_seconds())) for s in spans] \
        == [("blackout", 60, 80), ("closed", 120, 150)]
    projected = va_points(timeline, "projected_va", dark)
    assert len(projected) == 130 and min(va[0] for _, va in projected) >= 0.5  # no -0.93 black frame
    assert len(va_points(timeline, "music_va", dark)) == 180  # the music was still heard


def test_a_short_show_gets_second_bins_a_seconds_axis_and_folded_reasons(short_show):
    from installation.showlog.report import bin_seconds
    assert bin_seconds(180) == 2.0 and bin_seconds(540) == 5.0 and bin_seconds(3600) == 60.0
    assert bin_seconds(3 * 86400) == 600.0
    page = build_report(short_show)
    svg = page[page.index("<svg"):page.index("</svg>")]
    ticks = re.findall(r">\s*(\d\d:\d\d:\d\d)\s*<", svg)
    assert len(ticks) >= 4 and len(set(ticks)) == len(ticks)  # no minute read six times
    assert "per 2 s" in page
    for why in ("closed", "blackout"):  # in the legend and the table
        assert svg.count(f">{why}<") == 1 and f"<td>{why}</td>" in page
    assert "<td>0:00:30</td><td>closed</td>" in page and "<td>0:00:20</td><td>blackout</td>" in page
    assert ("<details><summary>colour: valence low <span class=more>+2</span></summary>"
            "<ul><li>colour: valence low</li><li>motion: arousal high</li><li>scene: nocturne</li></ul></details>") in page
    assert "<tr><td>dropped items</td><td>5.70 a minute (17 in all)</td></tr>" in page
