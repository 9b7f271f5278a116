"""Show logs -> one self-contained HTML page for a show, a day or a week.

At the top: faults and refused commands (grouped, with counts), uptime and the downtime bands
(gaps in the log), closed hours and blackouts. Then valence and arousal on a time-of-day axis as
bands (min, median, max per minute; finer for a show under ten minutes, per 10 minutes for a
week) for the music, the camera's picture and the projected picture, with downtime, closed hours
and blackouts shaded and the black frames of those left out of the projected picture's bands;
thumbnails chosen from lit frames; scenes, captions (their reasons folded behind a click), plans
and commands as tables. Plots are inline SVG and thumbnails base64 JPEG, so the page is one file,
named after the date and period it covers (`report-2026-11-30-day.html`).

`python run.py report DIR|LOG [--period show|day|week] [--date YYYY-MM-DD] [-o FILE]`
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from installation.errors import UserError
from installation.showlog.writer import iter_show_log

MAX_THUMBNAILS = 120
MAX_ROWS = 1000
MAX_CELL_CHARS = 400
MAX_REASONS_CHARS = 600  # all of one caption's or plan's folded reasons: a day has 2,000 of them on the page
"""A longer cell (a caption's reasons, a long ABC) is cut in the page; the show log keeps it whole."""
MIN_GAP_S = 60.0
"""A silence in the log longer than this (or three status intervals, if longer) is downtime."""
LIT_MIN = 16.0
"""Mean grey level (0-255) below which a thumbnail counts as dark (fade-in, blackout, closed)."""
PERIODS = ("show", "day", "week")
CLOSED_STATES = ("closed", "dormant")
"""`schedule` record states that keep the room shut (closed hours; "dormant" with closed_action = "stop")."""
SHORT_SHOW_S = 600.0
"""A show shorter than this is binned in seconds, not minutes."""


def find_logs(path: Path) -> list[Path]:
    """A log file as given, or every show log in a folder (daily rotated files included), oldest first."""
    path = Path(path)
    if path.is_dir():
        logs = sorted(path.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))
        if not logs:
            raise UserError(f"{path} holds no show log (show.jsonl); give the folder a run recorded into, or the .jsonl itself.")
        return logs
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a show log (show.jsonl) or the folder holding it.")
    return [path]


def find_log(path: Path) -> Path:
    """The newest show log: the file as given, or show.jsonl (or the newest .jsonl) in a folder."""
    path = Path(path)
    if path.is_dir() and (path / "show.jsonl").is_file():
        return path / "show.jsonl"
    return find_logs(path)[-1]


def _when(record: dict) -> _dt.datetime | None:
    """The record's local wall-clock time (naive, as the installation saw it)."""
    text = record.get("time")
    if isinstance(text, str):
        try:
            return _dt.datetime.fromisoformat(text).replace(tzinfo=None)
        except ValueError:
            return None
    return None


@dataclass
class Timeline:
    """Records with their local wall-clock times (and the same as seconds), in order."""
    records: list[dict]
    when: list[_dt.datetime]
    epoch: np.ndarray


def load_timeline(paths: Iterable[Path]) -> Timeline:
    """Every record with its local time: the wall clock at each start of the program, then its
    monotonic `t_s` from there (a clock set by NTP mid-show does not fold the axis)."""
    triples = []
    for path in paths:
        anchor: tuple[_dt.datetime, float] | None = None
        for record in iter_show_log(path):
            t_s = record.get("t_s")
            at: _dt.datetime | None
            if not isinstance(t_s, (int, float)):
                anchor = None
                at = _when(record)
            else:
                if anchor is None or t_s < anchor[1] or record.get("kind") == "start":
                    wall = _when(record)  # parsed only where the time line is anchored
                    anchor = (wall, float(t_s)) if wall is not None else None
                at = anchor[0] + _dt.timedelta(seconds=t_s - anchor[1]) if anchor is not None else None
            if at is not None:
                record["_log"] = path
                triples.append((at, record))
    triples.sort(key=lambda pair: pair[0])
    when = [w for w, _ in triples]
    epoch = np.zeros(0)
    if when:  # seconds since the first record, without a timestamp() call per record
        epoch = when[0].timestamp() + np.array([(w - when[0]).total_seconds() for w in when])
    return Timeline([r for _, r in triples], when, epoch)


def select_period(timeline: Timeline, period: str, date: _dt.date | None) -> tuple[Timeline, str]:
    """The records of one day or the seven days ending on `date` (default: the last day logged)."""
    if period == "show" or not timeline.records:
        return timeline, "the whole log"
    last = date or timeline.when[-1].date()
    first = last if period == "day" else last - _dt.timedelta(days=6)
    start, end = _dt.datetime.combine(first, _dt.time()), _dt.datetime.combine(last + _dt.timedelta(days=1), _dt.time())
    keep = [i for i, w in enumerate(timeline.when) if start <= w < end]
    title = last.strftime("%A %d %B %Y") if period == "day" else f"{first:%d %b} - {last:%d %b %Y}"
    return Timeline([timeline.records[i] for i in keep], [timeline.when[i] for i in keep],
                    timeline.epoch[keep] if keep else np.zeros(0)), title


def downtime(timeline: Timeline) -> tuple[float, list[tuple[_dt.datetime, _dt.datetime]], float]:
    """(uptime fraction between the first and last record, the gaps, the gap threshold in s)."""
    when, records, epoch = timeline.when, timeline.records, timeline.epoch
    if len(when) < 2:
        return 1.0, [], MIN_GAP_S
    status_epoch = epoch[[i for i, r in enumerate(records) if r.get("kind") == "status"]]
    interval_s = float(np.median(np.diff(status_epoch))) if len(status_epoch) > 2 else 0.0
    gap_s = max(MIN_GAP_S, 3.0 * interval_s)
    steps = np.diff(epoch)
    gaps = [(when[i], when[i + 1]) for i in np.flatnonzero(steps > gap_s)]
    span_s = epoch[-1] - epoch[0]
    down_s = float(sum(steps[steps > gap_s]))
    return (1.0 - down_s / span_s) if span_s > 0 else 1.0, gaps, gap_s


@dataclass(frozen=True)
class DarkSpan:
    """A stretch when the projector was black on purpose: closed hours or a blackout."""
    start: _dt.datetime
    end: _dt.datetime
    why: str
    """"closed" (the schedule keeps the room shut) or "blackout" (in opening hours)."""


def darkness(timeline: Timeline) -> list[str | None]:
    """Per record: "closed" or "blackout" for a status record of a black projector, else None.

    Closed hours come from the `schedule` records (and, in logs older than those, the schedule's
    own /blackout commands); a lit status in closed hours (an operator's override) is lit."""
    closed = False
    has_states = any(r.get("kind") == "schedule" for r in timeline.records)
    out: list[str | None] = []
    for record in timeline.records:
        kind, dark = record.get("kind"), None
        if kind == "schedule":
            closed = record.get("state") in CLOSED_STATES
        elif (kind == "command" and not has_states and record.get("address") == "/blackout" and record.get("ok")
              and record.get("sender") == "schedule" and record.get("args")):
            closed = bool(record["args"][0])
        elif kind == "status" and record.get("blackout"):
            dark = "closed" if closed else "blackout"
        out.append(dark)
    return out


def dark_spans(timeline: Timeline, dark: list[str | None], gap_s: float) -> list[DarkSpan]:
    """Runs of black status records, each until the next status record (or the last black one,
    where the log stops or falls silent for longer than `gap_s`)."""
    spans: list[DarkSpan] = []
    status = [i for i, r in enumerate(timeline.records) if r.get("kind") == "status"]
    run: tuple[int, str] | None = None
    for here, after in zip(status, [*status[1:], None]):
        why = dark[here]
        if why is None:
            continue
        if run is None or run[1] != why:
            run = (here, why)
        if after is None or timeline.epoch[after] - timeline.epoch[here] > gap_s:
            spans.append(DarkSpan(timeline.when[run[0]], timeline.when[here], why))
            run = None
        elif dark[after] != why:
            spans.append(DarkSpan(timeline.when[run[0]], timeline.when[after], why))
            run = None
    return spans


def bin_seconds(span_s: float) -> float:
    """Band width: 10 minutes for more than two days, a minute down to ten minutes, and below
    that the shortest of 1-30 s that keeps the plot to 120 bins (a 3-minute show: 2 s)."""
    if span_s > 2 * 86400:
        return 600.0
    if span_s >= SHORT_SHOW_S:
        return 60.0
    return next(b for b in (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0) if span_s / b <= 120 or b == 60.0)


def _bin_name(bin_s: float) -> str:
    return {600.0: "10 minutes", 60.0: "minute"}.get(bin_s, f"{bin_s:g} s")


def va_points(timeline: Timeline, key: str, dark: list[str | None]) -> list[tuple[float, tuple[float, float]]]:
    """(epoch, (valence, arousal)) of each status record; the projected picture's black frames
    (closed hours, blackouts) are not its mood and are left out."""
    return [(t, va) for t, r, d in zip(timeline.epoch.tolist(), timeline.records, dark)
            if r.get("kind") == "status" and not (d is not None and key == "projected_va")
            and (va := _va(r, key)) is not None]


def _va(record: dict, key: str) -> tuple[float, float] | None:
    value = record.get(key)
    if type(value) is list and len(value) == 2 and type(value[0]) in (int, float) and type(value[1]) in (int, float):
        return float(value[0]), float(value[1])
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(x, (int, float)) for x in value):
        return float(value[0]), float(value[1])
    if isinstance(value, dict) and isinstance(value.get("valence"), (int, float)) and isinstance(value.get("arousal"), (int, float)):
        return float(value["valence"]), float(value["arousal"])
    return None


def bands(epoch_s: np.ndarray, values: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (start epoch, min, median, max) of `values` over time."""
    if len(epoch_s) == 0:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    bins = np.floor(epoch_s / bin_s).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, values = bins[order], values[order]
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    lows = np.minimum.reduceat(values, starts)
    highs = np.maximum.reduceat(values, starts)
    ends = np.r_[starts[1:], len(values)]
    medians = np.array([np.median(values[a:b]) for a, b in zip(starts, ends)])
    return bins[starts] * bin_s, lows, medians, highs


def _va_plot_svg(timeline: Timeline, gaps, dark: list[str | None], spans: list[DarkSpan]) -> tuple[str, str]:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    span_s = (timeline.when[-1] - timeline.when[0]).total_seconds() if timeline.when else 0.0
    bin_s = bin_seconds(span_s)
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and a smaller page
    fig, axes = plt.subplots(3, 1, figsize=(11, 6.6), sharex=True, constrained_layout=True)
    for ax, key, title in zip(axes, ("music_va", "image_va", "projected_va"),
                              ("music", "camera's picture", "projected picture")):
        points = va_points(timeline, key, dark)
        for index, (name, colour) in enumerate((("valence", "#1f6fb2"), ("arousal", "#d2691e"))):
            if not points:
                continue
            x, low, mid, high = bands(np.array([p[0] for p in points]), np.array([p[1][index] for p in points]), bin_s)
            # A band bridges only consecutive bins: a gap in the log shows as a gap in the band.
            xs = [_dt.datetime.fromtimestamp(t) for t in x]
            breaks = np.flatnonzero(np.diff(x) > bin_s * 1.5) + 1
            for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(x)]):
                # Rasterised: a day of per-minute bands as vector paths was most of the page.
                ax.fill_between(xs[a:b], low[a:b], high[a:b], color=colour, alpha=0.25, lw=0, step="post",
                                rasterized=True)
                ax.step(xs[a:b], mid[a:b], where="post", color=colour, lw=1.0, label=name if a == 0 else None,
                        rasterized=len(xs) > 240)
        for start, end in gaps:
            ax.axvspan(start, end, color="#999", alpha=0.35, lw=0, hatch="//", label="down" if start == gaps[0][0] else None)
        labelled = set()
        for span in spans:
            colour = "#3a3a55" if span.why == "closed" else "#6a3d9a"
            ax.axvspan(span.start, span.end, color=colour, alpha=0.22 if span.why == "closed" else 0.16, lw=0,
                       label=span.why if span.why not in labelled else None)
            labelled.add(span.why)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(title, fontsize=9)
        ax.axhline(0, color="#ccc", lw=0.6)
        ax.grid(alpha=0.25)
        if not points:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="#888")
    scene_changes = [(w, r) for w, r in zip(timeline.when, timeline.records) if r.get("kind") == "scene"]
    if len(scene_changes) <= 40:
        for when, record in scene_changes:
            for ax in axes:
                ax.axvline(when, color="#888", lw=0.7, ls="--")
            axes[0].annotate(str(record.get("scene", "")), (when, 1.0), fontsize=7, color="#555",
                             xytext=(2, -9), textcoords="offset points")
    axes[0].legend(loc="lower right", fontsize=8, ncols=5)
    # Seconds on the axis of a show under an hour: "%H:%M" read the same minute at every tick.
    formatter = "%H:%M:%S" if span_s < 3600 else "%H:%M" if span_s <= 86400 * 1.05 else "%a %d %H:%M"
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter(formatter))
    axes[-1].set_xlabel(f"local time (bands: min, median, max per {_bin_name(bin_s)})")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.find("<svg"):], _bin_name(bin_s)


class Markup(str):
    """A table cell that is HTML already (escaped where it was made)."""


def _cell(value: Any) -> str:
    return value if isinstance(value, Markup) else html.escape(_cut(str(value)))


def _table(headers: list[str], rows: list[list[Any]], cls: str = "") -> str:
    if not rows:
        return "<p class=none>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows[:MAX_ROWS])
    more = f"<p class=none>{len(rows) - MAX_ROWS} more rows not shown</p>" if len(rows) > MAX_ROWS else ""
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>{more}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "\u2026"


def _reasons(value: Any) -> Markup:
    """A caption's or plan's reasons folded behind a click: the first one shows, the rest open."""
    if isinstance(value, dict):
        items = [f"{k}: {v}" for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = [] if value is None or value == "" else [str(value)]
    if not items:
        return Markup("")
    first = html.escape(items[0] if len(items[0]) <= 90 else items[0][:89] + "\u2026")
    more = f" <span class=more>+{len(items) - 1}</span>" if len(items) > 1 else ""
    kept: list[str] = []
    left = MAX_REASONS_CHARS
    for item in items:
        if left <= 0:
            kept.append(f"\u2026 {len(items) - len(kept)} more")
            break
        kept.append(item if len(item) <= left else item[:left - 1] + "\u2026")
        left -= len(item)
    body = "".join(f"<li>{html.escape(item)}</li>" for item in kept)
    return Markup(f"<details><summary>{first}{more}</summary><ul>{body}</ul></details>")


def _arguments(record: dict) -> str:
    """A command's arguments, or a fader gesture as "first -> last (count values in duration)"."""
    if record.get("kind") == "gesture":
        return (f"{record.get('first')} -> {record.get('last')} ({record.get('count')} values in "
                f"{record.get('duration_s')} s)")
    return " ".join(map(str, record.get("args", [])))


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    return f"{days} d {text}" if days else text


def _grouped(items: list[tuple[_dt.datetime, str, str]]) -> list[list[Any]]:
    """(when, what, detail) -> rows of count, what, detail, first, last; most frequent first."""
    groups: dict[tuple[str, str], list[_dt.datetime]] = {}
    for when, what, detail in items:
        groups.setdefault((what, detail[:160]), []).append(when)
    rows = [[len(times), what, detail, f"{min(times):%Y-%m-%d %H:%M:%S}", f"{max(times):%Y-%m-%d %H:%M:%S}"]
            for (what, detail), times in groups.items()]
    return sorted(rows, key=lambda row: -row[0])


def _lit_thumbnails(timeline: Timeline) -> list[tuple[_dt.datetime, Path]]:
    """Up to MAX_THUMBNAILS, spread evenly over the period, each the first lit frame of its slot."""
    import cv2

    thumbs = [(w, (r["_log"].parent / r["path"])) for w, r in zip(timeline.when, timeline.records)
              if r.get("kind") == "thumbnail" and isinstance(r.get("path"), str)]
    if not thumbs:
        return []
    slots = min(MAX_THUMBNAILS, len(thumbs))
    edges = np.linspace(0, len(thumbs), slots + 1).astype(int)
    chosen = []
    for a, b in zip(edges[:-1], edges[1:]):
        for when, path in thumbs[a:b][:12]:  # a few tries a slot: a closed room stays dark for hours
            grey = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4) if path.is_file() else None
            if grey is not None and float(grey.mean()) >= LIT_MIN:
                chosen.append((when, path))
                break
    return chosen


def build_report(source: Path | list[Path], period: str = "show", date: _dt.date | None = None) -> str:
    """The HTML page for a show log (or several daily logs) over `period`."""
    return dated_report(source, period, date)[0]


def dated_report(source: Path | list[Path], period: str = "show",
                 date: _dt.date | None = None) -> tuple[str, _dt.date]:
    """The page and the day it is named after: the show's first day, the day, or the week's last day."""
    paths = [Path(p) for p in source] if isinstance(source, (list, tuple)) else [Path(source)]
    if period not in PERIODS:
        raise UserError(f"--period {period!r} is not one of {', '.join(PERIODS)}.")
    timeline, title = select_period(load_timeline(paths), period, date)
    if not timeline.records:
        where = ", ".join(map(str, paths))
        raise UserError(f"{where} holds no records{' for ' + title if period != 'show' else ''}; "
                        f"was the show stopped before it started, or is the date wrong?")
    records = timeline.records
    up, gaps, gap_s = downtime(timeline)
    dark = darkness(timeline)
    spans = dark_spans(timeline, dark, gap_s)

    def clock(w: _dt.datetime) -> str:
        return f"{w:%H:%M:%S}" if period == "day" else f"{w:%Y-%m-%d %H:%M:%S}"

    svg, bin_name = _va_plot_svg(timeline, gaps, dark, spans)
    name = html.escape(str(next((r["name"] for r in records if r.get("name")), "") or paths[-1].stem))
    day = timeline.when[0].date() if period == "show" else (date or timeline.when[-1].date())
    return _page(name=name, title=title, paths=paths, up=up, gaps=gaps, gap_s=gap_s, spans=spans, svg=svg,
                 bin_name=bin_name, summary=_summary_rows(timeline, title, up, gaps, spans),
                 figures=_thumbnail_figures(timeline, clock), **_event_tables(timeline, clock)), day


def _drop_rate(timeline: Timeline) -> str:
    """Items dropped a minute over the period: each run's counts start at 0, so the drops are the
    rises between consecutive status records of one run."""
    total, last, seconds, previous_t = 0.0, None, 0.0, None
    for t, record in zip(timeline.epoch.tolist(), timeline.records):
        if record.get("kind") == "start":
            last, previous_t = None, None
        if record.get("kind") != "status" or not isinstance(record.get("drops"), dict):
            continue
        count = sum(v for v in record["drops"].values() if isinstance(v, (int, float)))
        if last is not None and previous_t is not None and count >= last:
            total += count - last
            seconds += t - previous_t
        last, previous_t = count, t
    return f"{total * 60 / seconds:.2f} a minute ({total:.0f} in all)" if seconds > 0 else "n/a"


def _summary_rows(timeline: Timeline, title: str, up: float, gaps: list[tuple[_dt.datetime, _dt.datetime]],
                  spans: list[DarkSpan]) -> list[list[Any]]:
    """The summary table: period, span, uptime, closed and blackout time, counts of each kind,
    fps, the drop rate and the last status's restarts."""
    records, when = timeline.records, timeline.when
    kinds = Counter(r.get("kind", "?") for r in records)
    status = [r for r in records if r.get("kind") == "status"]
    fps = [r["fps"] for r in status if isinstance(r.get("fps"), (int, float))]
    last = status[-1] if status else {}
    starts = kinds.get("start", 0)

    def dark_s(why: str) -> str:
        return _duration(sum((s.end - s.start).total_seconds() for s in spans if s.why == why))
    return [
        ["period", title], ["first record", f"{when[0]:%Y-%m-%d %H:%M:%S}"], ["last record", f"{when[-1]:%Y-%m-%d %H:%M:%S}"],
        ["duration", _duration((when[-1] - when[0]).total_seconds())], ["uptime", f"{up * 100:.2f} %"],
        ["downtime", f"{len(gaps)} gap(s), {_duration(sum((b - a).total_seconds() for a, b in gaps))} in all"],
        ["closed (schedule)", dark_s("closed")], ["blackout in opening hours", dark_s("blackout")],
        ["starts (incl. restarts in place)", starts], ["records", len(records)],
        ["scene changes", kinds.get("scene", 0)], ["captions", kinds.get("caption", 0)],
        ["plans", kinds.get("plan", 0)], ["operator commands (a fader gesture counts once)", kinds.get("command", 0) + kinds.get("gesture", 0)],
        ["frames per second (median)", f"{statistics.median(fps):.1f}" if fps else "n/a"],
        ["dropped items", _drop_rate(timeline)], ["worker restarts (last status)", last.get("restarts", "n/a")],
    ]


def _event_tables(timeline: Timeline, clock: Callable[[_dt.datetime], str]) -> dict[str, Any]:
    """The rows of the event sections: faults, refused commands, captions, plans, scenes, commands, others."""
    records, when = timeline.records, timeline.when
    known = {"status", "caption", "plan", "scene", "command", "gesture", "fault", "thumbnail", "refusals_suppressed"}
    return {
        "faults": [(w, str(r.get("worker", "")), str(r.get("error", ""))) for w, r in zip(when, records) if r.get("kind") == "fault"],
        "refused": [(w, str(r.get("address", "")), f"{r.get('reason', '')} (from {r.get('sender', '?')})".strip())
                    for w, r in zip(when, records) if r.get("kind") == "command" and not r.get("ok")],
        "suppressed": sum(int(r.get("count", 0)) for r in records if r.get("kind") == "refusals_suppressed"),
        "captions": [[clock(w), r.get("prompt", ""), _reasons(r.get("reasons"))] for w, r in zip(when, records) if r.get("kind") == "caption"],
        "plans": [[clock(w), r.get("abc", ""), _reasons(r.get("reasons"))] for w, r in zip(when, records) if r.get("kind") == "plan"],
        "scenes": [[clock(w), r.get("scene", ""), r.get("crossfade_s", ""), r.get("sender", "")]
                   for w, r in zip(when, records) if r.get("kind") == "scene"],
        "commands": [[clock(w), r.get("address", ""), _arguments(r), r.get("sender", ""),
                      "ok" if r.get("ok") or r.get("kind") == "gesture" else f"refused: {r.get('reason', '')}"]
                     for w, r in zip(when, records) if r.get("kind") in ("command", "gesture")],
        "others": [[clock(w), r.get("kind", "?"), ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("t_s", "time", "kind", "_log"))]
                   for w, r in zip(when, records) if r.get("kind") not in known],
        "clock": clock,
    }


def _thumbnail_figures(timeline: Timeline, clock: Callable[[_dt.datetime], str]) -> list[str]:
    """The lit projected-frame thumbnails as inline <figure> elements."""
    figures = []
    for w, image in _lit_thumbnails(timeline):
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        figures.append(f'<figure><img src="data:image/jpeg;base64,{data}" alt="projected frame">'
                       f"<figcaption>{clock(w)}</figcaption></figure>")
    return figures


def _page(*, name: str, title: str, paths: list[Path], up: float, gaps: list[tuple[_dt.datetime, _dt.datetime]],
          gap_s: float, spans: list[DarkSpan], svg: str, bin_name: str, summary: list[list[Any]], figures: list[str],
          faults: list[tuple[_dt.datetime, str, str]], refused: list[tuple[_dt.datetime, str, str]], suppressed: int,
          captions: list[list[Any]], plans: list[list[Any]], scenes: list[list[Any]], commands: list[list[Any]],
          others: list[list[Any]], clock: Callable[[_dt.datetime], str]) -> str:
    """The report's HTML page from its parts."""
    down_rows = [[f"{a:%Y-%m-%d %H:%M:%S}", f"{b:%Y-%m-%d %H:%M:%S}", _duration((b - a).total_seconds())] for a, b in gaps]
    dark_rows = [[f"{s.start:%Y-%m-%d %H:%M:%S}", f"{s.end:%Y-%m-%d %H:%M:%S}", _duration((s.end - s.start).total_seconds()),
                  s.why] for s in spans]
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    refused_note = f" ({suppressed} more not logged one by one)" if suppressed else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chromesthesia report: {name}, {html.escape(title)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ text-align: left; padding: 3px 8px; vertical-align: top; border-bottom: 1px solid #eee; }}
th {{ background: #f6f6f6; }} .none {{ color: #888; }} .alert td {{ color: #8b1a10; }}
.thumbs {{ display: flex; flex-wrap: wrap; gap: 8px; }} figure {{ margin: 0; }} figure img {{ width: 160px; display: block; }}
figcaption {{ font-size: 11px; color: #666; }} svg {{ width: 100%; height: auto; }}
details summary {{ cursor: pointer; }} details ul {{ margin: 0.3em 0; padding-left: 1.2em; }} .more {{ color: #888; }}
@media print {{ h2 {{ break-after: avoid; }} table, figure {{ break-inside: avoid; }} }}
</style></head><body>
<h1>Chromesthesia report: {name}, {html.escape(title)}</h1>
<p>Show log{'s' if len(paths) > 1 else ''} <code>{html.escape(", ".join(p.name for p in paths))}</code> in
<code>{html.escape(str(paths[-1].parent))}</code>; report made {generated}.</p>
<h2 id=faults>Faults: {len(faults)}</h2>{_table(["count", "worker", "error", "first", "last"], _grouped(faults), "alert")}
<h2 id=refused>Refused commands: {len(refused) + suppressed}{refused_note}</h2>{_table(["count", "address", "reason", "first", "last"], _grouped(refused), "alert")}
<h2 id=uptime>Uptime {up * 100:.2f} %</h2>
<p>Between the first and last record; a silence in the log longer than {gap_s:.0f} s counts as downtime.</p>
{_table(["down from", "until", "for"], down_rows)}
<h2 id=dark>Closed hours and blackouts</h2>
<p>The projector black on purpose: the schedule's closed hours, or a blackout in opening hours (an
operator, the idle mode). Its black frames are left out of the projected picture's bands.</p>
{_table(["black from", "until", "for", "why"], dark_rows)}
<h2>Summary</h2>{_table(["", ""], summary)}
<h2>Valence and arousal (per {bin_name}; hatched: downtime, shaded: closed and blackout)</h2>{svg}
<h2>Projected frames</h2><div class=thumbs>{"".join(figures) or "<p class=none>none recorded</p>"}</div>
<h2>Scenes</h2>{_table(["time", "scene", "cross-fade (s)", "sender"], scenes)}
<h2>Captions</h2>{_table(["time", "prompt", "reasons"], captions)}
<h2>Musical plans</h2>{_table(["time", "ABC", "reasons"], plans)}
<h2>Operator commands</h2>{_table(["time", "address", "arguments", "sender", "result"], commands)}
<h2>Faults in order</h2>{_table(["time", "worker", "error"], [[clock(w), a, b] for w, a, b in faults])}
<h2>Other events</h2>{_table(["time", "kind", "fields"], others)}
</body></html>
"""


def write_report(source: Path, output: Path | None = None, period: str = "show", date: _dt.date | None = None) -> Path:
    """`period` "show": the newest log (a recording folder's show.jsonl); "day"/"week": every log
    in the folder (the always-on log's daily files), cut to that day or the week ending on it.
    Written beside the logs as `report-YYYY-MM-DD-PERIOD.html` (the week's last day) unless `output`."""
    paths = [find_log(Path(source))] if period == "show" else find_logs(Path(source))
    page, day = dated_report(paths, period, date)
    if output is None:
        output = paths[-1].with_name(f"report-{day.isoformat()}-{period}.html")
    try:
        Path(output).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the report to {output} ({exc.strerror}); choose another file with -o.") from None
    return Path(output)
